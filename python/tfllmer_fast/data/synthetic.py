"""A built-in synthetic catalogue: runs the whole pipeline with no data at all.

The generator reproduces the situation TF-LLMER is about: item "text" embeddings whose
angular clusters (semantics) only partly agree with the clusters that drive consumption
(collaborative), and embedding norms that vary a lot from item to item.

Generative story (all vectorised, deterministic by ``seed``):

* every item has a collaborative cluster ``c_i`` and a semantic cluster ``s_i``; with
  probability ``agreement`` the semantic cluster is the one paired with ``c_i``, otherwise
  it is drawn uniformly, so semantic and collaborative neighbourhoods disagree;
* embedding direction = ``text_signal`` x (semantic centroid) + ``collab_signal`` x
  (collaborative direction) + isotropic noise, then scaled to a log-normal norm
  ``exp(norm_disparity * N(0, 1))`` (``norm_disparity=0``: unit norms). The semantic part
  dominates the variance (plain PCA sees mostly semantics); the weaker collaborative part
  is what a graph-aware projection (Rec-PCA) can recover;
* item popularity is Zipf-like (weight ``rank**-zipf_exponent``, random ranks);
* each user lives in one collaborative cluster (``p_in_cluster`` of the steps, the rest
  from the global popularity). Inside a cluster the items form a random cycle; the next
  item is, with probability ``p_successor``, one of the next three items on the cycle
  (steps 1/2/3 with probabilities 0.6/0.25/0.15), else a popularity-weighted draw from the
  cluster. That gives a learnable sequential (Markov) signal on top of the collaborative
  one; lengths are ``min_length + Geometric`` with mean ``mean_length``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sequences import Sequences

_WORDS = (
    "red blue green black white golden silver pink violet amber "
    "cream serum lotion shampoo polish powder brush mask balm gel "
    "steel copper glass rubber nylon cotton wooden ceramic plastic carbon "
    "drill clamp valve sensor gauge filter cable hose tape glove "
    "travel deluxe mini classic organic herbal fresh gentle matte glossy "
    "kit set pack refill spray stick roller pad oil wax"
).split()


@dataclass
class SyntheticCatalogue:
    """Output of :func:`make_synthetic_catalogue` (0-based item ids throughout).

    ``embeddings``: float32 ``(n_items, dim)``; ``item_text``: one string per item;
    ``semantic_labels`` / ``collab_labels``: int64 cluster of every item.
    """

    sequences: Sequences
    embeddings: np.ndarray
    item_text: list[str]
    semantic_labels: np.ndarray
    collab_labels: np.ndarray


def make_synthetic_catalogue(
    n_users: int = 4000,
    n_items: int = 1500,
    dim: int = 64,
    *,
    n_semantic_clusters: int = 12,
    n_collab_clusters: int = 12,
    mean_length: float = 12,
    norm_disparity: float = 1.0,
    text_signal: float = 1.0,
    collab_signal: float = 0.5,
    noise: float = 0.5,
    agreement: float = 0.25,
    p_successor: float = 0.4,
    p_in_cluster: float = 0.9,
    zipf_exponent: float = 0.8,
    max_length: int = 200,
    seed: int = 0,
) -> SyntheticCatalogue:
    """Generate a synthetic catalogue (see the module docstring for the model).

    Parameters
    ----------
    n_users, n_items, dim : int
        Sizes. ``dim`` is the embedding width.
    n_semantic_clusters, n_collab_clusters : int
        Number of angular (text) clusters and of co-consumption clusters.
    mean_length : float
        Mean sequence length (every user has at least 5 items, or 3 when
        ``mean_length < 6``), capped at ``max_length``.
    norm_disparity : float
        Standard deviation of the log of the embedding norms (0 = all unit norm).
    text_signal, collab_signal, noise : float
        Weights of the semantic centroid, the collaborative direction and the isotropic
        noise (per-coordinate std ``noise / sqrt(dim)``) in each embedding direction.
    agreement : float
        Probability that an item's semantic cluster is the one paired with its
        collaborative cluster (1 = the two clusterings coincide, 0 = independent).
    p_successor, p_in_cluster : float
        Probability of a sequential step along the cluster's cycle, and probability that
        a step stays in the user's cluster at all (the rest is global popularity noise).
    zipf_exponent : float
        Popularity weights ``rank ** -zipf_exponent``.
    seed : int
        Everything is a deterministic function of the arguments.
    """
    _check(n_users >= 1 and n_items >= 2 and dim >= 1, "n_users, n_items, dim must be positive (n_items >= 2)")
    _check(
        1 <= n_semantic_clusters <= n_items and 1 <= n_collab_clusters <= n_items,
        "cluster counts must lie in 1..n_items",
    )
    _check(mean_length >= 3, "mean_length must be >= 3 (leave-one-out needs 3 items)")
    _check(norm_disparity >= 0, "norm_disparity must be >= 0")
    for name, p in (("agreement", agreement), ("p_successor", p_successor), ("p_in_cluster", p_in_cluster)):
        _check(0 <= p <= 1, f"{name} must lie in [0, 1]")
    rng = np.random.default_rng(seed)

    # Clusters: collaborative ones balanced; semantic ones partly tied to them.
    collab = rng.permutation(np.arange(n_items) % n_collab_clusters).astype(np.int64)
    pairing = rng.integers(0, n_semantic_clusters, size=n_collab_clusters)
    agree = rng.random(n_items) < agreement
    semantic = np.where(agree, pairing[collab], rng.integers(0, n_semantic_clusters, size=n_items)).astype(np.int64)

    # Embeddings: unit directions with cluster structure, then log-normal norms.
    sem_centroids = _unit(rng.standard_normal((n_semantic_clusters, dim)))
    col_dirs = _unit(rng.standard_normal((n_collab_clusters, dim)))
    direction = (
        text_signal * sem_centroids[semantic]
        + collab_signal * col_dirs[collab]
        + noise / np.sqrt(dim) * rng.standard_normal((n_items, dim))
    )
    norms = np.exp(norm_disparity * rng.standard_normal(n_items))
    embeddings = (_unit(direction) * norms[:, None]).astype(np.float32)

    # Popularity and per-cluster cycles.
    popularity = rng.permutation(np.arange(1, n_items + 1) ** -float(zipf_exponent))
    by_cluster = np.lexsort((rng.random(n_items), collab))  # random cycle order per cluster
    sizes = np.bincount(collab, minlength=n_collab_clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    pos_in_cycle = np.empty(n_items, dtype=np.int64)
    pos_in_cycle[by_cluster] = np.arange(n_items) - starts[collab[by_cluster]]
    # Popularity-weighted sampling inside a cluster: cluster k's cumulative weights lie in
    # (k, k+1], so one searchsorted over all clusters draws from the right one.
    total = np.cumsum(popularity[by_cluster])
    before = np.concatenate([[0.0], total[starts[1:-1] - 1]])  # mass of earlier clusters
    within = total - np.repeat(before, sizes)
    cum = within / np.repeat(within[starts[1:] - 1], sizes) + np.repeat(np.arange(n_collab_clusters), sizes)
    global_cum = np.cumsum(popularity) / popularity.sum()

    def in_cluster(c):
        r = np.searchsorted(cum, c + rng.random(c.size), side="right")
        return by_cluster[np.minimum(r, n_items - 1)]

    # Users: home cluster by cluster popularity, geometric lengths.
    cluster_mass = np.bincount(collab, weights=popularity, minlength=n_collab_clusters)
    home = rng.choice(n_collab_clusters, size=n_users, p=cluster_mass / cluster_mass.sum())
    min_len = 5 if mean_length >= 6 else 3
    extra = mean_length - min_len
    lengths = min_len + (
        rng.geometric(1.0 / (extra + 1), size=n_users) - 1 if extra > 0 else np.zeros(n_users, np.int64)
    )
    lengths = np.minimum(lengths, max(max_length, min_len)).astype(np.int64)

    steps = np.zeros((n_users, int(lengths.max())), dtype=np.int64)
    cur = in_cluster(home)
    steps[:, 0] = cur
    hop = np.array([1, 2, 3])
    for t in range(1, steps.shape[1]):
        u = rng.random(n_users)
        c = collab[cur]  # the chain continues in the current item's cluster
        succ = by_cluster[starts[c] + (pos_in_cycle[cur] + rng.choice(hop, n_users, p=[0.6, 0.25, 0.15])) % sizes[c]]
        nxt = np.where(u < p_successor, succ, in_cluster(home))
        glob = np.minimum(np.searchsorted(global_cum, rng.random(n_users)), n_items - 1)
        nxt = np.where(rng.random(n_users) < p_in_cluster, nxt, glob)
        steps[:, t] = nxt
        cur = nxt
    mask = np.arange(steps.shape[1])[None, :] < lengths[:, None]
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    seqs = Sequences(offsets, steps[mask].astype(np.int32), n_items)

    return SyntheticCatalogue(seqs, embeddings, _texts(semantic, n_semantic_clusters, rng), semantic, collab)


def _texts(semantic: np.ndarray, n_sem: int, rng) -> list[str]:
    """'item 17: <three words of its semantic cluster> <one random word>'."""
    vocab = np.array(_WORDS)
    cluster_words = np.stack([rng.choice(vocab.size, 4, replace=False) for _ in range(n_sem)])
    pick = np.argsort(rng.random((semantic.size, 4)), axis=1)[:, :3]  # 3 distinct words
    noise = rng.integers(0, vocab.size, size=semantic.size)
    words = vocab[cluster_words[semantic[:, None], pick]]
    return [f"item {i}: {' '.join(ws)} {vocab[noise[i]]}" for i, ws in enumerate(words)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)
