"""Training loop: the whole dataset lives on the device as tensors; batches are gathered by
tensor indexing (no per-sample Python work).

**Training windows.** Next-item models (SASRec, GRU4Rec) see each user's training history
once per epoch as one right-aligned window: the input is the history without its last item,
and *every* position predicts the item after it, so every training target (all training
items but each user's first) is predicted exactly once per epoch from its whole prefix, as in
RecBole's one-sample-per-prefix epoch, at 1/L of the cost. The loss is taken on
non-padding positions only (they are gathered before the output projection). Histories
longer than ``max_len + 1`` are cut into consecutive windows from the most recent end
(window k holds targets ``L-1-kM-M+1 .. L-1-kM``, each with the item before it as first
input), so no target is lost; a target early in an older window sees fewer than ``max_len``
items of context (a documented approximation of the prefix view). BERT4Rec windows are the
last ``max_len`` items (older items in further windows), masked afresh each epoch.

With position ids counted from each row's first item (the default, see
:class:`~tfllmer_fast.models.common.TransformerBackbone`) and causal attention, the output at
every position of a window equals that prefix's own forward pass, so this epoch is RecBole's
up to dropout (one mask per window instead of one per prefix) and batch composition.

**Prefix rows** (``train_samples="prefixes"``): RecBole's layout exactly, one right-aligned
row per training target holding the target and the ``max_len`` items before it; the loss is
taken at the last position only. About ``L/2`` times the encoder work of windows.

Each step trims the columns that are padding in every row of the batch (exact for both
position conventions), so short-history batches cost less.

``batch_size`` counts rows (windows or prefixes), not prediction points.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._atomic import atomic_open
from .config import LEGACY_DEFAULTS, Config
from .evaluation import EvalData, build_eval_data, evaluate
from .losses import make_loss
from .models import MODELS
from .sequences import LeaveOneOutSplit, Sequences


# ----- devices, seeds --------------------------------------------------------------------
def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU. Anything else goes to ``torch.device``."""
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    return dev


def resolve_amp(amp: str, device: torch.device):
    """(autocast dtype or None, whether a GradScaler is needed)."""
    if device.type != "cuda" or amp == "off":
        return None, False
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return (torch.bfloat16, False) if amp == "bf16" else (torch.float16, True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_cpu_threads(threads: int | None) -> int:
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


# ----- data ------------------------------------------------------------------------------
def _ranks_within(counts: np.ndarray) -> np.ndarray:
    """0, 1, .., c-1 for every c in ``counts``, concatenated."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def _right_aligned_rows(train: Sequences, users: np.ndarray, start: np.ndarray, wlen: np.ndarray,
                        width: int) -> np.ndarray:
    """Row r holds items ``start[r] .. start[r] + wlen[r] - 1`` of user ``users[r]``'s history,
    right-aligned in ``width`` columns, as shifted ids (0 = padding)."""
    out = np.zeros((users.size, width), dtype=np.int64)
    rows = np.repeat(np.arange(users.size), wlen)
    within = _ranks_within(wlen)
    src = np.repeat(train.offsets[users] + start, wlen) + within
    cols = np.repeat(width - wlen, wlen) + within
    out[rows, cols] = train.items[src].astype(np.int64) + 1
    return out


def build_windows(train: Sequences, max_len: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned training windows (n_windows, max_len + 1) of shifted ids, and their
    lengths (see the module docstring). Causal windows hold up to ``max_len + 1`` items
    (inputs = all but the last, targets = all but the first); masked windows up to
    ``max_len`` (column 0 stays padding)."""
    lengths = train.lengths
    overlap = 1 if causal else 0
    span = max_len + overlap
    n_pred = np.maximum(lengths - overlap, 0)          # targets per user
    n_win = -(-n_pred // max_len)                       # ceil
    users = np.repeat(np.arange(lengths.size), n_win)
    end = lengths[users] - 1 - _ranks_within(n_win) * max_len  # last item (inclusive)
    start = np.maximum(0, end - span + 1)
    wlen = end - start + 1
    return _right_aligned_rows(train, users, start, wlen, max_len + 1), wlen


def build_prefixes(train: Sequences, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """One right-aligned row per training target, RecBole's sample layout: the target last,
    the (at most ``max_len``) items before it in front. Returns (n_targets, max_len + 1)
    shifted ids and the row lengths."""
    n_pred = np.maximum(train.lengths - 1, 0)
    users = np.repeat(np.arange(n_pred.size), n_pred)
    target = _ranks_within(n_pred) + 1                  # index of the target in the history
    start = np.maximum(0, target - max_len)
    wlen = target - start + 1
    return _right_aligned_rows(train, users, start, wlen, max_len + 1), wlen


def build_model(config: Config, n_items: int):
    """The backbone named by ``config.model`` with the config's hyper-parameters."""
    cls = MODELS[config.model]
    common = dict(normalize_items=config.normalize_items, normalize_hidden=config.normalize_hidden,
                  temperature=config.temperature, init_std=config.init_std)
    drop = config.model_dropout
    if config.model == "gru4rec":
        return cls(n_items, config.hidden, config.max_len, gru_hidden=config.gru_hidden,
                   n_layers=config.n_layers or 1, dropout=drop, **common)
    kw = dict(n_layers=config.n_layers or 2, n_heads=config.n_heads,
              inner_size=config.inner_size, hidden_dropout=drop,
              attn_dropout=drop if config.attn_dropout is None else config.attn_dropout,
              layer_norm_eps=config.layer_norm_eps, positions=config.positions, **common)
    if config.model == "bert4rec":
        kw["mask_ratio"] = config.mask_ratio
    return cls(n_items, config.hidden, config.max_len, **kw)


# ----- results ---------------------------------------------------------------------------
@dataclass
class FitResult:
    history: list = field(default_factory=list)   # one dict per epoch
    best_epoch: int | None = None
    best_valid: dict | None = None
    stopped_early: bool = False
    epochs_run: int = 0
    train_time_s: float = 0.0
    eval_time_s: float = 0.0


class Trainer:
    """Trains one model on one leave-one-out split with a :class:`Config`.

    Parameters
    ----------
    model : SequentialRecommender
    split : LeaveOneOutSplit
    config : Config
    device : torch.device, optional (default: ``config.device``)
    checkpoint_path : path, optional
        Written atomically (tmp file + ``os.replace``) after every epoch; with
        ``resume=True`` an existing one is loaded and training continues exactly where it
        stopped (model, optimiser, scaler, RNG states, history, early-stopping state).
        ``epochs`` and ``patience`` may differ from the checkpoint's: a finished or
        early-stopped run then trains on under the new limits.
    callbacks : callables ``f(trainer, epoch_record)`` run after each epoch's checkpoint.
    """

    def __init__(self, model, split: LeaveOneOutSplit, config: Config, *, device=None,
                 checkpoint_path=None, resume: bool = True, callbacks=()):
        self.config = config
        self.device = resolve_device(device if device is not None else config.device)
        if config.threads is not None:
            set_cpu_threads(config.threads)
        self.model = model.to(self.device)
        self.split = split
        self.amp_dtype, use_scaler = resolve_amp(config.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.resume = resume
        self.callbacks = list(callbacks)

        samples = config.train_samples
        if samples == "auto":
            samples = "prefixes" if model.causal else "windows"
        self.prefixes = samples == "prefixes"
        if self.prefixes and not model.causal:
            raise ValueError("train_samples='prefixes' needs a next-item model (SASRec, GRU4Rec), "
                             f"not {type(model).__name__}")
        if self.prefixes:
            windows, wlen = build_prefixes(split.train, config.max_len)
        else:
            windows, wlen = build_windows(split.train, config.max_len, model.causal)
        if windows.shape[0] == 0:
            raise ValueError("no training targets: every user has a single training item")
        self.windows = torch.as_tensor(windows, device=self.device)
        self.window_len = torch.as_tensor(wlen)  # CPU: batch widths need no device sync
        self.n_targets = (windows.shape[0] if self.prefixes
                          else int(np.maximum(wlen - (1 if model.causal else 0), 0).sum()))
        self.valid_data: EvalData = build_eval_data(split, config.max_len, "valid", self.device)
        self.test_data: EvalData | None = None
        counts = np.bincount(split.train.items, minlength=split.n_items)
        self.loss_fn = make_loss(config.loss, split.n_items, n_negatives=config.n_negatives,
                                 negative_sampling=config.negative_sampling,
                                 item_counts=counts, device=self.device)
        # Fused Adam: one kernel for all parameters (CPU and CUDA), same maths as RecBole's.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay, fused=True)
        self.gen = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.shuffle_gen = torch.Generator().manual_seed(config.seed + 2)
        self.result = FitResult()
        self._best_state = None
        self._best_metric = -float("inf")
        self._bad_evals = 0
        self.resumed_from_epoch = 0  # epochs a loaded checkpoint had already trained

    # ----- evaluation ------------------------------------------------------------------
    def evaluate(self, which: str = "valid", *, protocol: str = "full",
                 mask_history: bool | None = None, return_ranks: bool = False):
        """Metrics on the validation or test split (see :func:`evaluation.evaluate`)."""
        if which == "test":
            if self.test_data is None:
                self.test_data = build_eval_data(self.split, self.config.max_len, "test",
                                                 self.device)
            data = self.test_data
        else:
            data = self.valid_data
        c = self.config
        return evaluate(self.model, data, protocol=protocol,
                        mask_history=c.mask_history if mask_history is None else mask_history,
                        n_negatives=c.eval_negatives, seed=c.seed, ks=tuple(c.ks),
                        batch_size=c.eval_batch_size, return_ranks=return_ranks,
                        amp_dtype=self.amp_dtype)

    @property
    def selection_protocol(self) -> str:
        return "sampled" if self.config.protocol == "sampled" else "full"

    # ----- one epoch -------------------------------------------------------------------
    def train_epoch(self, progress=None) -> float:
        """One pass over every training window; returns the mean loss per prediction point."""
        c, model = self.config, self.model
        model.train()
        n = self.windows.shape[0]
        perm = self.epoch_order()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for step, a in enumerate(range(0, n, c.batch_size)):
            idx = perm[a:a + c.batch_size]
            width = int(self.window_len[idx].max())
            batch = self.windows[idx.to(self.device)][:, -width:]
            with torch.autocast(self.device.type, dtype=self.amp_dtype,
                                enabled=self.amp_dtype is not None):
                if self.prefixes:  # one prediction per row, from the whole row
                    h, targets = model.next_hidden(batch[:, :-1]), batch[:, -1] - 1
                else:
                    h, targets = model.training_pairs(batch, self.gen)
                loss = self.loss_fn(model, h, targets, self.gen)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if c.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            k = targets.numel()
            total += loss.detach().double() * k
            count += k
            if progress is not None and not progress.disable:
                progress.update(1)
                if step % 20 == 0:
                    progress.set_postfix(loss=f"{loss.item():.4f}")
        return float(total) / max(count, 1)

    def epoch_order(self) -> torch.Tensor:
        """The order of the training windows this epoch (CPU int64), consumed in batches.

        Plain shuffle, or with ``length_bucketing``: shuffle, cut into chunks of 50 batches,
        sort each chunk by window length, cut into batches and shuffle the batches. Batches
        then hold windows of similar length, so trimming padding columns saves most of the
        work on short-history data, while every epoch still sees a fresh random order.
        """
        c, n = self.config, self.windows.shape[0]
        perm = torch.randperm(n, generator=self.shuffle_gen)
        if not c.length_bucketing:
            return perm
        chunk = 50 * c.batch_size
        lens = self.window_len[perm]
        parts = []
        for a in range(0, n, chunk):
            order = torch.argsort(lens[a:a + chunk], stable=True)
            parts.append(perm[a:a + chunk][order])
        perm = torch.cat(parts)
        batches = list(torch.split(perm, c.batch_size))
        shuffle = torch.randperm(len(batches), generator=self.shuffle_gen).tolist()
        return torch.cat([batches[i] for i in shuffle])

    # ----- fit -------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train until ``epochs`` or early stopping; the best validation state is restored."""
        from tqdm.auto import tqdm

        c = self.config
        start_epoch = self._load_checkpoint() if self.resume else 0
        self.resumed_from_epoch = start_epoch
        res = self.result
        n_batches = -(-self.windows.shape[0] // c.batch_size)
        metric = c.selection_metric
        epoch = start_epoch
        while epoch < c.epochs and not res.stopped_early:
            # Per-batch bars only on a terminal (disable=None); epoch lines always when progress.
            bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{c.epochs}", leave=False,
                       disable=None if c.progress else True, dynamic_ncols=True)
            t0 = time.perf_counter()
            loss = self.train_epoch(bar)
            if not math.isfinite(loss):
                # A diverged model must not go on to be evaluated (and kept as "best").
                raise FloatingPointError(
                    f"training diverged at epoch {epoch + 1}: the mean loss is {loss}; lower "
                    "the learning rate, set grad_clip, or check the item table for NaN/Inf")
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            train_s = time.perf_counter() - t0
            bar.close()
            record = {"epoch": epoch + 1, "train_loss": loss, "train_s": train_s}
            res.train_time_s += train_s
            if (epoch + 1) % c.eval_every == 0 or epoch + 1 == c.epochs:
                t1 = time.perf_counter()
                valid = self.evaluate("valid", protocol=self.selection_protocol)
                record["eval_s"] = time.perf_counter() - t1
                res.eval_time_s += record["eval_s"]
                record["valid"] = valid
                if valid[metric] > self._best_metric:
                    self._best_metric = valid[metric]
                    self._best_state = {k: v.detach().clone()
                                        for k, v in self.model.state_dict().items()}
                    res.best_epoch, res.best_valid = epoch + 1, valid
                    self._bad_evals = 0
                else:
                    self._bad_evals += 1
                    res.stopped_early = self._out_of_patience()
            res.history.append(record)
            res.epochs_run = epoch + 1
            if c.progress:
                v = record.get("valid")
                tqdm.write(f"epoch {epoch + 1:3d}  loss {loss:.4f}  {train_s:.1f}s"
                           + (f"  valid {metric} {v[metric]:.4f}" if v else ""))
            epoch += 1
            self._save_checkpoint(epoch)
            for cb in self.callbacks:
                cb(self, record)
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        return res

    # ----- checkpoints -----------------------------------------------------------------
    def _rng_state(self) -> dict:
        st = {"torch": torch.get_rng_state(), "gen": self.gen.get_state(),
              "shuffle": self.shuffle_gen.get_state()}
        if self.device.type == "cuda":
            st["cuda"] = torch.cuda.get_rng_state(self.device)
        return st

    def _set_rng_state(self, st: dict) -> None:
        torch.set_rng_state(st["torch"])
        self.gen.set_state(st["gen"])
        self.shuffle_gen.set_state(st["shuffle"])
        if "cuda" in st and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["cuda"], self.device)

    def state(self, epoch: int) -> dict:
        r = self.result
        return {
            "format": 1,
            "epoch": epoch,
            "config": self.config.to_dict(),
            "fingerprint": self.config.fingerprint(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self._rng_state(),
            "best_state": self._best_state,
            "best_metric": self._best_metric,
            "bad_evals": self._bad_evals,
            "result": {"history": r.history, "best_epoch": r.best_epoch,
                       "best_valid": r.best_valid, "stopped_early": r.stopped_early,
                       "epochs_run": r.epochs_run, "train_time_s": r.train_time_s,
                       "eval_time_s": r.eval_time_s},
        }

    def _save_checkpoint(self, epoch: int) -> None:
        if self.checkpoint_path is None:
            return
        save_atomic(self.state(epoch), self.checkpoint_path)

    def _load_checkpoint(self) -> int:
        p = self.checkpoint_path
        if p is None or not p.exists():
            return 0
        st = torch.load(p, map_location=self.device, weights_only=True)
        if st.get("fingerprint") != self.config.fingerprint():
            # fingerprints leave out fields at their legacy value: put them back to compare
            saved = {**LEGACY_DEFAULTS, **json.loads(st.get("fingerprint") or "{}")}
            now = {**LEGACY_DEFAULTS, **json.loads(self.config.fingerprint())}
            diff = ", ".join(f"{k}: {saved.get(k, '(absent)')!r} -> {now.get(k, '(absent)')!r}"
                             for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k))
            raise ValueError(f"checkpoint {p} was written with a different configuration ({diff}); "
                             "use another output folder or delete it to start afresh")
        self.model.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.scaler.load_state_dict(st["scaler"])
        self._set_rng_state({k: v.cpu() for k, v in st["rng"].items()})
        self._best_state = st["best_state"]
        self._best_metric = st["best_metric"]
        self._bad_evals = st["bad_evals"]
        self.result = FitResult(**st["result"])
        # Judged with today's patience, so a run that stopped can be extended with a larger
        # one (and goes on exactly as an unbroken run would have).
        self.result.stopped_early = self._out_of_patience()
        return int(st["epoch"])

    def _out_of_patience(self) -> bool:
        """Early stopping: more than ``patience`` evaluations in a row without improvement."""
        return self._bad_evals > self.config.patience


def save_atomic(obj, path) -> None:
    """``torch.save`` atomically: readers see the old file or the new one, never a partial
    write."""
    with atomic_open(path) as f:
        torch.save(obj, f)
