"""Inside upstream's train.py/test.py nothing catches the plugin's errors: the hook the plugin's
models and dataset install shows a user error as one line and exit status 2, and leaves every
other exception's traceback alone."""
import subprocess
import sys

import pytest

from mggc_plugin.errors import EXIT_USER_ERROR, MGGCFileNotFoundError, MGGCUserError

SCRIPT = """
import sys
from mggc_plugin.errors import install_excepthook, MGGCUserError, MGGCFileNotFoundError
install_excepthook()
install_excepthook()  # once is enough: a second call does not wrap the hook again
print("work before the error")
raise {error}
"""


def run(error: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(error=error)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("error", ["MGGCUserError('--mggc_target_macs 0: give the fraction')",
                                   "MGGCFileNotFoundError('--mggc_target_macs 0: give the fraction')"])
def test_a_user_error_is_one_line_and_exit_status_2(error):
    proc = run(error)
    assert proc.returncode == EXIT_USER_ERROR == 2
    assert proc.stderr == "error: --mggc_target_macs 0: give the fraction\n"
    assert proc.stdout == "work before the error\n", "stdout is flushed before the process ends"


@pytest.mark.parametrize("error", ["ValueError('a bug')", "RuntimeError('a bug')"])
def test_other_errors_keep_their_traceback(error):
    proc = run(error)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "a bug" in proc.stderr


def test_user_errors_are_value_and_file_errors():
    """Callers catching ValueError/FileNotFoundError (the ``mggc`` command, users) keep working."""
    assert issubclass(MGGCUserError, ValueError)
    assert issubclass(MGGCFileNotFoundError, FileNotFoundError) and issubclass(MGGCFileNotFoundError, MGGCUserError)
