"""Reading ``.npz`` files a user hands in: a truncated or foreign file is a ValueError
naming it, and the file is closed whatever happens (numpy leaves it open when the archive
is unreadable)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from zipfile import BadZipFile

import numpy as np


@contextlib.contextmanager
def open_npz(path, *, allow_pickle: bool = False):
    """``np.load(path)`` of an ``.npz`` archive as a context manager."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            archive = np.load(f, allow_pickle=allow_pickle)
        except (BadZipFile, EOFError) as e:
            raise ValueError(f"{path} is not a readable .npz archive (truncated or another format: {e})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} holds a single array, not an .npz archive of named arrays")
        with archive:
            yield archive
