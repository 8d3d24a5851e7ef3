"""``tfllmer-fast recommend`` and ``tfllmer-fast export``: the formats, the key round trip
of a retailer's log (string SKUs, new-<id> keys of added items), one-line errors."""

import csv
import json

import numpy as np
import pytest

from tfllmer_fast.data import load_interactions
from tfllmer_fast.experiment.cli import main
from tfllmer_fast.serving import Recommender

from .conftest import N_ITEMS


@pytest.fixture(scope="module")
def sku_run(tmp_path_factory):
    """A model trained on a CSV log with string SKUs (shuffled rows, timestamps)."""
    from tfllmer_fast.experiment.run import run_experiment

    from .conftest import tiny_config

    root = tmp_path_factory.mktemp("sku")
    rng = np.random.default_rng(0)
    skus = [f"SKU-{i:05d}" for i in range(40)]
    rows = []
    for u in range(120):
        start = int(rng.integers(40))
        for t in range(int(rng.integers(3, 9))):
            rows.append((f"user-{u:03d}", skus[(start + 3 * t) % 40], 1000 + t))
    order = rng.permutation(len(rows))
    log = root / "log.csv"
    with open(log, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer", "sku", "ts"])
        w.writerows(rows[i] for i in order)
    train_log = root / "train.csv"  # the trainer reads user_id / item_id / timestamp
    train_log.write_text(log.read_text().replace("customer,sku,ts", "user_id,item_id,timestamp", 1))
    cfg = tiny_config(dataset=str(train_log), embeddings=None, init="random")
    run_experiment(cfg, output_dir=root / "run")
    return root, log, root / "run" / "checkpoint.pt"


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


LOG_COLS = ["--user-col", "customer", "--item-col", "sku", "--time-col", "ts"]


def test_recommend_a_csv_log_of_string_skus(sku_run, tmp_path, capsys):
    root, log, ckpt = sku_run
    code, out, err = run_cli(
        ["recommend", ckpt, "--histories", log, *LOG_COLS, "--k", 5, "--out", tmp_path / "r.csv"], capsys
    )
    assert code == 0, err
    assert "600 recommendations for 120 of 120 users (k = 5)" in out
    rows = read_rows(tmp_path / "r.csv")
    assert list(rows[0]) == ["user", "rank", "item", "score"] and len(rows) == 600
    seqs = load_interactions(log, "customer", "sku", "ts", dtype={"customer": str, "sku": str})
    want = Recommender.from_checkpoint(ckpt, device="cpu").recommend(seqs, k=5)
    assert [(r["user"], int(r["rank"]), r["item"]) for r in rows] == [tuple(x[:3]) for x in want.records()]
    np.testing.assert_allclose([float(r["score"]) for r in rows], want.scores.ravel(), rtol=1e-6)
    assert rows[0]["item"].startswith("SKU-") and rows[0]["user"] == "user-000"
    # seen items are out unless asked for
    hist = {u: set(seqs.item_ids[seqs.user(i)]) for i, u in enumerate(seqs.user_ids)}
    assert not any(r["item"] in hist[r["user"]] for r in rows)


@pytest.mark.parametrize("ext", [".parquet", ".jsonl", ".tsv"])
def test_output_formats_hold_the_same_rows(ext, sku_run, tmp_path, capsys):
    root, log, ckpt = sku_run
    pd = pytest.importorskip("pandas")
    base, out = tmp_path / "base.csv", tmp_path / f"r{ext}"
    for path in (base, out):
        code, _, err = run_cli(["recommend", ckpt, "--histories", log, *LOG_COLS, "--k", 3, "--out", path], capsys)
        assert code == 0, err
    want = pd.read_csv(base, dtype={"user": str, "item": str})
    if ext == ".parquet":
        got = pd.read_parquet(out)
    elif ext == ".jsonl":
        got = pd.read_json(out, lines=True, dtype={"user": str, "item": str})
    else:
        got = pd.read_csv(out, sep="\t", dtype={"user": str, "item": str})
    assert got.columns.tolist() == ["user", "rank", "item", "score"]
    pd.testing.assert_frame_equal(got[["user", "rank", "item"]], want[["user", "rank", "item"]], check_dtype=False)
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6)


def test_candidates_exclusions_and_unknown_keys(sku_run, tmp_path, capsys):
    root, log, ckpt = sku_run
    (tmp_path / "items.txt").write_text("SKU-00001 SKU-00002  # in stock\nSKU-00003\nSKU-99999\n")
    (tmp_path / "out.txt").write_text("SKU-00002\n")
    hist = tmp_path / "h.csv"
    hist.write_text("customer,sku,ts\nnew-user,SKU-00010,1\nnew-user,NOT-A-SKU,2\nghost,NOPE,1\n")
    argv = [
        "recommend",
        ckpt,
        "--histories",
        hist,
        *LOG_COLS,
        "--items",
        tmp_path / "items.txt",
        "--exclude",
        tmp_path / "out.txt",
        "--out",
        tmp_path / "r.jsonl",
    ]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["user"] for r in rows] == ["new-user", "new-user"]
    assert {r["item"] for r in rows} == {"SKU-00001", "SKU-00003"}
    for note in (
        "users without a known history item (no list): 1",
        "unknown history keys skipped: 2",
        "unknown --items keys skipped: 1",
    ):
        assert note in out
    code, _, err = run_cli([*argv[:-1], tmp_path / "r2.jsonl", "--unknown", "raise"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "error: 2 history key(s) the model does not know: 'NOPE', 'NOT-A-SKU'" in err
    assert not (tmp_path / "r2.jsonl").exists()


def test_one_line_errors(sku_run, tmp_path, capsys):
    root, log, ckpt = sku_run
    (tmp_path / "exists.csv").write_text("x")
    cases = [
        (["--out", tmp_path / "exists.csv"], "exists; choose another --out or pass --overwrite"),
        (["--out", tmp_path / "r.xlsx"], "unknown output format"),
        (["--out", tmp_path / "r.csv", "--k", 0], "--k must be >= 1"),
        (
            ["--out", tmp_path / "r.csv", "--user-col", "uid"],
            "column(s) ['uid', 'item_id'] not found; the table has ['customer', 'sku', 'ts']",
        ),
    ]
    for extra, msg in cases:
        code, _, err = run_cli(["recommend", ckpt, "--histories", log, *extra], capsys)
        assert code == 2 and msg in err and err.count("\n") == 1, err
    code, _, err = run_cli(["recommend", tmp_path / "nope.pt", "--histories", log, "--out", tmp_path / "r.csv"], capsys)
    assert code == 2 and "no such file or folder" in err
    code, _, err = run_cli(["recommend", ckpt, "--histories", tmp_path / "no.csv", "--out", tmp_path / "r.csv"], capsys)
    assert code == 2 and "no such histories file" in err
    assert (tmp_path / "exists.csv").read_text() == "x" and not (tmp_path / "r.csv").exists()


def test_skus_with_leading_zeros_round_trip_from_training_to_recommend(tmp_path, capsys):
    """A log whose SKUs look like numbers ("00017"): training keeps them as written, and so
    does the recommend command."""
    rows = [f"u{u},{(u + t) % 30:05d},{t}" for u in range(60) for t in range(6)]
    (tmp_path / "log.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    run = ["run", "--dataset", tmp_path / "log.csv", "--init", "random", "--embeddings", "none", "--epochs", "1"]
    code, _, err = run_cli(
        [*run, "--hidden", "16", "--no-progress", "--threads", "1", "--output", tmp_path / "r"], capsys
    )
    assert code == 0, err
    ckpt = tmp_path / "r" / "checkpoint.pt"
    (tmp_path / "h.csv").write_text("user_id,item_id\nu,00017\nu,00004\n")
    code, out, err = run_cli(
        ["recommend", ckpt, "--histories", tmp_path / "h.csv", "--k", 2, "--out", tmp_path / "o.csv"], capsys
    )
    assert code == 0 and "unknown" not in out, out + err
    want = Recommender.from_checkpoint(ckpt, device="cpu").recommend([["00017", "00004"]], k=2)
    assert [r["item"] for r in read_rows(tmp_path / "o.csv")] == want.keys[0].tolist()
    assert all(len(r["item"]) == 5 for r in read_rows(tmp_path / "o.csv"))


def test_sequence_files_added_items_and_export(checkpoints, tmp_path, capsys, synthetic_sequences):
    pytest.importorskip("onnxscript")
    ckpt = checkpoints("gru4rec", "free")
    X = np.random.default_rng(3).normal(size=(2, 64))
    np.save(tmp_path / "new.npy", X)
    added = tmp_path / "added.pt"
    code, _, err = run_cli(["add-items", ckpt, tmp_path / "new.npy", "--out", added], capsys)
    assert code == 0, err
    # a sequence file holds the model's ids + 1; new items too (121, 122)
    seqs = synthetic_sequences
    lines = [f"{u} " + " ".join(str(i + 1) for i in seqs.user(u)) for u in range(5)] + [f"99 {N_ITEMS + 2} 3"]
    (tmp_path / "seq.txt").write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(
        [
            "recommend",
            added,
            "--histories",
            tmp_path / "seq.txt",
            "--k",
            4,
            "--include-seen",
            "--out",
            tmp_path / "r.csv",
        ],
        capsys,
    )
    assert code == 0, err
    rec = Recommender.from_checkpoint(added, device="cpu")
    hist = [[rec.item_keys[i] for i in seqs.user(u)] for u in range(5)] + [[f"new-{N_ITEMS + 1}", "2"]]
    want = rec.recommend(hist, k=4, exclude_seen=False)
    rows = read_rows(tmp_path / "r.csv")
    assert [r["item"] for r in rows] == want.keys.ravel().tolist()
    assert [r["user"] for r in rows[-4:]] == ["99"] * 4
    # new-<id> keys in --items
    (tmp_path / "new.txt").write_text(f"new-{N_ITEMS} new-{N_ITEMS + 1}\n")
    code, _, err = run_cli(
        [
            "recommend",
            added,
            "--histories",
            tmp_path / "seq.txt",
            "--items",
            tmp_path / "new.txt",
            "--out",
            tmp_path / "n.csv",
        ],
        capsys,
    )
    assert code == 0, err
    assert {r["item"] for r in read_rows(tmp_path / "n.csv")} <= {f"new-{N_ITEMS}", f"new-{N_ITEMS + 1}"}
    # export
    code, out, err = run_cli(["export", added, "--out", tmp_path / "serve"], capsys)
    assert code == 0, err
    assert f"exported GRU4Rec ({N_ITEMS + 2} items, vectors of 16)" in out
    manifest = json.loads((tmp_path / "serve" / "manifest.json").read_text())
    assert manifest["n_items"] == N_ITEMS + 2 and manifest["encoder"]["exporter"] == "torchscript"
    keys = json.loads((tmp_path / "serve" / "item_keys.json").read_text())
    assert keys[-2:] == [f"new-{N_ITEMS}", f"new-{N_ITEMS + 1}"]
    code, _, err = run_cli(["export", added, "--out", tmp_path / "serve"], capsys)
    assert code == 2 and "is not empty" in err and err.count("\n") == 1
