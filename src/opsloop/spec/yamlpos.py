"""YAML loading that remembers where every value came from.

PyYAML's safe loader drops positions; composing the node graph keeps them, so an error about
``train.tune.trials`` can name the line it is on. Duplicate keys, which PyYAML accepts
silently (the last one wins), are refused here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from opsloop.errors import SpecError

Loc = tuple[str | int, ...]


def load_yaml_with_lines(text: str, file: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text; return the data and a map from each value's path to its 1-based line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        col = f", column {mark.column + 1}" if mark is not None else ""
        ctx = exc.context_mark
        started = (
            f" ({exc.context} on line {ctx.line + 1})"
            if ctx is not None and exc.context and (mark is None or ctx.line != mark.line)
            else ""
        )
        raise SpecError(f"invalid YAML{col}: {exc.problem}{started}", file=file, line=line) from exc
    if node is None:
        return None, {}
    lines: dict[Loc, int] = {}
    _walk(node, (), lines, file)
    data = yaml.SafeLoader(text).get_single_data()
    return data, lines


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpecError(
                    f"duplicate key '{key}' (first on line {seen[key]})",
                    file=file,
                    line=line,
                    field=".".join(str(p) for p in (*loc, key)),
                )
            seen[key] = line
            _walk(value_node, (*loc, key), lines, file)
            # A key's own line is the better pointer for errors about the key.
            lines[(*loc, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines, file)


def line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of its nearest ancestor that has one."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def read_text(path: Path) -> str:
    """Read a spec file as UTF-8, with errors that name the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise SpecError("file does not exist", file=str(path)) from exc
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"not UTF-8 (byte {exc.start})", file=str(path), line=line) from exc
