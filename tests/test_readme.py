"""Every Python code block of the README runs, in order, as one session (later blocks may use
names of earlier ones), so the README cannot drift from the API. Blocks run in a temporary
folder holding a copy of ``studies/``, with ``TFLLMER_DATA`` pointing at the shared
datasets."""

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def python_blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_the_readme_has_python_blocks():
    assert len(python_blocks()) >= 8


# Beauty has 7 items without a title: the README's diagnostics report them, as documented.
@pytest.mark.filterwarnings("ignore:.*embedding rows have zero norm:RuntimeWarning")
def test_every_python_block_of_the_readme_runs(data_dir, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("TFLLMER_DATA", str(data_dir))
    shutil.copytree(README.parent / "studies", tmp_path / "studies")  # paths of a checkout
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for line, code in python_blocks():
        if "embed_texts" in code and importlib.util.find_spec("sentence_transformers") is None:
            continue  # the `text` extra is not installed here (CI installs it)
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"README.md block at line {line} failed: "
                                 f"{type(e).__name__}: {e}") from e
    assert os.path.exists("runs/demo/results.json")
