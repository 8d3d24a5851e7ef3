import json
import os
import re
import subprocess
import sys

import pytest

import tfllmer_fast
from tfllmer_fast import _core, _cpu


def test_build_info_reports_versions():
    info = tfllmer_fast.build_info()
    assert re.fullmatch(r"3\.4\.\d+", info["eigen"]), info
    assert re.fullmatch(r"1\.\d+\.\d+", info["spectra"]), info
    assert int(info["openmp"]) >= 201511  # OpenMP 4.5 or newer
    assert info["openmp_max_threads"] >= 1
    assert info["version"] == tfllmer_fast.__version__


# ----- which build of the core is loaded (tfllmer_fast._cpu) --------------------------------
V2 = _cpu.LEVEL_FLAGS["x86-64-v2"]
V3 = V2 | _cpu.LEVEL_FLAGS["x86-64-v3"]
V4 = V3 | _cpu.LEVEL_FLAGS["x86-64-v4"]
WHEEL = ["x86-64", "x86-64-v3", "x86-64-v4"]


def test_the_loaded_build_is_the_best_this_cpu_runs():
    info = tfllmer_fast.build_info()
    available = _cpu.available_targets()
    assert info["target"] in available
    assert _core.__name__ == "tfllmer_fast." + _cpu.module_name(info["target"])
    if not os.environ.get(_cpu.ENV_VAR):
        assert info["target"] == _cpu.choose_target(available, _cpu.cpu_flags())
    assert os.path.basename(info["openmp_library"])  # a file, e.g. libgomp.so.1


@pytest.mark.parametrize(
    "flags,expected",
    [
        (V4 | {"sse2"}, "x86-64-v4"),
        (V3, "x86-64-v3"),
        (V2, "x86-64"),  # no v2 module in the wheel: the baseline
        (frozenset(), "x86-64"),
        (V4 - {"avx2"}, "x86-64"),
    ],
)
def test_a_portable_wheel_picks_the_highest_level_the_flags_allow(flags, expected):
    assert _cpu.choose_target(WHEEL, frozenset(flags)) == expected


def test_a_source_build_and_a_request_win():
    assert _cpu.choose_target(["native"], frozenset()) == "native"
    assert _cpu.choose_target(WHEEL, frozenset(V4), requested="x86-64") == "x86-64"
    with pytest.raises(ImportError, match=r"TFLLMER_CORE_TARGET='x86-64-v4'.*built for native"):
        _cpu.choose_target(["native"], frozenset(V4), requested="x86-64-v4")
    with pytest.raises(ImportError, match="no build .* runs on this CPU"):
        _cpu.choose_target(["x86-64-v3"], frozenset(V2))


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\nflags\t\t: other\n")
    assert _cpu.cpu_flags(str(f)) == {"fpu", "sse2", "avx2"}
    assert _cpu.cpu_flags(str(tmp_path / "missing")) == frozenset()


def _load_in_child(target: str) -> subprocess.CompletedProcess:
    script = (
        "import json, numpy as np, tfllmer_fast as tf; from tfllmer_fast.graph.normalization import row_norms; "
        "rng = np.random.default_rng(0); X = rng.standard_normal((300, 40)); "
        "A = tf.cooccurrence(np.arange(0, 301, 3), rng.integers(0, 50, 300), n_items=50); "
        "print(json.dumps([tf.build_info()['target'], row_norms(X).tolist(), A.toarray().tolist()]))"
    )
    env = {**os.environ, _cpu.ENV_VAR: target}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)


def test_every_installed_build_this_cpu_runs_loads_and_agrees():
    flags = _cpu.cpu_flags()
    targets = [t for t in _cpu.available_targets() if _cpu.runs_on(t, flags)]
    results = {}
    for t in targets:
        out = _load_in_child(t)
        assert out.returncode == 0, out.stderr
        loaded, norms, graph = json.loads(out.stdout)
        assert loaded == t
        results[t] = (norms, graph)
    first = results[targets[0]]
    for norms, graph in results.values():
        assert graph == first[1]  # integer counts: exact
        assert norms == pytest.approx(first[0], rel=1e-12)


def test_asking_for_a_build_that_is_not_installed_names_those_that_are():
    out = _load_in_child("x86-64-v9")
    assert out.returncode != 0
    assert "TFLLMER_CORE_TARGET='x86-64-v9'" in out.stderr
    assert _cpu.available_targets()[0] in out.stderr


def test_torch_s_openmp_runtime_is_found_without_importing_torch():
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        with pytest.raises(ImportError, match="apt-get install libgomp1"):
            _cpu.load_openmp_runtime()
        return
    before = "torch" in sys.modules
    path = _cpu.load_openmp_runtime()
    assert path.endswith("libgomp.so.1") and os.path.isfile(path)
    assert ("torch" in sys.modules) == before
