"""Fixtures of the API tests: a project with runs, a data set version, a registered model
with an alias and a deployment in Git, and clients of the control-plane app over it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from sklearn.linear_model import LogisticRegression

from opsloop.api import create_app
from opsloop.context import Project
from opsloop.errors import AuthenticationError
from opsloop.gitops import promote
from opsloop.monitor.service import run_monitors
from opsloop.monitor.windows import align
from opsloop.registry import register_model
from opsloop.secops.access import Grant, Identity
from opsloop.tracking import start_run
from tests.gitops.conftest import git
from tests.monitor.test_service import STEP, _register, _serve

DIGEST = "sha256:" + "ab" * 32
TOKENS: dict[str, Identity] = {
    "admin-token": Identity("alice", roles=frozenset({"admin"})),
    "viewer-token": Identity("victor", roles=frozenset({"viewer"})),
    "dev-token": Identity("dora", roles=frozenset({"developer"})),
    "deployer-token": Identity(
        "dana",
        roles=frozenset({"viewer"}),
        grants=(Grant("deployer", "deployment", "churn-prod"),),
    ),
}


def token_authenticator(token: str | None) -> Identity:
    """The tokens above; no token or an unknown one is refused."""
    if token is None:
        raise AuthenticationError("this server needs a bearer token", hint="log in first")
    found = TOKENS.get(token)
    if found is None:
        raise AuthenticationError("unknown token")
    return found


@dataclass
class Populated:
    """What the populated project holds."""

    project: Project
    runs: list[str]
    model_run: str


@pytest.fixture
def populated(project: Project) -> Populated:
    """A project in Git with two runs (params, metrics, artifacts), a data set version, model
    'churn' v1..v2 trained on it (champion → v1) and deployment 'churn-prod' serving v1."""
    (project.dir / ".gitignore").write_text(".opsloop/\n")
    git(project.dir, "init", "-q", "-b", "main")
    git(project.dir, "add", "-A")
    git(project.dir, "commit", "-q", "-m", "init")

    notes = project.dir / "notes.txt"
    notes.write_text("hello artifact\n")
    folder = project.dir / "plots"
    folder.mkdir()
    (folder / "a.txt").write_text("A")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("B")
    runs = []
    for i, lr in enumerate((0.1, 0.01)):
        with start_run(f"train-{i}", params={"lr": lr, "model": "logreg"}, project=project) as r:
            for step in range(3):
                r.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            r.log_metric("accuracy", 0.8 + 0.1 * i)
            r.set_tags({"team": "churn" if i == 0 else "fraud"})
            r.log_artifact(notes)
            r.log_artifact(folder)
            runs.append(r.id)

    project.store.datasets.record(
        DIGEST, source="data/churn.csv", row_count=60, schema={"a": "float64"}, name="churn"
    )
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (x["a"] + x["b"] > 0).astype(int)
    for c in (0.5, 1.5):
        register_model(
            "churn",
            LogisticRegression(C=c).fit(x, y),
            input_example=x.head(3),
            run_id=runs[0],
            dataset_digest=DIGEST,
        )
    project.store.models.set_alias("churn", "champion", 1)
    promote("churn", to="churn-prod", alias="champion", project=project)
    return Populated(project, runs, runs[0])


@dataclass
class Drifting:
    """Traffic of 'churn-prod' in the populated project, monitored.

    Attributes:
        start: Start of the first window with predictions.
        windows: How many windows (of ``STEP``) hold predictions; f1 and f2 shift from
            window ``shifted_from`` on.
        version: The version of 'churn' that answered (with a reference profile).
    """

    start: datetime
    windows: int
    shifted_from: int
    version: str

    def end(self, k: int) -> datetime:
        """End of window ``k``."""
        return self.start + (k + 1) * STEP

    @property
    def until(self) -> datetime:
        """End of the last window with predictions."""
        return self.end(self.windows - 1)


@pytest.fixture
def drifting(populated: Populated) -> Drifting:
    """The populated project whose 'churn-prod' logged 6 windows of 15 minutes of predictions
    with their inputs (f0..f3, plan; f1 and f2 shift from the fourth window on) by a version
    of 'churn' registered with a reference profile, and monitored up to the last."""
    store, artifacts = populated.project.store, populated.project.artifacts
    start = align(datetime.now(UTC), STEP) - 8 * STEP
    version = _register(store, artifacts)
    _serve(store, start, range(6), shifted_from=3, version=version)
    found = Drifting(start, 6, 3, version)
    run_monitors(
        store, artifacts, deployments=["churn-prod"], window=STEP, now=found.until + STEP / 2
    )
    return found


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def client(populated: Populated) -> Iterator[httpx.Client]:
    """A client of the app in local single-user mode, on a real server."""
    with running(create_app(populated.project)) as url, httpx.Client(base_url=url) as c:
        yield c


@pytest.fixture
def client_as(populated: Populated) -> Iterator[Callable[[str | None], httpx.Client]]:
    """Clients of the app with token authentication, by token (None: no header)."""
    opened: list[httpx.Client] = []
    with running(create_app(populated.project, authenticate=token_authenticator)) as url:

        def make(token: str | None) -> httpx.Client:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            c = httpx.Client(base_url=url, headers=headers)
            opened.append(c)
            return c

        yield make
        for c in opened:
            c.close()


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem body of a response, after checking it is one with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= set(body)
    return body
