# Type stubs for the private extension module tfllmer_fast._core (cpp/module.cpp and the
# register_*.cpp files). tests/test_core_stubs.py checks that this file names exactly what the
# module exports, with the same parameter names and defaults.
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

def build_info() -> dict[str, Any]:
    """version, eigen, spectra, openmp, compiler, simd, target (str) and openmp_max_threads (int)."""

# --- cooccurrence (register_cooccurrence.cpp) ---
# offsets and items are converted to C-contiguous int64 / int32 arrays when that needs no
# unsafe cast (a float array raises TypeError). Graphs come back as (indptr, indices, data):
# int64 indices when index64, otherwise int32 while nnz fits in int32 and int64 beyond.

def cooccurrence(
    offsets: ArrayLike,
    items: ArrayLike,
    n_items: int,
    window: int,
    max_history: int,
    weighting: str,
    min_count: float,
    top_k: int,
    n_threads: int,
    index64: bool = True,
) -> tuple[NDArray[np.int32] | NDArray[np.int64], NDArray[np.int32] | NDArray[np.int64], NDArray[np.float32]]: ...

# Testing knobs; a negative argument keeps the current value. Returns the previous values
# (int32_max_nnz as an int), so that `_cooccurrence_tuning(**old)` restores them.
def _cooccurrence_tuning(
    min_parallel_work: float = -1.0, narrow_max_pairs: float = -1.0, int32_max_nnz: int = -1
) -> dict[str, float]: ...

class CooccurrenceCounter:
    def __init__(self, n_items: int, window: int, max_history: int, weighting: str, n_threads: int) -> None: ...
    def update(self, offsets: ArrayLike, items: ArrayLike) -> None: ...
    def result(
        self, min_count: float, top_k: int, index64: bool = True
    ) -> tuple[NDArray[np.int32] | NDArray[np.int64], NDArray[np.int32] | NDArray[np.int64], NDArray[np.float32]]: ...
    def take_sums(self) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.uint64], int]:
        """(indptr, cols, vals, words) of the exact upper-triangle sums; the counter is emptied."""
    @property
    def n_interactions_seen(self) -> int: ...
    @property
    def n_users_seen(self) -> int: ...
    @property
    def nnz(self) -> int: ...

# --- partial sums (register_cooccurrence_partial.cpp) ---
# A partial is rows [row_begin, row_end) of exact sums: indptr int64 (rows + 1), cols int32
# (global ids), vals uint64 with `words` words per entry (1: counts, 2: 64.64 fixed point).

def cooc_sums_merge(
    parts: list[tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.uint64]]],
    n: int,
    row_begin: int,
    row_end: int,
    upper: bool,
    words: int,
    n_threads: int,
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.uint64]]: ...
def cooc_sums_mirror_split(
    indptr: NDArray[np.int64],
    cols: NDArray[np.int32],
    vals: NDArray[np.uint64],
    n: int,
    row_begin: int,
    row_end: int,
    words: int,
    bounds: list[int],
    n_threads: int,
) -> list[tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.uint64]]]: ...
def cooc_sums_finish(
    indptr: NDArray[np.int64],
    cols: NDArray[np.int32],
    vals: NDArray[np.uint64],
    n: int,
    row_begin: int,
    row_end: int,
    upper: bool,
    words: int,
    min_count: float,
    top_k: int,
    n_threads: int,
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]: ...
def cooc_top_k_stats(
    indptr: NDArray[np.int64], indices: NDArray[np.int32], data: NDArray[np.float32], top_k: int, n_threads: int
) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.int32]]: ...
def cooc_top_k_filter(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[np.float32],
    row_begin: int,
    capped: NDArray[np.uint8],
    kth_w: NDArray[np.float32],
    kth_col: NDArray[np.int32],
    n_threads: int,
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float32]]: ...

# --- recpca and graph checks (register_recpca.cpp) ---
# Arrays are checked, never converted: X is float32 or float64 (C-contiguous, may be
# read-only or memory-mapped), indptr int64, indices int32, data float32 or float64, and
# t, s, wa, wm, init float64.

def recpca_fit(
    X: NDArray[np.float32] | NDArray[np.float64],
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[np.float32] | NDArray[np.float64],
    t: NDArray[np.float64],
    s: NDArray[np.float64],
    lam: float,
    wa: NDArray[np.float64] | None,
    wm: NDArray[np.float64] | None,
    c: float,
    nev: int,
    ncv: int,
    max_iter: int,
    tol: float,
    init: NDArray[np.float64] | None,
    solver: str,
    dense: bool,
    n_threads: int,
) -> dict[str, Any]:
    """eigenvalues, eigenvectors, mean (float64 arrays), n_iter, n_matvec, nconv (int), converged (bool)."""

def recpca_gram(
    X: NDArray[np.float32] | NDArray[np.float64],
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[np.float32] | NDArray[np.float64],
    t: NDArray[np.float64],
    s: NDArray[np.float64],
    lam: float,
    wa: NDArray[np.float64] | None,
    wm: NDArray[np.float64] | None,
    c: float,
    n_threads: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def recpca_eig(
    M: NDArray[np.float64],
    nev: int,
    ncv: int,
    max_iter: int,
    tol: float,
    init: NDArray[np.float64] | None,
    dense: bool,
    n_threads: int,
) -> dict[str, Any]:
    """As recpca_fit, for a given symmetric M (mean: zeros)."""

# Y has X's dtype.
def shifted_graph_matmat(
    X: NDArray[np.float32] | NDArray[np.float64],
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[np.float32] | NDArray[np.float64],
    t: NDArray[np.float64],
    s: NDArray[np.float64],
    lam: float,
    n_threads: int,
) -> NDArray[np.float32] | NDArray[np.float64]: ...
def row_norms(X: NDArray[np.float32] | NDArray[np.float64], n_threads: int) -> NDArray[np.float64]: ...
def csr_max_asymmetry(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int32],
    data: NDArray[np.float32] | NDArray[np.float64],
    n_threads: int,
) -> float: ...

# --- serving (register_top_k.cpp) ---
def top_k_rows(
    scores: NDArray[np.float32], k: int, n_threads: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]: ...

# --- the OpenMP runtime (register_openmp.cpp) ---
class IdleTeam:
    """A parked thread owning ``workers`` sleeping OpenMP threads (openmp_idle.hpp)."""

    def __init__(self, workers: int) -> None: ...
    def release(self) -> None: ...
    @property
    def workers(self) -> int: ...

def openmp_library() -> str: ...
