"""Many models of one shape trained at once in one process, on stacked parameters.

A :class:`GroupTrainer` trains K models of one dataset and backbone (any mix of seeds,
initial tables, lambda, temperature and normalisation: whatever :func:`group_key` leaves
out) step by step together: stacked forwards (:mod:`.stacked`) of the members' parameters
(K, ...), their backwards, one fused Adam step over all members' parameters. Everything that
makes a run itself stays per model: its data order, its dropout masks (the stream a lone run
draws from torch's global generator, replayed from a generator of its own), its optimizer
state (Adam is elementwise, so the joint step is each model's own), its evaluation, early
stopping and best state. Each member is a :class:`~.trainer.Trainer` whose module is the
model and whose parameters are the leaves the stacks are built from, so members evaluate,
checkpoint and resume with the lone code and their checkpoint files are lone checkpoints (a
run may start in a group and finish alone, or the other way round).

How close to a lone run? On the CPU (``exact``, the default there) bit for bit: the same
random streams, and the same kernels on the same shapes. Only members whose batches have one
width share a forward (left padding would change the order of the sums over tokens in the
bias and weight gradients, and of the softmax sums past 16 columns); each LayerNorm runs the
fused kernel model by model (its backward sums the affine gradients in its own order); the
attention is the lone ``scaled_dot_product_attention`` (its fused kernel without dropout,
its math path's exact arithmetic with dropout); a batched product's slice k is what the
lone ``addmm``/``bmm`` computes, and Adam is elementwise. Tests check parameters, optimizer
state and every epoch's losses and metrics against lone runs with ``torch.equal``. With
``exact=False`` members of different widths may share a padded forward and agree to float
rounding only.

Models leave the stack when they stop; a model that stopped early keeps its best state.

What a group buys on the CPU: little. A lone step's products already run at the core's
speed, and a stack's activations are K times larger, out of the cache; only the Python and
dispatch work is shared. A member on one thread costs about what a lone run costs, and two
threads do not beat two independent processes of one thread each, so the study runner
groups CPU runs only when asked (:func:`~..experiment.study.grouped.default_group_size`).

On a GPU (``replay_dropout`` off, ``batched_loss`` on by default) the launches are the cost:
the stack draws its dropout masks in one go (each model's masks independent, of the lone
law, but not the lone bits; the lone CUDA run draws its attention masks inside the fused
attention kernel, where no one can replay them) and computes one batched loss. There a
member agrees with a lone run in distribution, and to float tolerance when dropout is 0.
Every step is one forward of the whole stack, so the stacked parameters themselves are the
optimizer's leaves while the stack lasts (one gradient and one Adam entry per parameter,
not K), copied back to the members after each epoch.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import partial

import torch

from .group_params import StackParameters
from .item_tables import item_table_mode
from .models import build_model
from .runtime import cpu_threads, seed_everything
from .stacked import STACKED_MODELS, Dropout, stacked_cross_entropy, stacked_encode
from .trainer import Trainer

#: Config fields that may differ inside a group (the rest must be equal).
PER_MODEL_FIELDS = frozenset({
    "name", "seed", "init", "embeddings", "lam", "graph_window", "graph_weighting",
    "normalize_llm", "init_scale", "init_std", "temperature", "normalize_items",
    "normalize_hidden", "epochs", "patience", "eval_every", "selection_metric", "protocol",
    "mask_history", "eval_negatives", "eval_batch_size", "ks", "progress", "compile"})


#: The CPU cost of one more stacked forward per step, in padding columns of one model
#: (Scientific, SASRec, 1 thread: 1 beat 24 by a fifth in models x epochs per second; the
#: parameters a partial stack selects, and their gradients, cost about one column).
PART_COST = 1.0


def group_key(config) -> tuple:
    """Runs whose configs have equal keys can share a group."""
    return tuple(sorted((k, repr(v)) for k, v in config.to_dict().items()
                        if k not in PER_MODEL_FIELDS))


def groupable_config(config) -> bool:
    """Whether a run of ``config`` can train in a group (see :func:`groupable`)."""
    return (config.model in ("sasrec", "gru4rec") and config.loss == "ce"
            and not config.grad_clip and config.item_table == "free")


def groupable(config, model) -> bool:
    """Whether a run can train in a group (else it trains alone: BERT4Rec, losses other than
    the full-softmax CE, gradient clipping, a frozen item table, whose buffer, penalty and
    bound the stacked step does not apply; fp16 loss scaling is refused by the group)."""
    return (isinstance(model, STACKED_MODELS) and config.loss == "ce" and not config.grad_clip
            and item_table_mode(model) == "free")


def build_member(config, n_items: int, item_table=None):
    """A model built as :func:`~tfllmer_fast.experiment.run.run_experiment` builds it (seed,
    init, item table), and the global RNG state its lone training would start from."""
    seed_everything(config.seed)
    model = build_model(config, n_items)
    if item_table is not None:
        model.set_item_table(item_table)
    return model, torch.get_rng_state()


class GroupTrainer:
    """Trains ``models`` (built and initialised as a lone run builds them) together.

    Parameters
    ----------
    models, configs : sequences of equal length; configs with one :func:`group_key`.
    split : LeaveOneOutSplit shared by all.
    dropout_states : list of torch RNG states (``torch.get_rng_state()``), one per model:
        the global generator's state when the lone run would start training (right after
        building the model). Default: the current global state for every model.
    checkpoint_paths : optional list of paths (None entries allowed): lone checkpoints,
        written after every epoch and resumed from when ``resume``.
    replay_dropout : bool, optional (default: on the CPU)
        Each member draws its lone run's dropout masks (K draws per dropout site); off: one
        draw for the stack (masks of the same law, not the lone bits).
    batched_loss : bool, optional (default: on CUDA)
        Prefix rows: one batched full-softmax CE for the stack instead of K chunked ones.
    exact : bool, optional (default: on the CPU, with replayed dropout and chunked losses)
        Every member computes what its lone run computes, bit for bit: only members whose
        batches have one width share a forward (padding columns would change the order of
        the sums over positions and tokens), and each LayerNorm runs the lone fused kernel
        model by model. Off: members of different widths may share a padded forward.
    split_widths : bool, optional (default: on the CPU)
        Cut a step's stack into parts by batch width (see :meth:`_partition`); off: the
        whole stack is one forward (a GPU, where launches cost more than padding). Off,
        with prefix rows, the batched loss and ``exact`` off, the stacked parameters are
        the optimizer's leaves for as long as the stack lasts (see :mod:`.group_params`).
    """

    def __init__(self, models, split, configs, *, device=None, dropout_states=None,
                 checkpoint_paths=None, resume: bool = True, replay_dropout=None,
                 batched_loss=None, exact=None, split_widths=None):
        if not models or len(models) != len(configs):
            raise ValueError("a group needs one config per model (at least one model)")
        keys = {group_key(c) for c in configs}
        if len(keys) != 1:
            raise ValueError("models of a group must share every field but "
                             f"{sorted(PER_MODEL_FIELDS)}")
        bad = [type(m).__name__ for m, c in zip(models, configs) if not groupable(c, m)]
        if bad:
            raise ValueError(f"these runs cannot train in a group: {bad} (SASRec/GRU4Rec with "
                             "the 'ce' loss, no grad_clip and a free item table only)")
        if getattr(split, "cold_items", None) is not None and len(split.cold_items):
            raise ValueError("the cold-start protocol (frozen cold rows, masked logits) is not "
                             "supported in a group: train these runs alone")
        paths = checkpoint_paths or [None] * len(models)
        self.members = [Trainer(m, split, c, device=device, checkpoint_path=p, resume=resume)
                        for m, c, p in zip(models, configs, paths)]
        first = self.members[0]
        if first.scaler.is_enabled():
            raise ValueError("fp16 loss scaling is not supported in a group: use amp='bf16' "
                             "or 'off', or train these runs alone")
        for t in self.members[1:]:  # one copy of the rows and the evaluation inputs
            t.windows, t.window_len, t.valid_data = first.windows, first.window_len, first.valid_data
        self.device = first.device
        self.config = configs[0]
        states = dropout_states or [torch.get_rng_state()] * len(models)
        self.drop_gens = [torch.Generator().manual_seed(0) for _ in models]
        for g, s in zip(self.drop_gens, states):
            g.set_state(s)
        self.slots: list[int] = []   # member index of each stack slot
        self._pool: ThreadPoolExecutor | None = None  # see train_epoch
        self.params: StackParameters | None = None  # the stack's parameters and Adam
        self.base = first.model      # the module whose code the stacked forward follows
        self.epoch_s: list[float] = []
        cuda = self.device.type == "cuda"
        self.split_widths = not cuda if split_widths is None else bool(split_widths)
        #: Stacked leaves where the step allows them (see :meth:`_restack`); off: the
        #: members' own leaves always (what benchmarks/group_ops.py compares).
        self.stacked_leaves = True
        # On the CPU a group replays every member's lone dropout stream and computes each
        # member's chunked loss (the arithmetic dominates; both cost nothing extra). On a GPU
        # the launches dominate: one dropout draw and one batched loss for the whole stack.
        self.replay_dropout = not cuda if replay_dropout is None else bool(replay_dropout)
        self.batched_loss = cuda if batched_loss is None else bool(batched_loss)
        if exact is None:
            exact = not cuda and self.replay_dropout and not self.batched_loss
        if exact and not (self.replay_dropout and not self.batched_loss):
            raise ValueError("exact=True needs replay_dropout=True and batched_loss=False")
        self.exact = bool(exact)
        self.unfinished: list[int] = []

    # ----- stack <-> members -------------------------------------------------------------
    def _restack(self, slots: list[int]) -> None:
        """Train the members ``slots`` (all at the same epoch) from now on, under one fused
        Adam (:class:`~.group_params.StackParameters`). Stacked leaves when every step is
        one forward of the whole stack whose loss reads only the stack: no parts by width,
        no ``exact`` LayerNorm per model, prefix rows with the batched loss."""
        self.slots = list(slots)
        ms = [self.members[i] for i in slots]
        whole = (self.stacked_leaves and not self.split_widths and not self.exact
                 and ms[0].prefixes and self.batched_loss)
        self.params = StackParameters(ms, self.config.lr, self.config.weight_decay, whole)

    @property
    def leaves(self):
        """The stacked leaves (name -> (K, ...) parameter) of the current stack, or None."""
        return None if self.params is None else self.params.leaves

    # ----- one epoch -------------------------------------------------------------------
    def train_epoch(self) -> list[float]:
        """One stacked epoch of the members in the stack; their mean losses.

        On the CPU with more than one torch thread, the stacked forwards of a step (one per
        batch width) run side by side on that many Python threads, every kernel on one
        thread: no kernel waits at a barrier for a core that another process holds, and the
        members compute what lone runs on one thread compute, whoever else is in the stack
        (a member left alone also runs on one thread)."""
        workers = torch.get_num_threads()
        if self.device.type != "cpu" or workers < 2:
            return self._train_epoch()
        with cpu_threads(1), ThreadPoolExecutor(workers) as pool:
            self._pool = pool
            try:
                return self._train_epoch()
            finally:
                self._pool = None

    def _train_epoch(self) -> list[float]:
        ms = [self.members[i] for i in self.slots]
        c, base = self.config, self.base
        base.train()
        for t in ms:
            t.model.train()
        perms = [t.epoch_order() for t in ms]
        order = torch.stack(perms).to(self.device)  # (K, n): one copy and one gather a step
        shared = None
        if not self.replay_dropout:  # one stream for the stack, seeded by members and epoch
            seed = hash((tuple(t.config.seed for t in ms),
                         tuple(len(t.result.history) for t in ms))) % (1 << 62)
            shared = torch.Generator(device=self.device).manual_seed(seed)
        drop = Dropout([self.drop_gens[i] for i in self.slots], self.device, shared)
        n, bs = ms[0].windows.shape[0], c.batch_size
        # float64 sums of loss x targets, one add per step as the lone trainer sums them, on
        # the device (a GPU step waits for nothing)
        totals = torch.zeros(len(ms), dtype=torch.float64, device=self.device)
        count = 0
        for a in range(0, n, bs):
            widths = [t.batch_width(p[a:a + bs]) for t, p in zip(ms, perms)]
            parts = self._partition(widths)
            self.params.optimizer.zero_grad(set_to_none=True)
            jobs = [partial(self._part_step, ms, part, widths, order[:, a:a + bs],
                            drop) for part in parts]
            cost = [len(part) * max(widths[s] for s in part) for part in parts]
            for part, (loss, targets) in zip(parts, self._run(jobs, cost)):
                # No host-to-device copy where avoidable: on a GPU it would wait for the step.
                w = loss * targets[0] if len(set(targets)) == 1 else loss * torch.tensor(
                    targets, dtype=torch.float64, device=self.device)
                if len(part) == len(ms):
                    totals += w
                else:
                    totals.index_add_(0, torch.tensor(part, device=self.device), w)
            torch._foreach_zero_(self.params.padding_row_grads())
            self.params.optimizer.step()
            count += min(bs, n - a)
        if not ms[0].prefixes:
            return [x / max(t.n_targets, 1) for x, t in zip(totals.tolist(), ms)]
        return [x / max(count, 1) for x in totals.tolist()]

    def _part_step(self, ms, part, widths, rows, drop) -> tuple[torch.Tensor, list]:
        """Forward and backward of the stack slots ``part`` for one step (``rows``: the row
        indices of every slot, (slots, batch)); each member's loss (float64, detached) and
        number of targets."""
        t0 = ms[part[0]]
        W = max(widths[s] for s in part)
        amp = t0.amp_dtype
        with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            idx = rows if len(part) == rows.shape[0] else rows[part]
            batch = t0.windows[idx][:, :, -W:]
            inp = batch[:, :, :-1]
            sub = self.params.stacked(part)
            H = stacked_encode(self.base, sub, inp, [widths[s] - 1 for s in part],
                               Dropout([drop.gens[s] for s in part], self.device, drop.shared),
                               self.exact, last_only=t0.prefixes)
            if t0.prefixes and self.batched_loss:
                loss = stacked_cross_entropy([ms[s].model for s in part], sub["item_emb.weight"],
                                             H[:, :, -1], batch[:, :, -1] - 1)
                targets = [batch.shape[1]] * len(part)
            else:
                losses, targets = [], []
                for j, slot in enumerate(part):
                    if t0.prefixes:
                        h, tgt = H[j, :, -1], batch[j, :, -1] - 1
                    else:
                        keep = inp[j] > 0
                        h, tgt = H[j][keep], batch[j, :, 1:][keep] - 1
                    t = ms[slot]
                    losses.append(t.loss_fn(t.model, h, tgt))  # the lone loss
                    targets.append(tgt.shape[0])
                loss = torch.stack(losses)
        loss.sum().backward()
        return loss.detach().double(), targets

    def _run(self, jobs: list, cost: list) -> list:
        """Results of ``jobs`` in order; on the pool (when there is one) the costliest
        first, so that the last to finish are short."""
        if self._pool is None or len(jobs) == 1:
            return [job() for job in jobs]
        futures = {i: self._pool.submit(jobs[i])
                   for i in sorted(range(len(jobs)), key=lambda i: -cost[i])}
        return [futures[i].result() for i in range(len(jobs))]

    def _partition(self, widths: list[int]) -> list[list[int]]:
        """Slots that run one stacked forward together. ``exact``: the slots of each width.
        On a GPU, where the launches are the cost, all share one. Otherwise on the CPU,
        where the arithmetic is, a model should not compute many padding columns for
        another's long batch: the slots sorted by width are cut into runs that minimise
        (models x widest width + a fixed cost per forward, worth :data:`PART_COST` columns),
        by dynamic programming over the cut points."""
        if len(widths) == 1 or (not self.split_widths and not self.exact):
            return [list(range(len(widths)))]  # the whole stack: no parameter selection
        if self.exact:
            by_width: dict[int, list[int]] = {}
            for s, w in enumerate(widths):
                by_width.setdefault(w, []).append(s)
            return sorted(by_width.values())
        order = sorted(range(len(widths)), key=widths.__getitem__)
        w = [widths[s] for s in order]
        best = [0.0] + [float("inf")] * len(w)
        cut = [0] * (len(w) + 1)
        for j in range(1, len(w) + 1):
            for i in range(j):
                cost = best[i] + (j - i) * w[j - 1] + PART_COST
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        parts, j = [], len(w)
        while j:
            parts.append(sorted(order[cut[j]:j]))  # slot order: a whole stack needs no copy
            j = cut[j]
        return parts

    # ----- fit -------------------------------------------------------------------------
    def fit(self, deadline: float | None = None) -> list:
        """Train every member to its end; returns their :class:`FitResult` (best states in
        the members' modules, as :meth:`Trainer.fit` leaves them).

        ``deadline`` (a ``time.monotonic()`` value): no epoch starts after it; members left
        unfinished are listed in :attr:`unfinished` (their checkpoints resume them)."""
        t = self.config.threads
        with cpu_threads(t) if t is not None else nullcontext():
            return self._fit(deadline)

    def _fit(self, deadline) -> list:
        epochs = []
        for i, t in enumerate(self.members):
            saved = torch.get_rng_state()
            start = t._load_checkpoint() if t.resume else 0
            t.resumed_from_epoch = start
            epochs.append(start)
            if start:  # loading set the global state to the run's dropout stream
                self.drop_gens[i].set_state(torch.get_rng_state())
            torch.set_rng_state(saved)

        def live(i):
            t = self.members[i]
            return epochs[i] < t.config.epochs and not t.result.stopped_early

        while True:
            todo = [i for i in range(len(self.members)) if live(i)]
            if not todo or (deadline is not None and time.monotonic() > deadline):
                self.unfinished = todo
                break
            epoch = min(epochs[i] for i in todo)
            slots = [i for i in todo if epochs[i] == epoch]
            if slots != self.slots:
                self._restack(slots)
            t0 = time.perf_counter()
            losses = self.train_epoch()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            train_s = (time.perf_counter() - t0)
            self.epoch_s.append(train_s)
            self.params.sync()
            for i, loss in zip(slots, losses):
                self._end_epoch(i, epoch, loss, train_s / len(slots))
                epochs[i] = epoch + 1
            if [i for i in slots if live(i)] != slots:
                self.slots = []  # membership changes: restack next epoch
        out = []
        for t in self.members:
            if t._best_state is not None:
                t.model.load_state_dict(t._best_state)
            out.append(t.result)
        return out

    def _end_epoch(self, i: int, epoch: int, loss: float, train_s: float) -> None:
        """A lone trainer's end-of-epoch work for member ``i``: evaluation, best state,
        early stopping, history, checkpoint (with its dropout stream as the global state)."""
        t = self.members[i]
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged at epoch {epoch + 1} (run {i} of the "
                                     f"group): the mean loss is {loss}")
        t.end_epoch(epoch, loss, train_s)
        if t.checkpoint_path is not None:
            # The checkpoint's global RNG state is this member's dropout stream.
            saved = torch.get_rng_state()
            torch.set_rng_state(self.drop_gens[i].get_state())
            try:
                t._save_checkpoint(epoch + 1)
            finally:
                torch.set_rng_state(saved)
