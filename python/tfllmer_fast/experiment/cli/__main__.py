"""``python -m tfllmer_fast.experiment.cli``: the ``tfllmer-fast`` command."""

from . import console_main

console_main()
