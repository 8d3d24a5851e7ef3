"""Where the optional real datasets live (never shipped; see README)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "TFLLMER_DATA"
_MARKERS = ("beauty", "scientific", "ml-100k")


def _holds_data(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in _MARKERS)


def shared_data_dir() -> Path | None:
    """The folder with the public datasets (beauty/, scientific/, ml-100k/), or None.

    ``$TFLLMER_DATA`` when it is set: then only there, and a folder that does not exist or
    holds none of the datasets is a FileNotFoundError (a typo must not fall back to data
    found elsewhere). Unset: the first ``shared/data`` in the current directory or one of
    its parents (the project's development layout, ``../shared/data`` beside a checkout).
    """
    env = os.environ.get(DATA_ENV)
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{DATA_ENV}={env} is not a folder: set it to the folder that holds {', '.join(_MARKERS)}"
            )
        if not _holds_data(folder):
            raise FileNotFoundError(
                f"{DATA_ENV}={env} holds none of {', '.join(_MARKERS)}: set it to the folder that holds them"
            )
        return folder
    cwd = Path.cwd()
    for base in (cwd, *cwd.parents):
        if _holds_data(base / "shared" / "data"):
            return base / "shared" / "data"
    return None


def where_data_is_looked_for() -> str:
    """A phrase for error messages: where :func:`shared_data_dir` looked."""
    env = os.environ.get(DATA_ENV)
    if env:
        return f"{DATA_ENV}={env}"
    return f"{DATA_ENV} is unset and no shared/data was found in {Path.cwd()} or its parents"
