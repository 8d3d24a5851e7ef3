"""Config fields as command-line flags: one flag per field a subcommand uses, with its help
and choices; an unset flag is distinct from ``none``; output paths checked before any work."""

from __future__ import annotations

import argparse
import os
import time
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from ..config import PRESETS, Config, flatten_config, load_config_file

#: The Config fields each subcommand reads (the others would do nothing there).
_DATA_FIELDS = ("dataset", "kcore", "synthetic_users", "synthetic_items", "synthetic_dim", "threads")
_GRAPH_FIELDS = ("graph_window", "graph_weighting")
COMMAND_FIELDS = {
    "graph": _DATA_FIELDS + _GRAPH_FIELDS,
    "reduce": _DATA_FIELDS + _GRAPH_FIELDS + ("embeddings", "lam", "hidden", "normalize_llm"),
}
_UNSET = object()  # a flag not given: distinct from None ("--flag none")


class UsageError(Exception):
    """An expected failure: printed as one line, exit code 2."""


def names_list(values, conv=str):
    """A list flag's values with commas as separators too (``--seeds 1,2`` = ``--seeds 1 2``),
    converted by ``conv``; None stays None (the flag was not given)."""
    if values is None:
        return None
    return [conv(v) for value in values for v in str(value).split(",") if v.strip()]


# ----- Config <-> argparse -----------------------------------------------------------------
def _none_or(conv):
    def parse(s: str):
        return None if s.lower() in ("none", "null") else conv(s)

    parse.__name__ = conv.__name__
    return parse


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {s!r}")


_HINTS = typing.get_type_hints(Config)


def add_config_flags(p: argparse.ArgumentParser, names=None) -> None:
    g = p.add_argument_group(
        "configuration (Config fields; a flag overrides the same field of --config and of --preset)"
    )
    for f in fields(Config):
        if names is not None and f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = _HINTS[f.name]
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = typing.get_args(hint) if is_union else ()
        nullable = type(None) in args
        base = next(a for a in args if a is not type(None)) if is_union else hint
        default = f.default if f.default is not MISSING else f.default_factory()
        choices = f.metadata.get("choices")
        text = f.metadata.get("help", "")
        if choices:
            text += f"; one of {', '.join(choices)}"
        text += f" (default: {'none' if default is None else default})"
        if nullable and base is not bool:
            text += "; 'none' for none"
        if base is bool and not nullable:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=_UNSET, help=text)
        elif typing.get_origin(base) is list:
            item = typing.get_args(base)[0]
            g.add_argument(flag, type=item, nargs="+", default=_UNSET, help=text, metavar=item.__name__.upper())
        else:
            conv = {int: int, float: float, str: str, bool: _bool}[base]
            g.add_argument(
                flag,
                type=_none_or(conv) if nullable else conv,
                default=_UNSET,
                help=text,
                metavar=base.__name__.upper(),
            )


def config_from_args(args, base: dict | None = None, fixed: dict | None = None) -> Config:
    """Config from ``base`` and the defaults, ``--preset``, ``--config FILE``, the flags given,
    then ``fixed`` (fields a subcommand sets whatever the file says)."""
    data = dict(base or {})
    preset = getattr(args, "preset", None)
    if preset:
        data.update(PRESETS[preset])
    if getattr(args, "config", None):
        data.update(flatten_config(load_config_file(args.config)))
    for f in fields(Config):
        v = getattr(args, f.name, _UNSET)
        if v is not _UNSET:
            data[f.name] = v
    data.update(fixed or {})
    return Config.from_dict(data)


def default_output(config: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(config.dataset).name}-{config.label}-seed{config.seed}-{stamp}"


def writable_folder(path: Path) -> Path:
    """Create ``path`` and check that files can be written there, before any work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to {path}: {e.strerror or e}; choose another --output folder") from None
    return path


def writable_file(path) -> Path:
    path = Path(path)
    writable_folder(path.parent if str(path.parent) else Path("."))
    return path


def npz_path(out) -> Path:
    """numpy appends .npz to a name without it; say so up front, so messages are right."""
    out = Path(out)
    return writable_file(out if out.suffix == ".npz" else out.with_name(out.name + ".npz"))
