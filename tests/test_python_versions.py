"""What must work on every Python that pyproject declares, without torch: .ci/python_versions.sh
runs this file (with tests/data, tests/graph and the build tests) on the oldest and the newest."""

import re
import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _no_torch_after(code: str) -> subprocess.CompletedProcess:
    code += "\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_this_python_is_one_the_package_declares():
    m = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', PYPROJECT.read_text(), re.M)
    assert m, "requires-python is not a plain lower bound"
    assert sys.version_info[:2] >= (int(m[1]), int(m[2]))


def test_the_torch_free_layers_import_and_run_without_torch():
    out = _no_torch_after(
        "import numpy as np, tfllmer_fast as tf\n"
        "A = tf.cooccurrence([[0, 1, 2], [2, 1]], n_items=3)\n"
        "assert A.toarray()[1, 2] == 2\n"
        "tf.build_info()"
    )
    assert out.returncode == 0, out.stderr


def test_the_config_module_imports_without_torch():
    out = _no_torch_after("import tfllmer_fast.experiment.config as c\nc.Config(dataset='synthetic')")
    assert out.returncode == 0, out.stderr
