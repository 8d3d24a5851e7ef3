"""The compiled core, as ``tfllmer_fast._core``: the build that suits this CPU (see
:mod:`._cpu`), loaded in place of this module, so that every ``from .. import _core``
gets the extension itself."""

import importlib
import sys

from ._cpu import select

sys.modules[__name__] = importlib.import_module(f".{select(__package__)}", __package__)
