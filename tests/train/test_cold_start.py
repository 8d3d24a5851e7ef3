"""Cold-start protocol, popularity groups and rows for new items."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from tests.helpers import random_sequences
from tfllmer_fast.data import Dataset
from tfllmer_fast.data.cold import (
    choose_cold_items,
    cold_start_split,
    drop_items,
    head_items,
    item_groups,
    read_item_list,
)
from tfllmer_fast.data.sequences import Sequences, leave_one_out
from tfllmer_fast.experiment.cli import main
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.results import chance_metrics, compare_runs, metrics_table
from tfllmer_fast.experiment.run import build_run_model, make_run_split, make_trainer, run_experiment
from tfllmer_fast.experiment.study.report import target_group_table
from tfllmer_fast.graph.item_table import apply_projection, training_graph
from tfllmer_fast.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from tfllmer_fast.train.evaluation import build_eval_data, group_metrics
from tfllmer_fast.train.losses import make_loss
from tfllmer_fast.train.metrics import metrics_from_ranks
from tfllmer_fast.train.new_items import add_items, ridge_map
from tfllmer_fast.train.runtime import seed_everything


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _cfg(**kw):
    base = dict(
        init="random",
        embeddings=None,
        hidden=16,
        max_len=8,
        n_layers=1,
        epochs=2,
        batch_size=16,
        progress=False,
        threads=1,
        seed=0,
    )
    base.update(kw)
    return Config(**base)


def _cold_split(n_users=60, n_items=30, frac=0.3, seed=1):
    seqs = random_sequences(n_users=n_users, n_items=n_items, min_len=4, max_len=12, seed=seed)
    split = leave_one_out(seqs)
    cold = choose_cold_items(n_items, frac, seed=3)
    return split, cold_start_split(split, cold), cold


# ----- the protocol ------------------------------------------------------------------------
def test_no_cold_item_in_training_sequences_graph_or_rows():
    split, cs, cold = _cold_split()
    assert cold.size == 9 and np.array_equal(cs.cold_items, cold)
    assert not np.isin(cs.train.items, cold).any()
    # Everything else of every history is kept, in order.
    for u in range(split.train.n_users):
        full = split.train.user(u).tolist()
        assert cs.train.user(u).tolist() == [i for i in full if i not in set(cold.tolist())]
    A = training_graph(cs)
    assert A[cold].nnz == 0 and A[:, cold].nnz == 0
    # Training rows (both layouts) never hold a cold item; evaluation inputs keep them.
    c = _cfg()
    model = build_run_model(c, cs.n_items)
    for samples in ("prefixes", "windows"):
        tr = make_trainer(c.replace(train_samples=samples), model, cs, resume=False)
        assert not np.isin(tr.windows.numpy() - 1, cold).any()
    ev = build_eval_data(cs, c.max_len, "valid")
    assert np.isin(ev.inputs.numpy() - 1, cold).any()
    assert np.array_equal(ev.inputs.numpy(), build_eval_data(split, c.max_len, "valid").inputs.numpy())


def test_cold_logits_are_masked_and_never_drawn_as_negatives():
    _, cs, cold = _cold_split()
    n = cs.n_items
    seed_everything(0)
    model = build_run_model(_cfg(normalize_items=True), n)
    h = torch.randn(40, 16)
    warm = np.setdiff1d(np.arange(n), cold)
    t_np = np.random.default_rng(0).choice(warm, 40)
    t = torch.as_tensor(t_np)
    ce = make_loss("ce", n, exclude=cold)
    loss = ce(model, h, t)
    # Equal to a softmax over the warm items only.
    logits = model.score(h)[:, torch.as_tensor(warm)]
    ref = torch.nn.functional.cross_entropy(logits, torch.as_tensor(np.searchsorted(warm, t_np)))
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    model.zero_grad()
    loss.backward()
    g = model.item_emb.weight.grad[torch.as_tensor(cold + 1)]
    assert torch.count_nonzero(g) == 0
    gen = torch.Generator().manual_seed(0)
    for name in ("bce", "sampled_softmax"):
        loss_fn = make_loss(name, n, n_negatives=2000, exclude=cold, item_counts=np.ones(n, int))
        neg = loss_fn.sampler.draw((2000,), "cpu", gen)
        assert not np.isin(neg.numpy(), cold).any()
        assert set(neg.tolist()) == set(warm.tolist())
    pop = make_loss(
        "sampled_softmax", n, n_negatives=10, negative_sampling="popularity", item_counts=np.arange(n), exclude=cold
    )
    assert not np.isin(pop.sampler.draw((3000,), "cpu", gen).numpy(), cold).any()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_cold_rows_get_no_update(weight_decay):
    _, cs, cold = _cold_split()
    c = _cfg(weight_decay=weight_decay, epochs=2)
    seed_everything(0)
    model = build_run_model(c, cs.n_items)
    before = model.item_emb.weight.detach().clone()
    make_trainer(c, model, cs, resume=False).fit()
    after = model.item_emb.weight.detach()
    idx = torch.as_tensor(cold + 1)
    assert torch.equal(after[idx], before[idx])
    warm = torch.as_tensor(np.setdiff1d(np.arange(cs.n_items), cold) + 1)
    assert not torch.equal(after[warm], before[warm])


def test_drop_items_and_item_lists(tmp_path):
    seqs = Sequences.from_lists([[0, 1, 2, 1], [2, 2], [3]], n_items=4)
    assert drop_items(seqs, [1, 3]).to_lists() == [[0, 2], [2, 2], []]
    assert choose_cold_items(10, 0.0).size == 0
    assert np.array_equal(choose_cold_items(50, 0.2, 7), choose_cold_items(50, 0.2, 7))
    p = tmp_path / "cold.txt"
    p.write_text("B12 # a comment\nA7\n")
    assert read_item_list(p, np.array(["A7", "B12", "C3"])).tolist() == [0, 1]
    p.write_text("A7 Z9\n")
    with pytest.raises(ValueError, match="unknown item id.*Z9"):
        read_item_list(p, np.array(["A7", "B12"]))
    p.write_text("A7 A7\n")
    with pytest.raises(ValueError, match="twice"):
        read_item_list(p, np.array(["A7", "B12"]))
    p.write_text("1 5\n")
    with pytest.raises(ValueError, match="outside"):
        read_item_list(p, None, n_items=4)
    with pytest.raises(ValueError, match="cold_items or cold_items_from"):
        Config(cold_items=0.1, cold_items_from=str(p))
    with pytest.raises(ValueError, match="head_share"):
        Config(head_share=1.0)


# ----- popularity groups --------------------------------------------------------------------
def _head_by_hand(seqs_lists, n_items, share, cold=()):
    counts = Counter(i for s in seqs_lists for i in s if i not in cold)
    total = sum(counts.values())
    order = sorted((i for i in range(n_items) if i not in cold), key=lambda i: (-counts.get(i, 0), i))
    head, acc = set(), 0
    for i in order:
        if acc >= share * total or counts.get(i, 0) == 0:
            break
        head.add(i)
        acc += counts[i]
    return head


@pytest.mark.parametrize("share", [0.2, 0.5, 0.05])
def test_head_tail_split_matches_a_plain_python_count(share):
    split, cs, cold = _cold_split(n_users=80, n_items=40, frac=0.25, seed=4)
    for sp, cset in ((split, set()), (cs, set(cold.tolist()))):
        groups = item_groups(sp, share)
        head = _head_by_hand(sp.train.to_lists(), sp.n_items, share, cset)
        assert set(np.flatnonzero(groups["head"]).tolist()) == head
        assert set(np.flatnonzero(groups["tail"]).tolist()) == (set(range(sp.n_items)) - head - cset)
        if cset:
            assert set(np.flatnonzero(groups["cold"]).tolist()) == cset
            assert set(np.flatnonzero(groups["warm"]).tolist()) == set(range(sp.n_items)) - cset
        else:
            assert "cold" not in groups
    assert head_items(np.zeros(5, int)).sum() == 0


def test_group_metrics_are_the_metrics_of_the_group_targets():
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 30, 200)
    targets = rng.integers(0, 12, 200)
    mask = np.zeros(12, bool)
    mask[[1, 5, 7]] = True
    out = group_metrics(ranks, targets, {"g": mask, "none": np.zeros(12, bool)}, (10,))
    sel = np.isin(targets, [1, 5, 7])
    assert out["g"]["n_targets"] == sel.sum()
    assert out["g"]["ndcg@10"] == pytest.approx(metrics_from_ranks(ranks[sel], (10,))["ndcg@10"])
    assert out["none"] == {"n_targets": 0}
    ch = chance_metrics(100, (10,))
    assert ch["recall@10"] == pytest.approx(0.1)
    # A uniformly random ranking averages to the chance level.
    r = np.random.default_rng(1).integers(0, 100, 200000)
    assert metrics_from_ranks(r, (10,))["ndcg@10"] == pytest.approx(ch["ndcg@10"], rel=0.02)


# ----- runs ---------------------------------------------------------------------------------
def _synthetic_run_config(**kw):
    base = dict(
        epochs=2,
        patience=2,
        threads=1,
        progress=False,
        synthetic_users=150,
        synthetic_items=60,
        synthetic_dim=24,
        hidden=16,
        n_layers=1,
        batch_size=64,
        cold_items=0.2,
    )
    base.update(kw)
    return Config(**base)


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cold")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = run_experiment(_synthetic_run_config(), output_dir=out, resume=False)
    finally:
        torch.set_num_threads(n)
    return r, out


def test_cold_run_reports_groups_and_both_row_methods(cold_run):
    r, out = cold_run
    res = r.results
    m = res["metrics"]
    for split in ("valid", "test"):
        for g in ("warm", "cold", "head", "tail"):
            assert f"{split}_{g}" in m and f"{split}_{g}" in res["metrics_aligned"]
        assert m[f"{split}_warm"]["n_targets"] + m[f"{split}_cold"]["n_targets"] == m[split]["n_targets"]
        assert m[f"{split}_head"]["n_targets"] + m[f"{split}_tail"]["n_targets"] == m[f"{split}_warm"]["n_targets"]
    assert res["groups"]["n_items"]["cold"] == 12 and res["groups"]["train_interactions"]["cold"] == 0
    assert set(res["aligned_map"]["valid_scores"])  # lambda chosen on validation
    # The cold rows after training are the projection of their LLM rows (no update).
    st = load_checkpoint(out / "checkpoint.pt")
    cold = np.asarray(st["items"]["cold_items"])
    proj = {k: (v.numpy() if torch.is_tensor(v) else v) for k, v in st["items"]["projection"].items()}
    from tfllmer_fast.experiment.run import load_run_data

    X = load_run_data(r.config).embeddings
    trained = st["best_state"]["item_emb.weight"][torch.as_tensor(cold + 1)].numpy()
    np.testing.assert_allclose(trained, apply_projection(proj, X[cold]), rtol=1e-4, atol=1e-6)
    # Printed table, compare and the study report show the groups.
    assert "test_cold" in metrics_table(m)
    table = compare_runs([res])
    assert "cold ndcg@10" in table and "(aligned rows)" in table
    group = {
        "variants": {"tfllmer": {"runs": [{"metrics": m, "metrics_aligned": res["metrics_aligned"], "n_items": 60}]}}
    }
    gt = target_group_table(group)
    assert "aligned" in gt and "chance" in gt and "cold N@10" in gt


def test_cold_split_follows_the_config(tmp_path):
    c = _synthetic_run_config(cold_items=0.25, cold_seed=5)
    from tfllmer_fast.experiment.run import load_run_data

    data = load_run_data(c)
    sp = make_run_split(c, data)
    assert len(sp.cold_items) == 15
    f = tmp_path / "cold.txt"
    keys = data.sequences.item_ids
    listed = [0, 3, 8] if keys is None else None
    f.write_text(" ".join(str(k) for k in (listed if keys is None else keys[[0, 3, 8]])))
    sp2 = make_run_split(c.replace(cold_items=0.0, cold_items_from=str(f)), data)
    assert sp2.cold_items.tolist() == [0, 3, 8]


# ----- the ridge map ------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.0, 0.3, 5.0])
def test_ridge_map_matches_lstsq(lam):
    rng = np.random.default_rng(0)
    P, E = rng.standard_normal((50, 6)), rng.standard_normal((50, 4))
    W, b = ridge_map(P, E, lam)
    # Ridge with an unpenalised intercept = least squares on the augmented system.
    A = np.block([[P, np.ones((50, 1))], [np.sqrt(lam) * np.eye(6), np.zeros((6, 1))]])
    Y = np.vstack([E, np.zeros((6, 4))])
    sol = np.linalg.lstsq(A, Y, rcond=None)[0]
    np.testing.assert_allclose(W, sol[:6], atol=1e-10)
    np.testing.assert_allclose(b, sol[6], atol=1e-10)


# ----- add-items ----------------------------------------------------------------------------
def _scores(model, n_old):
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(1, n_old + 1, (7, 8), generator=g)
    with torch.no_grad():
        return model(seqs)[:, :n_old]


@pytest.mark.parametrize("method", ["projection", "aligned", "random"])
def test_add_items_leaves_old_scores_bit_identical(cold_run, tmp_path, method):
    r, out = cold_run
    st = load_checkpoint(out / "checkpoint.pt")
    n = st["items"]["n_items"]
    X = np.random.default_rng(0).standard_normal((5, 24)).astype(np.float32)
    new = add_items(st, X, [f"new{i}" for i in range(5)], method=method)
    save_checkpoint({k: v for k, v in new.items() if k != "format"}, tmp_path / "new.pt")
    new = load_checkpoint(tmp_path / "new.pt")
    old_model, new_model = model_from_checkpoint(st), model_from_checkpoint(new)
    assert new_model.n_items == n + 5
    assert torch.equal(_scores(old_model, n), _scores(new_model, n))
    rows = new_model.item_emb.weight.detach()[n + 1 : n + 6].numpy()
    assert np.isfinite(rows).all() and np.abs(rows).sum() > 0
    if method == "projection":
        proj = {k: (v.numpy() if torch.is_tensor(v) else v) for k, v in st["items"]["projection"].items()}
        np.testing.assert_allclose(rows, apply_projection(proj, X), rtol=1e-6)
    assert new["items"]["known_ids"][-5:] == [f"new{i}" for i in range(5)]


def test_add_items_bert4rec_keeps_old_scores():
    seqs = random_sequences(n_users=30, n_items=20, min_len=4, max_len=9, seed=0)
    split = leave_one_out(seqs)
    c = _cfg(model="bert4rec", epochs=1)
    seed_everything(0)
    model = build_run_model(c, split.n_items)
    tr = make_trainer(c, model, split, resume=False)
    tr.fit()
    st = tr.state(1)
    new = add_items(st, np.ones((3, 4)), method="random")
    old_model, new_model = model_from_checkpoint(st), model_from_checkpoint(new)
    assert torch.equal(_scores(old_model, 20), _scores(new_model, 20))


def _id_checkpoint(tmp_path):
    seqs = random_sequences(n_users=30, n_items=20, min_len=4, max_len=9, seed=0)
    c = _cfg(epochs=1)
    r = run_experiment(c, data=Dataset("tiny", seqs, None, None), output_dir=tmp_path / "id", resume=False)
    return tmp_path / "id" / "checkpoint.pt", r


def test_add_items_bad_input_is_a_clear_error_and_writes_nothing(cold_run, tmp_path, capsys):
    r, out = cold_run
    ckpt = out / "checkpoint.pt"
    st = load_checkpoint(ckpt)
    known = st["items"]["known_ids"]
    good = np.random.default_rng(0).standard_normal((3, 24))
    cases = {
        "width": (good[:, :10], None, "width 10"),
        "nan": (np.where(np.eye(3, 24) > 0, np.nan, good), None, "NaN or Inf"),
        "inf": (np.where(np.eye(3, 24) > 0, np.inf, good), None, "NaN or Inf"),
        "zero": (np.vstack([good[:2], np.zeros((1, 24))]), None, "all-zero row"),
        "empty": (np.zeros((0, 24)), None, "zero rows"),
        "dup": (good, ["a", "b", "a"], "duplicate new item id"),
        "known": (good, ["a", str(known[4]), "b"], "already known"),
    }
    target = tmp_path / "kept.pt"
    target.write_bytes(b"precious")
    for name, (X, ids, msg) in cases.items():
        with pytest.raises(ValueError, match=msg):
            add_items(st, X, ids, method="projection")
        emb = tmp_path / f"{name}.npz"
        np.savez(emb, embeddings=X, **({"ids": np.array(ids)} if ids else {}))
        code = main(["add-items", str(ckpt), str(emb), "--out", str(target), "--overwrite"])
        err = capsys.readouterr().err
        assert code == 2 and msg.split()[0] in err, (name, err)
        assert target.read_bytes() == b"precious"
        assert not any(p.name.startswith(".kept.pt.tmp") for p in tmp_path.iterdir())
    # An existing --out is never replaced without --overwrite.
    np.savez(tmp_path / "ok.npz", embeddings=good)
    assert main(["add-items", str(ckpt), str(tmp_path / "ok.npz"), "--out", str(target)]) == 2
    assert "exists" in capsys.readouterr().err and target.read_bytes() == b"precious"
    # ID-only checkpoint: projection and aligned are refused, random rows work.
    id_ckpt, _ = _id_checkpoint(tmp_path)
    for method in ("projection", "aligned"):
        code = main(
            [
                "add-items",
                str(id_ckpt),
                str(tmp_path / "ok.npz"),
                "--out",
                str(target),
                "--overwrite",
                "--method",
                method,
            ]
        )
        assert code == 2 and "ID-only" in capsys.readouterr().err
        assert target.read_bytes() == b"precious"
    assert (
        main(
            [
                "add-items",
                str(id_ckpt),
                str(tmp_path / "ok.npz"),
                "--out",
                str(tmp_path / "new.pt"),
                "--method",
                "random",
            ]
        )
        == 0
    )
    assert "chance reference" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "new.pt")["items"]["n_items"] == 23


def test_results_json_of_a_run_without_cold_items(tmp_path):
    seqs = random_sequences(n_users=30, n_items=20, min_len=4, max_len=9, seed=0)
    r = run_experiment(_cfg(epochs=1), data=Dataset("tiny", seqs, None, None), resume=False)
    m = r.results["metrics"]
    assert {"valid_head", "valid_tail", "test_head", "test_tail"} <= set(m)
    assert "test_cold" not in m and "metrics_aligned" not in r.results
    json.dumps(r.results)


def test_default_ids_of_new_items_never_collide_with_numeric_keys(cold_run):
    # Data whose item keys are the numbers 1..n (MovieLens style) already "know" the id n.
    r, out = cold_run
    st = load_checkpoint(out / "checkpoint.pt")
    n = st["items"]["n_items"]
    st["items"]["known_ids"] = [str(i + 1) for i in range(n)]
    X = np.random.default_rng(1).standard_normal((2, 24)).astype(np.float32)
    new = add_items(st, X, method="projection")
    assert new["items"]["known_ids"][-2:] == [f"new-{n}", f"new-{n + 1}"]


def test_evaluate_reads_a_checkpoint_extended_by_add_items(cold_run, tmp_path, capsys):
    r, out = cold_run
    X = np.random.default_rng(2).standard_normal((3, 24)).astype(np.float32)
    np.save(tmp_path / "new.npy", X)
    assert (
        main(["add-items", str(out / "checkpoint.pt"), str(tmp_path / "new.npy"), "--out", str(tmp_path / "new.pt")])
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "new.pt"), "--split", "test"]) == 0
    assert "| test " in capsys.readouterr().out
