"""Attacks on the Alertmanager webhook: floods, resend storms, bombs, absurd times.

Each is sent to a real server on 127.0.0.1; each must be answered (no 500, no sender left
hanging), and what is refused leaves nothing stored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsloop.aiops.alerts import MAX_LABEL_CHARS, MAX_LABELS, MAX_WEBHOOK_ALERTS
from opsloop.api import create_app
from opsloop.api.v1.incidents import MAX_WEBHOOK_BYTES
from opsloop.context import Project
from tests.api.conftest import is_problem, running
from tests.api.test_alert_webhook import am_alert, payload

URL = "/api/v1/alerts/alertmanager"


@pytest.fixture
def served(project: Project) -> Iterator[tuple[httpx.Client, Any]]:
    """A client of a real server over the project, and the server's app."""
    app = create_app(project)
    with running(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, app


def _stored(project: Project) -> int:
    return len(project.store.incidents.list_alerts(limit=1_000_000))


def _in_parallel(client: httpx.Client, bodies: list[Any]) -> list[httpx.Response]:
    answers: list[httpx.Response | None] = [None] * len(bodies)

    def send(k: int) -> None:
        answers[k] = client.post(URL, json=bodies[k])

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
        assert not t.is_alive(), "a sender was never answered"
    return [a for a in answers if a is not None]


def test_a_flood_of_concurrent_deliveries_stores_every_alert_once(
    served: tuple[httpx.Client, Any], project: Project
) -> None:
    client, app = served
    bodies = [
        payload(
            *[
                am_alert(
                    "HighLatency",
                    f"2026-03-01T10:{k % 60:02d}:00Z",
                    deployment=f"d{(k * 50 + j) % 97}",
                    n=f"{k}-{j}",
                )
                for j in range(50)
            ]
        )
        for k in range(40)
    ]
    answers = _in_parallel(client, bodies)
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers][:3]
    ids = [i for a in answers for i in a.json()["alerts"]]
    assert len(ids) == len(set(ids)) == 2000
    assert _stored(project) == 2000
    receiver = app.state.alert_receiver
    # Deliveries that arrived together shared transactions.
    assert receiver.deliveries == 40
    assert receiver.transactions < 40


def test_a_resend_storm_of_one_group_keeps_one_row_per_alert(
    served: tuple[httpx.Client, Any], project: Project
) -> None:
    client, _ = served
    group = payload(
        am_alert("HighErrorRate", "2026-03-01T10:00:00Z", deployment="churn-prod"),
        am_alert("HighLatency", "2026-03-01T10:00:30Z", deployment="churn-prod"),
    )
    answers = _in_parallel(client, [group] * 30)
    assert all(a.status_code == 200 for a in answers)
    assert {tuple(a.json()["alerts"]) for a in answers} == {tuple(answers[0].json()["alerts"])}
    assert _stored(project) == 2


def test_bodies_too_large_are_refused_before_they_are_read_whole(
    served: tuple[httpx.Client, Any], project: Project
) -> None:
    client, _ = served
    big = b'{"alerts": [' + b" " * (MAX_WEBHOOK_BYTES + 1) + b"]}"
    declared = client.post(URL, content=big, headers={"content-type": "application/json"})
    assert "larger than" in is_problem(declared, 413)["detail"]

    def chunks() -> Iterator[bytes]:
        # No length declared: it is counted as it streams in.
        yield b'{"alerts": ['
        for _ in range(MAX_WEBHOOK_BYTES // (1 << 20) + 2):
            yield b" " * (1 << 20)
        yield b"]}"

    streamed = client.post(URL, content=chunks(), headers={"content-type": "application/json"})
    is_problem(streamed, 413)
    assert _stored(project) == 0


def test_bombs_and_absurd_values_are_refused_naming_the_field(
    served: tuple[httpx.Client, Any], project: Project
) -> None:
    client, _ = served
    good = am_alert("HighErrorRate", "2026-03-01T10:00:00Z", deployment="churn-prod")
    many_labels = {"alertname": "A", **{f"l{k}": "v" for k in range(MAX_LABELS + 1)}}
    cases: list[tuple[Any, str]] = [
        # Nesting deep enough to exhaust a recursive parser.
        (b"[" * 200_000 + b"]" * 200_000, "body is not JSON"),
        (payload(good, {**good, "labels": many_labels}), "alerts[1].labels"),
        (
            payload(good, {**good, "labels": {"alertname": "A", "x": "v" * (MAX_LABEL_CHARS + 1)}}),
            "alerts[1].labels.x",
        ),
        (payload({**good, "labels": {"alertname": "A" * 300}}), "alerts[0].labels.alertname"),
        (payload(*[good] * (MAX_WEBHOOK_ALERTS + 1)), "alerts"),
        (
            b'{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": NaN}}]}',
            "alerts[0].labels.alertname",
        ),
        (payload({**good, "startsAt": "+275760-09-13T00:00:00Z"}), "alerts[0].startsAt"),
        (payload({**good, "startsAt": "9999-12-31T23:59:59Z"}), "alerts[0].startsAt"),
        (payload({**good, "startsAt": 1e308}), "alerts[0].startsAt"),
        (payload({**good, "annotations": {"summary": ["a", "list"]}}), "alerts[0].annotations"),
        # What a database cannot hold: a NUL, a lone surrogate.
        (payload({**good, "labels": {"alertname": "A", "x": "a\u0000b"}}), "alerts[0].labels.x"),
        (b'{"alerts": [{"status": "firing", "labels": {"alertname": "\\ud800"}}]}', "alertname"),
        # The group's fields are copied into every alert: they are bounded too.
        (payload(good) | {"groupKey": "g" * (MAX_LABEL_CHARS + 1)}, "groupKey"),
        (payload(good) | {"receiver": {"nested": 1}}, "receiver"),
    ]
    for body, field in cases:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = client.post(URL, content=raw, headers={"content-type": "application/json"})
        problem = is_problem(sent, 400)
        assert field in problem["detail"], (field, problem["detail"][:200])
    assert _stored(project) == 0
