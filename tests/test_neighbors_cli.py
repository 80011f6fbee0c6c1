"""``mggc neighbors`` end to end: dataset folder + teacher checkpoint → neighbourhood file + HTML page."""
import argparse
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from mggc_plugin import encoders, networks
from mggc_plugin import neighborhoods as nbh
from mggc_plugin.cli import neighbors as neighbors_cli

SIZE = 32
TRAIN_OPT = """----------------- Options ---------------
               batch_size: 1
                crop_size: {size}                           \t[default: 256]
             dataset_mode: aligned
                direction: BtoA                          \t[default: AtoB]
                 input_nc: 3
                    model: pix2pix                       \t[default: cycle_gan]
                     netG: resnet_6blocks                \t[default: unet_256]
                      ngf: 4                             \t[default: 64]
               no_dropout: False
                     norm: batch
                output_nc: 3
----------------- End -------------------
"""


@pytest.fixture
def workspace(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "train").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (SIZE, 2 * SIZE, 3), dtype=np.uint8)).save(
            tmp_path / "data" / "train" / f"{i}.jpg")
    ckpt = tmp_path / "checkpoints" / "tiny"
    ckpt.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(networks.define_G(3, 3, 4, "resnet_6blocks", "batch", use_dropout=True).state_dict(),
               ckpt / "latest_net_G.pth")
    (ckpt / "train_opt.txt").write_text(TRAIN_OPT.format(size=SIZE))
    return tmp_path


TINY_SWAV = ["--swav_arch", "resnet18", "--swav_epochs", "1", "--swav_batch_size", "4", "--swav_prototypes", "8",
             "--swav_crops", "32", "16", "--swav_nmb_crops", "2", "2", "--no_progress"]
SWAV = ["--encoder", "swav", *TINY_SWAV]


def run(*argv):
    parser = argparse.ArgumentParser()
    neighbors_cli.configure(parser)
    return neighbors_cli.run(parser.parse_args(list(argv)))


def test_builds_the_file_and_page_then_reuses_the_caches(workspace, caplog):
    out = workspace / "out" / "neighbors.pt"
    caplog.set_level(logging.INFO, logger="mggc_plugin.neighborhoods")
    assert run("--dataroot", str(workspace / "data"), "--teacher", str(workspace / "checkpoints" / "tiny"),
               "--out", str(out), "--html_centres", "4", *SWAV) == 0
    assert "from scratch" in caplog.text and "train_opt.txt" in caplog.text

    nb = nbh.load_neighborhoods(out)
    assert nb.indices.shape == nb.similarities.shape == (12, 5) and nb.k == 5 and len(nb) == 12
    meta = nb.metadata
    assert meta["encoder"]["name"] == "swav" and meta["encoder"]["init"] == "scratch"
    assert meta["encoder"]["arch"] == "resnet18" and meta["encoder"]["config"]["n_prototypes"] == 8
    assert meta["teacher"]["arch"]["netG"] == "resnet_6blocks" and meta["teacher"]["arch"]["ngf"] == 4
    assert meta["dataset"]["direction"] == "BtoA" and meta["preprocess"]["size"] == SIZE
    assert len(meta["source_files"]) == 12 and meta["source_files"][0] == "train/0.jpg"
    # the file holds Eq. 1 applied to the cached embeddings
    emb = torch.load(workspace / "out" / "neighbors.pt.cache" / "embeddings.pt", weights_only=True)["embeddings"]
    idx, sim = nbh.topk_cosine(emb, 5)
    assert torch.equal(nb.indices, idx) and torch.equal(nb.similarities, sim)

    page = (workspace / "out" / "neighbors.pt.html" / "index.html").read_text()
    assert page.count('class="c"') == 4 and page.count('class="n"') == 4 * 5 and page.count('class="x"') == 4
    assert len(list((workspace / "out" / "neighbors.pt.html" / "images").glob("*.png"))) >= 4

    caplog.clear()
    assert run("--dataroot", str(workspace / "data"), "--teacher", str(workspace / "checkpoints" / "tiny"),
               "--out", str(out), "--html_centres", "0", *SWAV) == 0
    assert "reusing 12 cached images" in caplog.text
    assert "encoder: reusing SwAV" in caplog.text and "embeddings: reusing" in caplog.text
    assert torch.equal(nbh.load_neighborhoods(out).indices, nb.indices)

    # an encoder cache with other weights (same training fingerprint) invalidates the embeddings
    enc_file = workspace / "out" / "neighbors.pt.cache" / "encoder_swav.pt"
    cached = torch.load(enc_file, weights_only=True)
    cached["model"]["backbone.conv1.weight"] *= -1
    torch.save(cached, enc_file)
    caplog.clear()
    run("--dataroot", str(workspace / "data"), "--teacher", str(workspace / "checkpoints" / "tiny"),
        "--out", str(out), "--html_centres", "0", *SWAV)
    assert "encoder: reusing SwAV" in caplog.text and "embeddings: reusing" not in caplog.text


def _official_swav_checkpoint(path):
    """A tiny SwAV resnet18 saved in the official checkpoint's layout (``module.`` prefixes)."""
    torch.manual_seed(1)
    net = encoders.SwAVNet("resnet18", 16, 32, 8)
    torch.save({"module." + k.removeprefix("backbone."): v for k, v in net.state_dict().items()}, path)


def test_starting_from_a_swav_checkpoint_is_recorded(workspace, caplog):
    _official_swav_checkpoint(workspace / "swav.pth.tar")
    out = workspace / "nb.pt"
    caplog.set_level(logging.INFO, logger="mggc_plugin.neighborhoods")
    run("--dataroot", str(workspace / "data"), "--teacher",
        str(workspace / "checkpoints" / "tiny" / "latest_net_G.pth"), "--out", str(out), "--html_centres", "0",
        "--swav_checkpoint", str(workspace / "swav.pth.tar"), *SWAV)
    assert "from checkpoint" in caplog.text
    enc = nbh.load_neighborhoods(out).metadata["encoder"]
    assert enc["init"] == "checkpoint" and enc["checkpoint"].endswith("swav.pth.tar")
    assert enc["checkpoint_sha256"] == nbh.sha256_file(workspace / "swav.pth.tar")


def test_user_errors_name_the_bad_value(workspace):
    data, teacher = str(workspace / "data"), str(workspace / "checkpoints" / "tiny")
    with pytest.raises(FileNotFoundError, match="--dataroot .*nowhere"):
        run("--dataroot", str(workspace / "nowhere"), "--teacher", teacher, "--out", "x.pt")
    with pytest.raises(ValueError, match="k=12 .*has 12: lower --k"):
        run("--dataroot", data, "--teacher", teacher, "--out", str(workspace / "x.pt"), "--k", "12", *SWAV)
    with pytest.raises(ValueError, match="trained with --direction BtoA"):
        run("--dataroot", data, "--teacher", teacher, "--out", "x.pt", "--direction", "AtoB")
    (workspace / "bare").mkdir()
    teacher_file = workspace / "checkpoints" / "tiny" / "latest_net_G.pth"
    (workspace / "bare" / "latest_net_G.pth").write_bytes(teacher_file.read_bytes())
    with pytest.raises(ValueError, match="no --netG given"):
        run("--dataroot", data, "--teacher", str(workspace / "bare"), "--out", "x.pt")
    with pytest.raises(ValueError, match="--out .* is an input file"):
        run("--dataroot", data, "--teacher", teacher, "--out", str(teacher_file))


def test_the_same_seed_gives_the_same_encoder_and_neighbours(workspace):
    """SwAV's initialisation is drawn from --seed too, not only its training epochs."""
    data, teacher = str(workspace / "data"), str(workspace / "checkpoints" / "tiny")
    results = []
    for name in ("a", "b"):
        torch.manual_seed(len(results))  # whatever the caller's RNG holds
        out = workspace / name / "neighbors.pt"
        run("--dataroot", data, "--teacher", teacher, "--out", str(out), "--html_centres", "0", "--seed", "7",
            *SWAV)
        encoder = torch.load(workspace / name / "neighbors.pt.cache" / "encoder_swav.pt", weights_only=True)
        results.append((encoder["model"], nbh.load_neighborhoods(out)))
    (weights_a, nb_a), (weights_b, nb_b) = results
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a), "bit for bit on the CPU"
    assert torch.equal(nb_a.indices, nb_b.indices) and torch.equal(nb_a.similarities, nb_b.similarities)


def test_damaged_inputs_are_named_with_the_fix(workspace):
    data, teacher = workspace / "data", workspace / "checkpoints" / "tiny"
    args = ["--dataroot", str(data), "--teacher", str(teacher), "--html_centres", "0", *SWAV]
    good = (data / "train" / "3.jpg").read_bytes()
    (data / "train" / "3.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"cannot read the image .*3\.jpg \(OSError: image file is truncated.*\): "
                                         r"replace it with a complete copy, or remove it"):
        run(*args, "--out", str(workspace / "1.pt"))
    (data / "train" / "3.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot read the image .*3\.jpg \(UnidentifiedImageError"):
        run(*args, "--out", str(workspace / "2.pt"))
    (data / "train" / "3.jpg").write_bytes(good)
    G = teacher / "latest_net_G.pth"
    G.write_bytes(G.read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"{G} cannot be read as an upstream checkpoint .*truncated"):
        run(*args, "--out", str(workspace / "3.pt"))


@pytest.mark.parametrize("flag,value", [("--k", "0"), ("--batch_size", "0"), ("--swav_batch_size", "1"),
                                        ("--crop_size", "0")])
def test_numbers_are_checked_before_any_work(workspace, flag, value):
    out = workspace / "nb.pt"
    with pytest.raises(ValueError, match=f"{flag} {value} \\(at least"):
        run("--dataroot", str(workspace / "data"), "--teacher", str(workspace / "checkpoints" / "tiny"),
            "--out", str(out), *SWAV, flag, value)
    assert not (workspace / "nb.pt.cache").exists()


@pytest.mark.fid_wheel
def test_auto_takes_inception_without_a_swav_checkpoint(workspace, caplog):
    """The default works offline and on a dozen images: nothing to train."""
    out = workspace / "nb.pt"
    caplog.set_level(logging.INFO, logger="mggc_plugin.neighborhoods")
    assert run("--dataroot", str(workspace / "data"), "--teacher", str(workspace / "checkpoints" / "tiny"),
               "--out", str(out), "--html_centres", "0", "--no_progress") == 0
    assert "encoder: inception (auto: no SwAV checkpoint given" in caplog.text
    enc = nbh.load_neighborhoods(out).metadata["encoder"]
    assert enc["name"] == "inception" and enc["requested"] == "auto" and enc["reason"].startswith("auto: no SwAV")
    assert not (workspace / "nb.pt.cache" / "encoder_swav.pt").exists()


def test_auto_takes_swav_with_a_checkpoint_and_fits_the_batch_to_few_targets(workspace, caplog):
    """A SwAV checkpoint selects the paper's encoder; a batch larger than the 12 real targets is
    lowered to 12 with a log line instead of being refused."""
    _official_swav_checkpoint(workspace / "swav.pth.tar")
    out = workspace / "nb.pt"
    caplog.set_level(logging.INFO, logger="mggc_plugin.neighborhoods")
    flags = list(TINY_SWAV)
    flags[flags.index("--swav_batch_size") + 1] = "64"
    assert run("--dataroot", str(workspace / "data"), "--teacher", str(workspace / "checkpoints" / "tiny"),
               "--out", str(out), "--html_centres", "0", "--swav_checkpoint", str(workspace / "swav.pth.tar"),
               *flags) == 0
    assert "encoder: swav (auto: SwAV fine-tuned from the given checkpoint" in caplog.text
    assert "SwAV batch size 64 lowered to 12, the number of real target images" in caplog.text
    enc = nbh.load_neighborhoods(out).metadata["encoder"]
    assert enc["name"] == "swav" and enc["init"] == "checkpoint" and enc["requested"] == "auto"
    assert enc["config"]["batch_size"] == 12


def test_choose_encoder():
    assert encoders.choose_encoder("auto", None)[0] == "inception"
    assert encoders.choose_encoder("auto", "swav.pth.tar")[0] == "swav"
    assert encoders.choose_encoder("swav", None) == ("swav", "asked for")
    assert encoders.choose_encoder("inception", "swav.pth.tar")[1] == "asked for (the SwAV checkpoint is not used)"
    with pytest.raises(ValueError, match="unknown encoder 'dino': choose one of auto, swav, inception"):
        encoders.choose_encoder("dino", None)
