"""Eq. 1's top-k cosine neighbours: the chunked ``topk_cosine`` equals brute force."""
import pytest
import torch

from mggc_plugin.neighborhoods import topk_cosine


def brute_force(x: torch.Tensor, k: int):
    """Eq. 1 literally: the full N×N cosine matrix, j ≠ i, sorted by similarity then index."""
    n = torch.linalg.vector_norm(x, dim=1)
    sim = (x @ x.T) / (n[:, None] * n[None, :])
    sim.fill_diagonal_(float("-inf"))
    order = sim.argsort(dim=1, descending=True, stable=True)[:, :k]
    return order, sim.gather(1, order)


@pytest.mark.parametrize("n,d,k,chunk", [(300, 16, 5, 7), (300, 16, 5, 1024), (257, 64, 5, 64),
                                         (50, 3, 1, 1), (120, 8, 10, 13)])
def test_random_embeddings_match_brute_force(n, d, k, chunk):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n + d + k))
    idx, sim = topk_cosine(x, k, chunk_size=chunk)
    ref_idx, ref_sim = brute_force(x, k)
    assert idx.shape == sim.shape == (n, k)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(sim, ref_sim, rtol=0, atol=1e-6)
    assert (idx != torch.arange(n)[:, None]).all()  # j ≠ i
    assert (sim[:, :-1] >= sim[:, 1:]).all()  # most similar first


def test_float64_is_computed_in_float64():
    x = torch.randn(80, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    idx, sim = topk_cosine(x, 4, chunk_size=9)
    ref_idx, ref_sim = brute_force(x, 4)
    assert sim.dtype == torch.float64
    assert torch.equal(idx, ref_idx) and torch.allclose(sim, ref_sim, rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 2, 5, 16, 1000])
def test_ties_are_broken_by_index_like_brute_force(chunk):
    # Small-integer vectors: dot products are exact and many cosines tie exactly (parallel and
    # repeated vectors), including ties across the k-th place.
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-1, 2, (160, 3), generator=g).float()
    x = x[x.abs().sum(1) > 0]
    x = torch.cat([x, 2 * x[:20]])  # scaled copies: cosine exactly 1 with their originals
    idx, sim = topk_cosine(x, 5, chunk_size=chunk)
    ref_idx, ref_sim = brute_force(x, 5)
    assert torch.equal(sim, ref_sim)
    assert torch.equal(idx, ref_idx)


def test_all_identical_rows_pick_the_lowest_other_indices():
    x = torch.ones(9, 4)
    idx, sim = topk_cosine(x, 3, chunk_size=2)
    expected = torch.tensor([[j for j in range(9) if j != i][:3] for i in range(9)])
    assert torch.equal(idx, expected)
    torch.testing.assert_close(sim, torch.ones(9, 3))


def test_n_equal_k_plus_one_returns_every_other_point():
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(5))
    idx, sim = topk_cosine(x, 5, chunk_size=2)
    ref_idx, ref_sim = brute_force(x, 5)
    assert torch.equal(idx, ref_idx)
    for i in range(6):
        assert sorted(idx[i].tolist()) == [j for j in range(6) if j != i]


@pytest.mark.parametrize("n", [1, 4, 5])
def test_n_at_most_k_is_a_clear_error(n):
    with pytest.raises(ValueError, match=r"k=5 .*at least k\+1=6 .*N=%d" % n):
        topk_cosine(torch.randn(n, 3), 5)


def test_invalid_inputs_are_named():
    with pytest.raises(ValueError, match="row 2 is all zeros"):
        topk_cosine(torch.tensor([[1.0, 0], [0, 1], [0, 0], [1, 1]]), 1)
    with pytest.raises(ValueError, match="NaN"):
        topk_cosine(torch.tensor([[1.0, 0], [float("nan"), 1], [1, 1]]), 1)
    with pytest.raises(ValueError, match="N×D"):
        topk_cosine(torch.randn(10), 1)
    with pytest.raises(ValueError, match="floating point"):
        topk_cosine(torch.ones(10, 2, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="k=0"):
        topk_cosine(torch.randn(10, 2), 0)


def test_sign_matters_opposite_vectors_are_least_similar():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    idx, sim = topk_cosine(x, 3)
    assert idx[0].tolist() == [2, 3, 1]
    assert sim[0, -1].item() == pytest.approx(-1.0)


def test_precision_at_k_counts_neighbours_with_the_centres_label():
    from mggc_plugin.neighborhoods import precision_at_k

    labels = torch.tensor([0, 0, 1, 1])
    indices = torch.tensor([[1, 2], [0, 3], [3, 0], [2, 1]])  # each centre: one same-label, one other
    assert precision_at_k(indices, labels) == 0.5
    assert precision_at_k(torch.tensor([[1], [0], [3], [2]]), labels) == 1.0
    with pytest.raises(ValueError, match="same N"):
        precision_at_k(indices[:3], labels)
