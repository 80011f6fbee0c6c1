"""Which optional deployment packages are installed, and the pip extra that brings each one.

Every optional runtime is looked up here (``importlib.util.find_spec``, nothing imported), so
that a missing one is reported the same way everywhere: the modules missing and the
``pip install 'mggc-plugin[<extra>]'`` that installs them.
"""
from __future__ import annotations

import importlib.util
from typing import List, Optional, Sequence

from ..errors import MGGCUserError

#: The extra of setup.cfg that installs each optional module.
EXTRA_OF = {"onnx": "export", "onnxscript": "export", "onnxruntime": "export", "onnxslim": "export",
            "openvino": "openvino"}


def missing(modules: Sequence[str]) -> List[str]:
    """The modules of ``modules`` that are not installed."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def install_hint(modules: Sequence[str]) -> str:
    """``pip install 'mggc-plugin[extra,...]'`` for the extras that bring ``modules``."""
    extras = sorted({EXTRA_OF.get(m, "export") for m in modules})
    return f"pip install 'mggc-plugin[{','.join(extras)}]'"


def why_missing(what: str, modules: Sequence[str]) -> Optional[str]:
    """None when every module is installed, else one sentence: ``what`` needs <missing>: <pip hint>."""
    absent = missing(modules)
    if not absent:
        return None
    return f"{what} needs {', '.join(absent)}: {install_hint(absent)}"


def require(what: str, modules: Sequence[str]) -> None:
    """Raise :class:`MGGCUserError` naming the missing modules and their extra, if any are missing."""
    reason = why_missing(what, modules)
    if reason is not None:
        raise MGGCUserError(reason)
