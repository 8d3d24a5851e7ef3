import pytest

from tfllmer_fast._atomic import atomic_open
from tfllmer_fast.experiment.cli import npz_path as _npz_path


def test_atomic_open_replaces_only_on_success(tmp_path):
    path = tmp_path / "out.json"
    with atomic_open(path, "w") as f:
        f.write("old")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "w") as f:
            f.write("torn")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_npz_suffix_is_added_like_numpy_does(tmp_path):
    assert _npz_path(tmp_path / "G") == tmp_path / "G.npz"
    assert _npz_path(tmp_path / "G.npz") == tmp_path / "G.npz"
