"""Stochastic teacher outputs: several draws per source, reproducible, and neighbourhoods that
hold same-source samples."""
import pytest
import torch

from mggc_plugin import networks
from mggc_plugin.neighborhoods.stochastic import same_source_fraction, stochastic_outputs
from mggc_plugin.neighborhoods.topk import topk_cosine


def test_draws_differ_per_sample_and_repeat_per_seed():
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "unet_128", norm="batch", use_dropout=True)
    x = torch.randn(3, 3, 128, 128)
    y = stochastic_outputs(G, x, samples=2, seed=1)
    assert y.shape == (6, 3, 128, 128)
    assert not torch.equal(y[0], y[1])  # two draws of source 0
    assert torch.equal(y, stochastic_outputs(G, x, samples=2, seed=1))
    assert not torch.equal(y, stochastic_outputs(G, x, samples=2, seed=2))
    assert G.training  # the teacher itself is untouched


def test_a_teacher_without_dropout_is_refused():
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance", use_dropout=False)
    with pytest.raises(ValueError, match="no dropout layer"):
        stochastic_outputs(G, torch.randn(1, 3, 32, 32), samples=2)


def test_neighbourhoods_of_stochastic_outputs_hold_same_source_samples():
    torch.manual_seed(0)
    base = torch.randn(5, 16)
    emb = base.repeat_interleave(3, dim=0) + 0.01 * torch.randn(15, 16)  # 3 near-copies per source
    indices, _ = topk_cosine(emb, k=2)
    assert same_source_fraction(indices, samples=3) == 1.0
    single, _ = topk_cosine(base, k=2)
    assert same_source_fraction(single, samples=1) == 0.0
