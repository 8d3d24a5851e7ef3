"""Many models in one group end where each ends alone (train/group.py, train/stacked.py)."""

import numpy as np
import pytest
import torch

from _train_helpers import random_sequences
from tfllmer_fast.data.sequences import leave_one_out
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.train.group import GroupTrainer, build_member, group_key, groupable_config
from tfllmer_fast.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


@pytest.fixture(scope="module")
def split():
    return leave_one_out(random_sequences(n_users=70, n_items=40, min_len=3, max_len=14, seed=5))


def _configs(model, samples, **kw):
    base = dict(init="random", embeddings=None, hidden=16, max_len=6, n_layers=2, epochs=4,
                batch_size=8, progress=False, threads=1, model=model, train_samples=samples,
                patience=1)
    base.update(kw)
    # A mix of what may differ inside a group: seeds, scoring, schedules.
    return [Config(**base, seed=0),
            Config(**base, seed=1, temperature=0.5),
            Config(**{**base, "epochs": 2}, seed=2, normalize_items=False, normalize_hidden=True),
            Config(**{**base, "patience": 0}, seed=3, init_std=0.05)]


def _alone(configs, split):
    out = []
    for c in configs:
        model, _ = build_member(c, split.n_items)
        t = Trainer(model, split, c)
        t.fit()
        out.append((t, torch.get_rng_state()))
    return out


def _group(configs, split, **kw):
    built = [build_member(c, split.n_items) for c in configs]
    g = GroupTrainer([m for m, _ in built], split, configs,
                     dropout_states=[s for _, s in built], **kw)
    g.fit()
    return g


def _same_streams_and_decisions(ta, rng_end, tg, drop_gen):
    ra, rg = ta.result, tg.result
    # The random streams are the lone run's, bit for bit: data order, sampler, dropout.
    assert torch.equal(ta.shuffle_gen.get_state(), tg.shuffle_gen.get_state())
    assert torch.equal(ta.gen.get_state(), tg.gen.get_state())
    assert torch.equal(rng_end, drop_gen.get_state())
    # The decisions are the lone run's: epochs, early stopping, best epoch.
    assert (ra.epochs_run, ra.stopped_early, ra.best_epoch) == \
        (rg.epochs_run, rg.stopped_early, rg.best_epoch)


@pytest.mark.parametrize("model,samples,dropout", [
    ("sasrec", "prefixes", None), ("sasrec", "windows", None), ("gru4rec", "prefixes", None),
    ("gru4rec", "windows", None),
    ("sasrec", "prefixes", 0.0)])  # no dropout: the lone fused attention kernel
def test_a_model_in_a_group_ends_where_it_ends_alone(split, model, samples, dropout):
    # On the CPU a member computes its lone run's numbers bit for bit: every epoch's loss
    # and validation metrics, and the final (best) parameters.
    configs = [c.replace(dropout=dropout) for c in _configs(model, samples)]
    alone = _alone(configs, split)
    g = _group(configs, split)
    assert g.exact
    for (ta, rng_end), tg, drop_gen in zip(alone, g.members, g.drop_gens):
        _same_streams_and_decisions(ta, rng_end, tg, drop_gen)
        assert [{k: v for k, v in h.items() if not k.endswith("_s")} for h in ta.result.history] \
            == [{k: v for k, v in h.items() if not k.endswith("_s")} for h in tg.result.history]
        assert ta.result.best_valid == tg.result.best_valid
        sa, sg = ta.model.state_dict(), tg.model.state_dict()
        assert list(sa) == list(sg)
        for name in sa:
            assert torch.equal(sa[name], sg[name]), name
        for pa, pg in zip(ta.optimizer.state.values(), tg.optimizer.state.values()):
            assert torch.equal(pa["exp_avg"], pg["exp_avg"])
            assert torch.equal(pa["exp_avg_sq"], pg["exp_avg_sq"])


def test_two_threads_run_the_widths_side_by_side_with_the_lone_bits(split):
    # threads=2: a step's stacked forwards run on two Python threads, every kernel on one
    # thread, so members end bit for bit where lone runs on one thread end.
    configs = _configs("sasrec", "prefixes")
    alone = _alone(configs, split)
    g = _group([c.replace(threads=2) for c in configs], split)
    for (ta, _), tg in zip(alone, g.members):
        assert [h["train_loss"] for h in ta.result.history] == \
            [h["train_loss"] for h in tg.result.history]
        for pa, pg in zip(ta.model.state_dict().values(), tg.model.state_dict().values()):
            assert torch.equal(pa, pg)


def test_padded_stacks_agree_to_float_rounding(split):
    # exact=False: members of different widths share a forward, padded on the left. Padding
    # changes the order of the sums over tokens (bias and weight gradients, softmax), so the
    # numbers agree to rounding only; the random streams and the decisions stay the lone ones.
    configs = _configs("sasrec", "prefixes")
    alone = _alone(configs, split)
    g = _group(configs, split, exact=False)
    for (ta, rng_end), tg, drop_gen in zip(alone, g.members, g.drop_gens):
        _same_streams_and_decisions(ta, rng_end, tg, drop_gen)
        ra, rg = ta.result, tg.result
        np.testing.assert_allclose([h["train_loss"] for h in ra.history],
                                   [h["train_loss"] for h in rg.history], rtol=1e-6)
        for (name, pa), pg in zip(ta.model.state_dict().items(), tg.model.state_dict().values()):
            if name.endswith("qkv.bias"):
                # The key bias shifts every score of a row alike: its exact gradient is 0,
                # and Adam scales the rounding noise there up to full steps. Queries and
                # values only.
                h = pa.shape[0] // 3
                pa, pg = torch.cat([pa[:h], pa[2 * h:]]), torch.cat([pg[:h], pg[2 * h:]])
            torch.testing.assert_close(pg, pa, rtol=1e-4, atol=1e-4, msg=name)
        assert rg.best_valid == pytest.approx(ra.best_valid, rel=1e-6, abs=1e-9)


#: The GPU step, run on the CPU: one forward of the whole stack, one dropout draw, one
#: batched loss, and so the stacked parameters as the optimizer's leaves.
WHOLE_STACK = dict(replay_dropout=False, batched_loss=True, exact=False, split_widths=False)


@pytest.mark.parametrize("kw", [{}, WHOLE_STACK], ids=["exact", "whole-stack"])
def test_group_checkpoints_resume_exactly(split, tmp_path, kw):
    configs = _configs("sasrec", "prefixes", patience=10)
    whole = _group(configs, split, **kw)
    short = [c.replace(epochs=min(c.epochs, 2)) for c in configs]
    paths = [tmp_path / f"run{i}" / "checkpoint.pt" for i in range(len(configs))]
    _group(short, split, checkpoint_paths=paths, **kw)
    resumed = _group(configs, split, checkpoint_paths=paths, **kw)
    assert (resumed.leaves is None) == (not kw)
    for tw, tr in zip(whole.members, resumed.members):
        assert tr.resumed_from_epoch == 2
        assert [h["train_loss"] for h in tw.result.history] == \
            [h["train_loss"] for h in tr.result.history]
        for pw, pr in zip(tw.model.state_dict().values(), tr.model.state_dict().values()):
            assert torch.equal(pw, pr)


def test_a_group_checkpoint_is_a_lone_checkpoint(split, tmp_path):
    # A run may start in a group and go on alone: its file is a lone trainer's.
    configs = _configs("sasrec", "prefixes", patience=10)[:2]
    paths = [tmp_path / f"run{i}.pt" for i in range(2)]
    _group([c.replace(epochs=2) for c in configs], split, checkpoint_paths=paths)
    model, _ = build_member(configs[0], split.n_items)
    t = Trainer(model, split, configs[0].replace(epochs=3), checkpoint_path=paths[0])
    res = t.fit()
    assert t.resumed_from_epoch == 2 and res.epochs_run == 3


def test_group_refuses_what_it_cannot_stack(split):
    a, b = _configs("sasrec", "prefixes")[:2]
    with pytest.raises(ValueError, match="share every field"):
        GroupTrainer([build_member(c, split.n_items)[0] for c in (a, b.replace(hidden=8))],
                     split, [a, b.replace(hidden=8)])
    c = a.replace(model="bert4rec", train_samples="auto")
    with pytest.raises(ValueError, match="cannot train in a group"):
        GroupTrainer([build_member(c, split.n_items)[0]], split, [c])
    # A frozen item table (buffer rows, delta penalty and bound) trains alone.
    table = np.random.default_rng(0).normal(size=(split.n_items, a.hidden)).astype("float32")
    f = a.replace(init="pca", embeddings="given.npy", item_table="frozen+delta", delta_l2=1.0)
    assert not groupable_config(f)
    with pytest.raises(ValueError, match="free item table"):
        GroupTrainer([build_member(f, split.n_items, table)[0]], split, [f])
    assert group_key(a) == group_key(b.replace(seed=7, lam=1.0, temperature=0.2))


def test_the_gpu_settings_train_the_same_models_without_dropout(split):
    # One dropout draw for the stack and one batched loss (the GPU defaults), run on the
    # CPU: with dropout 0 the members agree with the replaying, chunked-loss group.
    configs = [c.replace(dropout=0.0) for c in _configs("sasrec", "prefixes")]
    a = _group(configs, split)
    b = _group(configs, split, replay_dropout=False, batched_loss=True)
    for ta, tb in zip(a.members, b.members):
        assert ta.result.best_epoch == tb.result.best_epoch
        np.testing.assert_allclose([h["train_loss"] for h in ta.result.history],
                                   [h["train_loss"] for h in tb.result.history], rtol=1e-5)
    # With dropout, the shared stream still trains every member (finite, decreasing loss).
    c = _group(_configs("sasrec", "prefixes"), split, replay_dropout=False, batched_loss=True)
    for t in c.members:
        losses = [h["train_loss"] for h in t.result.history]
        assert np.isfinite(losses).all() and losses[-1] < losses[0]


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_stacked_leaves_train_what_member_leaves_train(split, model):
    # The whole stack as the optimizer's leaves (built once per stack, copied back to the
    # members every epoch) against members' own leaves stacked every step: without dropout
    # the same models to float rounding, through members leaving the stack (restacks with
    # Adam state), and every member's Adam state lands back in its own optimizer.
    configs = [c.replace(dropout=0.0) for c in _configs(model, "prefixes")]
    a = _group(configs, split, replay_dropout=False, batched_loss=True, exact=False)
    b = _group(configs, split, **WHOLE_STACK)
    assert a.leaves is None and b.leaves is not None
    for ta, tb in zip(a.members, b.members):
        assert ta.result.best_epoch == tb.result.best_epoch
        np.testing.assert_allclose([h["train_loss"] for h in ta.result.history],
                                   [h["train_loss"] for h in tb.result.history], rtol=1e-5)
        for (name, pa), pb in zip(ta.model.named_parameters(), tb.model.parameters()):
            va, vb = pa.detach(), pb.detach()
            if name.endswith("qkv.bias"):
                # The key bias has a zero gradient in exact arithmetic (softmax ignores a
                # shift shared by all keys): Adam turns its rounding noise into lr-sized
                # steps, so it is held to lr x steps only.
                h = va.shape[0] // 3
                torch.testing.assert_close(vb[h:2 * h], va[h:2 * h], rtol=0, atol=1e-2)
                va, vb = torch.cat([va[:h], va[2 * h:]]), torch.cat([vb[:h], vb[2 * h:]])
            torch.testing.assert_close(vb, va, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
            sa, sb = ta.optimizer.state[pa], tb.optimizer.state[pb]
            assert torch.equal(sa["step"], sb["step"])
            assert sb["exp_avg"].shape == pb.shape  # a member's slice, not the stack
            torch.testing.assert_close(sb["exp_avg_sq"], sa["exp_avg_sq"], rtol=1e-3, atol=1e-9)


def test_partitions_cover_the_stack_and_skip_copies_when_whole(split):
    configs = _configs("sasrec", "prefixes")
    built = [build_member(c, split.n_items) for c in configs]
    g = GroupTrainer([m for m, _ in built], split, configs)
    # exact (the CPU default): the slots of each width, never padded.
    assert g._partition([9, 3, 9, 3]) == [[0, 2], [1, 3]]
    assert g._partition([4, 3, 9, 3]) == [[0], [1, 3], [2]]
    assert g._partition([5, 5, 5, 5]) == [[0, 1, 2, 3]]
    g.exact = False  # padded parts, cut where padding costs more than another forward
    assert sorted(g._partition([9, 3, 9, 3])) == [[0, 2], [1, 3]]
    assert g._partition([5, 5, 5, 5]) == [[0, 1, 2, 3]]
    g.split_widths = False  # the GPU setting: one stack, in slot order
    assert g._partition([9, 3, 7, 1]) == [[0, 1, 2, 3]]


def test_group_refuses_the_cold_start_protocol(split):
    from tfllmer_fast.data.cold import cold_start_split

    cold = cold_start_split(split, np.array([3, 7]))
    c = _configs("sasrec", "prefixes")[0]
    with pytest.raises(ValueError, match="cold-start"):
        GroupTrainer([build_member(c, cold.n_items)[0]], cold, [c])
