"""Remote mode end to end: a training script on a "laptop" (a subprocess with
``OPSLOOP_SERVER`` set and no project store of its own) tracks, registers and loads a model
through a real team server, and the CLI reads it back through the server too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsloop.context import Project, open_project
from opsloop.errors import AuthenticationError
from opsloop.secops.access import Identity
from tests.api.remote_helpers import Served, serve

TOKEN = "team-token-5f1e7a"

TRAIN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np, pandas as pd
    from sklearn.linear_model import LogisticRegression
    import opsloop

    X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.cos(np.linspace(0, 3, 40))})
    y = (X["a"] > 0.5).astype(int)
    with opsloop.start_run(name="laptop-train", params={"C": 1.0}) as run:
        for i in range(1000):
            opsloop.log_metric("loss", 1.0 / (i + 1))
        opsloop.log_params({"solver": "lbfgs"})
        opsloop.set_tag("where", "laptop")
        Path("notes.txt").write_text("trained on a laptop")
        artifact = opsloop.log_artifact("notes.txt")
        model = LogisticRegression().fit(X, y)
        version = opsloop.register_model("churn", model, input_example=X.head(5))
    loaded = opsloop.load_model(f"models:/churn/{version.version}")
    print(json.dumps({
        "run_id": run.id,
        "artifact": artifact,
        "version": version.version,
        "predicted": loaded.predict_labels(X).tolist(),
        "expected": model.predict(X).tolist(),
    }))
    """
)

MISSING = textwrap.dedent(
    """
    import opsloop
    from opsloop.errors import NotFoundError
    try:
        opsloop.load_model("models:/nope/1")
    except NotFoundError as exc:
        print(type(exc).__name__, "|", exc)
    """
)


def _authenticate(token: str | None) -> Identity:
    if token != TOKEN:
        raise AuthenticationError("unknown or missing token")
    return Identity("bob", roles=frozenset({"developer"}))


@pytest.fixture
def team_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Project, Served]]:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_SERVER", "OPSLOOP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "opsloop.yaml").write_text("project: team\n")
    project = open_project(folder)
    try:
        with serve(project, authenticate=_authenticate) as served:
            yield project, served
    finally:
        project.close()


def _laptop(tmp_path: Path, url: str) -> tuple[Path, dict[str, str]]:
    laptop = tmp_path / "laptop"
    laptop.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    # The token from a reference, as a team would keep it out of shell history.
    env.update({"OPSLOOP_SERVER": url, "OPSLOOP_TOKEN": "env:TEAM_TOKEN", "TEAM_TOKEN": TOKEN})
    env["COLUMNS"] = "200"
    return laptop, env


def _python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_a_laptop_trains_registers_and_loads_through_the_team_server(
    team_server: tuple[Project, Served], tmp_path: Path
) -> None:
    project, served = team_server
    laptop, env = _laptop(tmp_path, served.url)
    done = _python(TRAIN, laptop, env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])

    # Everything is in the server's stores; the laptop holds no metadata store.
    assert not (laptop / ".opsloop" / "opsloop.db").exists()
    store = project.store
    run = store.runs.get(out["run_id"])
    assert run.status == "finished" and run.user == "bob" and run.name == "laptop-train"
    assert run.params == {"C": "1.0", "solver": "lbfgs"} and run.tags == {"where": "laptop"}
    history = store.runs.metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in history] == [(i, 1.0 / (i + 1)) for i in range(1000)]
    [artifact] = store.runs.list_artifacts(run.id)
    assert artifact.digest == out["artifact"]
    assert project.artifacts.get_bytes(artifact.digest) == b"trained on a laptop"
    version = store.models.get_version("churn", out["version"])
    assert version.run_id == run.id
    assert version.details["signature"]["bundle_digest"]
    assert version.details["scan"]["status"] == "passed"
    assert project.artifacts.exists(version.artifact_digest)
    assert out["predicted"] == out["expected"]
    # Batched: 1,000 points went in a handful of calls, not one call per point.
    assert 1 <= served.count("POST /api/v1/store/runs/log_metric_points") <= 3
    events = store.events.list(object_id=run.id)
    assert {e.actor for e in events} == {"bob"}

    # The CLI reads through the server as well.
    runs = subprocess.run(
        [sys.executable, "-m", "opsloop", "runs", "list"],
        cwd=laptop,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert runs.returncode == 0, runs.stderr
    assert "laptop-train" in runs.stdout
    models = subprocess.run(
        [sys.executable, "-m", "opsloop", "models", "show", "churn"],
        cwd=laptop,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert models.returncode == 0, models.stderr
    assert "churn" in models.stdout

    # An error on the server is the same error, with the server's message, on the laptop.
    missing = _python(MISSING, laptop, env)
    assert missing.returncode == 0, missing.stderr
    assert missing.stdout.strip() == "NotFoundError | model 'nope' is not registered"


def test_a_wrong_token_is_refused_and_never_shown(
    team_server: tuple[Project, Served], tmp_path: Path
) -> None:
    _, served = team_server
    laptop, env = _laptop(tmp_path, served.url)
    env["TEAM_TOKEN"] = "wrong-token-0a9b8c"
    done = subprocess.run(
        [sys.executable, "-m", "opsloop", "runs", "list"],
        cwd=laptop,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "unknown or missing token" in done.stdout + done.stderr
    assert "wrong-token" not in done.stdout + done.stderr
