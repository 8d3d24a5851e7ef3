"""Scale-out on Dask: the co-occurrence graph and Rec-PCA across the workers of a cluster.

Needs ``dask[distributed]`` (``pip install tfllmer_fast[dask]``). The arithmetic lives in
:mod:`tfllmer_fast.graph.partial` (engine-agnostic exact partials); this module only plans
and schedules tasks on a ``distributed.Client``.

Co-occurrence (:func:`cooccurrence`): the first shards (one per worker, from two to eight) are
counted into exact upper-triangle partials and merged; their entries per row, and how much
the merge grew over one shard, estimate the graph and plan the reduction. Then either

* ``reduce="tree"``: every partial is merged in a fixed tree (``split_every`` at a time) and
  one worker finishes the whole graph - the unpruned graph must fit one worker; or
* ``reduce="shuffle"``: every other shard is counted and split, in one task, into the full
  rows of each row block ``[bounds[b], bounds[b+1])``, with blocks holding about equal
  numbers of entries (popular items have many); each block's pieces are merged in a fixed
  tree and finished on one worker (``min_count`` there; ``top_k`` with the k-th entry of
  every row gathered once). The graph may stay on the cluster as row blocks
  (``return_blocks=True``).

Merges outrank counts in Dask's priorities, so the cluster holds a merge front rather than
every shard's output; what waits is Dask's managed memory, spilled to disk as the worker
fills. Each task's estimated peak must fit ``terminate - spill`` of a worker's memory limit
(the part Dask cannot free by spilling).

Sums are exact, so every shard count, block count, reduction and retry gives the graph of
:func:`tfllmer_fast.cooccurrence` on all users, bit for bit.

Rule: a user's interactions lie in one shard (a user split across shards would lose the
pairs across the cut). Inputs with user ids (Parquet shards, DataFrames) are checked; for
``(offsets, items)`` and ``.npz``/``.npy`` shards, which carry no user ids, it is the
caller's promise.

Rec-PCA (:func:`recpca_fit`): each row block of X computes its partial D x D Gram
``X_b^T (T' X)_b`` in float64 with the rows of its graph neighbours, fetched once by a plan
(rows needed by many blocks - the hubs - are replicated to every worker instead); the
partials are summed in a fixed-order tree, the centring correction is applied on the client
and M is solved there with the Gram path's eigensolver.

Threads: every task runs its kernels with ``n_threads`` OpenMP threads (default 1: one per
Dask worker thread; ``None`` would mean all cores in every task and oversubscribe the node).
"""

from __future__ import annotations

try:
    import distributed  # noqa: F401 (a clear message when the extra is missing)
except ImportError as e:  # pragma: no cover - the [dask] extra
    raise ImportError("tfllmer_fast.dask needs dask and distributed: pip install 'tfllmer_fast[dask]'") from e

from ._cooccurrence import REDUCES, GraphBlocks, cooccurrence, plan_row_blocks  # noqa: E402
from ._recpca import recpca_fit, recpca_gram  # noqa: E402

__all__ = ["REDUCES", "GraphBlocks", "cooccurrence", "plan_row_blocks", "recpca_fit", "recpca_gram"]
