"""``python -m tfllmer_fast``: the ``tfllmer-fast`` command (for environments without the
script on PATH, e.g. a job runner that only knows the interpreter)."""

from .experiment.cli import console_main

console_main()
