"""Training loop: the whole dataset lives on the device as tensors; batches are gathered by
tensor indexing (no per-sample Python work). Row layouts: :mod:`.rows`; checkpoint files:
:mod:`.checkpoint`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.sequences import LeaveOneOutSplit
from .checkpoint import CheckpointError, check_fingerprint, load_checkpoint, load_model_state, save_checkpoint
from .evaluation import Evaluator
from .item_tables import after_optimizer_step, item_table_mode, item_table_penalty
from .losses import input_pairs, make_loss
from .options import EvalOptions, TrainOptions
from .rows import build_prefixes, build_windows
from .runtime import compiled_encoder, cpu_threads, generator_for, resolve_amp, resolve_device
from .sampling import epoch_order

#: Epoch lines and the epoch-cap warning (the CLI shows them; a notebook's logging setup decides).
logger = logging.getLogger(__name__)


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
    #: The run ended at the epoch cap with its best validation at the last epoch allowed:
    #: validation was still rising (computed by ``fit``, not stored in checkpoints).
    capped_while_improving: bool = False


class Trainer:
    """Trains one model on one leave-one-out split.

    Parameters
    ----------
    model : SequentialRecommender
        Its ``max_len`` sets the training rows and evaluation inputs.
    split : LeaveOneOutSplit
    options : TrainOptions, optional (default: ``TrainOptions()``)
        The optimisation and schedule. ``options.threads``, when set, is torch's CPU thread
        count during ``fit`` and ``evaluate`` (restored after).
    evaluation : EvalOptions, optional (default: ``EvalOptions()``)
        How validation (model selection) and :meth:`evaluate` rank; the K of
        ``options.selection_metric`` must be one of its ``ks``.
    device : torch.device, optional (default: ``options.device``)
    checkpoint_path : path, optional
        Written atomically (tmp file + ``os.replace``) after every epoch; with
        ``resume=True`` an existing one is loaded and training continues exactly where it
        stopped (model, optimiser, scaler, RNG states, history, early-stopping state).
        ``epochs`` and ``patience`` may differ from the checkpoint's: a finished or
        early-stopped run then trains on under the new limits.
    callbacks : callables ``f(trainer, epoch_record)`` run after each epoch's checkpoint.
    identity : dict, optional
        What the checkpoint records of the run, ``{"config": dict, "fingerprint": str}``: the
        configuration it was made with, and the JSON of the fields that change its trajectory,
        which a resumed checkpoint must match (default: from ``options``).
    """

    def __init__(
        self,
        model,
        split: LeaveOneOutSplit,
        options: TrainOptions | None = None,
        *,
        evaluation: EvalOptions | None = None,
        device=None,
        checkpoint_path=None,
        resume: bool = True,
        callbacks=(),
        identity: dict | None = None,
    ):
        options, evaluation = options or TrainOptions(), evaluation or EvalOptions()
        k = options.selection_metric.partition("@")[2]
        if int(k) not in evaluation.ks:
            raise ValueError(f"the selection metric {options.selection_metric} needs K={k} among ks {evaluation.ks}")
        self.options, self.evaluation = options, evaluation
        built = getattr(model, "build_options", {})  # set by build_model
        self.identity = identity or {
            "config": {**built, **options.to_dict(), **evaluation.to_dict()},
            "fingerprint": json.dumps({**built, **options.trajectory(), **evaluation.selection()}, sort_keys=True),
        }
        self.device = resolve_device(device if device is not None else options.device)
        self.model = model.to(self.device)
        self.split = split
        self.amp_dtype, use_scaler = resolve_amp(options.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.resume = resume
        self.callbacks = list(callbacks)

        samples = options.train_samples
        if samples == "auto":
            samples = "prefixes" if model.causal else "windows"
        self.prefixes = samples == "prefixes"
        if self.prefixes and not model.causal:
            raise ValueError(
                f"train_samples='prefixes' needs a next-item model (SASRec, GRU4Rec), not {type(model).__name__}"
            )
        if self.prefixes:
            windows, wlen = build_prefixes(split.train, model.max_len)
        else:
            windows, wlen = build_windows(split.train, model.max_len, model.causal)
        if windows.shape[0] == 0:
            raise ValueError("no training targets: every user has a single training item")
        self.windows = torch.as_tensor(windows, device=self.device)
        self.window_len = torch.as_tensor(wlen)  # CPU: batch widths need no device sync
        self.n_targets = (
            windows.shape[0] if self.prefixes else int(np.maximum(wlen - (1 if model.causal else 0), 0).sum())
        )
        if options.exclude_input_items and (options.loss != "ce" or not model.causal):
            raise ValueError("exclude_input_items needs loss='ce' and a next-item model (SASRec, GRU4Rec)")
        #: Validation and test ranking, overall and per target group.
        self.evaluator = Evaluator(
            self.model, split, evaluation, device=self.device, seed=options.seed, amp_dtype=self.amp_dtype,
            threads=options.threads,
        )  # fmt: skip
        counts = np.bincount(split.train.items, minlength=split.n_items)
        cold = split.cold_items
        self.loss_fn = make_loss(
            options.loss,
            split.n_items,
            n_negatives=options.n_negatives,
            negative_sampling=options.negative_sampling,
            item_counts=counts,
            device=self.device,
            exclude=cold,
        )
        # Cold rows get exactly zero gradients (never an input, a target or a scored
        # negative), so Adam leaves them where they are; weight decay would not, so their
        # values are put back after every step then.
        # A frozen table's cold rows are a buffer plus a zero delta that decay keeps at zero.
        self._cold_rows = None
        if cold is not None and len(cold) and options.weight_decay and item_table_mode(model) == "free":
            self._cold_rows = torch.as_tensor(np.asarray(cold) + 1, device=self.device)
        #: Extra entries of the checkpoint (e.g. the item projection; see experiment.run).
        self.extra_state: dict = {}
        # Fused Adam: one kernel for all parameters (CPU and CUDA), same maths as RecBole's.
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=options.lr, weight_decay=options.weight_decay, fused=True
        )
        self._next_hidden = compiled_encoder(model, options.compile, self.device, self.prefixes)
        self.gen = generator_for(self.device, options.seed + 1)
        self.shuffle_gen = torch.Generator().manual_seed(options.seed + 2)
        self.result = FitResult()
        self._best_state = None
        self._best_metric = -float("inf")
        self._bad_evals = 0
        self.resumed_from_epoch = 0  # epochs a loaded checkpoint had already trained

    # ----- evaluation ------------------------------------------------------------------
    def evaluate(self, which="valid", *, protocol="full", mask_history=None, return_ranks=False):
        """Metrics on the validation or test split (see :meth:`Evaluator.evaluate`)."""
        return self.evaluator.evaluate(which, protocol=protocol, mask_history=mask_history, return_ranks=return_ranks)

    def item_groups(self) -> dict:
        """Boolean item masks of the item groups (see :meth:`Evaluator.item_groups`)."""
        return self.evaluator.item_groups()

    def evaluate_groups(
        self, which: str = "valid", *, protocol: str = "full", name: str | None = None
    ) -> dict[str, dict]:
        """All targets and every target group (item groups, repeat / explore, crossings) from
        one ranking pass (see :meth:`Evaluator.evaluate_groups`)."""
        return self.evaluator.evaluate_groups(which, protocol=protocol, name=name)

    def _threads(self):
        t = self.options.threads
        return cpu_threads(t if t is not None else torch.get_num_threads())

    @property
    def selection_protocol(self) -> str:
        return "sampled" if self.evaluation.protocol == "sampled" else "full"

    # ----- one epoch -------------------------------------------------------------------
    def train_epoch(self, progress=None, max_steps: int | None = None) -> float:
        """One pass over every training window (its first ``max_steps`` batches when given: a
        timed probe); returns the mean loss per prediction point (the item table's penalty,
        when on, is optimised but not included).

        Nothing in the step waits for the device: batch widths come from CPU lengths, the
        loss is summed on the device and read back once, after the last step (a progress bar
        shows it then, not per step)."""
        c, model = self.options, self.model
        model.train()
        n = self.windows.shape[0]
        if max_steps is not None:
            n = min(n, max_steps * c.batch_size)
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
                if c.exclude_input_items:
                    pairs = input_pairs(batch[:, :-1], self.prefixes, targets)
                    loss = self.loss_fn(model, h, targets, self.gen, exclude_pairs=pairs)
                else:
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
        if self.options.static_shapes:
            width = min(-(-width // 8) * 8, self.windows.shape[1])
        return width

    def epoch_order(self) -> torch.Tensor:
        """The order of the training rows this epoch (see :func:`.sampling.epoch_order`)."""
        c = self.options
        return epoch_order(self.window_len, c.batch_size, c.length_bucketing, self.shuffle_gen)

    # ----- fit -------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Train until ``epochs`` or early stopping; the best validation state is restored."""
        with self._threads():
            return self._fit()

    def _fit(self) -> FitResult:
        from tqdm.auto import tqdm

        c = self.options
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
            v = record.get("valid")
            line = f"epoch {epoch + 1:3d}/{c.epochs}  loss {loss:.4f}  {train_s:.1f}s" + (
                f"  valid {metric} {v[metric]:.4f}" if v else ""
            )
            if c.progress and not (logger.isEnabledFor(logging.INFO) and logger.hasHandlers()):
                tqdm.write(line)  # no log handler shows it: the progress display does
            logger.info(line)
            epoch += 1
            self._save_checkpoint(epoch)
            for cb in self.callbacks:
                cb(self, record)
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        res.capped_while_improving = bool(
            not res.stopped_early and res.epochs_run >= c.epochs and res.best_epoch == res.epochs_run
        )
        if res.capped_while_improving:
            logger.warning(
                "stopped at the epoch cap while improving: the best validation %s is at epoch %d, the "
                "last one allowed; raise epochs (a resumed run trains on)",
                metric,
                res.best_epoch,
            )
        return res

    def end_epoch(self, epoch: int, loss: float, train_s: float) -> dict:
        """The bookkeeping after training epoch ``epoch`` (0-based): validation when due,
        best state, early stopping, history. Returns the epoch's record."""
        c, res = self.options, self.result
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
            "config": self.identity["config"],
            "fingerprint": self.identity["fingerprint"],
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
        st = load_checkpoint(p, map_location=self.device, resuming=True)
        check_fingerprint(st, self.identity["fingerprint"], p)
        mine, theirs = self.extra_state.get("items"), st.get("items")
        if mine and theirs and list(mine.get("known_ids", [])) != list(theirs.get("known_ids", [])):
            raise CheckpointError(
                f"checkpoint {p} was trained on another catalogue ({len(theirs.get('known_ids', []))} items, "
                f"the data now has {len(mine.get('known_ids', []))}): use another output folder or --no-resume"
            )
        load_model_state(self.model, st["model"], f"checkpoint {p}")
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
        return self._bad_evals > self.options.patience
