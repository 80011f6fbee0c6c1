"""The Python API example runs as written."""
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "python_api.py"


def test_python_api_example_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, check=True, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    assert "reloaded: True" in out
    macs_line = next(line for line in out.splitlines() if line.startswith("MACs"))
    assert float(macs_line.rsplit("(", 1)[1].rstrip("%)")) <= 25.0
    assert (tmp_path / "my_generator.slim.pt").is_file()
