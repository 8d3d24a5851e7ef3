"""A retailer's flow on generated data, through the command line: a CSV log with string SKUs
and timestamps and an item-text table -> run (embeddings computed from the text) ->
add-items from a table of new products' text -> evaluate from another folder; and the
documented graph -> reduce -> train --item-table path feeding add-items."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from tfllmer_fast.data.tables import load_new_items
from tfllmer_fast.experiment.cli import main
from tfllmer_fast.train import load_checkpoint

SMALL = ["--epochs", "1", "--no-progress", "--threads", "1", "--hidden", "16", "--n-layers", "1"]
WORDS = ["serum", "cream", "drill", "saw", "lamp", "bulb", "mug", "kettle"]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _write_shop(folder, n_users=120, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(n_items))
        for t in range(int(rng.integers(4, 9))):
            sku = f"{(start + t * 3 + int(rng.integers(2))) % n_items:05d}"  # leading zeros: strings
            rows.append((f"cust-{u}", sku, f"2025-03-{1 + t:02d} 10:{u % 60:02d}"))
    pd.DataFrame(rows, columns=["customer", "sku", "ordered_at"]).to_csv(folder / "orders.csv", index=False)
    text = [(f"{i:05d}", f"{WORDS[i % 8]} model {i}", WORDS[(i // 8) % 8]) for i in range(n_items)]
    pd.DataFrame(text, columns=["sku", "title", "category"]).to_csv(folder / "products.csv", index=False)


def test_log_and_text_table_to_run_add_items_and_evaluate_elsewhere(tmp_path, capsys, monkeypatch):
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("the text extra (sentence-transformers) is not installed")
    monkeypatch.setenv("TFLLMER_CACHE", str(tmp_path / "cache"))
    shop = tmp_path / "shop"
    shop.mkdir()
    _write_shop(shop)
    monkeypatch.chdir(shop)
    columns = ["--user-col", "customer", "--item-col", "sku", "--time-col", "ordered_at"]
    argv = ["run", "--dataset", "orders.csv", *columns, "--item-text", "products.csv", *SMALL, "--output", "run"]
    assert main(argv) == 0, capsys.readouterr().err
    st = load_checkpoint(shop / "run" / "checkpoint.pt")
    assert st["items"]["known_ids"][:3] == ["00000", "00001", "00002"]  # keys as written
    assert st["data_sources"]["dataset"] == str(shop / "orders.csv")
    assert list((tmp_path / "cache").glob("*.npy"))  # the text embeddings were cached
    pd.DataFrame({"sku": ["N-1", "N-2"], "title": ["serum model new", "drill model new"]}).to_csv(
        "new.csv", index=False
    )
    add = ["add-items", "run/checkpoint.pt", "new.csv", "--id-col", "sku", "--text-cols", "title", "--out", "new.pt"]
    assert main(add) == 0, capsys.readouterr().err
    assert load_checkpoint(shop / "new.pt")["items"]["known_ids"][-2:] == ["N-1", "N-2"]
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the run's relative paths do not resolve from here
    assert main(["evaluate", str(shop / "new.pt"), "--json", "m.json"]) == 0, capsys.readouterr().err
    assert json.loads((elsewhere / "m.json").read_text())["metrics"]["test"]["n_targets"] == 120
    # A dataset that is not the trained catalogue is refused, with the way out.
    pd.read_csv(shop / "orders.csv").iloc[:200].to_csv(elsewhere / "other.csv", index=False)
    assert main(["evaluate", str(shop / "new.pt"), "--dataset", str(elsewhere / "other.csv")]) == 2
    assert "not the catalogue the checkpoint was trained on" in capsys.readouterr().err


def test_graph_reduce_train_then_add_items(tmp_path, capsys):
    tiny = ["--synthetic-users", "150", "--synthetic-items", "60", "--threads", "1"]
    assert main(["graph", *tiny, "--out", str(tmp_path / "g.npz")]) == 0
    assert (
        main(["reduce", *tiny, "--hidden", "16", "--graph", str(tmp_path / "g.npz"), "--out", str(tmp_path / "z.npz")])
        == 0
    )
    train = ["train", *tiny, *SMALL, "--item-table", str(tmp_path / "z.npz"), "--graph", str(tmp_path / "g.npz")]
    assert main([*train, "--output", str(tmp_path / "r")]) == 0, capsys.readouterr().err
    np.save(tmp_path / "new.npy", np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32))
    add = [
        "add-items",
        str(tmp_path / "r" / "checkpoint.pt"),
        str(tmp_path / "new.npy"),
        "--out",
        str(tmp_path / "n.pt"),
    ]
    assert main(add) == 0, capsys.readouterr().err
    st = load_checkpoint(tmp_path / "n.pt")
    assert st["items"]["projection"]["mode"] == "recpca" and st["items"]["n_items"] == 63


def test_new_item_files_in_every_reasonable_form(tmp_path):
    X = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    np.savez(tmp_path / "obj.npz", embeddings=X, ids=pd.Series(["a", "00b"]).to_numpy())  # an object array
    with pytest.raises(ValueError, match="object array.*allow_pickle=True"):
        load_new_items(tmp_path / "obj.npz")  # unpickling runs code: only when asked
    keys, emb, texts = load_new_items(tmp_path / "obj.npz", allow_pickle=True)
    assert keys == ["a", "00b"] and np.array_equal(emb, X) and texts is None
    pd.DataFrame({"item_id": ["007", "8"], "e0": [1.0, 4.0], "e1": [2.0, 5.0], "e2": [3.0, 6.0]}).to_csv(
        tmp_path / "emb.csv", index=False
    )
    keys, emb, _ = load_new_items(tmp_path / "emb.csv")
    assert keys == ["007", "8"] and np.array_equal(emb, X)
    pd.DataFrame({"item_id": ["x", "y"], "vector": [X[0].tolist(), X[1].tolist()]}).to_parquet(tmp_path / "e.parquet")
    keys, emb, _ = load_new_items(tmp_path / "e.parquet")
    assert keys == ["x", "y"] and np.array_equal(emb, X)
    pd.DataFrame({"item_id": ["p"], "text": ["a lamp"]}).to_csv(tmp_path / "t.csv", index=False)
    assert load_new_items(tmp_path / "t.csv") == (["p"], None, ["a lamp"])
    (tmp_path / "ids.txt").write_text("k1  # first\nk2\n")
    np.save(tmp_path / "e.npy", X)
    assert load_new_items(tmp_path / "e.npy", ids=tmp_path / "ids.txt")[0] == ["k1", "k2"]
    with pytest.raises(ValueError, match="needs a 'text' column or only numeric"):
        pd.DataFrame({"item_id": ["p"], "note": ["x"], "e0": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
        load_new_items(tmp_path / "bad.csv")
