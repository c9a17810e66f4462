"""Load and validate ``opsloop.yaml``; every error names the file, line and field.

An unknown key or value close to a known one is named with the near miss (``trian`` → "did
you mean 'train'?"), at every level of the schema.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from opsloop.errors import SpecError
from opsloop.spec.schema import ProjectSpec
from opsloop.spec.yamlpos import Loc, line_for, load_yaml_with_lines, read_text

if typing.TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

SPEC_FILE = "opsloop.yaml"


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'train'?"`` for the closest of ``choices``, or ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close and word.lower() in {c.lower() for c in choices}:
        close = [c for c in choices if c.lower() == word.lower()]
    return f"; did you mean '{close[0]}'?" if close else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``Model | None`` → ``Model``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _keys_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str]:
    """The keys the schema allows in the mapping at ``loc`` (under ``model``)."""
    current: Any = model
    for part in loc:
        found = _model_in(current)
        if found is not None:
            field = found.model_fields.get(str(part)) or next(
                (f for f in found.model_fields.values() if f.alias == part), None
            )
            if field is None:
                return []
            current = field.annotation
            continue
        args = typing.get_args(current)
        origin = typing.get_origin(current)
        if origin in (list, tuple) and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return []
    found = _model_in(current)
    if found is None:
        return []
    return [f.alias or name for name, f in found.model_fields.items()]


def _describe(
    err: dict[str, object], model: type[BaseModel] | None = None, prefix_len: int = 0
) -> str:
    kind = err.get("type")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        raw = err.get("loc", ())
        loc: tuple[Any, ...] = tuple(raw) if isinstance(raw, tuple | list) else ()
        allowed = _keys_at(model, loc[prefix_len:-1]) if loc else []
        return "unknown key" + did_you_mean(loc[-1] if loc else None, allowed)
    if kind == "missing":
        return "required field is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if "input" in err and kind not in ("model_type", "dict_type", "value_error"):
        return f"{msg} (got {err['input']!r})"
    return msg


def spec_error(
    exc: ValidationError,
    lines: dict[Loc, int],
    file: str,
    prefix: Loc = (),
    model: type[BaseModel] | None = None,
) -> SpecError:
    """One SpecError for a pydantic error: the first problem by line, listing the others.

    Args:
        exc: The validation error.
        lines: Where each value of the document is (from ``load_yaml_with_lines``).
        file: The document's path.
        prefix: Path of the validated section inside the document (``("alerts",)``).
        model: The model validated, to name the key an unknown key nearly is.
    """
    problems = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        field = ".".join(str(p) for p in loc)
        described = _describe({**err, "loc": loc}, model, len(prefix))
        problems.append((line_for(lines, loc), field, described))
    problems.sort(key=lambda p: (p[0] or 0, p[1]))
    line, field, message = problems[0]
    if len(problems) > 1:
        more = "; ".join(f"line {ln}: '{f}': {m}" for ln, f, m in problems[1:])
        message = f"{message} (and {len(problems) - 1} more: {more})"
    return SpecError(message, file=file, line=line, field=field)


def parse_spec(text: str, file: str = SPEC_FILE) -> ProjectSpec:
    """Validate spec text; raise SpecError for the first problem, listing all of them."""
    data, lines = load_yaml_with_lines(text, file)
    if data is None:
        raise SpecError("the file is empty; it needs at least 'project: NAME'", file=file, line=1)
    if not isinstance(data, dict):
        raise SpecError("the top level must be a mapping of keys to values", file=file, line=1)
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as exc:
        raise spec_error(exc, lines, file, model=ProjectSpec) from exc


def load_spec(path: Path) -> ProjectSpec:
    """Read and validate the spec at ``path`` (a file, or a folder holding opsloop.yaml)."""
    if path.is_dir():
        path = path / SPEC_FILE
    return parse_spec(read_text(path), str(path))


def find_project_dir(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds an opsloop.yaml."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / SPEC_FILE).is_file():
            return d
    return None


M = TypeVar("M", bound=BaseModel)


def load_section(path: Path, key: str, model: type[M]) -> M:
    """Validate one top-level section of a YAML file (``opsloop.yaml``) against a model.

    A missing section validates as an empty one.

    Args:
        path: The file, or a folder holding ``opsloop.yaml``.
        key: The top-level key (``alerts``, ``remediation``).
        model: The pydantic model of the section.

    Raises:
        SpecError: The file cannot be read, or the section is invalid; names file, line, field.
    """
    if path.is_dir():
        path = path / SPEC_FILE
    file = str(path)
    data, lines = load_yaml_with_lines(read_text(path), file)
    if data is not None and not isinstance(data, dict):
        raise SpecError("the top level must be a mapping of keys to values", file=file, line=1)
    section = (data or {}).get(key)
    try:
        return model.model_validate({} if section is None else section)
    except ValidationError as exc:
        raise spec_error(exc, lines, file, (key,)) from exc
