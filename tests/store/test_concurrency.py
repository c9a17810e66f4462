"""Two processes writing to one store at the same time lose nothing.

Both start on a store that does not exist yet, so they also race to create its schema.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from opsloop.store import open_store

WRITER = textwrap.dedent(
    """
    import json, sys, time
    from opsloop.store import open_store
    url, who, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
    while time.time() < go:
        time.sleep(0.001)
    store = open_store(url, actor=who)
    run = store.runs.create(who)
    for b in range(20):
        store.runs.log_metric_points(run.id, [("m", float(i), b * 500 + i, 0) for i in range(500)])
    digest = "sha256:" + "0" * 64
    versions = [
        store.models.create_version("shared", artifact_digest=digest, run_id=run.id).version
        for _ in range(15)
    ]
    for i in range(30):
        store.events.emit("test.tick", "run", run.id, {"i": i})
    store.runs.finish(run.id)
    print(json.dumps({"run": run.id, "versions": versions}))
    """
)


def _race(url: str, writers: int = 2) -> list[dict[str, object]]:
    go = time.time() + 1.5  # both processes are up and importing by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"writer{i}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_writers_lose_nothing(store_url: str) -> None:
    results = _race(store_url)
    store = open_store(store_url)
    all_versions: list[int] = []
    for r in results:
        run_id = str(r["run"])
        assert store.runs.count_metric_points(run_id) == 10_000
        assert store.runs.get(run_id).status == "finished"
        assert len(store.events.list(kind="test.tick", object_id=run_id)) == 30
        all_versions += list(r["versions"])  # type: ignore[arg-type]
    assert sorted(all_versions) == list(range(1, 31))
    assert [v.version for v in store.models.list_versions("shared")] == list(range(30, 0, -1))
    store.close()


OPENER = textwrap.dedent(
    """
    import sys, time
    from opsloop.store import open_store
    url, go = sys.argv[1], float(sys.argv[2])
    while time.time() < go:
        time.sleep(0.0005)
    for i in range(20):
        store = open_store(url, actor=str(i))
        run = store.runs.create("opener")
        store.runs.finish(run.id)
        store.close()
    """
)


def test_many_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    # The switch to WAL mode of a new file answers "database is locked" at once, without the
    # busy handler, while another process opens or migrates the same file; every opener must
    # wait for it instead of failing.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    go = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
