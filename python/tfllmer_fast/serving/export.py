"""Export for a serving stack: the sequence encoder as ONNX, the item vectors, the keys.

:func:`export_onnx` writes into a folder:

* ``encoder.onnx``: history -> user vector. Input ``item_ids``, int64, shape
  ``(batch, length)`` (both dynamic): 0-based item ids, oldest first, right-aligned, ``-1``
  padding on the left only; only the last ``input_width`` columns are read (longer rows
  are fine). Output ``user_vectors``, float32, ``(batch, dim)``. An id ``>= n_items`` makes
  the run fail (the lookup goes past the table).
* ``item_vectors.npy``: float32 ``(n_items, dim)``, row = item id.
  ``user_vectors @ item_vectors.T`` are the model's scores (up to float rounding): the
  normalisation and the temperature are folded into the item vectors, and a model with an
  output bias (BERT4Rec with unnormalised items) has one more coordinate, 1 in the user
  vector and ``bias / temperature`` in the item vector. Top-k runs outside the graph: a
  matrix product and ``argpartition``, or an inner-product ANN index over these rows.
* ``item_keys.json``: the key of every item (a JSON list, index = id).
* ``manifest.json``: what the files are (shapes, names, the padding rule, the score
  formula, the model's settings, the files' SHA-256) and the check of the graph under
  onnxruntime against torch (largest absolute difference over a few random histories);
  written last, so a folder with a manifest is complete.

Needs ``onnx`` and ``onnxscript`` (``pip install "tfllmer_fast[serve]"``, which adds
onnxruntime for the check). SASRec and BERT4Rec go through torch's ``torch.export``-based
converter; GRU4Rec through its TorchScript-based one, which maps ``nn.GRU`` to ONNX's GRU
operator (the ``torch.export`` path cannot decompose ``aten.gru`` in torch 2.13).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_open
from .._version import __version__
from ._encoder import UserEncoder, has_bias, input_width

#: Version of the folder layout written by :func:`export_onnx`.
EXPORT_FORMAT = 1
#: Largest absolute difference allowed between onnxruntime and torch in the check.
TOLERANCE = 1e-4
INPUT, OUTPUT = "item_ids", "user_vectors"
_SINGLE_FILE_LIMIT = int(1.9 * 2**30)  # protobuf's 2 GiB, less room for the graph itself


def export_onnx(recommender, out_dir, *, overwrite: bool = False, check: bool = True) -> dict:
    """Write the serving files of ``recommender`` into ``out_dir`` (see the module
    docstring) and return the manifest.

    Parameters
    ----------
    recommender : Recommender
    out_dir : path
        Created if needed; an existing folder that holds files needs ``overwrite``.
    check : bool
        Run the graph under onnxruntime (when installed) on random histories and compare
        with torch; a difference above :data:`TOLERANCE` raises (nothing is left behind
        but the files already written, and no manifest).
    """
    _require("onnx", "onnxscript")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty; choose another folder or pass overwrite=True (--overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)

    model = copy.deepcopy(recommender.model).cpu().float().eval()
    table_bytes = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * 4 for b in model.buffers())
    if table_bytes > _SINGLE_FILE_LIMIT:
        raise ValueError(
            f"the encoder's weights take {table_bytes / 2**30:.1f} GiB, over ONNX's 2 GiB single-file limit"
        )
    enc = UserEncoder(model).eval()
    exporter = "torchscript" if _has_rnn(model) else "torch.export"
    graph = _export_graph(enc, exporter)
    with atomic_open(out / "encoder.onnx") as f:
        f.write(graph)
    vectors = recommender.item_vectors()
    with atomic_open(out / "item_vectors.npy") as f:
        np.save(f, vectors)
    keys = recommender.item_keys.tolist()
    with atomic_open(out / "item_keys.json", "w") as f:
        json.dump(keys, f)

    verification = _check(graph, enc) if check else None
    if verification is not None and verification["max_abs_diff"] > TOLERANCE:
        raise ValueError(
            f"the exported encoder differs from torch by {verification['max_abs_diff']:.3g} "
            f"(> {TOLERANCE}) under onnxruntime {verification['onnxruntime']}: not written"
        )
    manifest = {
        "format": EXPORT_FORMAT,
        "tfllmer_fast": __version__,
        "torch": torch.__version__,
        "model": type(model).__name__,
        "n_items": int(model.n_items),
        "hidden": int(model.hidden),
        "dim": int(vectors.shape[1]),
        "max_len": int(model.max_len),
        "input_width": input_width(model),
        "normalize_items": bool(model.normalize_items),
        "normalize_hidden": bool(model.normalize_hidden),
        "temperature": float(model.temperature),
        "bias_coordinate": has_bias(model),
        "scores": "user_vectors @ item_vectors.T",
        "encoder": {
            "file": "encoder.onnx",
            "exporter": exporter,
            "input": {
                "name": INPUT,
                "dtype": "int64",
                "shape": ["batch", "length"],
                "layout": "0-based item ids, oldest first, right-aligned; -1 pads on the left only; "
                f"the last {input_width(model)} columns are read",
            },
            "output": {"name": OUTPUT, "dtype": "float32", "shape": ["batch", int(vectors.shape[1])]},
        },
        "item_vectors": {"file": "item_vectors.npy", "dtype": "float32", "shape": list(vectors.shape)},
        "item_keys": {"file": "item_keys.json"},
        "check": verification,
        "sha256": {name: _sha256(out / name) for name in ("encoder.onnx", "item_vectors.npy", "item_keys.json")},
    }
    with atomic_open(out / "manifest.json", "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _export_graph(enc: UserEncoder, exporter: str) -> bytes:
    width = enc.width
    example = torch.randint(0, enc.n_items, (2, max(2, min(width, 3))))
    example[0, 0] = -1
    buf = io.BytesIO()
    with _quiet():
        if exporter == "torchscript":
            torch.onnx.export(
                enc,
                (example,),
                buf,
                dynamo=False,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "batch", 1: "length"}, OUTPUT: {0: "batch"}},
                opset_version=17,
            )
            return buf.getvalue()
        dims = {"item_ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}}
        program = torch.onnx.export(
            enc,
            (example,),
            dynamo=True,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=dims,
            verbose=False,
        )
        return program.model_proto.SerializeToString()


def _check(graph: bytes, enc: UserEncoder) -> dict | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    shapes = [(1, 1), (3, enc.width), (4, enc.width + 3), (2, max(1, enc.width // 2))]
    for b, length in shapes:
        x = torch.randint(0, enc.n_items, (b, length), generator=g)
        x[0, : length // 2] = -1  # a padded row
        with torch.no_grad():
            ref = enc(x).numpy()
        got = sess.run([OUTPUT], {INPUT: x.numpy()})[0]
        worst = max(worst, float(np.abs(got - ref).max()))
    return {"onnxruntime": ort.__version__, "shapes": [list(s) for s in shapes], "max_abs_diff": worst}


def _has_rnn(model) -> bool:
    return any(isinstance(m, torch.nn.RNNBase) for m in model.modules())


@contextmanager
def _quiet():
    """The converters' own warnings and log lines (deprecations, missing torchvision) are
    not the user's business: the check after the export is what tells."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f'exporting needs {", ".join(missing)}: pip install "tfllmer_fast[serve]"')


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(folder) -> dict:
    """The manifest of an export folder, checked: format, files present and their SHA-256."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not an export folder, or the export did not finish")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path}: export format {manifest.get('format')!r}, this version reads {EXPORT_FORMAT}")
    for name, digest in manifest["sha256"].items():
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing")
        if _sha256(folder / name) != digest:
            raise ValueError(f"{folder / name} does not match the manifest (changed or damaged)")
    return manifest
