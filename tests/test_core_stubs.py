"""python/tfllmer_fast/_core.pyi must describe exactly what the extension module exports.

Type checkers read only the stub, so a function bound in C++ but missing from it looks like
an error to them, and a stub entry the module lacks hides a real AttributeError. Besides the
names, parameter names, order and defaults are compared with the signatures pybind11 writes
into each docstring.
"""

import ast
from pathlib import Path

import pytest

import tfllmer_fast
from tfllmer_fast import _core

STUB = Path(tfllmer_fast.__file__).with_name("_core.pyi")


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(), filename=str(STUB))


def _stub_top_level(tree: ast.Module) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            names.update((t.id, node) for t in node.targets if isinstance(t, ast.Name))
    return names


def _stub_members(cls: ast.ClassDef) -> dict[str, ast.AST]:
    members: dict[str, ast.AST] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            members[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members[node.target.id] = node
    return members


def _runtime_names() -> set[str]:
    return {n for n in dir(_core) if not _is_dunder(n)}


def _runtime_members(cls: type) -> dict[str, object]:
    # Own attributes only: the rest comes from pybind11's base object. __init__ counts as
    # soon as the class binds a constructor; other underscore names are pybind11 internals.
    return {n: v for n, v in vars(cls).items() if n == "__init__" or not n.startswith("_")}


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:])
    return [p.strip() for p in parts]


def _runtime_params(func, name: str) -> list[tuple[str, object]]:
    """[(parameter, default or ...)] from pybind11's signature line, self dropped."""
    line = (func.__doc__ or "").lstrip().splitlines()[0]
    assert line.startswith(name + "("), f"{name}: no pybind11 signature in its docstring: {line!r}"
    depth = 0
    for end, ch in enumerate(line):  # noqa: B007 (end is read after the loop)
        depth += ch == "("
        depth -= ch == ")"
        if ch == ")" and depth == 0:
            break
    params = []
    for part in _split_top_level(line[len(name) + 1 : end]):
        head, _, default = part.partition(" = ")
        pname = head.split(":")[0].strip()
        if pname != "self":
            params.append((pname, ast.literal_eval(default) if default else ...))
    return params


def _stub_params(fn: ast.FunctionDef) -> list[tuple[str, object]]:
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults = [...] * (len(positional) - len(args.defaults)) + [ast.literal_eval(d) for d in args.defaults]
    params = [(a.arg, d) for a, d in zip(positional, defaults)]
    params += [(a.arg, ... if d is None else ast.literal_eval(d)) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return [p for p in params if p[0] != "self"]


def _is_property(fn: ast.AST) -> bool:
    return isinstance(fn, ast.FunctionDef) and any(
        isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list
    )


def test_stub_names_exactly_the_module_exports():
    stub = set(_stub_top_level(_stub_tree()))
    runtime = _runtime_names()
    assert not runtime - stub, f"exported by _core but missing from {STUB.name}: {sorted(runtime - stub)}"
    assert not stub - runtime, f"named in {STUB.name} but not exported by _core: {sorted(stub - runtime)}"


def test_stub_classes_list_exactly_their_members():
    stub = _stub_top_level(_stub_tree())
    classes = [n for n in sorted(_runtime_names()) if isinstance(getattr(_core, n), type)]
    assert classes, "expected _core to export at least one class"
    for name in classes:
        assert isinstance(stub.get(name), ast.ClassDef), f"{name} is a class in _core but not in the stub"
        runtime = _runtime_members(getattr(_core, name))
        members = _stub_members(stub[name])
        missing, extra = set(runtime) - set(members), set(members) - set(runtime)
        assert not missing, f"{name}: members missing from the stub: {sorted(missing)}"
        assert not extra, f"{name}: stub members the class lacks: {sorted(extra)}"
        for member, value in runtime.items():
            assert isinstance(value, property) == _is_property(members[member]), (
                f"{name}.{member}: property in one of the module and the stub only"
            )


def _callables():
    stub = _stub_top_level(_stub_tree())
    for name in sorted(_runtime_names()):
        obj = getattr(_core, name)
        if isinstance(obj, type):
            members = _stub_members(stub[name]) if isinstance(stub.get(name), ast.ClassDef) else {}
            for member, value in _runtime_members(obj).items():
                if not isinstance(value, property):
                    yield f"{name}.{member}", member, getattr(obj, member), members.get(member)
        elif callable(obj):
            yield name, name, obj, stub.get(name)


CALLABLES = list(_callables())


@pytest.mark.parametrize("qualname, name, func, stub_fn", CALLABLES, ids=[c[0] for c in CALLABLES])
def test_stub_signatures_match_the_bindings(qualname, name, func, stub_fn):
    assert isinstance(stub_fn, ast.FunctionDef), f"{qualname}: not a function in the stub"
    assert _stub_params(stub_fn) == _runtime_params(func, name), f"{qualname}: parameters differ"
