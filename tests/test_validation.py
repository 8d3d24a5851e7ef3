"""The shared argument checks of tfllmer_fast._validation."""

import numpy as np
import pytest

from tfllmer_fast._validation import check_int, check_n_threads


@pytest.mark.parametrize("value", [0, 7, np.int32(7), np.int64(-3), np.uint8(5), 2**40])
def test_check_int_accepts_python_and_numpy_integers(value):
    out = check_int(value, "k")
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, np.float32(1), "3", None, [1], np.array([1])])
def test_check_int_rejects_bools_floats_and_the_rest(value):
    with pytest.raises(TypeError, match="^window must be an int"):
        check_int(value, "window")


def test_check_int_minimum_and_none():
    assert check_int(1, "top_k", minimum=1) == 1
    with pytest.raises(ValueError, match=r"^top_k must be >= 1, got 0$"):
        check_int(0, "top_k", minimum=1)
    assert check_int(None, "top_k", minimum=1, allow_none=True) is None
    with pytest.raises(ValueError, match=r"\(or None\)"):
        check_int(-1, "top_k", minimum=1, allow_none=True)
    with pytest.raises(TypeError, match=r"an int >= 1 or None, got True"):
        check_int(True, "top_k", minimum=1, allow_none=True)


def test_check_n_threads_uses_it():
    assert check_n_threads(None) >= 1 and check_n_threads(np.int64(2)) == 2
    with pytest.raises(TypeError, match="n_threads"):
        check_n_threads(True)
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        check_n_threads(0)
