"""The documented rules for what users hand the recommender: keys, unknown keys, empty
histories, k beyond the candidates, candidate and exclusion lists, ids, wrong types."""

import numpy as np
import pytest
import torch

from tfllmer_fast.data import Sequences
from tfllmer_fast.serving import Recommender
from tfllmer_fast.serving._inputs import KeyMap, key_string
from tfllmer_fast.train import SASRec


def small(keys=None, n=8, seed=0):
    torch.manual_seed(seed)
    model = SASRec(n, hidden=8, max_len=5, normalize_items=True).eval()
    return Recommender(model, keys, device="cpu")


def full_scores(rec, history_ids):
    with torch.no_grad():
        x = torch.as_tensor([[i + 1 for i in history_ids[-rec.model.max_len :]]])
        return rec.model(x)[0].numpy()


SKUS = ["00042", "A-7", "sku 3", "Zed", "00042x", "1", "01", "ü-9"]


def test_string_keys_round_trip():
    rec = small(SKUS)
    got = rec.recommend([["00042", "sku 3"], ["ü-9"]], k=3)
    for row, hist in zip(got.keys, [["00042", "sku 3"], ["ü-9"]]):
        assert set(row) <= set(SKUS) - set(hist)
    ids = rec.item_ids(SKUS)
    np.testing.assert_array_equal(ids, np.arange(8))
    # "1" and "01" are two keys of a string catalogue: no integer folding there
    assert rec.item_ids(["01", "1"]).tolist() == [6, 5]
    S = full_scores(rec, [0, 2])
    S[[0, 2]] = -np.inf
    assert got.ids[0].tolist() == np.argsort(-S, kind="stable")[:3].tolist()


def test_integer_keys_match_by_their_string_form():
    keys = [str(k) for k in (10, 20, 30, 40, 50, 60, 70, 80)]
    rec = small(keys)
    a = rec.recommend([[10, 30]], k=4).ids
    b = rec.recommend([["10", "30"]], k=4).ids
    c = rec.recommend([np.array([10, 30], dtype=np.int64)], k=4).ids
    d = rec.recommend([[10.0, 30.0]], k=4).ids
    assert (a == b).all() and (a == c).all() and (a == d).all()
    # a key is never rewritten: "0030" is not the key 30
    assert rec.item_ids(["0030", "30"], unknown="skip").tolist() == [-1, 2]
    assert key_string(np.int32(7)) == "7" and key_string(b"x") == "x"


def test_unknown_history_keys_are_skipped_and_counted_or_raise():
    rec = small(SKUS)
    with_unknown = rec.recommend([["00042", "nope", "sku 3", "also-nope"], ["nope"]], k=3)
    clean = rec.recommend([["00042", "sku 3"], []], k=3)
    np.testing.assert_array_equal(with_unknown.ids, clean.ids)  # dropped, not shifted
    assert with_unknown.n_unknown == 3 and with_unknown.n_empty == 1
    assert with_unknown.lengths.tolist() == [3, 0] and with_unknown.keys[1].tolist() == [None] * 3
    assert np.isneginf(with_unknown.scores[1]).all() and (with_unknown.ids[1] == -1).all()
    with pytest.raises(ValueError, match=r"2 history key\(s\) the model does not know: 'also-nope', 'nope'"):
        rec.recommend([["00042", "nope", "also-nope"]], unknown="raise")
    with pytest.raises(ValueError, match="unknown must be one of"):
        rec.recommend([["00042"]], unknown="ignore")


def test_empty_histories_get_empty_rows_and_zero_vectors():
    rec = small()
    got = rec.recommend([[], ["1", "2"], []], k=2)
    assert got.lengths.tolist() == [0, 2, 0] and got.n_empty == 2
    U = rec.user_vectors([[], ["1"]])
    assert not U[0].any() and U[1].any()
    assert got.to_lists()[0] == [] and len(got.to_lists()[1]) == 2


def test_k_beyond_the_candidates_and_short_rows():
    rec = small()
    got = rec.recommend([["0"]], k=100)
    assert got.k == 8 and got.lengths.tolist() == [7]  # every item; the seen one leaves the row short
    assert got.ids[0, -1] == -1 and got.keys[0, -1] is None and np.isneginf(got.scores[0, -1])
    assert rec.recommend([["0"]], k=100, exclude_seen=False).k == 8
    got = rec.recommend([["0", "1"], ["5"]], k=5, items=["0", "1", "2"])
    assert got.k == 3 and got.lengths.tolist() == [1, 3]  # user 0 saw two of the three candidates
    assert got.keys[0].tolist() == ["2", None, None]
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rec.recommend([["0"]], k=0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rec.recommend([["0"]], k=2.5)


def test_candidates_and_exclusions():
    rec = small()
    S = full_scores(rec, [3])
    got = rec.recommend([["3"]], k=8, items=["7", "2", "2", "5", "3"], exclude=["5", "ghost"])
    cand = np.array([2, 7])  # 3 seen, 5 excluded, the duplicate once
    want = cand[np.argsort(-S[cand], kind="stable")]
    assert got.ids[0].tolist() == want.tolist() + [-1]  # as wide as the 3 candidates; 3 was seen
    assert got.n_unknown_exclude == 1 and got.n_unknown_items == 0
    np.testing.assert_allclose(got.scores[0, :2], S[want], rtol=1e-6)
    got = rec.recommend([["3"]], k=3, exclude=["0", "1"])
    assert not set(got.ids[0].tolist()) & {0, 1, 3}
    got = rec.recommend([["3"]], k=3, items=["1", "unknown"], exclude_seen=False)
    assert got.ids[0].tolist() == [1] and got.n_unknown_items == 1
    with pytest.raises(ValueError, match=r"1 key\(s\) of exclude the model does not know: 'x'"):
        rec.recommend([["3"]], exclude=["x"], unknown="raise")
    with pytest.raises(ValueError, match="no key of `items` is known"):
        rec.recommend([["3"]], items=["x", "y"])
    with pytest.raises(ValueError, match="removes every one of `items`"):
        rec.recommend([["3"]], items=["1"], exclude=["1"])
    with pytest.raises(ValueError, match="no candidate items"):
        rec.recommend([["3"]], exclude=[str(i) for i in range(8)])
    with pytest.raises(ValueError, match="items must be a list of item keys"):
        rec.recommend([["3"]], items="1")


def test_ids_on_request_are_checked_never_shifted():
    rec = small(SKUS)
    by_key = rec.recommend([["A-7", "Zed"]], k=3)
    by_id = rec.recommend([[1, 3]], k=3, ids=True)
    np.testing.assert_array_equal(by_key.ids, by_id.ids)
    for bad, msg in (([[8]], "item id 8 out of range 0..7"), ([[-1]], "item id -1 out of range")):
        with pytest.raises(ValueError, match=msg):
            rec.recommend(bad, ids=True)
    with pytest.raises(ValueError, match="ids must be integers"):
        rec.recommend([["A-7"]], ids=True)
    with pytest.raises(ValueError, match="out of range"):
        rec.recommend([[0]], items=[99], ids=True)


def test_wrong_shapes_of_histories_name_the_problem():
    rec = small()
    with pytest.raises(ValueError, match=r"histories\[0\] is str '1', not a history.*\[history\] for one user"):
        rec.recommend(["1", "2"])
    with pytest.raises(ValueError, match=r"histories\[0\] is int64"):
        rec.recommend(np.array([1, 2]))
    with pytest.raises(ValueError, match="histories must be a list of histories"):
        rec.recommend("12")
    with pytest.raises(ValueError, match="histories must be a list of histories"):
        rec.recommend(5)
    with pytest.raises(ValueError, match=r"histories\[1\] is NoneType"):
        rec.recommend([["1"], None])
    # a 2-D array: one history per row
    a = rec.recommend(np.array([[1, 2], [3, 4]]), k=2)
    b = rec.recommend([["1", "2"], ["3", "4"]], k=2)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_mapping_and_sequences_keep_the_user_keys():
    rec = small(SKUS)
    got = rec.recommend({"u1": ["A-7"], "u2": ["Zed", "1"]}, k=2)
    assert got.users.tolist() == ["u1", "u2"]
    frame = got.to_frame()
    assert frame.columns.tolist() == ["user", "rank", "item", "score"]
    assert frame["user"].tolist() == ["u1", "u1", "u2", "u2"] and frame["rank"].tolist() == [1, 2, 1, 2]
    assert list(got.records())[0][:3] == ("u1", 1, got.keys[0, 0])
    # a Sequences with its own keys (another numbering) is mapped through them
    seqs = Sequences.from_interactions(["b", "a", "a", "b"], ["Zed", "A-7", "nope", "1"])
    got2 = rec.recommend(seqs, k=2)
    assert got2.users.tolist() == ["a", "b"] and got2.n_unknown == 1
    np.testing.assert_array_equal(got2.ids, got.ids)
    # without keys: the model's ids
    raw = Sequences.from_lists([[1], [3, 5]], n_items=8)
    np.testing.assert_array_equal(rec.recommend(raw, k=2).ids, rec.recommend([[1], [3, 5]], k=2, ids=True).ids)
    with pytest.raises(ValueError, match="the model knows ids 0..7"):
        rec.recommend(Sequences.from_lists([[9]], n_items=10))
    with pytest.raises(ValueError, match=r"1 history key\(s\) the model does not know: 'nope'"):
        rec.recommend(seqs, unknown="raise")


def test_only_the_last_max_len_items_are_read_and_seen_covers_the_whole_history():
    rec = small()
    long = [str(i % 8) for i in range(12)]  # max_len 5
    a = rec.recommend([long], k=8, exclude_seen=False)
    b = rec.recommend([long[-5:]], k=8, exclude_seen=False)
    np.testing.assert_array_equal(a.ids, b.ids)
    got = rec.recommend([["0", "1", "2", "3", "4", "5", "6"]], k=3)
    assert got.ids[0].tolist() == [7, -1, -1]  # every item but 7 seen, though only 5 are read


def test_similar_items():
    rec = small(SKUS)
    E = rec.model.item_table().detach().numpy()
    En = E / np.linalg.norm(E, axis=1, keepdims=True)
    C = En @ En.T
    np.fill_diagonal(C, -np.inf)
    got = rec.similar_items(["A-7", "nope", "Zed"], k=3)
    assert got.users.tolist() == ["A-7", "nope", "Zed"] and got.n_unknown == 1
    assert got.ids[0].tolist() == np.argsort(-C[1], kind="stable")[:3].tolist()
    assert got.lengths.tolist() == [3, 0, 3]
    np.testing.assert_allclose(got.scores[2], np.sort(C[3])[::-1][:3], rtol=1e-5)
    got = rec.similar_items(["A-7"], k=10, items=["A-7", "Zed", "1"], exclude=["1"])
    assert got.keys[0].tolist() == ["Zed", None]
    with pytest.raises(ValueError, match="does not know: 'nope'"):
        rec.similar_items(["nope"], unknown="raise")


def test_construction_errors():
    model = SASRec(4, hidden=8, max_len=5)
    with pytest.raises(ValueError, match="3 item keys for a model of 4 items"):
        Recommender(model, ["a", "b", "c"])
    with pytest.raises(ValueError, match="not unique: a"):
        Recommender(model, ["a", "a", "b", "c"]).recommend([["b"]])
    with pytest.raises(TypeError, match="must be a tfllmer_fast backbone"):
        Recommender(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="expected a RunResult"):
        Recommender.from_run({"metrics": {}})
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Recommender(model, batch_size=0)
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            raise ValueError("CUDA is not available (skipped on a GPU machine)")
        Recommender(model, device="cuda")
    assert "SASRec, 4 items" in repr(Recommender(model))


def test_checkpoint_errors(tmp_path):
    from tfllmer_fast.train import CheckpointError

    with pytest.raises(FileNotFoundError):
        Recommender.from_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        Recommender.from_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="is not a tfllmer_fast checkpoint"):
        Recommender.from_checkpoint({"format": 2})


def test_damaged_weights_raise_instead_of_ranking_nan():
    rec = small()
    with torch.no_grad():
        rec.model.layers[0].ff1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf representations"):
        rec.recommend([["1"]])
    rec = small()
    with torch.no_grad():
        rec.model.item_emb.weight[3, 1] = float("nan")  # the row of item 2
    with pytest.raises(ValueError, match=r"item table has NaN or Inf rows \(items \[2\]"):
        rec.recommend([["1"]])


def test_blocks_do_not_change_the_lists(monkeypatch):
    """Many users in small blocks (sorted by length, trimmed) give the lists of one block."""
    from tfllmer_fast.serving import recommender

    rec = small(n=30)
    rng = np.random.default_rng(0)
    hist = [[str(i) for i in rng.integers(0, 30, rng.integers(0, 9))] for _ in range(101)]
    one = rec.recommend(hist, k=6)
    rec.batch_size = 7
    monkeypatch.setitem(recommender.ENCODER_TOKENS, "cpu", 20)  # blocks of 2 to 20 users
    many = rec.recommend(hist, k=6)
    np.testing.assert_allclose(rec.user_vectors(hist), small(n=30).user_vectors(hist), rtol=1e-6)
    np.testing.assert_array_equal(one.ids, many.ids)
    np.testing.assert_allclose(one.scores, many.scores, rtol=1e-6)


def test_keymap_never_rewrites_a_key():
    assert KeyMap(["1", "2", "30"]).lookup(["01", "030", "x", 30, "2"]).tolist() == [-1, -1, -1, 2, 1]
    assert KeyMap(["01", "1"]).lookup(["01", "1"]).tolist() == [0, 1]  # two keys, two items


def test_a_progress_bar_on_request(capsys):
    rec = small()
    rec.recommend([["1"], ["2", "3"]], k=2, progress=True)
    assert "recommend" in capsys.readouterr().err
    rec.recommend([["1"]], k=2)
    assert capsys.readouterr().err == ""


def test_a_model_in_training_mode_serves_without_dropout_from_several_threads():
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    model = SASRec(40, hidden=16, max_len=6).train()  # dropout 0.5 by default
    rec = Recommender(model, device="cpu")
    assert not rec.model.training
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 40, size=6).tolist() for _ in range(64)]
    want = rec.recommend(histories, k=5, ids=True).ids
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: rec.recommend(histories, k=5, ids=True).ids, range(16)))
    for ids in got:
        np.testing.assert_array_equal(ids, want)
    assert not rec.model.training
