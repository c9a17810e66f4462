"""Runs record the process that writes them; a run whose process is gone reads as killed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import pytest
from sqlalchemy import update

from opsloop.errors import NotFoundError
from opsloop.store import Store, open_store
from opsloop.store import models as m


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url, actor="tester")
    yield s
    s.close()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _set(store: Store, run_id: str, **values: Any) -> None:
    with store.db.write() as s:
        s.execute(update(m.Run).where(m.Run.id == run_id).values(**values))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not psutil.pid_exists(proc.pid)
    return proc.pid


def test_a_run_records_its_process_and_heartbeat(store: Store) -> None:
    plain = store.runs.create("plain")
    assert plain.host == socket.gethostname() and plain.pid == os.getpid()
    assert plain.heartbeat_at is None
    beating = store.runs.create("beating", heartbeat=True)
    assert beating.heartbeat_at is not None
    _set(store, beating.id, heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
    store.runs.heartbeat(beating.id)
    after = store.runs.get(beating.id).heartbeat_at
    assert after is not None and datetime.now(UTC) - after < timedelta(minutes=1)
    store.runs.log_metric_points(beating.id, [("x", 1.0, 0, 0)], heartbeat=True)
    with pytest.raises(NotFoundError):
        store.runs.heartbeat("0" * 32)
    # This process is alive: its runs stay running however old their heartbeat.
    _set(store, beating.id, heartbeat_at=datetime.now(UTC) - timedelta(days=1))
    assert store.runs.get(beating.id).status == "running"
    assert store.runs.reap_dead() == []


def test_a_run_whose_process_is_gone_is_killed_once(store: Store) -> None:
    run = store.runs.create("doomed", heartbeat=True)
    store.runs.log_metric_points(run.id, [("loss", 0.5, s, 0) for s in range(42)])
    pid = _dead_pid()
    _set(store, run.id, pid=pid)
    info = store.runs.get(run.id)
    assert info.status == "killed" and info.ended_at is not None
    assert f"process {pid} on {socket.gethostname()} is gone" in (info.error or "")
    assert "last step stored 41" in (info.error or "")
    assert store.runs.get(run.id).status == "killed"
    assert store.runs.reap_dead() == []
    events = store.events.list(object_id=run.id, kind="run.killed")
    assert len(events) == 1 and events[0].details["last_step"] == 41


def test_a_reused_pid_does_not_keep_a_run_alive(
    store: Store, sleeper: subprocess.Popen[bytes]
) -> None:
    started = psutil.Process(sleeper.pid).create_time()
    alive = store.runs.create("alive")
    _set(store, alive.id, pid=sleeper.pid, pid_started=started)
    reused = store.runs.create("reused")
    _set(store, reused.id, pid=sleeper.pid, pid_started=started - 3600)
    killed = store.runs.reap_dead()
    assert [r.id for r in killed] == [reused.id]
    assert "the pid now belongs to another process" in (killed[0].error or "")
    assert "no metric stored" in (killed[0].error or "")
    assert store.runs.get(alive.id).status == "running"


def test_a_silent_run_on_another_host_is_killed_after_the_timeout(store: Store) -> None:
    now = datetime.now(UTC)
    silent = store.runs.create("silent", heartbeat=True)
    _set(store, silent.id, host="elsewhere", pid=1, heartbeat_at=now - timedelta(minutes=10))
    recent = store.runs.create("recent", heartbeat=True)
    _set(store, recent.id, host="elsewhere", pid=1, heartbeat_at=now - timedelta(minutes=1))
    # Without a heartbeat nothing tells a process on another host is dead.
    unknown = store.runs.create("unknown")
    _set(store, unknown.id, host="elsewhere", pid=1)
    finished = store.runs.create("finished", heartbeat=True)
    store.runs.finish(finished.id)
    _set(store, finished.id, host="elsewhere", heartbeat_at=now - timedelta(days=1))

    running = store.runs.list(status="running")
    assert {r.name for r in running} == {"recent", "unknown"}
    info = store.runs.get(silent.id)
    assert info.status == "killed"
    assert "no heartbeat from process 1 on elsewhere for 600 s" in (info.error or "")
    assert info.ended_at == info.heartbeat_at
    assert store.runs.get(finished.id).status == "finished"
    assert [r.name for r in store.runs.reap_dead(timeout_s=30)] == ["recent"]


def test_reaping_from_two_stores_marks_a_run_once(store_url: str) -> None:
    a, b = open_store(store_url), open_store(store_url)
    try:
        run = a.runs.create("doomed")
        _set(a, run.id, pid=_dead_pid())
        assert [r.id for r in a.runs.reap_dead()] == [run.id]
        assert b.runs.reap_dead() == []
        assert len(b.events.list(object_id=run.id, kind="run.killed")) == 1
    finally:
        a.close()
        b.close()
