"""YAML loading, bounded, that remembers where every value came from.

Every YAML document opsloop reads — ``opsloop.yaml``, deployment documents, Kubernetes
manifests read back, ``MLmodel`` files, parameter values — is parsed here, with limits:

- size: :data:`MAX_BYTES` (smaller where the caller says so);
- nesting: :data:`MAX_DEPTH` levels of lists and mappings, aliases included;
- aliases: together they may add at most :data:`MAX_ALIAS_NODES` values to the document (small
  anchors, such as shared defaults, load; a "billion laughs" does not), and none may refer to
  a node that contains it;
- tags: only the plain YAML types (no ``!!python/...``, no application tags);
- mapping keys: plain values only, each once (PyYAML silently keeps the last duplicate).

The limits are checked on the parser's event stream, which is produced without recursion,
before the node graph is composed (PyYAML's composer recurses once per nesting level), so
every refusal is one :class:`~opsloop.errors.SpecError` naming the file and line, in
milliseconds. Composing keeps positions, so an error about ``train.tune.trials`` can name the
line it is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from opsloop.errors import SpecError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "Loc",
    "line_for",
    "load_yaml",
    "load_yaml_all",
    "load_yaml_with_lines",
    "read_text",
]

Loc = tuple[str | int, ...]

#: Largest document read, in bytes (characters, for text given directly).
MAX_BYTES = 2 * 1024 * 1024
#: Deepest nesting of lists and mappings, counted through aliases.
MAX_DEPTH = 100
#: Most values all aliases of one document may stand for, counted as if expanded.
MAX_ALIAS_NODES = 10_000

# libyaml when PyYAML was built with it: several times faster, same events and marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"
_TAGS = frozenset(
    {"!", f"{_CORE}merge"} | {t for t in yaml.SafeLoader.yaml_constructors if t is not None}
)


def _one_line(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:59] + "…")


def _syntax_error(exc: yaml.YAMLError, file: str) -> SpecError:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return SpecError(f"invalid YAML: {_one_line(exc)}", file=file)
    mark = exc.problem_mark
    line = mark.line + 1 if mark is not None else None
    col = f", column {mark.column + 1}" if mark is not None else ""
    ctx = exc.context_mark
    started = (
        f" ({exc.context} on line {ctx.line + 1})"
        if ctx is not None and exc.context and (mark is None or ctx.line != mark.line)
        else ""
    )
    return SpecError(_one_line(f"invalid YAML{col}: {exc.problem}{started}"), file=file, line=line)


def _check_size(text: str, file: str, max_bytes: int) -> None:
    if len(text) > max_bytes:
        raise SpecError(
            f"too large: {len(text):,} characters; the limit is {max_bytes:,}", file=file
        )


# One loop over the event stream with a branch per event kind; split, the stack it keeps would
# have to be passed around.
def _check_events(text: str, file: str, max_depth: int, max_alias_nodes: int) -> None:  # noqa: C901
    """Walk the event stream once and refuse what the limits forbid (see the module text).

    Each open collection keeps [anchor, values inside it, levels of collections below it,
    is a mapping, children seen]; an anchor remembers the values and levels of its node, so an
    alias costs what it expands to.
    """
    stack: list[list[Any]] = []
    # anchor -> (values, height, is a scalar)
    anchors: dict[str, tuple[int, int, bool]] = {}
    alias_nodes = 0

    def fail(message: str, event: yaml.Event) -> SpecError:
        mark = event.start_mark
        return SpecError(message, file=file, line=mark.line + 1 if mark is not None else None)

    def at_key() -> bool:
        return bool(stack) and stack[-1][3] and stack[-1][4] % 2 == 0

    def add(size: int, height: int) -> None:
        if stack:
            top = stack[-1]
            top[1] += size
            top[2] = max(top[2], height)
            top[4] += 1

    not_plain_key = "a mapping key must be a plain value, not a list or a mapping"

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.NodeEvent) and not isinstance(event, yaml.AliasEvent):
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _TAGS:
                shown = "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag
                raise fail(f"tag {_show(shown)} is not allowed: only plain YAML values", event)
        if isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0, True)
            add(1, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= max_depth:
                raise fail(f"nested deeper than {max_depth} levels", event)
            if at_key():
                raise fail(not_plain_key, event)
            stack.append([event.anchor, 0, 0, isinstance(event, yaml.MappingStartEvent), 0])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size, below, _, _ = stack.pop()
            if anchor is not None:
                anchors[anchor] = (size + 1, below + 1, False)
            add(size + 1, below + 1)
        elif isinstance(event, yaml.AliasEvent):
            if any(frame[0] == event.anchor for frame in stack):
                raise fail(f"alias *{event.anchor} refers to a node that contains it", event)
            # An undefined alias is left to the composer, whose message says so.
            size, height, scalar = anchors.get(event.anchor or "", (1, 0, True))
            if at_key() and not scalar:
                raise fail(not_plain_key, event)
            if len(stack) + height > max_depth:
                raise fail(f"nested deeper than {max_depth} levels (at *{event.anchor})", event)
            alias_nodes += size
            if alias_nodes > max_alias_nodes:
                raise fail(
                    f"aliases expand to more than {max_alias_nodes:,} values "
                    f"(at *{event.anchor}); write the values out or use fewer aliases",
                    event,
                )
            add(size, height)
        elif isinstance(event, yaml.DocumentStartEvent):
            anchors.clear()


def _walk(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str, seen: set[int], unique: bool
) -> None:
    lines[loc] = node.start_mark.line + 1
    # An alias is the very node it names: its values were checked and placed where the anchor
    # is, and walking them again per alias would cost what the alias expands to.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if unique and key in keys:
                raise SpecError(
                    f"duplicate key {_show(key)} (first on line {keys[key]})",
                    file=file,
                    line=line,
                    field=".".join(str(p) for p in (*loc, key)),
                )
            keys[key] = line
            _walk(value_node, (*loc, key), lines, file, seen, unique)
            # A key's own line is the better pointer for errors about the key.
            lines[(*loc, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines, file, seen, unique)


def _load(
    text: str,
    file: str,
    *,
    many: bool,
    max_bytes: int,
    max_depth: int,
    max_alias_nodes: int,
    unique_keys: bool = True,
) -> list[tuple[Any, dict[Loc, int]]]:
    _check_size(text, file, max_bytes)
    try:
        _check_events(text, file, max_depth, max_alias_nodes)
        loader = _Loader(text)
        try:
            nodes: list[yaml.Node] = []
            if many:
                while loader.check_node():
                    node = loader.get_node()
                    if node is not None:
                        nodes.append(node)
            else:
                single = loader.get_single_node()
                nodes = [single] if single is not None else []
            out: list[tuple[Any, dict[Loc, int]]] = []
            for node in nodes:
                lines: dict[Loc, int] = {}
                _walk(node, (), lines, file, set(), unique_keys)
                out.append((loader.construct_document(node), lines))
            return out
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, file) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # A scalar the constructor cannot turn into its type (an integer of 5,000 digits, the
        # 13th month of a timestamp).
        raise SpecError(f"invalid value: {_one_line(exc)}", file=file) from None


def load_yaml_with_lines(
    text: str,
    file: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
) -> tuple[Any, dict[Loc, int]]:
    """Parse one YAML document; return the data and a map from each value's path to its line.

    Args:
        text: The YAML text.
        file: Its path (or another name of its origin), for messages.
        max_bytes: Longest text accepted, in characters.
        max_depth: Deepest nesting of lists and mappings.
        max_alias_nodes: Most values the document's aliases may stand for.

    Raises:
        SpecError: The text is not YAML, breaks a limit, or repeats a key; names file and line.
    """
    docs = _load(
        text,
        file,
        many=False,
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_alias_nodes=max_alias_nodes,
    )
    return docs[0] if docs else (None, {})


def load_yaml(
    text: str,
    file: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    unique_keys: bool = True,
) -> Any:
    """Parse one YAML document with the limits of :func:`load_yaml_with_lines`.

    ``unique_keys=False`` lets a repeated key through (the last one wins), for a reader that
    only wants whatever can still be read of a document refused elsewhere.
    """
    docs = _load(
        text,
        file,
        many=False,
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_alias_nodes=max_alias_nodes,
        unique_keys=unique_keys,
    )
    return docs[0][0] if docs else None


def load_yaml_all(
    text: str,
    file: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
) -> list[Any]:
    """Parse every document of a YAML stream (``---`` separated).

    The limits hold for the whole stream: its aliases share one budget.
    """
    docs = _load(
        text,
        file,
        many=True,
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_alias_nodes=max_alias_nodes,
    )
    return [data for data, _ in docs]


def line_for(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of its nearest ancestor that has one."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def read_text(path: Path, *, max_bytes: int = MAX_BYTES) -> str:
    """Read a YAML file as UTF-8, at most ``max_bytes``, with errors that name the file."""
    try:
        with path.open("rb") as fh:
            # One byte more than allowed tells "too large" apart from "exactly the limit"
            # without reading a file of any size into memory.
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise SpecError("file does not exist", file=str(path)) from exc
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    if len(raw) > max_bytes:
        raise SpecError(f"too large: more than {max_bytes:,} bytes", file=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"not UTF-8 (byte {exc.start})", file=str(path), line=line) from exc
