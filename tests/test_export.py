"""Exported files run without mggc_plugin and match the slim model."""
import importlib.util
import subprocess
import sys

import pytest
import torch

from mggc_plugin import ChannelGroups, load_slim, networks, save_slim, slim
from mggc_plugin.cli import main

RUN_WITHOUT_PLUGIN = r"""
import sys, torch
x = torch.load(sys.argv[2], weights_only=True)
if sys.argv[3] == "torchscript":
    y = torch.jit.load(sys.argv[1])(x)
else:
    import onnxruntime
    y = torch.from_numpy(onnxruntime.InferenceSession(sys.argv[1]).run(None, {"input": x.numpy()})[0])
assert "mggc_plugin" not in sys.modules
torch.save(y, sys.argv[4])
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    G = networks.define_G(3, 3, 8, "resnet_6blocks", norm="instance")
    groups = ChannelGroups.discover(G, torch.zeros(1, 3, 64, 64))
    path = tmp_path_factory.mktemp("export") / "g.slim.pt"
    save_slim(slim(G, groups, [torch.arange(n) % 2 == 0 for n in groups.sizes]), path)
    return path


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_runs_without_the_plugin(checkpoint, tmp_path, fmt, capsys):
    if fmt == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("ONNX export needs the export extra: pip install 'mggc-plugin[export]'")
    out = tmp_path / f"g.{fmt}"
    assert main(["export", str(checkpoint), "--format", fmt, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    torch.save(x, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", RUN_WITHOUT_PLUGIN, str(out), str(tmp_path / "x.pt"), fmt,
                    str(tmp_path / "y.pt")], check=True, cwd=tmp_path)
    with torch.no_grad():
        expected = load_slim(checkpoint)(x)
    assert (torch.load(tmp_path / "y.pt") - expected).abs().max().item() < 1e-4


def test_failed_parity_writes_nothing(checkpoint, tmp_path):
    from mggc_plugin.slim import export
    with pytest.raises(ValueError, match="differs from the slim model"):
        export(checkpoint, "torchscript", out=tmp_path / "g.ts", atol=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_folder_without_slim_g(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "holds no latest_slim_G.pt" in capsys.readouterr().err


def test_out_folder_size_and_unwritable_location_are_one_line_errors(checkpoint, tmp_path, capsys, monkeypatch):
    def refused(*argv: str) -> str:
        assert main(["export", str(checkpoint), *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        return err

    assert f"--out {tmp_path} is a folder: give a file name, e.g. {tmp_path / 'g.slim.ts'}" in refused(
        "--out", str(tmp_path))
    assert "--size 0: give the input height/width in pixels, at least 1" in refused("--size", "0")
    assert "at 100000x100000" in refused("--size", "100000", "--out", str(tmp_path / "big.ts"))
    assert "is the slim checkpoint itself" in refused("--out", str(checkpoint))
    (tmp_path / "a_file").write_text("")
    assert f"cannot write {tmp_path / 'a_file' / 'g.ts'}" in refused("--out", str(tmp_path / "a_file" / "g.ts"))

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    err = refused("--out", str(tmp_path / "g.ts"))
    assert f"cannot write {tmp_path / 'g.ts'} (Permission denied): choose a writable --out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"], "nothing half-written"
