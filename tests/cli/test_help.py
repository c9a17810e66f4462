"""Every help page of the ``opsloop`` command, as a user prints it: values read as words,
flags show no placeholder, no Python type anywhere; ``serve --help`` shows how to call it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from opsloop.cli.main import cli, main

# What typer prints for a parameter without a metavar: its Python type.
PYTHON_TYPES = re.compile(
    r"<bool>|<class|typing\.|collections\.abc|<(int|float|str|path)( range)?>|<list\["
)


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            yield from _paths(sub, (*prefix, name))


PATHS = list(_paths(cli()))


def _help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"", "serve", "sync", "status", "deploy render", "models alias set"} <= names
    assert len(PATHS) > 30


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "opsloop")
def test_no_help_page_shows_a_python_type(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = _help(path, capsys)
    assert "Usage: opsloop" in text
    found = PYTHON_TYPES.search(text)
    assert found is None, f"opsloop {' '.join(path)} --help shows {found[0]!r}:\n{text}"


def test_flags_take_no_value_and_options_name_theirs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    top = _help((), capsys)
    assert re.search(r"--debug\s+Show tracebacks", top), top
    assert re.search(r"--project\s+-C\s+PATH\s", top), top
    serve = _help(("serve",), capsys)
    assert re.search(r"--loader\s+MODULE:FUNCTION\s", serve), serve
    assert re.search(r"--port\s+-p\s+PORT\s", serve), serve
    assert re.search(r"--insecure\s+Listen beyond loopback", serve), serve


def test_serve_help_shows_a_request_per_protocol_and_a_label(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = _help(("serve",), capsys)
    curls = [line.strip() for line in text.splitlines() if "curl -s" in line]
    assert len(curls) == 3, text
    assert "localhost:8080/invocations" in curls[0]
    assert "localhost:8080/v2/models/churn/infer" in curls[1]
    assert "localhost:8080/v1/feedback" in curls[2]
    assert '"params": {"predict_method": "predict_proba"}' in text
    assert '"outputs": [{"name": "predict_proba"}]' in text
