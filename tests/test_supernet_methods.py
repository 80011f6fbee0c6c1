"""--mggc_method gan_compression|agd without upstream: the step-level supernet trainer computes what
train_supernet computes and resumes exactly from its state; the options are checked with their
fixes; the held-out split, the supernet file and the search that makes the student."""
import argparse

import pytest
import torch
from PIL import Image
from torch.optim.lr_scheduler import LambdaLR

from mggc_plugin import ChannelGroups, count_macs, networks
from mggc_plugin.data import ImageRef
from mggc_plugin.finetune import linear_lr
from mggc_plugin.gan_compression import (
    SubNetwork,
    SupernetConfig,
    SupernetTrainer,
    rates_around,
    search_space,
    train_supernet,
)
from mggc_plugin.upstream import options, supernet
from mggc_plugin.upstream.specs import SPECS

SIZE = 32


def pair(norm="batch"):
    torch.manual_seed(0)
    return networks.define_G(3, 3, 8, "resnet_6blocks", norm=norm), networks.define_D(6, 8, "basic", norm=norm)


def data(n=4):
    x = torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return x, torch.tanh(x.flip(1))


def space_of(G, target=0.3):
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, SIZE, SIZE))
    return groups, search_space(groups, rates_around(groups, target, 2), 2)


def batch(x, y, step):
    i = step % len(x)
    return x[i:i + 1], y[i:i + 1], y[i:i + 1]


def states_equal(a, b):
    return all(torch.equal(v, b[k]) for k, v in a.items())


def test_the_step_api_computes_exactly_what_train_supernet_does():
    G_T, D_T = pair()
    x, y = data()
    groups, space = space_of(G_T)
    config = SupernetConfig(seed=3)
    torch.manual_seed(1)
    reference = train_supernet(G_T, D_T, groups, space, lambda s: batch(x, y, s), 3, config, progress=False)
    torch.manual_seed(1)
    trainer = SupernetTrainer(G_T, D_T, groups, space, config)
    schedulers = [LambdaLR(opt, linear_lr(3)) for opt in trainer.optimizers]
    history = []
    for step in range(3):
        history.append(trainer.step(*batch(x, y, step)))
        for scheduler in schedulers:
            scheduler.step()
    trainer.close()
    assert history == reference.history and trainer.step_count == 3
    assert states_equal(reference.G.state_dict(), trainer.supernet.G.state_dict())
    assert states_equal(reference.D.state_dict(), trainer.supernet.D.state_dict())
    assert states_equal(reference.adapters.state_dict(), trainer.supernet.adapters.state_dict())


def test_a_resumed_trainer_continues_as_the_uninterrupted_one(tmp_path):
    G_T, D_T = pair()
    x, y = data()
    groups, space = space_of(G_T)
    torch.manual_seed(1)
    straight = SupernetTrainer(G_T, D_T, groups, space)
    for step in range(4):
        straight.step(*batch(x, y, step))
    torch.manual_seed(1)
    first = SupernetTrainer(G_T, D_T, groups, space)
    for step in range(2):
        first.step(*batch(x, y, step))
    torch.save(first.state_dict(), tmp_path / "state.pt")
    rng = torch.get_rng_state()
    again = SupernetTrainer(G_T, D_T, groups, space)
    torch.set_rng_state(rng)  # what upstream's resumed run restores (<epoch>_mggc_rng.pt)
    again.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert again.step_count == 2
    for step in range(2, 4):
        again.step(*batch(x, y, step))
    for part in ("G", "D", "adapters", "rng"):
        a, b = straight.state_dict()[part], again.state_dict()[part]
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else states_equal(a, b), part
    with pytest.raises(ValueError, match="trained with one discriminator, this trainer has none"):
        SupernetTrainer(G_T, None, groups, space, SupernetConfig(lambda_gan=0.0)).load_state_dict(again.state_dict())


def test_without_a_target_the_teacher_output_is_reconstructed():
    G_T, _ = pair(norm="instance")
    x, _ = data(2)
    groups = ChannelGroups.discover(G_T, x[:1])
    trainer = SupernetTrainer(G_T, None, groups, [[n] for n in groups.sizes], SupernetConfig(lambda_gan=0.0))
    logs = trainer.step(x[:1], x[:1])  # the widest sub-network is the teacher at step 0
    assert logs["G_recon"] < 1e-6 and "D" not in logs and logs["G_gan"] == 0.0
    assert trainer.optimizers == [trainer.opt_G]
    trainer.close()


def train_options(**changes):
    values = dict(isTrain=True, netG="unet_128", norm="batch", netD="basic", gan_mode="hinge", mggc_phase="prune",
                  teacher_name="teacher", mggc_target_macs=0.25, mggc_target_latency_ms=None, dataset_mode="aligned",
                  mggc_method="gan_compression", mggc_round_to=1, lambda_L1=100.0, mggc_lambda_kd=1.0,
                  mggc_widths="game", mggc_width_floor=0.75,
                  checkpoints_dir="checkpoints", mggc_prune_epochs=None, mggc_search_candidates=200,
                  mggc_lambda_perceptual=1.0, mggc_lambda_tv=1e-7, lr=2e-4, beta1=0.5, mggc_seed=0)
    return argparse.Namespace(**{**values, **changes})


@pytest.mark.parametrize("method", options.SUPERNET_METHODS)
def test_the_supernet_methods_train_on_the_teachers_data_in_two_phases(method):
    options.check_train_options(train_options(mggc_method=method))
    assert not options.plays_game(train_options(mggc_method=method))
    with pytest.raises(ValueError, match="--mggc_method .* needs no neighbourhoods"):
        options.check_train_options(train_options(mggc_method=method, dataset_mode="neighborhood"))
    with pytest.raises(ValueError, match="run --mggc_phase prune, then --mggc_phase finetune"):
        options.check_train_options(train_options(mggc_method=method, mggc_phase="all"))


def test_the_finetune_options_of_the_search_and_agd_are_checked():
    options.check_train_options(train_options(mggc_phase="finetune"))
    with pytest.raises(ValueError, match="--mggc_search_candidates 0"):
        options.check_train_options(train_options(mggc_phase="finetune", mggc_search_candidates=0))
    with pytest.raises(ValueError, match="--mggc_lambda_perceptual -1"):
        options.check_train_options(train_options(mggc_phase="finetune", mggc_lambda_perceptual=-1.0))


def test_the_objective_per_method_and_task():
    gc = supernet.supernet_config(train_options(), SPECS["mggc_pix2pix"])
    agd = supernet.supernet_config(train_options(mggc_method="agd", lambda_L1=10.0, gan_mode="lsgan"),
                                   SPECS["mggc_cycle_gan"])
    assert (gc.lambda_gan, gc.lambda_recon, gc.lambda_distill, gc.conditional_D) == (1.0, 100.0, 1.0, True)
    assert (agd.lambda_gan, agd.lambda_recon, agd.lambda_distill, agd.conditional_D) == (0.0, 10.0, 0.01, False)


def test_the_last_tenth_of_the_sources_is_held_out(tmp_path):
    refs = [ImageRef(tmp_path / f"{i:02d}.png") for i in range(25)]
    train, held = supernet.split_held_out(refs)
    assert held == refs[23:] and train == refs[:23]
    assert supernet.held_out_keys(train, held) == {str((tmp_path / n).resolve()) for n in ("23.png", "24.png")}
    one = refs[:1]
    assert supernet.split_held_out(one) == (one, one) and supernet.held_out_keys(one, one) == set()
    with pytest.raises(ValueError, match="no image"):
        supernet.split_held_out([])


@pytest.fixture
def saved(tmp_path):
    """``saved(method)``: a supernet trained 2 steps and saved as the prune phase saves it, with
    two held-out source images on disk."""
    def save(method):
        G_T, D_T = pair()
        x, y = data()
        groups, space = space_of(G_T)
        config = SupernetConfig(lambda_gan=0.0 if method == "agd" else 1.0)
        trainer = SupernetTrainer(G_T, D_T if method != "agd" else None, groups, space, config)
        for step in range(2):
            trainer.step(*batch(x, y, step))
        refs = []
        for i in range(2):
            path = tmp_path / f"{i}.png"
            Image.new("RGB", (SIZE, SIZE), (40 * i, 90, 200)).save(path)
            refs.append(ImageRef(path))
        path = supernet.state_file(tmp_path, "latest")
        supernet.save_state(path, supernet.state_payload(method, 0.3, 2, trainer, refs))
        return path, trainer, G_T, D_T
    return save


@pytest.mark.parametrize("method", options.SUPERNET_METHODS)
def test_the_search_extracts_the_student_within_budget(saved, method):
    path, trainer, G_T, D_T = saved(method)
    x = torch.zeros(1, 3, SIZE, SIZE)
    groups_D = ChannelGroups.discover(D_T, torch.zeros(1, 6, SIZE, SIZE))
    G, D, groups, origin, how = supernet.search_student(path, method, G_T, D_T, groups_D, x, candidates=4, seed=0)
    full = count_macs(G_T, tuple(x.shape)).total
    assert 0.9 * 0.3 * full <= count_macs(G, tuple(x.shape)).total <= 0.3 * full
    assert origin["search"]["candidates"] == 4 and origin["search"]["held_out_images"] == 2
    assert origin["supernet_steps"] == 2 and method in how
    assert (D is None) == (method == "agd")
    if D is not None:  # the supernet's trained D, not the teacher's
        assert any(not torch.equal(v, D_T.state_dict()[k]) for k, v in D.state_dict().items() if v.is_floating_point())
    widths = origin["search"]["widths"]
    trainer.supernet.G.eval()
    probe = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(SubNetwork(trainer.supernet, widths)(probe), G.eval()(probe), atol=1e-4)
    assert set(G.state_dict()) <= set(G_T.state_dict()), "no distillation map in the student"


def test_a_supernet_file_of_another_method_or_format_is_refused(saved, tmp_path):
    path, *_ = saved("agd")
    with pytest.raises(ValueError, match="--mggc_method agd, not gan_compression"):
        supernet.read_state(path, "gan_compression")
    torch.save({"format": "other"}, tmp_path / "1_mggc_supernet.pt")
    with pytest.raises(ValueError, match="not a supernet state"):
        supernet.read_state(tmp_path / "1_mggc_supernet.pt", "agd")
    with pytest.raises(FileNotFoundError, match="--mggc_prune_epoch"):
        supernet.read_state(tmp_path / "7_mggc_supernet.pt", "agd")
