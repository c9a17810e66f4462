"""``opsloop audit list|verify`` as a user runs them: a real subprocess over a project whose
store was written through the store's own calls, then tampered with behind its back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import typer
from sqlalchemy import text

from opsloop.cli.audit import change_text, parse_since
from opsloop.store.acting import acting
from tests.cli.test_cli import opsloop

if TYPE_CHECKING:
    from opsloop.context import Project

DIGEST = "sha256:" + "cd" * 32


def history(project: Project) -> None:
    store = project.store
    store.models.create_version("churn", artifact_digest=DIGEST, alias="champion")
    store.models.create_version("churn", artifact_digest=DIGEST)
    with acting("carol", "192.0.2.7"):
        store.models.set_alias("churn", "champion", 2)
    store.events.emit("custom.note", "run", "r1", {"text": "hi"})


def test_list_shows_who_what_where_and_the_change(project: Project) -> None:
    history(project)
    out = opsloop("audit", "list", cwd=project.dir)
    assert out.returncode == 0, out.stderr
    assert "audit trail (6 events)" in out.stdout
    line = next(x for x in out.stdout.splitlines() if "192.0.2.7" in x)
    assert "carol" in line and "alias.set" in line and "model:churn" in line
    assert "version=1 → version=2" in line

    only = opsloop("audit", "list", "--object", "model_version:churn/2", "--json", cwd=project.dir)
    assert only.returncode == 0, only.stderr
    events = json.loads(only.stdout)
    assert [e["kind"] for e in events] == ["model_version.created"]
    assert events[0]["hash"] and events[0]["seq"] == 4

    by = opsloop(
        "audit",
        "list",
        "--actor",
        "carol",
        "--kind",
        "alias.*",
        "--since",
        "1h",
        "--json",
        cwd=project.dir,
    )
    assert [e["source"] for e in json.loads(by.stdout)] == ["192.0.2.7"]
    newest = json.loads(opsloop("audit", "list", "--limit", "2", "--json", cwd=project.dir).stdout)
    assert [e["kind"] for e in newest] == ["alias.set", "custom.note"]


def test_verify_passes_then_names_the_tampered_entry(project: Project) -> None:
    history(project)
    ok = opsloop("audit", "verify", cwd=project.dir)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("audit trail intact: 6 entries")
    assert "head: position 6, sha256 " in ok.stdout

    victim = project.store.events.list(kind="alias.set")[-1]
    with project.store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER events_append_only_update"))
        conn.execute(
            text("UPDATE events SET details = :d WHERE id = :id"),
            {"d": json.dumps({**victim.details, "version": 1}), "id": victim.id},
        )
    bad = opsloop("audit", "verify", cwd=project.dir)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: audit trail broken (edited)")
    assert f"entry {victim.id} (position {victim.seq})" in bad.stderr
    assert "Traceback" not in bad.stderr

    as_json = opsloop("audit", "verify", "--json", cwd=project.dir)
    assert as_json.returncode == 1
    got = json.loads(as_json.stdout)
    assert (got["intact"], got["reason"], got["entry_id"]) == (False, "edited", victim.id)


def test_verify_checks_a_kept_head(project: Project) -> None:
    history(project)
    ok = opsloop("audit", "verify", cwd=project.dir)
    line = next(x for x in ok.stdout.splitlines() if x.startswith("head: position"))
    head = line.rsplit(" ", 1)[-1]
    hint = f"opsloop audit verify --expect 6:{head[:16]}"
    assert hint in " ".join(ok.stdout.split())
    kept = opsloop(
        "audit", "verify", "--expect", f"6:{head}", "--expect", f"6:{head[:12]}", cwd=project.dir
    )
    assert kept.returncode == 0, kept.stderr
    other = opsloop("audit", "verify", "--expect", "6:" + "0" * 64, cwd=project.dir)
    assert other.returncode == 1
    assert other.stderr.startswith("error: audit trail broken (rewritten)")
    beyond = opsloop("audit", "verify", "--json", "--expect", f"9:{head}", cwd=project.dir)
    assert beyond.returncode == 1
    assert json.loads(beyond.stdout)["reason"] == "rewritten"
    bad = opsloop("audit", "verify", "--expect", "six:abc", cwd=project.dir)
    assert bad.returncode == 2
    assert "POSITION:SHA256" in bad.stderr


def test_change_text() -> None:
    assert change_text({"x": 1}) == ""
    assert change_text({"before": None, "after": {"version": 3}}) == "- → version=3"
    assert change_text({"before": "v1 90%, v2 10%", "after": "v2"}) == "v1 90%, v2 10% → v2"
    long = change_text({"before": {"k": "x" * 100}, "after": None})
    assert long.endswith("… → -") and len(long) < 80


def test_since_reads_times_and_durations() -> None:
    assert parse_since("2026-03-02T10:00").isoformat() == "2026-03-02T10:00:00+00:00"
    assert parse_since("2h") < parse_since("1h")
    with pytest.raises(typer.BadParameter, match="neither an ISO time nor a duration"):
        parse_since("yesterday")


def test_change_text_is_short() -> None:
    digest = "sha256:" + "0123456789ab" * 5 + "cdef"
    assert change_text({"before": None, "after": {"artifact": digest, "run_id": None}}) == (
        "- → artifact=sha256:0123456789ab…"
    )
    assert change_text({"before": {"description": ""}, "after": {"tags": {}}}) == (
        'description="" → tags={}'
    )
