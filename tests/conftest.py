"""Shared fixtures. Tests marked ``upstream`` need an upstream checkout in MGGC_UPSTREAM_DIR."""
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
    if os.environ.get("MGGC_UPSTREAM_DIR"):
        return
    skip = pytest.mark.skip(reason="needs an upstream pytorch-CycleGAN-and-pix2pix checkout: set MGGC_UPSTREAM_DIR")
    for item in items:
        if "upstream" in item.keywords:
            item.add_marker(skip)


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
