"""The package's shape: imports flow one way (data -> graph -> train -> serving -> experiment), the lower
layers stay torch-free, nothing imports the package root from inside, modules stay small, and
importing the package loads nothing heavy and changes nothing global."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tfllmer_fast

PACKAGE = Path(tfllmer_fast.__file__).resolve().parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)

#: a layer may import itself and the layers before it; private helpers (_atomic, ...) and the
#: compiled core are below every layer; dask/ sits beside train/ (data and graph only).
LAYERS = ["data", "graph", "train", "serving", "experiment"]
RANK = {name: i for i, name in enumerate(LAYERS)}
TORCH_FREE = {"data", "graph"}
MAX_LINES = 450


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, text: str):
    """(absolute module name, line) of every import in the file, function bodies included."""
    tree = ast.parse(text, filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if node.module is None:  # `from . import x`: x is a module or a name of it
                for alias in node.names:
                    yield f"{target}.{alias.name}", node.lineno
            else:
                yield target, node.lineno


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "tfllmer_fast" or len(parts) < 2:
        return None
    return parts[1]


def _violations(files: dict[Path, str]):
    bad = []
    for path, text in files.items():
        me = _module_name(path)
        my_layer = _layer(me)
        in_type_checking = _type_checking_lines(text)
        for target, line in _imports(path, text):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if me in ("tfllmer_fast", "tfllmer_fast.__main__"):
                continue  # the façade re-exports everything, lazily; __main__ runs the CLI
            if target == "tfllmer_fast":
                bad.append(f"{where} imports the package root")
                continue
            if my_layer in TORCH_FREE and target.split(".")[0] in ("torch", "matplotlib"):
                bad.append(f"{where}: {my_layer}/ must not import {target}")
            their_layer = _layer(target)
            if line in in_type_checking or their_layer not in RANK:
                continue
            if my_layer == "dask":
                if RANK[their_layer] > RANK["graph"]:
                    bad.append(f"{where}: dask/ imports {target} (data and graph only)")
            elif my_layer in RANK and RANK[their_layer] > RANK[my_layer]:
                bad.append(f"{where}: {my_layer}/ imports {target} (a later layer)")
            elif my_layer not in RANK and my_layer != "dask":
                bad.append(f"{where}: {me} (below the layers) imports {target}")
    return bad


def _type_checking_lines(text: str) -> set[int]:
    lines = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                if hasattr(child, "lineno"):
                    lines.add(child.lineno)
    return lines


def test_the_sources_are_found():
    names = {_module_name(p) for p in SOURCES}
    assert {
        "tfllmer_fast.data.sequences",
        "tfllmer_fast.graph.recpca",
        "tfllmer_fast.train.trainer",
        "tfllmer_fast.experiment.cli",
    } <= names


def test_imports_flow_one_way():
    assert _violations({p: p.read_text() for p in SOURCES}) == []


def test_the_checker_sees_a_wrong_direction():
    # The test above must be able to fail: a graph module importing the training layer.
    probe = PACKAGE / "graph" / "_layout_probe.py"
    src = "import torch\nfrom ..train.trainer import Trainer\nfrom .. import _core\ndef f():\n    import tfllmer_fast\n"
    found = _violations({probe: src})
    assert any("must not import torch" in v for v in found)
    assert any("tfllmer_fast.train.trainer (a later layer)" in v for v in found)
    assert any("package root" in v for v in found)
    assert not any("_core" in v for v in found)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_the_limit(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines (limit {MAX_LINES}): split it by job"


def test_import_loads_nothing_heavy_and_changes_no_global_setting():
    code = (
        "import json, os, sys, warnings\n"
        "env, filters = dict(os.environ), list(warnings.filters)\n"
        "import tfllmer_fast\n"
        "print(json.dumps({'heavy': sorted(m for m in ('torch', 'matplotlib', 'pandas', 'dask',"
        " 'numpy') if m in sys.modules), 'env_changed': dict(os.environ) != env,"
        " 'filters_changed': list(warnings.filters) != filters,"
        " 'version': tfllmer_fast.__version__}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["heavy"] == [] and not info["env_changed"] and not info["filters_changed"]
    assert info["version"] == tfllmer_fast.__version__


def test_every_public_name_of_the_facade_resolves():
    for name in tfllmer_fast.__all__:
        assert getattr(tfllmer_fast, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tfllmer_fast.nope  # noqa: B018
