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


SWAV = ["--swav_arch", "resnet18", "--swav_epochs", "1", "--swav_batch_size", "4", "--swav_prototypes", "8",
        "--swav_crops", "32", "16", "--swav_nmb_crops", "2", "2", "--no_progress"]


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


def test_starting_from_a_swav_checkpoint_is_recorded(workspace, caplog):
    torch.manual_seed(1)
    net = encoders.SwAVNet("resnet18", 16, 32, 8)
    torch.save({"module." + k.removeprefix("backbone."): v for k, v in net.state_dict().items()},
               workspace / "swav.pth.tar")
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
