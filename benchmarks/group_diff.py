"""Where a grouped model's numbers part from its lone run's: one step of a stack of K = 2
(slot 0 = the lone model) against the lone model, on a tiny random dataset, one thread.
Prints, for slot 0, each transformer layer's output, the final representation, the loss
and every parameter's gradient: "equal" (torch.equal) or the largest difference.

    python benchmarks/group_diff.py sasrec same exact    # widths 4 and 4, exact kernels
    python benchmarks/group_diff.py sasrec pad           # widths 4 and 6, padded stack

Arguments: model (sasrec, gru4rec), ``same`` or ``pad`` (the other member's batch is as
wide, or wider: padding), ``exact`` (the group's exact kernels) or nothing.
"""
import copy
import sys

import numpy as np
import torch

from tfllmer_fast.data.sequences import Sequences, leave_one_out
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.train import stacked
from tfllmer_fast.train.group import build_member
from tfllmer_fast.train.trainer import Trainer

model_name = sys.argv[1] if len(sys.argv) > 1 else "sasrec"
same_width = (sys.argv[2] if len(sys.argv) > 2 else "same") == "same"
exact = len(sys.argv) > 3 and sys.argv[3] == "exact"
torch.set_num_threads(1)
rng = np.random.default_rng(5)
split = leave_one_out(Sequences.from_lists(
    [list(rng.integers(0, 40, size=rng.integers(3, 15))) for _ in range(70)], n_items=40))
base = dict(init="random", embeddings=None, hidden=16, max_len=6, n_layers=2, batch_size=8,
            progress=False, threads=1, model=model_name, train_samples="prefixes")
cfgs = [Config(**base, seed=0), Config(**base, seed=1)]
built = [build_member(c, split.n_items) for c in cfgs]
ts = [Trainer(m, split, c) for (m, _), c in zip(built, cfgs)]
win, wl = ts[0].windows, ts[0].window_len
# model 0: 8 rows of width 4; model 1: 8 rows of width 4 (same) or 6 (padding)
def rows(width):
    return torch.nonzero(wl == width).flatten()[:8]
b0 = win[rows(4)][:, -4:]
b1 = win[rows(4 if same_width else 6)][:, -(4 if same_width else 6):]

# ---- alone (model 0) with hooks
m0 = ts[0].model
m0.train()
acts_lone = {}
if model_name == "sasrec":
    for i, layer in enumerate(m0.layers):
        layer.register_forward_hook(lambda mod, inp, out, i=i: acts_lone.__setitem__(f"layer{i}", out.detach()))
torch.set_rng_state(built[0][1])
h = m0.next_hidden(b0[:, :-1])
loss_lone = ts[0].loss_fn(m0, h, b0[:, -1] - 1)
loss_lone.backward()
grads_lone = {n: p.grad.clone() for n, p in m0.named_parameters()}

# ---- group of 2 (slot 0 = model 0)
acts_grp = {}
if model_name == "sasrec":
    orig = stacked._layer
    count = [0]
    def rec(*a, **k):
        out = orig(*a, **k)
        acts_grp[f"layer{count[0]}"] = out.detach()[0]
        count[0] += 1
        return out
    stacked._layer = rec
# The group trains copies whose parameters are the leaves, stacked (as GroupTrainer does).
copies = [copy.deepcopy(t.model) for t in ts]
for m in copies:
    m.zero_grad(set_to_none=True)
names = [n for n, _ in m0.named_parameters()]
P = {n: torch.stack([dict(m.named_parameters())[n] for m in copies]) for n in names}
gens = [torch.Generator().manual_seed(0) for _ in ts]
for g, (_, s) in zip(gens, built):
    g.set_state(s)
W = max(b0.shape[1], b1.shape[1])
pad = lambda b: torch.nn.functional.pad(b, (W - b.shape[1], 0))
batch = torch.stack([pad(b0), pad(b1)])
H = stacked.stacked_encode(m0, P, batch[:, :, :-1], [b0.shape[1] - 1, b1.shape[1] - 1],
                           stacked.Dropout(gens, torch.device("cpu")), exact)
losses = []
for j in range(2):
    losses.append(ts[j].loss_fn(copies[j], H[j, :, -1], batch[j, :, -1] - 1))
torch.stack(losses).sum().backward()
grads_group = {n: p.grad.clone() for n, p in copies[0].named_parameters()}
grads_group["item_emb.weight"][0] = 0  # the padding row, as GroupTrainer zeroes it

def cmp(a, b):
    return "equal" if torch.equal(a, b) else f"max|diff| {float((a - b).abs().max()):.3g}"
print(f"{model_name}, widths {b0.shape[1]} and {b1.shape[1]}")
for k in acts_lone:
    print(f"  activation {k}: {cmp(acts_grp[k][:, -b0.shape[1] + 1:], acts_lone[k])}")
print(f"  final h: {cmp(H[0, :, -1], h)}")
print(f"  loss: {cmp(losses[0], loss_lone)}")
for n in names:
    print(f"  grad {n}: {cmp(grads_group[n], grads_lone[n])}")
