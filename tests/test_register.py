"""`mggc register` writes exactly the patch's files, never someone else's, and --undo removes them."""
import shutil
import subprocess
from pathlib import Path

import pytest

from mggc_plugin.cli import main
from mggc_plugin.upstream.register import SHIMS

PATCH = Path(__file__).resolve().parents[1] / "patches" / "register-mggc.patch"


def fake_checkout(path: Path) -> Path:
    for rel in ("models/base_model.py", "data/base_dataset.py", "train.py"):
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text("# upstream\n")
    return path


def files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.py"))}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_patch_and_command_write_the_same_files(tmp_path):
    by_patch, by_command = fake_checkout(tmp_path / "a"), fake_checkout(tmp_path / "b")
    subprocess.run(["git", "apply", "--unsafe-paths", "--directory", ".", str(PATCH)], cwd=by_patch, check=True)
    assert main(["register", str(by_command)]) == 0
    assert files(by_patch) == files(by_command)
    assert set(SHIMS) <= set(files(by_command))


def test_undo_removes_exactly_its_files(tmp_path, capsys):
    root = fake_checkout(tmp_path)
    before = files(root)
    (root / "models" / "my_model.py").write_text("# mine\n")
    assert main(["register", str(root)]) == 0
    assert main(["register", str(root)]) == 0, "registering twice updates its own files"
    assert main(["register", "--undo", str(root)]) == 0
    assert files(root) == {**before, "models/my_model.py": "# mine\n"}
    assert "removed" in capsys.readouterr().out


def test_refuses_to_overwrite_a_foreign_file(tmp_path, capsys):
    root = fake_checkout(tmp_path)
    (root / "models" / "mggc_pix2pix_model.py").write_text("# somebody else's\n")
    assert main(["register", str(root)]) == 2
    assert "was not written by `mggc register`" in capsys.readouterr().err
    assert not (root / "models" / "mggc_cycle_gan_model.py").exists(), "nothing is written on refusal"
    assert main(["register", "--undo", str(root)]) == 0
    assert (root / "models" / "mggc_pix2pix_model.py").read_text() == "# somebody else's\n"


def test_not_a_checkout(tmp_path, capsys):
    assert main(["register", str(tmp_path)]) == 2
    assert "not a pytorch-CycleGAN-and-pix2pix checkout" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["register"], ["register", "--undo"]])
def test_an_edited_shim_is_neither_overwritten_nor_removed(tmp_path, capsys, command):
    root = fake_checkout(tmp_path)
    assert main(["register", str(root)]) == 0
    shim = root / "models" / "mggc_pix2pix_model.py"
    edited = shim.read_text() + "print('my change')\n"
    shim.write_text(edited)
    before = files(root)
    assert main([*command, str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{shim} changed since `mggc register` wrote it" in err and "move it away, or restore" in err
    assert files(root) == before, "nothing is written or removed on refusal"
    assert shim.read_text() == edited
