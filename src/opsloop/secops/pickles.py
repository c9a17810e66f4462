"""Telling a pickle from any other file, without running it.

A pure primitive shared by the registry (which refuses a model folder holding a pickle) and
the model scanner (which reads the globals of every pickle it finds).
"""

from __future__ import annotations

import io
import pickletools

__all__ = ["PICKLE_MAX_OPCODES", "PICKLE_SUFFIXES", "is_pickle"]

#: Opcodes after which a still well-formed stream is taken for a pickle (bounds the time).
PICKLE_MAX_OPCODES = 100_000

#: Files that are (or usually are) pickles, by their suffix.
PICKLE_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".jbl", ".sav", ".dill", ".cloudpickle", ".pt", ".pth"}
)


def is_pickle(data: bytes) -> bool:
    """Whether ``data`` (a whole file, or its start) is a pickle of any protocol.

    Protocols 2-5 start with the PROTO opcode. Protocols 0 and 1 have no header: their opcode
    stream is parsed (never executed) and must be well formed (known opcodes with valid
    arguments, a consistent stack and memo) and end in STOP with nothing left on the stack;
    pickle.load ignores what follows STOP, and so does this. A stream still well formed after
    ``PICKLE_MAX_OPCODES`` opcodes counts too. Ordinary files (text, CSV, JSON, YAML, Parquet,
    zip) break the rules within their first bytes; a start cut before STOP is not a pickle,
    nor is a stream that starts with a persistent id (as Parquet and zip files do).
    """
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    try:
        return _opcode_stream_ok(io.BytesIO(data))
    except Exception:
        # pickletools raises ValueError for malformed streams, and other types (decoding,
        # overflow) for malformed opcode arguments: each means "not a pickle".
        return False


_MARK = pickletools.markobject
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})


def _opcode_stream_ok(stream: io.BytesIO) -> bool:
    """Replay the stack and memo effects of each opcode (the checks of pickletools.dis,
    without formatting each argument: a file's arguments can be huge)."""
    stack: list[object] = []
    memo: set[int] = set()
    for count, (op, arg, _pos) in enumerate(pickletools.genops(stream)):
        if count == 0 and op.name in ("PERSID", "BINPERSID"):
            # Parquet ("PAR1") and zip ("PK") files, skops models among them, start like a
            # persistent id; pickle.load refuses a stream that starts with one unless the
            # caller brings a persistent_load, and pickle.dump never writes one first.
            return False
        if count >= PICKLE_MAX_OPCODES:
            return True
        before, after = op.stack_before, op.stack_after
        to_pop = len(before)
        if _MARK in before or (op.name == "POP" and stack and stack[-1] is _MARK):
            if _MARK not in stack:
                return False
            while stack.pop() is not _MARK:
                pass
            to_pop = before.index(_MARK) if _MARK in before else 0
        if op.name in _MEMO_PUT:
            key = len(memo) if op.name == "MEMOIZE" else arg
            if not isinstance(key, int) or key in memo or not stack or stack[-1] is _MARK:
                return False
            memo.add(key)
        elif op.name in _MEMO_GET and arg not in memo:
            return False
        if to_pop > len(stack):
            return False
        del stack[len(stack) - to_pop :]
        stack.extend(after)
        if op.name == "STOP":
            return not stack
    return False
