"""The exported encoder under onnxruntime equals torch (within 1e-5) and gives the same
top-10; the folder holds what the manifest says."""

import json

import numpy as np
import pytest

from tfllmer_fast.serving import Recommender, export_onnx, load_manifest

from .conftest import BACKBONES

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'tfllmer_fast[serve]')")
pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install 'tfllmer_fast[serve]')")

CASES = [(b, "default") for b in BACKBONES] + [("bert4rec", "bias")]


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    cache = {}

    def get(backbone, variant):
        if (backbone, variant) not in cache:
            rec = Recommender.from_checkpoint(checkpoints(backbone, "frozen+delta", variant), device="cpu")
            out = tmp_path_factory.mktemp(f"export-{backbone}-{variant}")
            cache[backbone, variant] = rec, out, export_onnx(rec, out, overwrite=True)
        return cache[backbone, variant]

    return get


@pytest.mark.parametrize("backbone,variant", CASES)
def test_onnx_encoder_equals_torch_and_gives_the_same_top_10(backbone, variant, exported, synthetic_sequences):
    rec, out, manifest = exported(backbone, variant)
    assert load_manifest(out) == manifest
    assert manifest["check"]["max_abs_diff"] <= 1e-5
    assert manifest["bias_coordinate"] == (variant == "bias")
    sess = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    seqs = synthetic_sequences
    keys = json.loads((out / "item_keys.json").read_text())
    assert keys == rec.item_keys.tolist()
    hist = [[keys[i] for i in seqs.user(u)] for u in range(seqs.n_users)]
    x = rec.encoder_inputs(hist)
    assert x.shape == (seqs.n_users, manifest["input_width"]) and x.dtype == np.int64
    u_onnx = sess.run(["user_vectors"], {"item_ids": x})[0]
    u_torch = rec.user_vectors(hist)
    np.testing.assert_allclose(u_onnx, u_torch, atol=1e-5, rtol=0)
    V = np.load(out / "item_vectors.npy")
    np.testing.assert_array_equal(V, rec.item_vectors())
    top = np.argsort(-(u_onnx @ V.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(top, rec.recommend(hist, k=10, exclude_seen=False).ids)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_onnx_axes_are_dynamic_and_bad_ids_fail(backbone, exported):
    rec, out, manifest = exported(backbone, "default")
    sess = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    w, n = manifest["input_width"], manifest["n_items"]
    rng = np.random.default_rng(0)
    for b, length in [(1, 1), (5, w), (2, w + 7), (3, 2)]:
        x = rng.integers(0, n, (b, length))
        x[0, : length // 2] = -1
        got = sess.run(None, {"item_ids": x})[0]
        hist = [[int(i) for i in row if i >= 0] for row in x]
        np.testing.assert_allclose(got, rec.user_vectors(hist, ids=True), atol=1e-5, rtol=0)
    x = np.array([[0, n]])  # an id past the catalogue: an error, not another row
    with pytest.raises(Exception, match="(?i)indices|out of bounds|invalid"):
        sess.run(None, {"item_ids": x})


def test_the_export_folder_rules(exported, tmp_path):
    rec, out, _ = exported("gru4rec", "default")
    with pytest.raises(ValueError, match="is not empty"):
        export_onnx(rec, out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        export_onnx(rec, tmp_path / "file")
    # a changed file no longer matches the manifest
    damaged = tmp_path / "damaged"
    export_onnx(rec, damaged, check=False)
    assert json.loads((damaged / "manifest.json").read_text())["check"] is None
    vectors = np.load(damaged / "item_vectors.npy")
    np.save(damaged / "item_vectors.npy", vectors * 2)
    with pytest.raises(ValueError, match="does not match the manifest"):
        load_manifest(damaged)
    (damaged / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="not an export folder"):
        load_manifest(damaged)


def test_a_missing_exporter_package_says_which_extra(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    from tfllmer_fast.train import SASRec

    with pytest.raises(ImportError, match=r"exporting needs onnx: pip install \"tfllmer_fast\[serve\]\""):
        export_onnx(Recommender(SASRec(4, hidden=8, max_len=3)), tmp_path / "x")
