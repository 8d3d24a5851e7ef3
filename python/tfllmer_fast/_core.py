"""The compiled core, as ``tfllmer_fast._core``: the build that suits this CPU (see
:mod:`._cpu`), loaded in place of this module, so that every ``from .. import _core``
gets the extension itself."""

import importlib
import sys

from ._cpu import load_openmp_runtime, select

_name = f".{select(__package__)}"
try:
    _module = importlib.import_module(_name, __package__)
except ImportError as e:
    if "libgomp" not in str(e):
        raise
    load_openmp_runtime()
    _module = importlib.import_module(_name, __package__)
sys.modules[__name__] = _module
