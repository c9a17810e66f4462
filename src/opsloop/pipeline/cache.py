"""Cache keys of pipeline steps.

A step run is reused when its cache key matches one of an earlier run that succeeded. The key
is the SHA-256 of everything that decides what the step produces: its normalised source code,
its parameters (canonical JSON), the digests of its inputs, the names of its outputs and the
versions of the materializers that store them.

Source normalisation parses the function and dumps its syntax tree without decorators and
docstring, so editing a comment, a docstring, the formatting or the ``@step(...)`` options
(retries, for instance) keeps the cache, while any change of behaviour misses it. Code the
step calls (helpers, libraries) is not part of the key: run with ``no_cache=True`` after
changing it.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import marshal
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opsloop.errors import PipelineError

KEY_VERSION = "opsloop.step-cache/v1"


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalize_source(source: str) -> str:
    """The source of a function, reduced to what decides its behaviour.

    Decorators, the docstring, comments and formatting are dropped; code that cannot be parsed
    is kept verbatim (dedented).
    """
    text = textwrap.dedent(source)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.decorator_list = []
            body = node.body
            if (
                len(body) > 1
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:]
            break
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def source_digest(func: Callable[..., Any]) -> str:
    """SHA-256 (hex) of the normalised source of ``func``.

    Functions without readable source (defined in an interactive session) fall back to their
    compiled code, which is stable for one Python version.
    """
    try:
        text = normalize_source(inspect.getsource(func))
        payload = text.encode()
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        if code is None:
            raise PipelineError(
                f"cannot read the source of {func!r}: a step must be a Python function"
            ) from None
        payload = marshal.dumps(code)
    return hashlib.sha256(payload).hexdigest()


def cache_key(
    *,
    source: str,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    outputs: Sequence[str],
    materializers: Sequence[str],
) -> str:
    """The cache key of one step execution, ``sha256:<hex>``.

    Args:
        source: The step's :func:`source_digest`.
        params: The step's parameters (JSON values).
        inputs: Argument name to the digest of the artifact passed in.
        outputs: The step's output names, in order.
        materializers: ``name@version`` of every registered materializer.
    """
    document = {
        "key": KEY_VERSION,
        "source": source,
        "params": params,
        "inputs": dict(inputs),
        "outputs": list(outputs),
        "materializers": sorted(materializers),
    }
    return "sha256:" + hashlib.sha256(canonical_json(document).encode()).hexdigest()
