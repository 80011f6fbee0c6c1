"""GAN Compression's recipe: a sampled sub-network of the supernet is exactly its extraction, the
search stays within the budget and follows the score, the distillation maps stay out of the saved
generator, training moves the shared weights and never the teacher; and the benchmark's method."""
import pytest
import torch

from mggc_plugin import ChannelGroups, count_macs, networks, slim
from mggc_plugin.gan_compression import (
    SubNetwork,
    Supernet,
    SupernetConfig,
    extract,
    first_k,
    random_search,
    rates_around,
    sample_widths,
    search_space,
    shared_rates,
    train_supernet,
)
from mggc_plugin.slim import load_slim, save_slim, slim_info

CASES = {
    "resnet_6blocks-batch": (lambda: networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch"),
                             lambda: networks.define_D(6, 8, "basic", norm="batch"), 32),
    "unet_128-dropout": (lambda: networks.define_G(3, 3, 8, "unet_128", norm="batch", use_dropout=True),
                         lambda: networks.define_D(6, 8, "basic", norm="batch"), 128),
}


def data(size, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return x, torch.tanh(x.flip(1))


def step_batches(x, y):
    def batches(step):
        i = step % len(x)
        return x[i:i + 1], y[i:i + 1], y[i:i + 1]
    return batches


@pytest.fixture(scope="module", params=list(CASES))
def trained(request):
    torch.manual_seed(0)
    build_G, build_D, size = CASES[request.param]
    G_T, D_T = build_G(), build_D()
    x, y = data(size)
    groups = ChannelGroups.discover(G_T, x[:1])
    space = search_space(groups, rates_around(groups, 0.3, round_to=2), round_to=2)
    before = ({k: v.clone() for k, v in G_T.state_dict().items()}, {k: v.clone() for k, v in D_T.state_dict().items()})
    supernet = train_supernet(G_T, D_T, groups, space, step_batches(x, y), steps=3, config=SupernetConfig(seed=1),
                              progress=False)
    return G_T, D_T, groups, supernet, x, before


def test_a_sampled_subnetwork_computes_exactly_its_extraction(trained):
    G_T, D_T, groups, supernet, x, _ = trained
    widths = sample_widths(supernet.space, torch.Generator().manual_seed(3))
    assert widths != groups.sizes
    small = extract(supernet, widths).eval()
    assert slim_info(small)["widths"] == widths
    view = SubNetwork(supernet, widths).eval()
    with torch.no_grad():
        gated, sliced, full = view(x), small(x), supernet.G.eval()(x)
    assert (gated - sliced).abs().max().item() <= 1e-4
    assert (gated - full).abs().max().item() > 1e-3  # the gates really cut channels
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in G_T.parameters())


def test_training_moves_the_shared_weights_and_never_the_teacher(trained):
    G_T, D_T, groups, supernet, x, (G_before, D_before) = trained
    assert all(torch.equal(G_before[k], v) for k, v in G_T.state_dict().items())
    assert all(torch.equal(D_before[k], v) for k, v in D_T.state_dict().items())
    assert all(p.requires_grad for p in G_T.parameters()) and all(p.requires_grad for p in D_T.parameters())
    moved = [k for k, v in supernet.G.state_dict().items() if v.is_floating_point() and not torch.equal(v, G_before[k])]
    assert moved and supernet.G.state_dict().keys() == G_before.keys()
    assert supernet.D is not None and any(not torch.equal(v, D_before[k]) for k, v in supernet.D.state_dict().items())
    assert len(supernet.adapters) == len(groups)
    assert supernet.steps == 3 and len(supernet.history) == 3 and supernet.seconds > 0
    assert all({"G_gan", "G_recon", "G_distill", "D", "macs"} <= h.keys() for h in supernet.history)


def test_the_search_stays_within_the_budget_and_follows_the_score(trained):
    G_T, D_T, groups, supernet, x, _ = trained
    target = 0.3
    budget = target * groups.full_macs
    supernet.G.train()
    result = random_search(supernet, target, lambda G_sub: -float(sum(G_sub.widths)), n=6, seed=0)
    assert 0.9 * budget <= result.macs <= budget
    assert len({tuple(c.widths) for c in result.candidates}) == len(result.candidates) >= 2
    assert all(0.9 * budget <= c.macs <= budget for c in result.candidates)
    assert sum(result.widths) == max(sum(c.widths) for c in result.candidates)  # the lowest score wins
    small = extract(supernet, result.widths)
    assert abs(count_macs(small, tuple(x[:1].shape)).total - result.macs) / result.macs < 1e-6
    assert all(m.training for m in supernet.G.modules())  # the search ran in eval mode and restored it


def test_the_search_says_when_no_configuration_fits(trained):
    G_T, D_T, groups, supernet, x, _ = trained
    wide = Supernet(supernet.G, supernet.groups, [[n] for n in groups.sizes], None, supernet.adapters)
    with pytest.raises(ValueError, match="no configuration"):
        random_search(wide, 0.3, lambda G_sub: 0.0, n=2)


def test_the_distillation_maps_are_not_in_the_saved_generator(trained, tmp_path):
    G_T, D_T, groups, supernet, x, _ = trained
    widths = [c[0] for c in supernet.space]
    small = extract(supernet, widths)
    payload = torch.load(save_slim(small, tmp_path / "slim_G.pt"), weights_only=True)
    reference = slim(G_T, groups, first_k(groups.sizes, widths))
    assert payload["state_dict"].keys() == reference.state_dict().keys()
    assert len(supernet.adapters) > 0 and not any(k.startswith("adapters") for k in payload["state_dict"])
    with torch.no_grad():
        assert torch.allclose(load_slim(tmp_path / "slim_G.pt")(x), small.eval()(x), atol=1e-5)


def test_at_the_start_the_widest_subnetwork_is_the_teacher():
    torch.manual_seed(0)
    G_T = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    x, y = data(32, n=2)
    groups = ChannelGroups.discover(G_T, x[:1])
    full = [[n] for n in groups.sizes]
    supernet = train_supernet(G_T, None, groups, full, step_batches(x, y), steps=1,
                              config=SupernetConfig(lambda_gan=0.0), progress=False)
    assert supernet.D is None and "D" not in supernet.history[0]
    assert supernet.history[0]["G_distill"] < 1e-10  # identity maps, same weights, every channel kept
    assert supernet.history[0]["macs"] == pytest.approx(1.0)


def test_bad_arguments_are_named():
    G_T = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    x, y = data(32, n=1)
    groups = ChannelGroups.discover(G_T, x)
    space = [[n] for n in groups.sizes]
    with pytest.raises(ValueError, match="discriminator"):
        train_supernet(G_T, None, groups, space, step_batches(x, y), steps=1)
    with pytest.raises(ValueError, match="candidate widths"):
        train_supernet(G_T, None, groups, space[:-1], step_batches(x, y), 1, SupernetConfig(lambda_gan=0.0))
    with pytest.raises(ValueError, match="another module"):
        train_supernet(networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance"), None, groups, space,
                       step_batches(x, y), 1, SupernetConfig(lambda_gan=0.0))
    with pytest.raises(ValueError, match="spread"):
        rates_around(groups, 0.3, spread=(0.0,))


def test_the_candidate_widths_bracket_the_budget():
    G_T = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G_T, torch.zeros(1, 3, 32, 32))
    rates = rates_around(groups, 0.2, round_to=2)
    assert rates == sorted(rates) and len(rates) == 5 and rates[-1] <= 1
    space = search_space(groups, rates, round_to=2)
    assert all(c == sorted(set(c)) and all(w % 2 == 0 or w == n for w in c) for c, n in zip(space, groups.sizes))
    narrow = float(groups.macs(first_k(groups.sizes, [c[0] for c in space])))
    wide = float(groups.macs(first_k(groups.sizes, [c[-1] for c in space])))
    assert narrow < 0.2 * groups.full_macs < wide


@pytest.fixture
def compressors(benchmark_script):
    return benchmark_script("compressors")


def registry_context(compressors, **changes):
    from dataclasses import replace

    torch.manual_seed(0)
    G = networks.define_G(3, 3, 16, "resnet_6blocks", "batch")
    D = networks.define_D(6, 8, "basic", norm="batch")
    x, y = data(32, n=6)
    game = compressors.GameData(x, y, torch.zeros(6, 1, dtype=torch.long))
    ctx = compressors.Context(G, D, dict(input_nc=3, output_nc=3, ngf=16, netG="resnet_6blocks", norm="batch"),
                              dict(input_nc=6, ndf=8, netD="basic", norm="batch"), "hinge", True, game,
                              prune_steps=2, batch_size=1, device="cpu", round_to=4, seed=0, search_candidates=4)
    return replace(ctx, **changes)


def test_the_benchmark_method_records_its_cost_and_meets_the_budget(compressors):
    ctx = registry_context(compressors)
    G_before = {k: v.clone() for k, v in ctx.G_T.state_dict().items()}
    student = compressors.METHODS["gan_compression"].make(ctx, 0.25)
    shape = (1, 3, 32, 32)
    full = count_macs(ctx.G_T, shape).total
    assert 0.95 * 0.25 * full <= count_macs(student.G, shape).total <= 0.25 * full
    info = student.info
    assert info["supernet_steps"] == 2 and info["supernet_seconds"] > 0 and info["search_seconds"] > 0
    assert 1 <= info["search_candidates"] <= 4 and info["discriminator"] is True
    assert 0.9 * 0.25 <= info["macs_before_fill"] <= 0.25
    assert len(student.history) == 2 and not compressors.METHODS["gan_compression"].discriminator_free
    assert all(torch.equal(G_before[k], v) for k, v in ctx.G_T.state_dict().items())
    trained_D = student.D.state_dict()
    assert any(not torch.equal(v, ctx.D_T.state_dict()[k]) for k, v in trained_D.items() if v.is_floating_point())


def test_the_validation_split_holds_out_the_last_images(compressors):
    train, val = compressors.validation_split(25)
    assert val.tolist() == [23, 24] and train.tolist() == list(range(23))
    assert [t.tolist() for t in compressors.validation_split(1)] == [[0], [0]]


def test_an_interrupted_training_resumes_as_the_uninterrupted_one(tmp_path):
    build_G, build_D, size = CASES["unet_128-dropout"]  # dropout: the resumed run must restore torch's RNG
    torch.manual_seed(0)
    G_T, D_T = build_G(), build_D()
    x, y = data(size)
    groups = ChannelGroups.discover(G_T, x[:1])
    space = search_space(groups, rates_around(groups, 0.3, round_to=2), round_to=2)
    config = SupernetConfig(seed=1)
    torch.manual_seed(5)
    straight = train_supernet(G_T, D_T, groups, space, step_batches(x, y), 4, config, progress=False)

    def interrupted(step):
        if step == 3:
            raise KeyboardInterrupt
        return step_batches(x, y)(step)

    checkpoint = tmp_path / "supernet.pt"
    torch.manual_seed(5)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(G_T, D_T, groups, space, interrupted, 4, config, progress=False, checkpoint=checkpoint,
                       save_every=2)
    torch.manual_seed(123)
    resumed = train_supernet(G_T, D_T, groups, space, step_batches(x, y), 4, config, progress=False,
                             checkpoint=checkpoint, save_every=2)
    assert resumed.history == straight.history and len(resumed.history) == 4
    for name, value in straight.G.state_dict().items():
        assert torch.equal(value, resumed.G.state_dict()[name]), name

    def never(step):
        raise AssertionError(f"a finished supernet took step {step}")

    again = train_supernet(G_T, D_T, groups, space, never, 4, config, progress=False, checkpoint=checkpoint)
    assert again.history == straight.history and again.seconds >= resumed.seconds - 1e-9
    with pytest.raises(ValueError, match="scheduled for 4 steps, not 5"):
        train_supernet(G_T, D_T, groups, space, never, 5, config, progress=False, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="another search space"):
        train_supernet(G_T, D_T, groups, [c[:1] for c in space], never, 4, config, progress=False,
                       checkpoint=checkpoint)


def test_one_supernet_serves_every_budget():
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="batch")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 32, 32))
    both = shared_rates(groups, (0.25, 0.1), round_to=2)
    assert both == sorted(set(rates_around(groups, 0.25, 2)) | set(rates_around(groups, 0.1, 2)))
    assert shared_rates(groups, (0.1,), round_to=2) == rates_around(groups, 0.1, 2)
    with pytest.raises(ValueError, match="at least one MACs budget"):
        shared_rates(groups, ())


def test_the_benchmark_trains_one_supernet_for_every_budget(compressors, tmp_path):
    checkpoint = tmp_path / "supernet.pt"
    ctx = registry_context(compressors, targets=(0.25, 0.15), checkpoint=checkpoint)
    first = compressors.METHODS["gan_compression"].make(ctx, 0.25)
    saved = checkpoint.read_bytes()
    second = compressors.METHODS["gan_compression"].make(ctx, 0.15)
    assert checkpoint.read_bytes() == saved  # searched, not trained again
    assert second.info["supernet_seconds"] == first.info["supernet_seconds"]
    assert second.info["supernet_serves"] == [0.15, 0.25] and second.history == first.history
    shape = (1, 3, 32, 32)
    full = count_macs(ctx.G_T, shape).total
    assert 0.95 * 0.15 * full <= count_macs(second.G, shape).total <= 0.15 * full
