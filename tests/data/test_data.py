"""Loaders, id remapping, chronological order, k-core: checked against plain-Python oracles
and against the real datasets' own files and stats.json."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tfllmer_fast.data.load as load_mod
from tfllmer_fast import (
    Dataset,
    Sequences,
    kcore_filter,
    leave_one_out,
    load_dataset,
    load_embeddings,
    load_interactions,
    load_item_text,
    load_recbole_atomic,
    load_sequence_file,
)

pd = pytest.importorskip("pandas")


# ------------------------------------------------------------------ oracles


def oracle_sequences(users, items, times=None):
    """Plain Python: users by sorted key; per user, events by (timestamp, row)."""
    rows = list(range(len(users)))
    key = (lambda r: (users[r], times[r], r)) if times is not None else (lambda r: (users[r], r))
    item_keys = sorted(set(items))
    item_id = {k: i for i, k in enumerate(item_keys)}
    out = {}
    for r in sorted(rows, key=key):
        out.setdefault(users[r], []).append(item_id[items[r]])
    return [out[u] for u in sorted(out)], sorted(out), item_keys


def oracle_kcore(seqs, k_user, k_item):
    """Plain-Python fixed point on lists of lists; returns (lists, kept original items)."""
    lists = [list(s) for s in seqs]
    while True:
        counts = {}
        for s in lists:
            for i in s:
                counts[i] = counts.get(i, 0) + 1
        new = [[i for i in s if counts[i] >= k_item] for s in lists]
        new = [s for s in new if len(s) >= k_user]
        if new == lists:
            break
        lists = new
    kept = sorted({i for s in lists for i in s})
    remap = {old: j for j, old in enumerate(kept)}
    return [[remap[i] for i in s] for s in lists], kept


# ------------------------------------------------------------------ from_interactions


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from("abcdefg"), st.integers(0, 4)), min_size=1, max_size=60))
def test_from_interactions_matches_oracle(rows):
    users = [r[0] for r in rows]
    items = [r[1] for r in rows]
    times = [r[2] for r in rows]
    want, want_users, want_items = oracle_sequences(users, items, times)
    s = Sequences.from_interactions(np.array(users), np.array(items), np.array(times))
    assert s.to_lists() == want
    assert s.user_ids.tolist() == want_users
    assert s.item_ids.tolist() == want_items
    # Without timestamps: input order within each user.
    want_nt, _, _ = oracle_sequences(users, items)
    assert Sequences.from_interactions(users, items).to_lists() == want_nt


def test_from_interactions_options_and_errors():
    s = Sequences.from_interactions([5, 5, 7], [2, 0, 2], n_items=4)
    assert s.to_lists() == [[2, 0], [2]] and s.n_items == 4 and s.item_ids is None
    s = Sequences.from_interactions(["u", "u"], ["y", "x"], item_ids=["x", "z", "y"])
    assert s.to_lists() == [[2, 0]] and s.n_items == 3
    dt = np.array(["2024-01-02", "2024-01-01"], dtype="datetime64[s]")
    assert Sequences.from_interactions([1, 1], [10, 20], dt).to_lists() == [[1, 0]]
    with pytest.raises(ValueError, match="not in item_ids"):
        Sequences.from_interactions([1], ["q"], item_ids=["x"])
    with pytest.raises(ValueError, match="0..n_items-1"):
        Sequences.from_interactions([1], [4], n_items=4)
    with pytest.raises(ValueError, match="empty"):
        Sequences.from_interactions([], [])
    with pytest.raises(ValueError, match="differ in length"):
        Sequences.from_interactions([1, 2], [1])
    with pytest.raises(ValueError, match="NaN"):
        Sequences.from_interactions([1.0, np.nan], [1, 2])
    with pytest.raises(ValueError, match="missing"):
        Sequences.from_interactions(np.array([1, None], dtype=object), [1, 2])
    with pytest.raises(ValueError, match="timestamps"):
        Sequences.from_interactions([1, 1], [1, 2], [0.0, np.nan])
    with pytest.raises(ValueError, match="duplicate"):
        Sequences.from_interactions([1], ["x"], item_ids=["x", "x"])


# ------------------------------------------------------------------ from_user_item_matrix


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_from_user_item_matrix_matches_oracle(n_users, n_items, seed):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.5) * rng.integers(1, 5, (n_users, n_items))
    times = rng.integers(0, 3, (n_users, n_items)) * (dense != 0)
    M = sp.csr_array(dense)
    # Order values of 0 are legitimate timestamps: store them explicitly.
    r, c = np.nonzero(dense)
    orders = sp.coo_array((times[r, c], (r, c)), shape=dense.shape)
    want_cols = [[i for i in range(n_items) if dense[u, i]] for u in range(n_users)]
    want_time = [sorted(w, key=lambda i: (times[u, i], i)) for u, w in enumerate(want_cols)]
    assert Sequences.from_user_item_matrix(M).to_lists() == want_cols
    got = Sequences.from_user_item_matrix(sp.csc_matrix(dense), order=orders)
    assert got.to_lists() == want_time and got.n_items == n_items


def test_from_user_item_matrix_errors():
    M = sp.csr_array(np.array([[1, 1]]))
    with pytest.raises(ValueError, match="no entry"):
        Sequences.from_user_item_matrix(M, order=sp.csr_array(np.array([[3, 0]])))
    with pytest.raises(ValueError, match="shape"):
        Sequences.from_user_item_matrix(M, order=sp.csr_array(np.ones((2, 2))))
    with pytest.raises(TypeError):
        Sequences.from_user_item_matrix(np.ones((2, 2)))


# ------------------------------------------------------------------ k-core


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), max_size=8), min_size=1, max_size=25), st.integers(1, 4), st.integers(1, 4))
def test_kcore_matches_plain_python_fixed_point(lists, k_user, k_item):
    seqs = Sequences.from_lists(lists, n_items=10)
    want, kept = oracle_kcore(lists, k_user, k_item)
    if not want:
        with pytest.raises(ValueError, match="empty"):
            kcore_filter(seqs, k_user, k_item)
        return
    got, kept_idx = kcore_filter(seqs, k_user, k_item)
    assert got.to_lists() == want
    assert kept_idx.tolist() == kept and got.n_items == len(kept)
    assert got.item_ids.tolist() == kept  # no raw keys given: original ids recorded
    assert all(lists[u] and len(got.user(j)) <= len(lists[u]) for j, u in enumerate(got.user_ids))


def test_kcore_keeps_raw_keys_consistent():
    s = Sequences.from_interactions(["a", "a", "b", "b", "c"], ["x", "y", "x", "y", "z"])
    out, kept = kcore_filter(s, 2, 2)
    assert out.user_ids.tolist() == ["a", "b"] and out.item_ids.tolist() == ["x", "y"]
    assert kept.tolist() == [0, 1]
    with pytest.raises(ValueError, match="k_user"):
        kcore_filter(s, 0, 2)


def test_subset_items_and_users():
    s = Sequences.from_lists([[0, 3, 1], [], [3, 3], [2]], n_items=4)
    t = s.subset_items([1, 3])
    assert t.to_lists() == [[1, 0], [], [1, 1], []] and t.n_items == 2
    assert s.subset_items(np.array([True, False, True, False])).to_lists() == [[0], [], [], [1]]
    assert s.subset_users([3, 0]).to_lists() == [[2], [0, 3, 1]]


# ------------------------------------------------------------------ real datasets


@pytest.mark.parametrize("name", ["beauty", "scientific", "ml-100k"])
def test_builtin_datasets_match_stats(data_dir, name):
    stats = json.loads((data_dir / name / "stats.json").read_text())
    ds = load_dataset(name)
    s = ds.sequences
    assert (s.n_users, s.n_items, s.n_interactions) == (stats["users"], stats["items"], stats["interactions"])
    assert s.lengths.min() == stats["min_seq_len"] and s.lengths.max() == stats["max_seq_len"]
    assert np.bincount(s.items, minlength=s.n_items).min() == stats["min_item_freq"]
    assert ds.embeddings.shape == (s.n_items, 384) and ds.embeddings.dtype == np.float32
    assert len(ds.item_text) == s.n_items
    assert sum(bool(t.strip()) for t in ds.item_text) == stats["items_with_text"]
    # Items without text have zero embedding rows; the others are unit norm.
    norms = np.linalg.norm(ds.embeddings, axis=1)
    has_text = np.array([bool(t.strip()) for t in ds.item_text])
    np.testing.assert_allclose(norms[has_text], 1, atol=1e-4)
    assert np.all(norms[~has_text] == 0)
    # 1-based file ids -> 0-based: the first line of the file, shifted by one.
    first = (data_dir / name / "sequences.txt").read_text().split("\n", 1)[0].split()
    assert s.user(0).tolist() == [int(t) - 1 for t in first[1:]]
    assert str(s.user_ids[0]) == first[0]
    raw = (data_dir / name / "item_text.tsv").read_text().split("\n")[1].split("\t")
    assert s.item_ids[0] == raw[1] and ds.item_text[0] == raw[2]


def test_scientific_feat512(data_dir):
    ds = load_dataset("scientific", embeddings="feat512")
    assert ds.embeddings.shape == (1585, 512) and ds.embeddings.dtype == np.float32
    raw = np.fromfile(data_dir / "scientific" / "item_emb_feat1cls_512.f32", np.float32)
    np.testing.assert_array_equal(ds.embeddings, raw.reshape(1585, 512))
    assert 5 < np.median(np.linalg.norm(ds.embeddings, axis=1)) < 10
    with pytest.raises(FileNotFoundError, match="feat1cls"):
        load_dataset("beauty", embeddings="feat512")


def test_ml100k_raw_log_gives_the_staged_order(data_dir):
    """u.data through load_interactions (stable sort by timestamp, ties by line order)
    reproduces sequences.txt exactly, including the ~50k same-timestamp adjacent pairs."""
    cols = ["user_id", "item_id", "rating", "timestamp"]
    from_raw = load_interactions(data_dir / "ml-100k" / "raw" / "u.data", header=None, names=cols)
    staged = load_sequence_file(data_dir / "ml-100k" / "sequences.txt")
    np.testing.assert_array_equal(from_raw.offsets, staged.offsets)
    np.testing.assert_array_equal(from_raw.items, staged.items)
    np.testing.assert_array_equal(from_raw.user_ids, staged.user_ids)
    np.testing.assert_array_equal(from_raw.item_ids, np.arange(1, 1683))


def test_leave_one_out_on_beauty(data_dir):
    s = load_dataset("beauty", embeddings=None).sequences
    split = leave_one_out(s)
    assert split.train.n_users == s.n_users == 22363  # every Beauty user has >= 5 items
    assert split.train.n_interactions == s.n_interactions - 2 * s.n_users
    lines = (data_dir / "beauty" / "sequences.txt").read_text().split("\n")
    for u in (0, 1, 777, s.n_users - 1):
        ids = [int(t) - 1 for t in lines[u].split()[1:]]
        assert split.train.user(u).tolist() == ids[:-2]
        assert (split.valid_targets[u], split.test_targets[u]) == (ids[-2], ids[-1])


def test_beauty_is_already_a_5_core(data_dir):
    full = load_dataset("beauty", embeddings=None)
    core = load_dataset("beauty", embeddings=None, kcore=5)
    np.testing.assert_array_equal(core.sequences.items, full.sequences.items)
    np.testing.assert_array_equal(core.sequences.offsets, full.sequences.offsets)
    assert core.item_text == full.item_text


def test_kcore_on_ml100k_subsets_embeddings(data_dir):
    full = load_dataset("ml-100k")
    core = load_dataset("ml-100k", kcore=(20, 10))
    _, kept = kcore_filter(full.sequences, 20, 10)
    assert core.n_items == kept.size < full.n_items
    np.testing.assert_array_equal(core.embeddings, full.embeddings[kept])
    assert core.item_text == [full.item_text[i] for i in kept]
    assert core.sequences.item_ids.tolist() == full.sequences.item_ids[kept].tolist()
    assert np.bincount(core.sequences.items).min() >= 10 and core.sequences.lengths.min() >= 20


def test_load_dataset_from_folder_and_missing(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "sequences.txt").write_text("u1 1 2 3\nu2 3 1\n")
    (folder / "item_text.tsv").write_text("item_id\traw_key\ttext\n1\tA\tfirst\n2\tB\tsecond\n3\tC\t\n")
    np.save(folder / "item_emb_minilm_l6.npy", np.eye(3, 4, dtype=np.float32))
    ds = load_dataset(folder)
    assert ds.name == "mine" and ds.sequences.to_lists() == [[0, 1, 2], [2, 0]]
    assert ds.item_text == ["first", "second", ""]
    assert ds.sequences.item_ids.tolist() == ["A", "B", "C"]
    assert ds.sequences.user_ids.tolist() == ["u1", "u2"]
    np.testing.assert_array_equal(ds.embeddings, np.eye(3, 4))
    np.save(folder / "other.npy", np.ones((3, 2)))
    assert load_dataset(folder, embeddings="other.npy").embeddings.shape == (3, 2)
    assert load_dataset(folder, embeddings=None).embeddings is None
    np.save(folder / "bad.npy", np.ones((4, 2)))
    with pytest.raises(ValueError, match="4 embedding rows but the dataset has 3 items"):
        load_dataset(folder, embeddings="bad.npy")
    with pytest.raises(FileNotFoundError, match="unknown dataset"):
        load_dataset(tmp_path / "nothing-here")
    monkeypatch.setattr(load_mod, "shared_data_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="TFLLMER_DATA"):
        load_dataset("beauty")


def test_load_dataset_single_files(tmp_path):
    (tmp_path / "log.csv").write_text("user_id,item_id,timestamp\n1,a,3\n1,b,1\n2,a,0\n")
    ds = load_dataset(tmp_path / "log.csv")
    assert ds.sequences.to_lists() == [[1, 0], [0]] and ds.embeddings is None
    (tmp_path / "s.txt").write_text("1 2 1\n")
    assert load_dataset(tmp_path / "s.txt").sequences.to_lists() == [[1, 0]]


def test_synthetic_dataset():
    ds = load_dataset("synthetic")
    assert ds.name == "synthetic" and ds.embeddings.shape == (ds.n_items, 64)
    assert load_dataset("synthetic", embeddings=None).embeddings is None
    with pytest.raises(ValueError, match="scientific"):
        load_dataset("synthetic", embeddings="feat512")


# ------------------------------------------------------------------ tables


def _log():
    rng = np.random.default_rng(3)
    n = 200
    return pd.DataFrame(
        {
            "uid": rng.choice(["ann", "bob", "cy", "dee"], n),
            "iid": rng.integers(100, 130, n),
            "ts": rng.integers(0, 20, n),  # many ties: order must follow the rows
        }
    )


@pytest.mark.parametrize("fmt", ["frame", "csv", "tsv", "parquet", "sniffed"])
def test_load_interactions_formats(tmp_path, fmt):
    df = _log()
    want, want_users, want_items = oracle_sequences(df.uid.tolist(), df.iid.tolist(), df.ts.tolist())
    src = df
    if fmt == "csv":
        src = tmp_path / "log.csv"
        df.to_csv(src, index=False)
    elif fmt == "tsv":
        src = tmp_path / "log.tsv"
        df.to_csv(src, sep="\t", index=False)
    elif fmt == "parquet":
        pytest.importorskip("pyarrow")
        src = tmp_path / "log.parquet"
        df.to_parquet(src)
    elif fmt == "sniffed":
        src = tmp_path / "log.data"
        df.to_csv(src, sep=";", index=False)
    s = load_interactions(src, user_col="uid", item_col="iid", time_col="ts")
    assert s.to_lists() == want
    assert s.user_ids.tolist() == want_users and s.item_ids.tolist() == want_items


def test_load_interactions_errors_and_no_time(tmp_path):
    df = _log()
    s = load_interactions(df, user_col="uid", item_col="iid", time_col=None)
    assert s.to_lists() == oracle_sequences(df.uid.tolist(), df.iid.tolist())[0]
    with pytest.raises(ValueError, match=r"\['user_id'\] not found"):
        load_interactions(df, item_col="iid")
    with pytest.raises(ValueError, match="empty"):
        load_interactions(df.iloc[:0], user_col="uid", item_col="iid")
    with pytest.raises(FileNotFoundError):
        load_interactions(tmp_path / "nope.csv")
    dates = pd.DataFrame(
        {"user_id": [1, 1, 1], "item_id": [7, 8, 9], "timestamp": ["2024-03-01", "2023-12-31", "2024-01-15 10:00"]}
    )
    assert load_interactions(dates).to_lists() == [[1, 2, 0]]
    dates.loc[0, "timestamp"] = "not a date"
    with pytest.raises(ValueError, match="not an ISO 8601 date"):
        load_interactions(dates)


# ------------------------------------------------------------------ RecBole atomic


def test_recbole_atomic_round_trip(tmp_path):
    df = _log()
    inter = tmp_path / "toy.inter"
    with open(inter, "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for r in df.itertuples():
            f.write(f"{r.uid}\t{r.iid}\t4.0\t{r.ts}\n")
    with open(tmp_path / "toy.item", "w") as f:
        f.write("item_id:token\ttitle:token_seq\tprice:float\tbrand:token\n")
        for i in sorted(set(df.iid))[:-1]:  # the last item has no metadata
            f.write(f"{i}\tgood thing {i}\t9.5\tacme\n")
    ds = load_recbole_atomic(inter)
    want, want_users, want_items = oracle_sequences(df.uid.tolist(), df.iid.tolist(), df.ts.tolist())
    assert ds.name == "toy" and ds.sequences.to_lists() == want
    assert ds.sequences.user_ids.tolist() == want_users
    assert ds.sequences.item_ids.tolist() == want_items  # numeric tokens sorted as numbers
    assert ds.item_text[0] == f"good thing {want_items[0]}. acme"
    assert ds.item_text[-1] == ""
    assert load_dataset(tmp_path, embeddings=None).sequences.to_lists() == want


def test_recbole_atomic_errors(tmp_path):
    p = tmp_path / "x.inter"
    p.write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(ValueError, match="name:type"):
        load_recbole_atomic(p)
    p.write_text("user_id:token\titem_id:token\n1\t2\t3\n")
    with pytest.raises(ValueError, match="3 fields"):
        load_recbole_atomic(p)
    p.write_text("user_id:token\tmovie:token\n1\t2\n")
    with pytest.raises(ValueError, match="'item_id'"):
        load_recbole_atomic(p)
    p.write_text("user_id:token\titem_id:token\n")
    with pytest.raises(ValueError, match="no interactions"):
        load_recbole_atomic(p)


# ------------------------------------------------------------------ sequence / text files


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        ("1 1 2\n2\n", "no items"),
        ("1 1 0\n", "1-based"),
        ("1 1 x\n", "integers"),
    ],
)
def test_sequence_file_errors(tmp_path, content, match):
    p = tmp_path / "s.txt"
    p.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_sequence_file(p)


def test_sequence_file_n_items(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("7 3 1\n\n8 2\n")
    s = load_sequence_file(p)
    assert s.to_lists() == [[2, 0], [1]] and s.n_items == 3 and s.user_ids.tolist() == [7, 8]
    assert load_sequence_file(p, n_items=5).n_items == 5
    with pytest.raises(ValueError, match="out of range"):
        load_sequence_file(p, n_items=2)


def test_item_text(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("item_id\traw_key\ttext\n2\tB\thas\ttab\n1\tA\tone\n")
    assert load_item_text(p) == ["one", "has\ttab"]
    p.write_text("item_id\ttext\n3\tthree\n")
    assert load_item_text(p) == ["", "", "three"]
    p.write_text("id\tname\n1\tx\n")
    with pytest.raises(ValueError, match="header"):
        load_item_text(p)
    p.write_text("item_id\ttext\n1\ta\n1\tb\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_item_text(p)


# ------------------------------------------------------------------ embeddings


def test_load_embeddings_formats_and_alignment(tmp_path):
    E = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.save(tmp_path / "e.npy", E)
    m = load_embeddings(tmp_path / "e.npy")
    assert isinstance(m, np.memmap) and not m.flags.writeable
    np.testing.assert_array_equal(m, E)
    assert not isinstance(load_embeddings(tmp_path / "e.npy", mmap=False), np.memmap)
    np.savez(tmp_path / "e.npz", E)
    np.testing.assert_array_equal(load_embeddings(tmp_path / "e.npz"), E)
    np.savez(tmp_path / "two.npz", embeddings=E, other=E[:1])
    np.testing.assert_array_equal(load_embeddings(tmp_path / "two.npz"), E)
    E.tofile(tmp_path / "e.f32")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "e.f32", dim=4), E)
    np.testing.assert_array_equal(load_embeddings(tmp_path / "e.f32", n_items=6), E)
    assert load_embeddings(tmp_path / "e.npy", dtype=np.float64).dtype == np.float64
    # Alignment: dataset item i <- file row item_ids[i].
    rows = np.array([5, 0, 2])
    np.testing.assert_array_equal(load_embeddings(tmp_path / "e.npy", item_ids=rows, n_items=3), E[rows])
    # Raw keys looked up in the file's row keys (e.g. Sequences.item_ids after remapping).
    s = Sequences.from_interactions([1, 1, 2], ["sku9", "sku2", "sku9"])
    row_keys = ["sku0", "sku2", "sku4", "sku9", "sku7", "sku1"]
    got = load_embeddings(tmp_path / "e.npy", item_ids=s.item_ids, row_keys=row_keys, n_items=s.n_items)
    np.testing.assert_array_equal(got, E[[1, 3]])


def test_load_embeddings_errors(tmp_path):
    E = np.ones((4, 3), dtype=np.float32)
    np.save(tmp_path / "e.npy", E)
    with pytest.raises(ValueError, match="4 embedding rows but the dataset has 5 items"):
        load_embeddings(tmp_path / "e.npy", n_items=5)
    with pytest.raises(ValueError, match="rows 0..3"):
        load_embeddings(tmp_path / "e.npy", item_ids=[0, 4])
    with pytest.raises(ValueError, match="not in row_keys"):
        load_embeddings(tmp_path / "e.npy", item_ids=["q"], row_keys=list("abcd"))
    with pytest.raises(ValueError, match="row_keys for 4"):
        load_embeddings(tmp_path / "e.npy", item_ids=["a"], row_keys=list("abc"))
    E[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", E)
    with pytest.raises(ValueError, match="row 2 contains NaN"):
        load_embeddings(tmp_path / "nan.npy")
    E[2, 1] = np.inf
    np.save(tmp_path / "inf.npy", E)
    with pytest.raises(ValueError, match="row 2 contains NaN or Inf"):
        load_embeddings(tmp_path / "inf.npy")
    np.save(tmp_path / "v.npy", np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        load_embeddings(tmp_path / "v.npy")
    np.save(tmp_path / "i.npy", np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="floats"):
        load_embeddings(tmp_path / "i.npy")
    np.ones(10, np.float32).tofile(tmp_path / "r.f32")
    with pytest.raises(ValueError, match="dim="):
        load_embeddings(tmp_path / "r.f32")
    with pytest.raises(ValueError, match="multiple of dim=3"):
        load_embeddings(tmp_path / "r.f32", dim=3)
    (tmp_path / "e.txt").write_text("1 2")
    with pytest.raises(ValueError, match="unknown embedding format"):
        load_embeddings(tmp_path / "e.txt")
    with pytest.raises(FileNotFoundError):
        load_embeddings(tmp_path / "missing.npy")


def test_dataset_validation():
    s = Sequences.from_lists([[0, 1, 2]])
    with pytest.raises(ValueError, match="2 embedding rows .* for 3 items"):
        Dataset("x", s, np.ones((2, 4), np.float32), None)
    with pytest.raises(ValueError, match="2 item texts for 3 items"):
        Dataset("x", s, None, ["a", "b"])
    assert Dataset("x", s, np.ones((3, 2)), None).embeddings.dtype == np.float32
    bad = np.ones((3, 2), np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="row 1 contains NaN"):
        Dataset("x", s, bad, None)
