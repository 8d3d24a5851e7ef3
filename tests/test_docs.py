"""Every Python code block of the README and of every documentation page runs.

The blocks of one page run in order as one session (a later block may use names of an
earlier one of the same page), in a fresh temporary folder holding a copy of ``studies/``,
with no shared datasets: a newcomer without them can paste any block. So the pages cannot
drift from the API."""

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
#: What a block needs that a test machine may lack: the block is skipped without it.
OPTIONAL = {"embed_texts": "sentence_transformers", "onnxruntime": "onnxruntime"}


def python_blocks(text: str) -> list[tuple[int, str]]:
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def run_page(name: str, text: str, namespace: dict | None = None) -> dict:
    """Run every Python block of ``text``; an AssertionError names the failing block."""
    namespace = {"__name__": "docs"} if namespace is None else namespace
    for line, code in python_blocks(text):
        missing = [mod for word, mod in OPTIONAL.items() if word in code and importlib.util.find_spec(mod) is None]
        if missing:
            continue
        try:
            exec(compile(code, f"{name}:{line}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"{name} block at line {line} failed: {type(e).__name__}: {e}") from e
    return namespace


@pytest.fixture
def page_folder(tmp_path, monkeypatch, one_thread):
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    monkeypatch.chdir(tmp_path)
    # No shared data: every block must run on built-in or generated data.
    monkeypatch.setenv("TFLLMER_DATA", str(tmp_path / "no-shared-data"))
    (tmp_path / "no-shared-data").mkdir()
    return tmp_path


def test_the_pages_have_python_blocks():
    assert len(python_blocks((ROOT / "README.md").read_text())) >= 1
    assert sum(len(python_blocks(p.read_text())) for p in PAGES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_of_the_page_runs(page, page_folder):
    run_page(str(page.relative_to(ROOT)), page.read_text())


def test_a_broken_block_fails_the_page(page_folder):
    page = "ok\n```python\nx = 1\n```\n\n```python\ny = x + undefined_name\n```\n"
    with pytest.raises(AssertionError, match=r"page.md block at line 6 failed: NameError"):
        run_page("page.md", page)


#: The modules whose public names the API reference shows (docs/reference/).
REFERENCE_MODULES = [
    "tfllmer_fast",
    "tfllmer_fast.data",
    "tfllmer_fast.graph",
    "tfllmer_fast.train",
    "tfllmer_fast.experiment.config",
    "tfllmer_fast.experiment.run",
    "tfllmer_fast.experiment.results",
    "tfllmer_fast.experiment.study",
]


@pytest.mark.parametrize("module", REFERENCE_MODULES)
def test_every_public_function_and_class_has_a_docstring(module):
    import importlib
    import inspect

    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
    missing = []
    for name in names:
        obj = getattr(mod, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith("tfllmer_fast"):
            if not (inspect.getdoc(obj) or "").strip():
                missing.append(name)
    assert missing == [], f"{module}: no docstring for {missing}"
