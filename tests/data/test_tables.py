"""Tables of one's own: keys kept as written, unambiguous dates, item text joined to the
log's keys, and load_dataset's options for them."""

import numpy as np
import pandas as pd
import pytest

import tfllmer_fast.data.text as text_module
from tfllmer_fast.data import load_dataset, load_interactions, load_item_text_table, load_sequence_file
from tfllmer_fast.data.keys import typed_keys


@pytest.mark.parametrize(
    "raw,key_type,want",
    [
        (["1", "22", "3"], "auto", [1, 22, 3]),
        (["00001", "2"], "auto", ["00001", "2"]),
        (["1.0", "2"], "auto", ["1.0", "2"]),
        (["+3", "4"], "auto", ["+3", "4"]),
        (["-0", "4"], "auto", ["-0", "4"]),
        (["1", "2"], "str", ["1", "2"]),
        (["00001", "+2"], "int", [1, 2]),
        (np.array([5, 6]), "str", ["5", "6"]),
    ],
)
def test_keys_are_never_changed_unless_asked(raw, key_type, want):
    got = typed_keys(raw, key_type)
    assert got.tolist() == want
    assert (got.dtype.kind == "i") == all(isinstance(w, int) for w in want)


def test_bad_keys_are_errors():
    with pytest.raises(ValueError, match="'a' is not an integer"):
        typed_keys(["a", "2"], "int")
    with pytest.raises(ValueError, match="key_type must be one of"):
        typed_keys(["a"], "text")
    with pytest.raises(ValueError, match="missing values"):
        typed_keys(np.array(["a", None], dtype=object))


def test_skus_with_leading_zeros_stay_strings(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\n7,00001,1\n7,00002,2\n8,00001,3\n8,10,4\n")
    s = load_interactions(log)
    assert s.item_ids.tolist() == ["00001", "00002", "10"] and s.user_ids.tolist() == [7, 8]
    assert s.to_lists() == [[0, 1], [0, 2]]
    ints = load_interactions(log, key_type="int")
    assert ints.item_ids.tolist() == [1, 2, 10]
    both = load_interactions(log, key_type="str")
    assert both.user_ids.tolist() == ["7", "8"]


def test_a_sequence_file_keeps_its_ids_and_user_keys(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("007 1 2 3\n8 3 2\n")
    s = load_sequence_file(f)
    assert s.user_ids.tolist() == ["007", "8"]  # "007" is not the number 7
    assert s.item_ids.tolist() == [1, 2, 3]  # the file's ids are the items' keys


def test_iso_dates_sort_and_ambiguous_dates_need_a_format(tmp_path):
    df = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "item_id": [7, 8, 9],
            "timestamp": ["2025-02-08", "2025-02-07 10:00", "2025-02-09T08:00:00"],
        }
    )
    assert load_interactions(df).to_lists() == [[1, 0, 2]]
    df.loc[2, "timestamp"] = "07/02/2025 10:00"  # 7 February or 2 July?
    with pytest.raises(ValueError, match=r"'07/02/2025 10:00' \(data row 2\) is not an ISO 8601 date.*time_format="):
        load_interactions(df)
    day_first = pd.DataFrame(
        {"user_id": [1, 1], "item_id": [7, 8], "timestamp": ["08/02/2025 10:00", "07/02/2025 10:00"]}
    )
    assert load_interactions(day_first, time_format="%d/%m/%Y %H:%M").to_lists() == [[1, 0]]
    assert load_interactions(day_first, time_format="%m/%d/%Y %H:%M").to_lists() == [[1, 0]]
    with pytest.raises(ValueError, match="does not match time_format"):
        load_interactions(day_first, time_format="%Y-%m-%d")
    with pytest.raises(ValueError, match="is not text"):
        load_interactions(pd.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [5]}), time_format="%Y")


def test_dates_with_utc_offsets_are_compared_on_one_clock(tmp_path):
    # 10:00+02:00 is 08:00 UTC, before 09:00Z: offsets count, mixed or not.
    df = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "item_id": [7, 8, 9],
            "timestamp": ["2025-02-07T09:00:00Z", "2025-02-07T10:00:00+02:00", "2025-02-07T09:30:00Z"],
        }
    )
    assert load_interactions(df).to_lists() == [[1, 0, 2]]
    aware = df.assign(timestamp=pd.to_datetime(df["timestamp"], utc=True).dt.tz_convert("Europe/Berlin"))
    path = tmp_path / "log.parquet"
    aware.to_parquet(path)
    assert load_interactions(path).to_lists() == [[1, 0, 2]]


def test_a_named_time_column_must_exist_the_default_may_be_absent():
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [8, 7], "ts": [2, 1]})
    assert load_interactions(df).to_lists() == [[1, 0]]  # no "timestamp": row order
    assert load_interactions(df, time_col="ts").to_lists() == [[0, 1]]
    with pytest.raises(ValueError, match="time column 'tss' not found.*'ts'"):
        load_interactions(df, time_col="tss")


def test_missing_keys_of_nullable_columns_are_errors():
    df = pd.DataFrame({"user_id": [1, 2], "item_id": pd.array(["a", pd.NA], dtype="string")})
    with pytest.raises(ValueError, match="column 'item_id' has missing values.*row 1"):
        load_interactions(df)
    ints = pd.DataFrame({"user_id": pd.array([1, None], dtype="Int64"), "item_id": [3, 4]})
    with pytest.raises(ValueError, match="column 'user_id' .*missing"):
        load_interactions(ints)


def test_item_text_is_joined_to_the_logs_keys(tmp_path):
    table = tmp_path / "items.csv"
    table.write_text("sku,title,brand\n00002,Drill,Acme\n00001,Serum,\n99,Unknown,X\n")
    texts, counts = load_item_text_table(table, np.array(["00001", "00002", "00003"], dtype=object), item_col="sku")
    assert texts == ["Serum", "Drill. Acme", ""]
    assert counts == {"rows": 3, "matched": 2, "items_without_text": 1, "unknown_rows": 1}
    only_title, _ = load_item_text_table(table, np.array(["00002"], dtype=object), item_col="sku", text_cols=["title"])
    assert only_title == ["Drill"]
    with pytest.raises(ValueError, match="no column 'item_id'"):
        load_item_text_table(table, np.array(["00001"], dtype=object))
    table.write_text("sku,text\n1,a\n1,b\n")
    with pytest.raises(ValueError, match="several rows for item"):
        load_item_text_table(table, np.array([1]), item_col="sku")


def _fake_embedder(monkeypatch):
    calls = []

    def fake(texts, *, cache=None, show_progress=True, **kw):
        calls.append({"texts": list(texts), "cache": cache, "show_progress": show_progress})
        return np.asarray([[len(t), 1.0, float(i)] for i, t in enumerate(texts)], dtype=np.float32)

    monkeypatch.setattr(text_module, "embed_texts", fake)
    return calls


def test_load_dataset_takes_columns_item_text_and_computes_embeddings(tmp_path, monkeypatch):
    calls = _fake_embedder(monkeypatch)
    monkeypatch.setenv("TFLLMER_CACHE", str(tmp_path / "cache"))
    log = tmp_path / "orders.csv"
    log.write_text(
        "customer,sku,when\n"
        + "".join(f"c{u},{(u + t) % 5:05d},2025-01-{t + 1:02d}\n" for u in range(6) for t in range(4))
    )
    table = tmp_path / "items.csv"
    table.write_text("sku,name\n" + "".join(f"{i:05d},product {i}\n" for i in range(5)))
    ds = load_dataset(log, user_col="customer", item_col="sku", time_col="when", item_text=table)
    assert ds.sequences.item_ids.tolist() == [f"{i:05d}" for i in range(5)]
    assert ds.item_text == [f"product {i}" for i in range(5)] and ds.embeddings.shape == (5, 3)
    assert calls[0]["texts"] == ds.item_text and not calls[0]["show_progress"]
    assert str(calls[0]["cache"]).startswith(str(tmp_path / "cache"))
    assert (
        load_dataset(
            log, user_col="customer", item_col="sku", time_col="when", item_text=table, embeddings=None
        ).embeddings
        is None
    )
    with pytest.raises(ValueError, match="user_col apply to table sources"):
        load_dataset("synthetic", user_col="customer")
    with pytest.raises(ValueError, match=r"column\(s\) \['user_id'\] not found"):
        load_dataset(log, item_col="sku", time_col="when")


def test_table_options_for_a_source_that_is_not_a_table_are_errors(tmp_path):
    seqs = tmp_path / "s.txt"
    seqs.write_text("u1 1 2 3\nu2 2 3 1\n")
    with pytest.raises(ValueError, match="time_col apply to table sources"):
        load_dataset(seqs, embeddings=None, time_col="ts")
    # item_col also names the key column of an item-text table: allowed with one.
    text = tmp_path / "text.csv"
    text.write_text("sku,text\n1,a\n2,b\n3,c\n")
    ds = load_dataset(seqs, embeddings=None, item_col="sku", item_text=text)
    assert ds.item_text == ["a", "b", "c"]
