# Type stubs for the private extension module tfllmer_fast._core.
from typing import Any

def build_info() -> dict[str, Any]: ...

# --- recpca (register_recpca.cpp) ---
import numpy as np
from numpy.typing import NDArray

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
