# Type stubs for the private extension module tfllmer_fast._core.
from typing import Any

def build_info() -> dict[str, Any]: ...

# --- cooccurrence (cpp/register_cooccurrence.cpp) ---
import numpy as np
import numpy.typing as npt

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
) -> tuple[npt.NDArray[np.signedinteger], npt.NDArray[np.signedinteger], npt.NDArray[np.float32]]: ...

def _cooccurrence_tuning(
    min_parallel_work: float = -1.0, narrow_max_pairs: float = -1.0, int32_max_nnz: int = -1
) -> dict[str, float]: ...

class CooccurrenceCounter:
    def __init__(self, n_items: int, window: int, max_history: int, weighting: str, n_threads: int) -> None: ...
    def update(self, offsets: npt.NDArray[np.int64], items: npt.NDArray[np.int32]) -> None: ...
    def result(
        self, min_count: float, top_k: int
    ) -> tuple[npt.NDArray[np.signedinteger], npt.NDArray[np.signedinteger], npt.NDArray[np.float32]]: ...
    @property
    def n_interactions_seen(self) -> int: ...
    @property
    def n_users_seen(self) -> int: ...
    @property
    def nnz(self) -> int: ...
