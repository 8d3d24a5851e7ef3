"""Rows for items a model never trained on, from their LLM embeddings, without retraining.

Three methods (:data:`ROW_METHODS`):

* ``projection``: the projection and scaling that built the initial table (PCA or Rec-PCA
  components, mean, row normalisation, scale factor; stored in the checkpoint as
  ``items.projection``), applied to the new items' embeddings. With the cold-start
  protocol these are the cold rows as training left them (they get no update), up to
  float32 rounding: the table was computed in the embeddings' precision, this in float64.
* ``aligned``: a ridge map ``T(p) = p W + b`` fitted in closed form after training from the
  projected rows ``p`` of warm items to their trained rows (intercept not penalised), then
  applied to the new items' projected rows. Its ``lambda`` is chosen on validation
  (:func:`fit_aligned_map`) and stored as ``items.aligned``; when no lambda beats the
  projection itself on that validation, the stored map is the identity (``chosen =
  "projection"``), so ``aligned`` rows are the projected ones.
* ``random``: rows drawn as the random init draws them (N(0, init_std)); all an ID-only
  model can get, hence the chance reference.

:func:`add_items` returns a checkpoint whose model has the new items appended (0-based ids
``n_items .. n_items + k - 1``, keys ``new-<id>`` unless given); every old item's row, and so
its score, is unchanged.

Models with a frozen item table (``item_table = "frozen"`` / ``"frozen+delta"``, see
:mod:`.item_tables`) were trained in the projected space itself: a new item gets its
projected row as its frozen row and a zero delta, and no map is fitted (``aligned`` is
refused for them).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..graph.item_table import apply_projection
from .checkpoint import checkpoint_n_items
from .evaluation import group_metrics
from .item_tables import item_table_mode
from .options import ItemTableOptions

ROW_METHODS = ("projection", "aligned", "random")
#: Ridge strengths tried, relative to the mean diagonal of the centred Gram matrix.
RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


# ----- the ridge map ------------------------------------------------------------------------
def ridge_map(P, E, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` minimising ``||P W + 1 b^T - E||^2 + lam ||W||_F^2`` (b not penalised),
    in float64: centre both sides, solve ``(Pc^T Pc + lam I) W = Pc^T Ec``."""
    P = np.asarray(P, np.float64)
    E = np.asarray(E, np.float64)
    if P.ndim != 2 or E.ndim != 2 or P.shape[0] != E.shape[0]:
        raise ValueError(f"P and E must be 2-D with the same rows, got {P.shape}, {E.shape}")
    if P.shape[0] == 0:
        raise ValueError("no rows to fit the map on")
    if not lam >= 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    mp, me = P.mean(0), E.mean(0)
    Pc, Ec = P - mp, E - me
    G = Pc.T @ Pc + lam * np.eye(P.shape[1])
    W = np.linalg.solve(G, Pc.T @ Ec) if lam > 0 else np.linalg.lstsq(Pc, Ec, rcond=None)[0]
    return W, me - mp @ W


def _set_rows(model, items, rows) -> None:
    with torch.no_grad():
        w = model.item_emb.weight
        w[torch.as_tensor(np.asarray(items) + 1, device=w.device)] = torch.as_tensor(
            np.asarray(rows), dtype=w.dtype, device=w.device
        )


def _get_rows(model, items) -> np.ndarray:
    w = model.item_emb.weight.detach()
    return w[torch.as_tensor(np.asarray(items) + 1, device=w.device)].cpu().double().numpy()


def fit_aligned_map(
    trainer, P, *, warm=None, holdout: float = 0.2, seed: int = 0, grid=RIDGE_GRID, metric: str | None = None
) -> dict:
    """Fit the ``aligned`` map of a trained model and choose its lambda on validation.

    ``P`` (n_items, hidden): the projected LLM rows (the initial table). ``warm``: boolean
    mask of the items trained on (default: all). Selection: a random ``holdout`` share of
    the warm items (``seed``) plays the new items: the map is fitted on the other warm
    items, their rows are replaced by the mapped ones, and the validation ``metric``
    (default: the selection metric) over the validation targets among them scores each
    lambda of ``grid`` (relative to the mean diagonal of the centred Gram matrix), and the
    held-out items' projected rows themselves score the ``projection`` reference. When every
    lambda scores the same, a ``RuntimeWarning`` says so (``tie``: the choice says nothing).
    Unless the best lambda beats the projection, the projection is kept: ``W`` = identity,
    ``b`` = 0 (``chosen`` = "projection"); otherwise the map is refitted on every warm item
    with the chosen lambda (``chosen`` = "aligned"). The model is left as it was.

    Returns plain values: ``W``, ``b``, ``lam`` (absolute), ``lam_rel``, ``scores``
    (lam_rel -> metric), ``projection_score``, ``chosen``, ``tie``, ``n_holdout_targets``.
    """
    model = trainer.model
    if item_table_mode(model) != "free":
        raise ValueError(
            "the aligned map is for free item tables: a frozen table is trained "
            "in the projected space, where new items use their projected rows"
        )
    P = np.asarray(P, np.float64)
    n = P.shape[0]
    warm_ids = np.arange(n) if warm is None else np.flatnonzero(np.asarray(warm, bool))
    metric = metric or trainer.options.selection_metric
    E = _get_rows(model, np.arange(n))
    Pc = P[warm_ids] - P[warm_ids].mean(0)
    unit = float(np.mean(np.sum(Pc * Pc, axis=0))) or 1.0
    rng = np.random.default_rng(seed)
    k = max(1, int(round(holdout * warm_ids.size)))
    held = np.sort(rng.choice(warm_ids, size=k, replace=False))
    fit_on = np.setdiff1d(warm_ids, held)
    held_mask = np.zeros(n, bool)
    held_mask[held] = True
    n_held = int(held_mask[np.asarray(trainer.split.valid_targets)].sum())
    scores, projection_score = {}, None

    def held_score(rows) -> float:
        _set_rows(model, held, rows)
        _, ranks = trainer.evaluate("valid", return_ranks=True)
        g = group_metrics(ranks, trainer.split.valid_targets, {"h": held_mask}, trainer.evaluation.ks)["h"]
        return float(g.get(metric, 0.0))

    if n_held and fit_on.size:
        saved = E[held]
        try:
            projection_score = held_score(P[held])
            for rel in grid:
                W, b = ridge_map(P[fit_on], E[fit_on], rel * unit)
                scores[float(rel)] = held_score(P[held] @ W + b)
        finally:
            _set_rows(model, held, saved)
        best = max(scores, key=lambda r: (scores[r], -r))  # ties: the stronger ridge
    else:
        best = 1.0  # nothing to choose on: a middle value
    tie = len(set(scores.values())) == 1 and len(scores) > 1
    if tie:
        warnings.warn(
            f"aligned map: every candidate lambda scored {scores[best]:g} on validation ({metric} over "
            f"{n_held} held-out targets), so the choice says nothing; "
            + ("the projection is kept" if scores[best] <= projection_score else "the strongest ridge is taken"),
            RuntimeWarning,
            stacklevel=2,
        )
    chosen = "aligned" if projection_score is None or scores[best] > projection_score else "projection"
    if chosen == "aligned":
        W, b = ridge_map(P[warm_ids], E[warm_ids], best * unit)
    else:
        W, b = np.eye(P.shape[1]), np.zeros(P.shape[1])
    return {
        "W": W,
        "b": b,
        "lam": best * unit,
        "lam_rel": best,
        "scores": scores,
        "projection_score": projection_score,
        "chosen": chosen,
        "tie": tie,
        "n_holdout_targets": n_held,
        "metric": metric,
    }


# ----- rows and checkpoints -----------------------------------------------------------------
def new_item_rows(items_state: dict, X, method: str, *, hidden: int, init_std: float, seed: int = 0) -> np.ndarray:
    """Rows (k, hidden) float32 for new items with LLM embeddings ``X`` (k, D), from the
    ``items`` entry of a checkpoint (see the module docstring)."""
    if method not in ROW_METHODS:
        raise ValueError(f"method must be one of {ROW_METHODS}, got {method!r}")
    k = int(np.asarray(X).shape[0]) if X is not None else 0
    if method == "random":
        g = torch.Generator().manual_seed(int(seed))
        return (torch.randn(k, hidden, generator=g, dtype=torch.float64) * init_std).numpy().astype(np.float32)
    proj = items_state.get("projection")
    if proj is None:
        raise ValueError(
            f"method {method!r} needs the LLM projection, but this checkpoint "
            "is ID-only (init='random'): use method 'random' (the chance "
            "reference)"
        )
    P = apply_projection(_plain(proj), X)
    if method == "projection":
        return P
    al = items_state.get("aligned")
    if al is None:
        raise ValueError(
            "this checkpoint has no aligned map (it is fitted after training "
            "by tfllmer-fast train/run): use method 'projection'"
        )
    W, b = _np(al["W"]), _np(al["b"])
    return (P.astype(np.float64) @ W + b).astype(np.float32)


def check_new_embeddings(X, ids, known_ids, width: int | None) -> tuple[np.ndarray, list]:
    """Validate new items' embeddings and ids; errors name the problem and the rows."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"new-item embeddings must be a 2-D array (items x width), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("no new items: the embedding array has zero rows")
    if X.dtype.kind not in "fiu":
        raise ValueError(f"new-item embeddings must be numbers, got dtype {X.dtype}")
    if width is not None and X.shape[1] != width:
        raise ValueError(f"new-item embeddings have width {X.shape[1]}, but the model's projection expects {width}")
    X = X.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise ValueError(f"new-item embeddings contain NaN or Inf in {bad.size} row(s), first rows {bad[:5].tolist()}")
    zero = np.flatnonzero(~X.any(axis=1))
    if zero.size:
        raise ValueError(
            f"new-item embeddings have {zero.size} all-zero row(s) (no text?), "
            f"first rows {zero[:5].tolist()}: a zero row has no direction"
        )
    ids = [str(i) for i in ids]
    if len(ids) != X.shape[0]:
        raise ValueError(f"{len(ids)} ids for {X.shape[0]} embedding rows")
    seen, dup = set(), []
    for i in ids:
        (dup.append(i) if i in seen else seen.add(i))
    if dup:
        raise ValueError(f"duplicate new item id(s): {', '.join(sorted(set(dup))[:5])}")
    known = set(str(k) for k in known_ids)
    old = [i for i in ids if i in known]
    if old:
        raise ValueError(
            f"item id(s) already known to the model: {', '.join(old[:5])}"
            + (f" and {len(old) - 5} more" if len(old) > 5 else "")
        )
    return X, ids


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if torch.is_tensor(x) else np.asarray(x, np.float64)


def _plain(proj: dict) -> dict:
    return {k: (_np(v) if torch.is_tensor(v) else v) for k, v in proj.items()}


def to_checkpoint_values(d: dict) -> dict:
    """numpy arrays -> tensors (torch.load(weights_only=True) reads tensors, not arrays)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        elif isinstance(v, dict):
            out[k] = to_checkpoint_values(v)
        elif isinstance(v, np.generic):
            out[k] = v.item()
        else:
            out[k] = v
    return out


def checkpoint_items(st: dict, n_items: int) -> dict:
    """The ``items`` entry of a checkpoint, with defaults for checkpoints without one."""
    items = dict(st.get("items") or {})
    items.setdefault("n_items", n_items)
    items.setdefault("known_ids", [str(i) for i in range(items["n_items"])])
    return items


def add_items(st: dict, X, ids=None, *, method: str = "projection", seed: int = 0) -> dict:
    """A new checkpoint with ``k`` items appended to the model of checkpoint ``st``.

    ``X`` (k, D): the new items' LLM embeddings; ``ids``: their keys (default:
    ``"new-<id>"`` with their new 0-based ids ``n_items .. n_items + k - 1``). Old items
    keep their rows bit for bit
    (BERT4Rec's mask-token row moves behind the new items; its output bias of a new item
    is the mean bias of the old ones). Raises ``ValueError`` naming the problem first.
    """
    state = st["best_state"] or st["model"]
    cfg = st["config"]
    frozen = "item_emb.base" in state
    if frozen and method == "aligned":
        raise ValueError(
            f"this checkpoint's item table is {ItemTableOptions.from_mapping(cfg).mode!r}: it was "
            "trained in the projected space, so new items take their projected "
            "rows; use method 'projection'"
        )
    weight = state["item_emb.base" if frozen else "item_emb.weight"]
    extra = 0 if frozen else weight.shape[0] - 1 - checkpoint_n_items(st)
    n = weight.shape[0] - 1 - extra
    items = checkpoint_items(st, n)
    if items["n_items"] != n:
        raise ValueError(f"checkpoint inconsistent: {items['n_items']} items recorded, {n} rows in the model")
    proj = items.get("projection")
    if method in ("projection", "aligned") and proj is None:
        why = (
            "is ID-only (init='random')"
            if cfg.get("init") == "random"
            else f"was trained from an item table given to it (init={cfg.get('init')!r}), so it stores no projection"
        )
        raise ValueError(
            f"method {method!r} needs the LLM projection, but this checkpoint "
            f"{why}: use method 'random' (the chance reference)"
        )
    width = None if proj is None or method == "random" else int(proj["components"].shape[0])
    k = int(np.asarray(X).shape[0]) if np.asarray(X).ndim == 2 else 0
    if ids is None:  # a namespace of their own: the data's keys may be the numbers n, n+1, ...
        ids = [f"new-{n + j}" for j in range(k)]
    X, ids = check_new_embeddings(X, ids, items["known_ids"], width)
    rows = new_item_rows(items, X, method, hidden=weight.shape[1], init_std=float(cfg.get("init_std", 0.02)), seed=seed)
    new_rows = torch.as_tensor(rows, dtype=weight.dtype)

    def grow(sd):
        sd = dict(sd)
        if frozen:  # the new rows are frozen rows with a zero delta
            w = sd["item_emb.base"]
            sd["item_emb.base"] = torch.cat([w, new_rows.to(w.device)])
            if "item_emb.delta" in sd:
                d = sd["item_emb.delta"]
                sd["item_emb.delta"] = torch.cat([d, d.new_zeros(k, d.shape[1])])
        else:
            w = sd["item_emb.weight"]
            sd["item_emb.weight"] = torch.cat([w[: n + 1], new_rows.to(w.device), w[n + 1 :]])
        if "bias" in sd and sd["bias"].shape[0] == n:
            b = sd["bias"]
            sd["bias"] = torch.cat([b, b.mean().expand(k).to(b.dtype)])
        return sd

    out = {key: v for key, v in st.items() if key not in ("optimizer", "scaler", "rng")}
    out["model"] = grow(st["model"])
    out["best_state"] = grow(st["best_state"]) if st.get("best_state") is not None else None
    out["items"] = {
        **items,
        "n_items": n + k,
        "known_ids": list(items["known_ids"]) + ids,
        "added": list(items.get("added", [])) + [{"method": method, "n": k, "first_id": n}],
    }
    return out
