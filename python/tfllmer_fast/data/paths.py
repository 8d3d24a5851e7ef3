"""Where the optional real datasets live (never shipped; see README)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path | None:
    """The folder with the public datasets (beauty/, scientific/, ml-100k/), or None.

    Looked up in order: ``$TFLLMER_DATA``, then ``../shared/data`` above the current
    directory and above this source tree (the project's development layout).
    """
    env = os.environ.get("TFLLMER_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    for base in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        candidates.append(base / "shared" / "data")
        candidates.append(base.parent / "shared" / "data")
    for c in candidates:
        if (c / "beauty").is_dir() or (c / "scientific").is_dir() or (c / "ml-100k").is_dir():
            return c
    return None
