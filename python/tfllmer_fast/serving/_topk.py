"""Scores of a block of users and their top-k, ties broken by the smaller item id.

The scores are the model's scoring path with the item table computed once
(:func:`scorer`): ``model.score`` recomputes the normalised table on every call, which costs
as much as the product itself for a million items. The arithmetic is ``score``'s, step for
step (a test checks that the two agree bit for bit).
"""

from __future__ import annotations

import torch


class Scorer:
    """The model's scores ``score(h)`` over a fixed candidate set, in float32.

    ``cols``: sorted 0-based ids of the candidates (``None``: every item, column ``i`` =
    item ``i``); ``banned``: ids scored ``-inf`` (only with ``cols=None``).

    A call's scores are written into one buffer that the next call overwrites: a fresh
    block of scores per call would be new memory each time (the encoder's blocks in
    between take the freed one), and its page faults cost more than the product itself."""

    def __init__(self, model, cols: torch.Tensor | None = None, banned: torch.Tensor | None = None):
        self.model = model
        with torch.no_grad(), torch.autocast(model.item_emb.weight.device.type, enabled=False):
            table = model.item_table().detach().float()
            bias = model.output_bias()
            bias = None if bias is None else bias.detach().float()
        # One reduction finds a NaN or Inf anywhere (every call pays it); the rows are
        # looked for only then.
        if not torch.isfinite(table.sum() + (0.0 if bias is None else bias.sum())):
            finite = torch.isfinite(table).all(1)
            bad = ~finite if bias is None else ~(finite & torch.isfinite(bias))
            ids = torch.nonzero(bad).squeeze(1)[:5].tolist()
            raise ValueError(f"the item table has NaN or Inf rows (items {ids}...): the model's weights are damaged")
        if cols is not None:
            table = table[cols]
            bias = None if bias is None else bias[cols]
        self.table = table
        self.bias = bias
        self.temperature = model.temperature
        self.cols = cols
        self.banned = banned if banned is not None and banned.numel() else None
        self.n_cols = table.shape[0]
        self._buffer: torch.Tensor | None = None

    def _out(self, rows: int, cols: int) -> torch.Tensor:
        """A (rows, cols) contiguous view of the score buffer, grown when too small."""
        if self._buffer is None or self._buffer.numel() < rows * cols:
            self._buffer = torch.empty(rows * cols, dtype=torch.float32, device=self.table.device)
        return self._buffer[: rows * cols].view(rows, cols)

    @torch.no_grad()
    def __call__(self, h: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Scores of ``h`` against candidate columns ``lo .. hi - 1`` (default: all), valid
        until the next call."""
        hi = self.n_cols if hi is None else hi
        whole = lo == 0 and hi == self.n_cols
        with torch.autocast(h.device.type, enabled=False):
            table = self.table if whole else self.table[lo:hi]
            logits = torch.matmul(self.model.output_hidden(h.float()), table.t(), out=self._out(h.shape[0], hi - lo))
            if self.bias is not None:
                logits.add_(self.bias if whole else self.bias[lo:hi])
            if self.temperature != 1.0:
                logits.div_(self.temperature)
            if self.banned is not None:
                b = self.banned if whole else self.banned[(self.banned >= lo) & (self.banned < hi)] - lo
                logits[:, b] = float("-inf")
            return logits


def rank_block(scorer: Scorer, h: torch.Tensor, k: int, seen=None, col_chunk: int | None = None):
    """(values, columns) of the ``k`` best candidates of every row of ``h`` (see
    :func:`top_k`), the candidates scored ``col_chunk`` columns at a time (default: all at
    once); ``seen`` = (rows, columns) scored ``-inf``. Each chunk's exact top-k is merged
    into the running one: under the total order (score down, column up) the overall top-k
    lies in the union of the chunks' top-k, so the result is the same for any chunk size."""
    n = scorer.n_cols
    step = n if not col_chunk or col_chunk >= n else col_chunk
    best = None
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        scores = scorer(h, lo, hi)
        if seen is not None and seen[0].numel():
            rows, cols = seen
            inside = (cols >= lo) & (cols < hi) if step < n else None
            if inside is None:
                scores[rows, cols] = float("-inf")
            else:
                scores[rows[inside], cols[inside] - lo] = float("-inf")
        vals, c = top_k(scores, min(k, hi - lo))
        if lo:
            c = c + lo
        best = (vals, c) if best is None else _merge(best, (vals, c), k)
    return best


def _merge(a, b, k):
    vals, cols = torch.cat([a[0], b[0]], 1), torch.cat([a[1], b[1]], 1)
    cols, perm = torch.sort(cols, dim=1)
    vals = vals.gather(1, perm)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :k]
    return vals.gather(1, order), cols.gather(1, order)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, columns) of each row's ``k`` best scores, best first, equal scores by the
    smaller column; ``-inf`` entries are what is left when a row has fewer than ``k``
    finite scores (the caller marks them as padding).

    On the CPU one pass of the compiled kernel (``cpp/top_k.cpp``: about 2.5 times faster than
    ``torch.topk`` on blocks of 256 x 12k scores); elsewhere :func:`torch_top_k`. The
    two agree exactly on scores without NaN (the kernel never chooses NaN; the recommender
    refuses non-finite user vectors and item tables before scoring)."""
    if scores.device.type == "cpu" and scores.dtype == torch.float32 and scores.stride(1) == 1 and k <= scores.shape[1]:
        from .. import _core

        vals, cols = _core.top_k_rows(scores.numpy(), k, torch.get_num_threads())
        return torch.from_numpy(vals), torch.from_numpy(cols)
    return torch_top_k(scores, k)


def torch_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`top_k` with torch operations (any device).

    ``torch.topk`` breaks ties in no documented order. It is asked for ``k + 1`` values: a
    row whose ``k``-th and ``k + 1``-th values differ has its top-k set fixed, and only its
    order within ties needs the sort by column; a row where they are equal (a tie across
    the cut: rare, but for repeated rows of the item table) is ranked again exactly."""
    n_cols = scores.shape[1]
    extra = 1 if k < n_cols else 0
    vals, cols = torch.topk(scores, k + extra, dim=1, sorted=True)
    if extra:
        cut = vals[:, k - 1]
        redo = torch.nonzero((vals[:, k] == cut) & torch.isfinite(cut)).squeeze(1).tolist()
        vals, cols = vals[:, :k], cols[:, :k]
    else:
        redo = []
    # Within the chosen k: by value, then by column.
    cols, perm = torch.sort(cols, dim=1)
    vals = vals.gather(1, perm)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    vals, cols = vals.gather(1, order), cols.gather(1, order)
    for r in redo:
        cand = torch.nonzero(scores[r] >= vals[r, -1]).squeeze(1)  # ascending columns
        best = torch.sort(scores[r, cand], descending=True, stable=True).indices[:k]
        cols[r] = cand[best]
        vals[r] = scores[r, cols[r]]
    return vals, cols
