"""The errors a user can fix, and how they are shown.

:class:`MGGCUserError` marks an error whose cause is the user's input (an option, a file, a
folder) and whose message names the bad value and the fix. It is a ``ValueError``, so callers
that catch ``ValueError`` keep working; :class:`MGGCFileNotFoundError` is also a
``FileNotFoundError``. The ``mggc`` command prints them as one line; inside upstream's
``train.py``/``test.py``, which call the plugin's models and dataset without catching anything,
:func:`install_excepthook` does the same for an uncaught one, and only for these two types: any
other exception is a bug or a failure of the environment and keeps its traceback.
"""
from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Callable, Optional, Type

#: The exit status for an error the user can fix (argparse's for a usage error).
EXIT_USER_ERROR = 2


class MGGCUserError(ValueError):
    """An error the user can fix; the message names the bad value and the fix."""


class MGGCFileNotFoundError(MGGCUserError, FileNotFoundError):
    """A file or folder the user named (or must create first) does not exist."""


ExceptHook = Callable[[Type[BaseException], BaseException, Optional[TracebackType]], object]


def user_error_hook(previous: ExceptHook, exit: Callable[[int], object] = os._exit) -> ExceptHook:
    """A ``sys.excepthook`` that prints an uncaught :class:`MGGCUserError` as one line
    ``error: <message>`` on stderr and ends the process with :data:`EXIT_USER_ERROR`; every other
    exception goes to ``previous`` (its traceback is printed as before).

    ``exit`` defaults to ``os._exit``: once an exception is uncaught, Python itself would exit
    with status 1 after the hook returns, so the hook has to end the process to report 2 (both
    streams are flushed first)."""

    def hook(kind: Type[BaseException], error: BaseException, tb: Optional[TracebackType]) -> object:
        if not isinstance(error, MGGCUserError):
            return previous(kind, error, tb)
        sys.stdout.flush()
        print(f"error: {error}", file=sys.stderr, flush=True)
        return exit(EXIT_USER_ERROR)

    hook.mggc_user_error_hook = True  # type: ignore[attr-defined]
    return hook


def install_excepthook() -> None:
    """Install :func:`user_error_hook` in front of the current ``sys.excepthook`` (once)."""
    if not getattr(sys.excepthook, "mggc_user_error_hook", False):
        sys.excepthook = user_error_hook(sys.excepthook)
