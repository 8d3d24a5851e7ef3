"""The parameters of a group's stack and their one fused Adam (used by :mod:`.group`).

Two layouts of the same numbers:

* **Member leaves** (parts by width on the CPU, chunked losses, window rows): the members'
  own parameters are the optimizer's leaves and a step stacks the slots it trains
  (:meth:`StackParameters.stacked`); the backward of ``stack`` hands each member exactly
  its slice, where selecting from a (K, ...) leaf would fill a full-size zero gradient per
  part. The group's Adam state entries are the members' own tensors.
* **Stacked leaves** (every step one forward of the whole stack, reading only the stack:
  the GPU step): the stacked parameters (K, ...) and their Adam state are built once and
  are the leaves while the stack lasts, so a step stacks nothing and each parameter gets
  one gradient and one Adam entry instead of K (a GPU launches each).
  :meth:`StackParameters.sync` copies every member's slice back into its own module and
  optimizer (copies: a checkpoint holds one member's tensors, not the stack).
"""

from __future__ import annotations

import torch

from .stacked import stack


class StackParameters:
    """One fused Adam over the members ``ms`` (trainers at one epoch) of a stack; stacked
    leaves when ``stacked_leaves`` and the members' Adam states allow it (equal kinds and
    step counts: members at one epoch have them)."""

    def __init__(self, ms: list, lr: float, weight_decay: float, stacked_leaves: bool):
        self.ms = ms
        named = [dict(t.model.named_parameters()) for t in ms]
        self.leaves = self._stacked_leaves(named) if stacked_leaves else None
        params = (list(self.leaves.values()) if self.leaves is not None
                  else [p for t in ms for p in t.model.parameters()])
        self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay,
                                          fused=True)
        if self.leaves is None:
            for t in ms:
                for p in t.model.parameters():
                    if p in t.optimizer.state:
                        self.optimizer.state[p] = t.optimizer.state[p]
            return
        for name, leaf in self.leaves.items():
            states = [t.optimizer.state.get(nd[name]) for t, nd in zip(ms, named)]
            if states[0]:
                self.optimizer.state[leaf] = {
                    k: v.clone() if k == "step" else torch.stack([st[k] for st in states])
                    for k, v in states[0].items()}

    def _stacked_leaves(self, named: list[dict]) -> dict[str, torch.nn.Parameter] | None:
        for name in named[0]:
            st = [t.optimizer.state.get(nd[name]) for t, nd in zip(self.ms, named)]
            if any(bool(x) != bool(st[0]) for x in st):
                return None
            if st[0] and (any(x.keys() != st[0].keys() for x in st)
                          or any(not torch.equal(x["step"], st[0]["step"]) for x in st)):
                return None
        with torch.no_grad():
            return {name: torch.nn.Parameter(torch.stack([nd[name] for nd in named]))
                    for name in named[0]}

    def stacked(self, part: list[int]) -> dict[str, torch.Tensor]:
        """The parameters of the stack slots ``part`` (the whole stack with stacked
        leaves), stacked (K, ...), by the lone module's names."""
        if self.leaves is not None:
            return self.leaves
        params = [dict(self.ms[s].model.named_parameters()) for s in part]
        return {n: stack([ps[n] for ps in params]) for n in params[0]}

    def padding_row_grads(self) -> list[torch.Tensor]:
        """The gradients of the item tables' padding rows (zeroed before each step, as the
        lone step leaves row 0 alone)."""
        if self.leaves is not None:
            return [self.leaves["item_emb.weight"].grad[:, 0]]
        return [t.model.item_emb.weight.grad[0] for t in self.ms]

    def sync(self) -> None:
        """Every member's parameters and Adam state in its own module and optimizer, for
        evaluation and checkpoints (with member leaves they are there already; the state
        entries are handed over)."""
        if self.leaves is None:
            for t in self.ms:
                for p in t.model.parameters():
                    t.optimizer.state[p] = self.optimizer.state[p]
            return
        with torch.no_grad():
            for k, t in enumerate(self.ms):
                for name, p in t.model.named_parameters():
                    leaf = self.leaves[name]
                    p.copy_(leaf[k])
                    st = self.optimizer.state.get(leaf)
                    if st:
                        t.optimizer.state[p] = {key: v.clone() if key == "step" else v[k].clone()
                                                for key, v in st.items()}
