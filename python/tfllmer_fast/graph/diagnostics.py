"""Diagnostics for the two causes TF-LLMER names: uneven embedding norms and the mismatch
between the embeddings' angular neighbourhoods and the co-occurrence graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .._validation import check_float_matrix, check_int
from .normalization import checked_row_norms, inverse_norms
from .operators import check_graph


@dataclass(frozen=True)
class EmbeddingDiagnostics:
    """What :func:`embedding_diagnostics` measured (see there for the definitions)."""

    n_items: int
    dim: int
    norm_min: float
    norm_median: float
    norm_max: float
    norm_cv: float
    n_zero_rows: int
    n_edges: int
    n_edges_used: int
    edge_cosine_mean: float
    edge_cosine_weighted_mean: float
    random_cosine_mean: float
    alignment_score: float
    alignment_ratio: float
    knn_k: int
    n_knn_queries: int
    knn_overlap: float
    knn_overlap_chance: float

    def as_dict(self) -> dict:
        return asdict(self)


def _pair_cosines(Xn: np.ndarray, i: np.ndarray, j: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    out = np.empty(i.size, dtype=np.float64)
    for s in range(0, i.size, block):
        a = np.asarray(Xn[i[s : s + block]], dtype=np.float64)
        b = np.asarray(Xn[j[s : s + block]], dtype=np.float64)
        out[s : s + block] = np.einsum("ij,ij->i", a, b)
    return out


def embedding_diagnostics(
    X,
    A,
    *,
    k: int = 10,
    n_random_pairs: int = 200_000,
    max_edges: int = 2_000_000,
    n_knn_queries: int = 2_000,
    random_state=0,
) -> EmbeddingDiagnostics:
    """Norm statistics and semantic-collaborative alignment of item embeddings.

    Parameters
    ----------
    X : array-like, shape (n_items, dim)
        Item embeddings (raw or normalised; cosines are computed on unit rows either way).
    A : sparse matrix, shape (n_items, n_items)
        Symmetric non-negative co-occurrence graph; item i = row i of X.
    k : int, default 10
        Neighbourhood size of the kNN overlap.
    n_random_pairs : int, default 200_000
        Uniform random pairs ``i != j`` for the baseline cosine.
    max_edges : int, default 2_000_000
        Edges beyond this many are subsampled uniformly (with their weights).
    n_knn_queries : int, default 2_000
        Items (with at least one edge and a non-zero embedding) sampled for the kNN overlap;
        each costs one pass over X.
    random_state : int or numpy Generator, default 0

    Returns
    -------
    EmbeddingDiagnostics
        ``norm_*``: statistics of the row norms (``norm_cv`` = std / mean);
        ``n_zero_rows``. Edges (``i < j``) and random pairs that touch a zero row are
        skipped (their cosine is undefined). ``edge_cosine_mean`` / ``_weighted_mean``:
        mean cosine over graph edges, unweighted and weighted by ``A[i, j]``;
        ``random_cosine_mean``: over random pairs; ``alignment_score`` =
        ``edge_cosine_weighted_mean - random_cosine_mean`` (how much closer co-occurring
        items are than random ones; 0 = no alignment) and ``alignment_ratio`` = their
        quotient. ``knn_overlap``: mean over queried items of
        ``|top-g angular neighbours ∩ top-g graph neighbours| / g`` with
        ``g = min(k, degree)`` (graph neighbours by weight, ties by index);
        ``knn_overlap_chance``: its expectation for random embeddings.
    """
    Xa = check_float_matrix(X, "X", finite=False)
    norms = checked_row_norms(Xa, "X")
    n, dim = Xa.shape
    G = check_graph(A, n, name="A")
    for name, value in (
        ("k", k),
        ("n_random_pairs", n_random_pairs),
        ("max_edges", max_edges),
        ("n_knn_queries", n_knn_queries),
    ):
        check_int(value, name, minimum=1)
    rng = np.random.default_rng(random_state)

    nonzero = norms > 0
    mean_norm = norms.mean()
    cv = float(norms.std() / mean_norm) if mean_norm > 0 else float("nan")
    Xn = Xa * inverse_norms(norms)[:, None].astype(Xa.dtype)

    # Edges of the upper triangle (each undirected edge once).
    U = G.tocoo()
    keep = (U.row < U.col) & nonzero[U.row] & nonzero[U.col]
    ei, ej, ew = U.row[keep].astype(np.int64), U.col[keep].astype(np.int64), U.data[keep].astype(np.float64)
    n_edges = int(np.count_nonzero(U.row < U.col))
    if ei.size > max_edges:
        pick = rng.choice(ei.size, size=max_edges, replace=False)
        ei, ej, ew = ei[pick], ej[pick], ew[pick]
    if ei.size:
        ec = _pair_cosines(Xn, ei, ej)
        edge_mean = float(ec.mean())
        # Explicitly stored zero weights can leave no weight at all: undefined, not an error.
        edge_wmean = float(np.average(ec, weights=ew)) if ew.sum() > 0 else float("nan")
    else:
        edge_mean = edge_wmean = float("nan")

    valid = np.flatnonzero(nonzero)
    if valid.size >= 2:
        # Uniform ordered pairs of distinct valid items (the few i == j draws are dropped).
        pi = valid[rng.integers(0, valid.size, n_random_pairs)]
        pj = valid[rng.integers(0, valid.size, n_random_pairs)]
        ok = pi != pj
        random_mean = float(_pair_cosines(Xn, pi[ok], pj[ok]).mean()) if ok.any() else float("nan")
    else:
        random_mean = float("nan")

    knn, chance, n_q = _knn_overlap(Xn, G, nonzero, k, n_knn_queries, rng)
    return EmbeddingDiagnostics(
        n_items=n,
        dim=dim,
        norm_min=float(norms.min()),
        norm_median=float(np.median(norms)),
        norm_max=float(norms.max()),
        norm_cv=cv,
        n_zero_rows=int(n - nonzero.sum()),
        n_edges=n_edges,
        n_edges_used=int(ei.size),
        edge_cosine_mean=edge_mean,
        edge_cosine_weighted_mean=edge_wmean,
        random_cosine_mean=random_mean,
        alignment_score=edge_wmean - random_mean,
        alignment_ratio=edge_wmean / random_mean if random_mean != 0 else float("nan"),
        knn_k=int(k),
        n_knn_queries=n_q,
        knn_overlap=knn,
        knn_overlap_chance=chance,
    )


def _knn_overlap(Xn, G, nonzero, k, n_queries, rng):
    n = Xn.shape[0]
    # Graph neighbours restricted to items with a non-zero embedding.
    rows = np.repeat(np.arange(n), np.diff(G.indptr))
    deg_valid = np.bincount(rows, weights=nonzero[G.indices], minlength=n)
    cand = np.flatnonzero(nonzero & (deg_valid > 0))
    if cand.size == 0:
        return float("nan"), float("nan"), 0
    q = np.sort(rng.choice(cand, size=min(n_queries, cand.size), replace=False))
    n_valid = int(nonzero.sum())
    Xq = np.asarray(Xn[q], dtype=np.float32 if Xn.dtype == np.float32 else np.float64)
    overlaps, chances = [], []
    for s in range(0, q.size, 256):
        qb = q[s : s + 256]
        sims = Xq[s : s + 256] @ Xn.T  # (b, n)
        sims[:, ~nonzero] = -np.inf
        sims[np.arange(qb.size), qb] = -np.inf
        for r, i in enumerate(qb):
            lo, hi = G.indptr[i], G.indptr[i + 1]
            nb, w = G.indices[lo:hi], G.data[lo:hi]
            sel = nonzero[nb]
            nb, w = nb[sel], w[sel]
            g = min(k, nb.size)
            graph_top = nb[np.lexsort((nb, -w))[:g]]
            emb_top = np.argpartition(-sims[r], g - 1)[:g]
            overlaps.append(np.intersect1d(graph_top, emb_top).size / g)
            chances.append(g / (n_valid - 1))
    return float(np.mean(overlaps)), float(np.mean(chances)), int(q.size)
