"""Training loop: the whole dataset lives on the device as tensors; batches are gathered by
tensor indexing (no per-sample Python work). Row layouts: :mod:`.rows`; checkpoint files:
:mod:`.checkpoint`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.sequences import LeaveOneOutSplit
from .checkpoint import check_fingerprint, load_checkpoint, save_checkpoint
from .evaluation import EvalData, build_eval_data, evaluate, group_metrics
from .item_tables import after_optimizer_step, item_table_mode, item_table_penalty
from .losses import make_loss
from .rows import build_prefixes, build_windows
from .runtime import compiled_encoder, cpu_threads, generator_for, resolve_amp, resolve_device


# ----- results ---------------------------------------------------------------------------
@dataclass
class FitResult:
    history: list = field(default_factory=list)  # one dict per epoch
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
        :class:`~tfllmer_fast.experiment.config.Config` (or any object with its fields).
        ``config.threads``, when set, is torch's CPU thread count during ``fit`` and
        ``evaluate`` (restored after).
    device : torch.device, optional (default: ``config.device``)
    checkpoint_path : path, optional
        Written atomically (tmp file + ``os.replace``) after every epoch; with
        ``resume=True`` an existing one is loaded and training continues exactly where it
        stopped (model, optimiser, scaler, RNG states, history, early-stopping state).
        ``epochs`` and ``patience`` may differ from the checkpoint's: a finished or
        early-stopped run then trains on under the new limits.
    callbacks : callables ``f(trainer, epoch_record)`` run after each epoch's checkpoint.
    """

    def __init__(
        self,
        model,
        split: LeaveOneOutSplit,
        config,
        *,
        device=None,
        checkpoint_path=None,
        resume: bool = True,
        callbacks=(),
    ):
        self.config = config
        self.device = resolve_device(device if device is not None else config.device)
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
            raise ValueError(
                f"train_samples='prefixes' needs a next-item model (SASRec, GRU4Rec), not {type(model).__name__}"
            )
        if self.prefixes:
            windows, wlen = build_prefixes(split.train, config.max_len)
        else:
            windows, wlen = build_windows(split.train, config.max_len, model.causal)
        if windows.shape[0] == 0:
            raise ValueError("no training targets: every user has a single training item")
        self.windows = torch.as_tensor(windows, device=self.device)
        self.window_len = torch.as_tensor(wlen)  # CPU: batch widths need no device sync
        self.n_targets = (
            windows.shape[0] if self.prefixes else int(np.maximum(wlen - (1 if model.causal else 0), 0).sum())
        )
        self.valid_data: EvalData = build_eval_data(split, config.max_len, "valid", self.device)
        self.test_data: EvalData | None = None
        counts = np.bincount(split.train.items, minlength=split.n_items)
        cold = split.cold_items
        self.loss_fn = make_loss(
            config.loss,
            split.n_items,
            n_negatives=config.n_negatives,
            negative_sampling=config.negative_sampling,
            item_counts=counts,
            device=self.device,
            exclude=cold,
        )
        # Cold rows get exactly zero gradients (never an input, a target or a scored
        # negative), so Adam leaves them where they are; weight decay would not, so their
        # values are put back after every step then.
        # A frozen table's cold rows are a buffer plus a zero delta that decay keeps at zero.
        self._cold_rows = None
        if cold is not None and len(cold) and getattr(config, "weight_decay", 0.0) and item_table_mode(model) == "free":
            self._cold_rows = torch.as_tensor(np.asarray(cold) + 1, device=self.device)
        #: Extra entries of the checkpoint (e.g. the item projection; see experiment.run).
        self.extra_state: dict = {}
        # Fused Adam: one kernel for all parameters (CPU and CUDA), same maths as RecBole's.
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
        self._next_hidden = compiled_encoder(model, config, self.device, self.prefixes)
        self.gen = generator_for(self.device, config.seed + 1)
        self.shuffle_gen = torch.Generator().manual_seed(config.seed + 2)
        self.result = FitResult()
        self._best_state = None
        self._best_metric = -float("inf")
        self._bad_evals = 0
        self.resumed_from_epoch = 0  # epochs a loaded checkpoint had already trained

    # ----- evaluation ------------------------------------------------------------------
    def evaluate(
        self,
        which: str = "valid",
        *,
        protocol: str = "full",
        mask_history: bool | None = None,
        return_ranks: bool = False,
    ):
        """Metrics on the validation or test split (see :func:`evaluation.evaluate`)."""
        if which == "test":
            if self.test_data is None:
                self.test_data = build_eval_data(self.split, self.config.max_len, "test", self.device)
            data = self.test_data
        else:
            data = self.valid_data
        c = self.config
        with self._threads():
            return evaluate(
                self.model,
                data,
                protocol=protocol,
                mask_history=c.mask_history if mask_history is None else mask_history,
                n_negatives=c.eval_negatives,
                seed=c.seed,
                ks=tuple(c.ks),
                batch_size=c.eval_batch_size,
                return_ranks=return_ranks,
                amp_dtype=self.amp_dtype,
            )

    def item_groups(self) -> dict:
        """Boolean item masks of the target groups (head/tail, and warm/cold with cold
        items; see :func:`tfllmer_fast.data.cold.item_groups`)."""
        from ..data.cold import item_groups

        if getattr(self, "_groups", None) is None:
            self._groups = item_groups(self.split, getattr(self.config, "head_share", 0.2))
        return self._groups

    def evaluate_groups(
        self, which: str = "valid", *, protocol: str = "full", name: str | None = None
    ) -> dict[str, dict]:
        """``{name: all targets, name_<group>: targets of each group}`` from one ranking
        pass; every dict carries ``n_targets``. ``name`` defaults to ``which``."""
        name = which if name is None else name
        metrics, ranks = self.evaluate(which, protocol=protocol, return_ranks=True)
        targets = self.split.valid_targets if which == "valid" else self.split.test_targets
        out = {name: {**metrics, "n_targets": int(len(ranks))}}
        for g, m in group_metrics(ranks, targets, self.item_groups(), tuple(self.config.ks)).items():
            out[f"{name}_{g}"] = m
        return out

    def _threads(self):
        t = self.config.threads
        return cpu_threads(t if t is not None else torch.get_num_threads())

    @property
    def selection_protocol(self) -> str:
        return "sampled" if self.config.protocol == "sampled" else "full"

    # ----- one epoch -------------------------------------------------------------------
    def train_epoch(self, progress=None) -> float:
        """One pass over every training window; returns the mean loss per prediction point
        (the item table's penalty, when on, is optimised but not included).

        Nothing in the step waits for the device: batch widths come from CPU lengths, the
        loss is summed on the device and read back once, after the last step (a progress bar
        shows it then, not per step)."""
        c, model = self.config, self.model
        model.train()
        n = self.windows.shape[0]
        perm = self.epoch_order()
        perm_dev = perm.to(self.device)  # one copy per epoch, not one per step
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for a in range(0, n, c.batch_size):
            width = self.batch_width(perm[a : a + c.batch_size])
            batch = self.windows[perm_dev[a : a + c.batch_size]][:, -width:]
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                if self.prefixes:  # one prediction per row, from the whole row
                    h, targets = self._next_hidden(batch[:, :-1]), batch[:, -1] - 1
                else:
                    h, targets = model.training_pairs(batch, self.gen)
                loss = self.loss_fn(model, h, targets, self.gen)
                penalty = item_table_penalty(model)
            objective = loss if penalty is None else loss + penalty
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(objective).backward()
            if c.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            if self._cold_rows is not None:
                keep = model.item_emb.weight.detach()[self._cold_rows].clone()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            after_optimizer_step(model)
            if self._cold_rows is not None:
                with torch.no_grad():
                    model.item_emb.weight[self._cold_rows] = keep
            k = targets.shape[0]
            total += loss.detach().double() * k
            count += k
            if progress is not None and not progress.disable:
                progress.update(1)
        mean = float(total) / max(count, 1)
        if progress is not None and not progress.disable:
            progress.set_postfix(loss=f"{mean:.4f}")
        return mean

    def batch_width(self, idx: torch.Tensor) -> int:
        """Columns a batch of rows ``idx`` keeps: its longest row, or with ``static_shapes``
        that rounded up to a multiple of 8 (a handful of shapes per run, so that CUDA graphs
        and compiled kernels are reused; the extra columns are padding, masked out)."""
        width = int(self.window_len[idx].max())
        if self.config.static_shapes:
            width = min(-(-width // 8) * 8, self.windows.shape[1])
        return width

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
            order = torch.argsort(lens[a : a + chunk], stable=True)
            parts.append(perm[a : a + chunk][order])
        perm = torch.cat(parts)
        batches = list(torch.split(perm, c.batch_size))
        shuffle = torch.randperm(len(batches), generator=self.shuffle_gen).tolist()
        return torch.cat([batches[i] for i in shuffle])

    # ----- fit -------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train until ``epochs`` or early stopping; the best validation state is restored."""
        with self._threads():
            return self._fit()

    def _fit(self) -> FitResult:
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
            bar = tqdm(
                total=n_batches,
                desc=f"epoch {epoch + 1}/{c.epochs}",
                leave=False,
                disable=None if c.progress else True,
                dynamic_ncols=True,
            )
            t0 = time.perf_counter()
            loss = self.train_epoch(bar)
            if not math.isfinite(loss):
                # A diverged model must not go on to be evaluated (and kept as "best").
                raise FloatingPointError(
                    f"training diverged at epoch {epoch + 1}: the mean loss is {loss}; lower "
                    "the learning rate, set grad_clip, or check the item table for NaN/Inf"
                )
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            train_s = time.perf_counter() - t0
            bar.close()
            record = self.end_epoch(epoch, loss, train_s)
            if c.progress:
                v = record.get("valid")
                tqdm.write(
                    f"epoch {epoch + 1:3d}  loss {loss:.4f}  {train_s:.1f}s"
                    + (f"  valid {metric} {v[metric]:.4f}" if v else "")
                )
            epoch += 1
            self._save_checkpoint(epoch)
            for cb in self.callbacks:
                cb(self, record)
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        return res

    def end_epoch(self, epoch: int, loss: float, train_s: float) -> dict:
        """The bookkeeping after training epoch ``epoch`` (0-based): validation when due,
        best state, early stopping, history. Returns the epoch's record."""
        c, res = self.config, self.result
        record = {"epoch": epoch + 1, "train_loss": loss, "train_s": train_s}
        res.train_time_s += train_s
        if (epoch + 1) % c.eval_every == 0 or epoch + 1 == c.epochs:
            t1 = time.perf_counter()
            valid = self.evaluate("valid", protocol=self.selection_protocol)
            record["eval_s"] = time.perf_counter() - t1
            res.eval_time_s += record["eval_s"]
            record["valid"] = valid
            if valid[c.selection_metric] > self._best_metric:
                self._best_metric = valid[c.selection_metric]
                self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                res.best_epoch, res.best_valid = epoch + 1, valid
                self._bad_evals = 0
            else:
                self._bad_evals += 1
                res.stopped_early = self._out_of_patience()
        res.history.append(record)
        res.epochs_run = epoch + 1
        return record

    # ----- checkpoints -----------------------------------------------------------------
    def _rng_state(self) -> dict:
        st = {"torch": torch.get_rng_state(), "gen": self.gen.get_state(), "shuffle": self.shuffle_gen.get_state()}
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
            "result": {
                "history": r.history,
                "best_epoch": r.best_epoch,
                "best_valid": r.best_valid,
                "stopped_early": r.stopped_early,
                "epochs_run": r.epochs_run,
                "train_time_s": r.train_time_s,
                "eval_time_s": r.eval_time_s,
            },
            **self.extra_state,
        }

    def save_checkpoint(self) -> None:
        """Write ``extra_state`` into the checkpoint after ``fit``.

        The file keeps the last epoch's training state (weights, optimiser, RNG), so that a
        resumed run goes on exactly as an unbroken one: after ``fit`` the model holds the
        best state, which must not replace it."""
        if self.checkpoint_path is None:
            return
        if not self.checkpoint_path.exists():
            self._save_checkpoint(self.result.epochs_run)
            return
        st = load_checkpoint(self.checkpoint_path, map_location="cpu")
        st.update(self.extra_state)
        save_checkpoint({k: v for k, v in st.items() if k != "format"}, self.checkpoint_path)

    def _save_checkpoint(self, epoch: int) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint(self.state(epoch), self.checkpoint_path)

    def _load_checkpoint(self) -> int:
        p = self.checkpoint_path
        if p is None or not p.exists():
            return 0
        st = load_checkpoint(p, map_location=self.device)
        check_fingerprint(st, self.config.fingerprint(), p)
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
