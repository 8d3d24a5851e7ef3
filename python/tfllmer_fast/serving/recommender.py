"""The served object: a trained backbone and its item table, asked by item keys."""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sequences import gather_segments, right_aligned_rows
from ..train.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from ..train.runtime import cpu_threads, resolve_device
from ._encoder import UserEncoder, input_width, item_vectors
from ._inputs import KeyMap, as_histories, check_unknown_rule, ids_of, item_set, key_string, unknown_error
from ._topk import Scorer, rank_block, top_k
from .recommendations import Recommendations

#: Largest score block, in floats (128 MiB in float32): the memory bound of every call.
SCORE_BUDGET = 1 << 25
#: Most history ids per call of the encoder, by device type. On the CPU a block's
#: activations then stay in the cache (8192 ids x a feed-forward of 256 floats: 8 MiB);
#: measured on Beauty, blocks of 8192 ids encode twice as fast as blocks of 65536.
ENCODER_TOKENS = {"cpu": 1 << 13, "cuda": 1 << 20}
#: A block of users takes in longer histories only while its padding stays under this
#: share of its ids (a block is as wide as its longest history).
PADDING_SLACK = 0.1


class Recommender:
    """Top-k items for users' histories of raw item keys, from a trained model.

    The ranking is the one evaluation uses (``model.next_hidden`` on the right-aligned
    history, then the model's scores in float32: the same normalisation and temperature);
    equal scores go to the smaller item id. Users are encoded in blocks of similar history
    length, as evaluation does, so a score may differ from another blocking's in its last
    float32 bit.

    Parameters
    ----------
    model : SequentialRecommender
        A trained backbone (SASRec, GRU4Rec, BERT4Rec; any item-table mode).
    item_keys : sequence, optional
        The key of every item, ``item_keys[i]`` for id ``i`` (default: ``"0"``, ``"1"``, ...).
    device : str or torch.device, optional
        Where to score (``"auto"``: CUDA when available); default: where the model is. The
        model is moved there.
    batch_size : int, optional
        Users per block of scores; default 256 on the CPU (a block of scores of a catalogue
        of ten thousand items stays in the cache), 8192 on a GPU; at most
        :data:`SCORE_BUDGET` scores per block (larger catalogues are scored in column
        chunks), so memory stays bounded for any number of users and items. The encoder
        reads blocks of at most :data:`ENCODER_TOKENS` history ids.
    threads : int, optional
        torch's CPU threads during each call (restored after); default: torch's setting.
        torch's thread count is one setting of the process: when several Python threads
        share a Recommender, leave ``threads`` unset and set torch's once.

    The model is put in evaluation mode (no dropout) and left there; calls only read it, so
    one Recommender may serve several threads.
    """

    def __init__(self, model, item_keys=None, *, device=None, batch_size: int | None = None, threads=None):
        if not hasattr(model, "next_hidden") or not hasattr(model, "item_table"):
            raise TypeError(f"model must be a tfllmer_fast backbone (SASRec, GRU4Rec, BERT4Rec), got {type(model)}")
        if device is not None:
            model = model.to(resolve_device(device))
        # In evaluation mode for good: toggling it per call would let one caller's call turn
        # dropout on under another's (calls from several threads share the model).
        self.model = model.eval()
        n = int(model.n_items)
        keys = [str(i) for i in range(n)] if item_keys is None else list(item_keys)
        if len(keys) != n:
            raise ValueError(f"{len(keys)} item keys for a model of {n} items")
        self._keys = KeyMap(keys)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.threads = threads

    # ----- construction -----------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, checkpoint, *, device="auto", best: bool = True, **kw) -> Recommender:
        """From a checkpoint file of a run (``checkpoint.pt``, or one written by ``add-items``)
        or the dict :func:`~tfllmer_fast.train.load_checkpoint` returns. ``best``: the best
        state (default) or the last epoch's. Other keywords: see the class."""
        st = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
        if not isinstance(st, dict) or "config" not in st or "model" not in st:
            raise CheckpointError(
                f"{checkpoint if isinstance(checkpoint, (str, Path)) else 'the dict'} is not a tfllmer_fast checkpoint"
            )
        model = model_from_checkpoint(st, best=best)
        keys = (st.get("items") or {}).get("known_ids")
        del st
        return cls(model, keys, device=device, **kw)

    @classmethod
    def from_run(cls, result, *, device=None, **kw) -> Recommender:
        """From what :func:`~tfllmer_fast.run_experiment` returned (its model holds the best
        state; it is used, not copied, unless ``device`` moves it elsewhere)."""
        trainer = getattr(result, "trainer", None)
        if trainer is None:
            raise TypeError(f"expected a RunResult (from run_experiment), got {type(result).__name__}")
        model = trainer.model
        if device is not None and resolve_device(device) != next(model.parameters()).device:
            model = copy.deepcopy(model)
        keys = (trainer.extra_state.get("items") or {}).get("known_ids")
        return cls(model, keys, device=device, **kw)

    # ----- the catalogue ----------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return int(self.model.n_items)

    @property
    def item_keys(self) -> np.ndarray:
        """The key of every item (object array of str), index = the model's id."""
        return self._keys.keys

    @property
    def device(self) -> torch.device:
        return self.model.item_emb.weight.device

    def item_ids(self, keys, *, unknown: str = "raise") -> np.ndarray:
        """The model's 0-based ids of ``keys`` (in order); unknown keys raise, or are -1
        with ``unknown="skip"``."""
        check_unknown_rule(unknown)
        keys = list(keys) if not isinstance(keys, (str, bytes)) else [keys]
        found = self._keys.lookup(keys)
        if unknown == "raise" and (found < 0).any():
            raise unknown_error("key(s)", [keys[j] for j in np.flatnonzero(found < 0)])
        return found

    # ----- recommendations --------------------------------------------------------------
    def recommend(
        self,
        histories,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items=None,
        exclude=None,
        ids: bool = False,
        unknown: str = "skip",
        progress: bool | None = False,
    ) -> Recommendations:
        """The top ``k`` items of every history.

        Parameters
        ----------
        histories : list of lists, mapping or Sequences
            Per user, the item keys of their history, oldest first (see
            :mod:`tfllmer_fast.serving`); the model reads the last ``max_len``.
        k : int
            Items per user. Larger than the candidate set: every candidate (the rows are
            as wide as the candidate set).
        exclude_seen : bool
            Leave out every item of the user's history (the whole history, known keys).
        items : list of keys, optional
            Candidate set (default: every item).
        exclude : list of keys, optional
            Never recommended (out of stock).
        ids : bool
            Histories, ``items`` and ``exclude`` hold the model's 0-based ids, not keys.
        unknown : {"skip", "raise"}
            Keys the model does not know: dropped and counted (``n_unknown``,
            ``n_unknown_items``, ``n_unknown_exclude``), or a ValueError naming them.
        progress : bool or None
            A progress bar over the users (``None``: when stderr is a terminal).

        Returns
        -------
        Recommendations
            A user whose history has no known item gets an empty row (``n_empty``); a user
            left with fewer candidates than ``k`` a short row (``lengths``).
        """
        k = _check_k(k)
        hist = as_histories(histories, self._keys, ids=ids, unknown=unknown)
        cols, banned, n_unk_items, n_unk_excl = self._candidates(items, exclude, ids, unknown)
        n_cand = (self.n_items if cols is None else int(cols.numel())) - int(banned.numel())
        if n_cand <= 0:
            raise ValueError("no candidate items: `items` and `exclude` leave none to recommend")
        width = min(k, n_cand)
        dev = self.device
        scorer = Scorer(self.model, cols, banned if cols is None else None)
        pos = None
        if cols is not None and exclude_seen:
            pos = torch.full((self.n_items,), -1, dtype=torch.long, device=dev)
            pos[cols] = torch.arange(cols.numel(), device=dev)
        seqs = hist.seqs
        score_rows, col_chunk = self._score_block(scorer.n_cols)
        out_ids = np.full((hist.n_users, width), -1, dtype=np.int64)
        out_scores = np.full((hist.n_users, width), -np.inf, dtype=np.float32)
        with self._session():
            for users, x in self._blocks(seqs, progress, "recommend"):
                hidden = self.model.next_hidden(torch.as_tensor(x, device=dev))
                _check_finite(hidden)
                for a in range(0, users.size, score_rows):
                    part = users[a : a + score_rows]
                    seen = self._seen(seqs, part, pos) if exclude_seen else None
                    vals, c = rank_block(scorer, hidden[a : a + score_rows], width, seen, col_chunk)
                    got = (c if cols is None else cols[c]).cpu().numpy()
                    vals = vals.cpu().numpy()
                    got[~np.isfinite(vals)] = -1
                    out_ids[part], out_scores[part] = got, vals
        return self._result(
            out_ids, out_scores, hist.users, hist.n_unknown, int((seqs.lengths == 0).sum()), n_unk_items, n_unk_excl
        )

    def similar_items(
        self, keys, k: int = 10, *, items=None, exclude=None, ids: bool = False, unknown: str = "skip"
    ) -> Recommendations:
        """The ``k`` items closest to each of ``keys``: cosine of the model's item rows (the
        table it scores with), the item itself left out, ties by the smaller id. For an
        anonymous session of several items, ``recommend([session])`` gives the model's own
        next-item ranking. Rows follow ``keys``; an unknown key gets an empty row
        (``unknown="skip"``) or raises."""
        k = _check_k(k)
        check_unknown_rule(unknown)
        if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
            raise ValueError(f"keys must be a list of item keys, got {type(keys).__name__}")
        keys = list(keys)
        q = ids_of(keys, self.n_items, "keys") if ids else self._keys.lookup(keys)
        if unknown == "raise" and (q < 0).any():
            raise unknown_error("key(s)", [keys[j] for j in np.flatnonzero(q < 0)])
        cols, banned, n_unk_items, n_unk_excl = self._candidates(items, exclude, ids, unknown)
        with torch.no_grad():
            table = F.normalize(self.model.item_table().detach().float(), dim=-1, eps=1e-12)
        cand = table if cols is None else table[cols]
        n_cand = cand.shape[0] - int(banned.numel())
        width = min(k, n_cand - 1 if cols is None else n_cand)
        if width <= 0:
            raise ValueError("no candidate items: `items` and `exclude` leave none to recommend")
        out_ids = np.full((len(keys), width), -1, dtype=np.int64)
        out_scores = np.full((len(keys), width), -np.inf, dtype=np.float32)
        rows = np.flatnonzero(q >= 0)
        bs = max(1, SCORE_BUDGET // max(1, cand.shape[0]))
        dev = self.device
        with self._session():
            for a in range(0, rows.size, bs):
                r = rows[a : a + bs]
                qi = torch.as_tensor(q[r], device=dev)
                s = table[qi] @ cand.t()
                if cols is None:
                    s[torch.arange(r.size, device=dev), qi] = float("-inf")
                    if banned.numel():
                        s[:, banned] = float("-inf")
                else:  # the query itself, when it is a candidate
                    hit = torch.searchsorted(cols, qi).clamp_(max=cols.numel() - 1)
                    same = cols[hit] == qi
                    s[torch.nonzero(same).squeeze(1), hit[same]] = float("-inf")
                vals, c = top_k(s, width)
                got = (c if cols is None else cols[c]).cpu().numpy()
                vals = vals.cpu().numpy()
                got[~np.isfinite(vals)] = -1
                out_ids[r], out_scores[r] = got, vals
        users = np.empty(len(keys), dtype=object)
        users[:] = [key_string(x) for x in keys]
        return self._result(out_ids, out_scores, users, int((q < 0).sum()), int((q < 0).sum()), n_unk_items, n_unk_excl)

    # ----- vectors ----------------------------------------------------------------------
    def user_vectors(self, histories, *, ids: bool = False, unknown: str = "skip") -> np.ndarray:
        """(n_users, dim) float32 vectors such that ``user_vectors(h) @ item_vectors().T`` are
        the model's scores (up to float rounding). A history without a known item gives a
        zero row. See :mod:`tfllmer_fast.serving` for the definition."""
        hist = as_histories(histories, self._keys, ids=ids, unknown=unknown)
        enc = UserEncoder(self.model)
        dim = self.vector_dim
        out = np.zeros((hist.n_users, dim), dtype=np.float32)
        with self._session():
            for users, x in self._blocks(hist.seqs, False, "user vectors"):
                u = enc(torch.as_tensor(x - 1, device=self.device))
                _check_finite(u)
                out[users] = u.cpu().numpy()
        return out

    def item_vectors(self) -> np.ndarray:
        """(n_items, dim) float32 item vectors (row = the model's id; keys in ``item_keys``):
        the scored table, normalised when the model normalises items, divided by the
        temperature; with an output bias (BERT4Rec, unnormalised items) one more column
        holding ``bias / temperature``, matched by the 1 that ends every user vector."""
        with self._session():
            return item_vectors(self.model).cpu().numpy()

    @property
    def vector_dim(self) -> int:
        """Width of the user and item vectors (``hidden``, + 1 with an output bias)."""
        return int(self.model.hidden) + (1 if self.model.output_bias() is not None else 0)

    def encoder_inputs(self, histories, *, ids: bool = False, unknown: str = "skip") -> np.ndarray:
        """The exported encoder's input for ``histories``: (n_users, width) int64 0-based ids,
        right-aligned, ``-1`` padding on the left, the last ``width`` known items (width =
        what the model reads)."""
        hist = as_histories(histories, self._keys, ids=ids, unknown=unknown)
        s = hist.seqs
        width = input_width(self.model)
        take = np.minimum(s.lengths, width)
        return right_aligned_rows(s, np.arange(s.n_users), s.lengths - take, take, width) - 1

    def export(self, out_dir, *, overwrite: bool = False) -> dict:
        """Write the encoder (ONNX), the item vectors, the keys and a manifest to ``out_dir``;
        see :func:`tfllmer_fast.serving.export_onnx`."""
        from .export import export_onnx

        return export_onnx(self, out_dir, overwrite=overwrite)

    # ----- internals --------------------------------------------------------------------
    def _candidates(self, items, exclude, ids, unknown):
        dev = self.device
        n_unk_items = n_unk_excl = 0
        cols = None
        if items is not None:
            c, n_unk_items = item_set(items, self._keys, ids=ids, unknown=unknown, what="items")
            cols = c
        banned = np.zeros(0, np.int64)
        if exclude is not None:
            banned, n_unk_excl = item_set(exclude, self._keys, ids=ids, unknown=unknown, what="exclude")
        if cols is not None:
            cols = np.setdiff1d(cols, banned)
            if cols.size == 0:
                raise ValueError(
                    "no candidate items: "
                    + (
                        "no key of `items` is known to the model"
                        if n_unk_items
                        else "`exclude` removes every one of `items`"
                    )
                )
            return (
                torch.as_tensor(cols, device=dev),
                torch.zeros(0, dtype=torch.long, device=dev),
                n_unk_items,
                n_unk_excl,
            )
        return None, torch.as_tensor(banned, device=dev), n_unk_items, n_unk_excl

    def _score_block(self, n_cols: int) -> tuple[int, int]:
        """(users, candidate columns) per block of scores, at most :data:`SCORE_BUDGET`.

        Small blocks of users keep a block of scores in the cache for catalogues of some ten
        thousand items; a large catalogue is scored in column chunks against larger blocks
        of users instead, so the item table is read once per block, not once per few users."""
        gpu = self.device.type != "cpu"
        rows = self.batch_size or (8192 if gpu else 256)
        if rows * n_cols <= SCORE_BUDGET:
            return rows, n_cols
        if self.batch_size is None:
            rows = 8192 if gpu else 1024
        return rows, max(1, SCORE_BUDGET // rows)

    def _blocks(self, seqs, progress, what: str):
        """(users, right-aligned shifted ids) blocks of the users with a non-empty history,
        by history length, each as wide as its longest read history, holding at most
        :data:`ENCODER_TOKENS` ids of which at most :data:`PADDING_SLACK` padding (the
        encoder's cost is per id read, padding included)."""
        lengths = seqs.lengths
        nonempty = np.flatnonzero(lengths > 0)
        order = nonempty[np.argsort(lengths[nonempty], kind="stable")]
        take = np.minimum(lengths[order], self.model.max_len)
        budget = ENCODER_TOKENS["cpu" if self.device.type == "cpu" else "cuda"]
        bar = None
        if progress is not False and order.size:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=int(order.size), desc=what, unit="user", disable=None if progress is None else not progress
            )
        a, n = 0, order.size
        # Widths ascend: the users of one width end at ``ends``; ``read[e] - read[a]`` is the
        # number of real ids of users a..e-1.
        ends = np.append(np.flatnonzero(np.diff(take)) + 1, n)
        read = np.concatenate([[0], np.cumsum(take, dtype=np.int64)])
        try:
            while a < n:
                g = int(np.searchsorted(ends, a, side="right"))
                b = min(int(ends[g]), a + max(1, budget // int(take[a])))  # users of the first width
                if b == ends[g]:  # all of them: longer widths join while the block stays lean
                    for e in ends[g + 1 :].tolist():
                        cells = (e - a) * int(take[e - 1])
                        if cells > budget or cells > (1 + PADDING_SLACK) * int(read[e] - read[a]):
                            break
                        b = e
                users, t = order[a:b], take[a:b]
                yield users, right_aligned_rows(seqs, users, lengths[users] - t, t, int(t[-1]))
                if bar is not None:
                    bar.update(users.size)
                a = b
        finally:
            if bar is not None:
                bar.close()

    def _seen(self, seqs, users, pos):
        """(rows, candidate columns) of the history items of ``users``."""
        lens = seqs.lengths[users]
        dev = self.device
        seen = torch.as_tensor(gather_segments(seqs.items, seqs.offsets[users], lens), device=dev).long()
        rows = torch.as_tensor(np.repeat(np.arange(users.size), lens), device=dev)
        if pos is not None:  # candidates restricted: columns are positions in the candidate set
            seen = pos[seen]
            rows, seen = rows[seen >= 0], seen[seen >= 0]
        return rows, seen

    @contextmanager
    def _session(self):
        threads = cpu_threads(self.threads) if self.threads else nullcontext()
        with threads, torch.inference_mode():
            yield

    def _result(self, out_ids, out_scores, users, n_unknown, n_empty, n_unk_items, n_unk_excl) -> Recommendations:
        keys = np.full(out_ids.shape, None, dtype=object)
        ok = out_ids >= 0
        keys[ok] = self._keys.keys[out_ids[ok]]
        return Recommendations(
            keys=keys,
            ids=out_ids,
            scores=out_scores,
            users=users,
            n_unknown=n_unknown,
            n_empty=n_empty,
            n_unknown_items=n_unk_items,
            n_unknown_exclude=n_unk_excl,
        )

    def __repr__(self) -> str:
        m = self.model
        return (
            f"Recommender({type(m).__name__}, {self.n_items} items, hidden {m.hidden}, "
            f"max_len {m.max_len}, device {self.device})"
        )


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _check_finite(h: torch.Tensor) -> None:
    if not torch.isfinite(h).all():
        raise ValueError("the model gives NaN or Inf representations: its weights are damaged")
