"""No name of a package hides one of its submodules: ``import pkg.mod as m`` gives the module."""

import importlib
import pkgutil
import types

import pytest

import tfllmer_fast.graph

PACKAGES = ["tfllmer_fast.graph", "tfllmer_fast.dask"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_submodule_is_shadowed(package):
    if package == "tfllmer_fast.dask":
        pytest.importorskip("distributed")
    pkg = importlib.import_module(package)
    names = [m.name for m in pkgutil.iter_modules(pkg.__path__)]
    assert names
    for name in names:
        importlib.import_module(f"{package}.{name}")
        assert isinstance(getattr(pkg, name), types.ModuleType), f"{package}.{name} is not the module"


def test_recpca_loads_scikit_learn_only_when_used():
    import subprocess
    import sys

    code = (
        "import sys, tfllmer_fast.graph as g; g.cooccurrence([[0, 1]]); assert 'sklearn' not in sys.modules; "
        "g.RecPCA; assert 'sklearn' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert tfllmer_fast.graph.RecPCA.__module__ == "tfllmer_fast.graph.recpca"
