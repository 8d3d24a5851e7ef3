# Type stubs for the private extension module tfllmer_fast._core.
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

def build_info() -> dict[str, Any]: ...

# --- cooccurrence (cpp/register_cooccurrence.cpp) ---

def cooccurrence(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int32],
    n_items: int,
    window: int,
    max_history: int,
    weighting: str,
    min_count: float,
    top_k: int,
    n_threads: int,
    index64: bool = True,
) -> tuple[npt.NDArray[np.signedinteger], npt.NDArray[np.signedinteger], npt.NDArray[np.float32]]: ...

def _cooccurrence_tuning(
    min_parallel_work: float = -1.0, narrow_max_pairs: float = -1.0, int32_max_nnz: int = -1
) -> dict[str, float]: ...

class CooccurrenceCounter:
    def __init__(self, n_items: int, window: int, max_history: int, weighting: str, n_threads: int) -> None: ...
    def update(self, offsets: npt.NDArray[np.int64], items: npt.NDArray[np.int32]) -> None: ...
    def result(
        self, min_count: float, top_k: int, index64: bool = True
    ) -> tuple[npt.NDArray[np.signedinteger], npt.NDArray[np.signedinteger], npt.NDArray[np.float32]]: ...
    @property
    def n_interactions_seen(self) -> int: ...
    @property
    def n_users_seen(self) -> int: ...
    @property
    def nnz(self) -> int: ...

# --- recpca (register_recpca.cpp) ---

def recpca_fit(
    X: NDArray[np.floating], indptr: NDArray[np.int64], indices: NDArray[np.int32], data: NDArray[np.floating],
    t: NDArray[np.float64], s: NDArray[np.float64], lam: float, wa: NDArray[np.float64] | None,
    wm: NDArray[np.float64] | None, c: float, nev: int, ncv: int, max_iter: int, tol: float,
    init: NDArray[np.float64] | None, solver: str, dense: bool, n_threads: int,
) -> dict[str, Any]: ...
def recpca_gram(
    X: NDArray[np.floating], indptr: NDArray[np.int64], indices: NDArray[np.int32], data: NDArray[np.floating],
    t: NDArray[np.float64], s: NDArray[np.float64], lam: float, wa: NDArray[np.float64] | None,
    wm: NDArray[np.float64] | None, c: float, n_threads: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def shifted_graph_matmat(
    X: NDArray[np.floating], indptr: NDArray[np.int64], indices: NDArray[np.int32], data: NDArray[np.floating],
    t: NDArray[np.float64], s: NDArray[np.float64], lam: float, n_threads: int,
) -> NDArray[np.floating]: ...
def row_norms(X: NDArray[np.floating], n_threads: int) -> NDArray[np.float64]: ...
