"""Alerts: from detectors, threshold rules and Alertmanager webhooks, deduplicated in the store.

Every alert has a fingerprint, a stable hash of its name and sorted labels. While an alert with
a fingerprint is firing, a repeat of it is not a new row: the row's ``count`` goes up and its
``last_seen_at`` moves on. A resolved alert gets ``ends_at``; the next firing of the same
fingerprint opens a new row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsloop.errors import AIOpsError, WebhookPayloadError
from opsloop.spec.alerting import (
    SEVERITIES,
    Severity,
    normalize_severity,
)
from opsloop.store.types import AlertInfo

if TYPE_CHECKING:
    from opsloop.aiops.detectors import Detector
    from opsloop.store import Store

__all__ = [
    "DETECTOR_HISTORY",
    "MAX_ANNOTATION_CHARS",
    "MAX_CLOCK_SKEW",
    "MAX_LABELS",
    "MAX_LABEL_CHARS",
    "MAX_WEBHOOK_ALERTS",
    "NOT_DETECTED",
    "SEVERITIES",
    "AlertIn",
    "AlertInfo",
    "WebhookPayloadError",
    "alerts_from_flags",
    "detect_anomalies",
    "fingerprint",
    "get_alert",
    "list_alerts",
    "normalize_severity",
    "parse_alertmanager",
    "record_alerts",
]

# Alertmanager marks an unset end time with Go's zero time.
_GO_ZERO_YEAR = 1

MAX_WEBHOOK_ALERTS = 10_000
"""The most alerts one webhook payload may carry (Alertmanager sends a group's alerts at
once; a larger body is refused, so that one request cannot hold the store for minutes)."""

# AlertIn.name's limit.
_MAX_NAME = 256

MAX_LABELS = 128
"""The most labels (and the most annotations) an alert from a webhook may have."""

MAX_LABEL_CHARS = 4_096
"""The longest a label's name or value may be (Alertmanager's own labels are short)."""

MAX_ANNOTATION_CHARS = 65_536
"""The longest an annotation's value may be (a description, a runbook link)."""

MAX_CLOCK_SKEW = timedelta(days=1)
"""How far ahead of the receiver's clock a webhook's time may be: a sender's clock may run
ahead a little, but an alert from the year 9999 would hold an incident open for ever."""


def fingerprint(name: str, labels: Mapping[str, str]) -> str:
    """A stable hash of an alert's name and labels (order does not matter): 32 hex digits."""
    canonical = json.dumps([name, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class AlertIn(BaseModel):
    """An alert as it arrives, before deduplication.

    Attributes:
        name: What is wrong (``feature-drift``, ``HighLatency`` …).
        labels: Where: ``deployment``, ``feature``, ``model``, ``version``, ``host`` …
        annotations: Free text for people (``summary``, ``description`` …).
        severity: ``info``, ``warning`` or ``critical`` (other words are mapped).
        status: ``firing`` or ``resolved``.
        source: Who raised it: ``detector``, ``rule``, ``alertmanager`` or ``api``.
        starts_at: When the condition began.
        last_seen_at: When it was last observed (defaults to ``starts_at``).
        ends_at: When it ended (resolved alerts; defaults to ``last_seen_at``).
        details: Anything else worth keeping (the value, the score, the rule …).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=_MAX_NAME)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    severity: Severity = "warning"
    status: Literal["firing", "resolved"] = "firing"
    source: str = Field(default="api", min_length=1, max_length=32)
    starts_at: datetime = Field(default_factory=_now)
    last_seen_at: datetime | None = None
    ends_at: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> object:
        return normalize_severity(value) if isinstance(value, str) or value is None else value

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _str_values(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _times(self) -> AlertIn:
        start = _utc(self.starts_at)
        seen = _utc(self.last_seen_at) if self.last_seen_at is not None else start
        end = _utc(self.ends_at) if self.ends_at is not None else None
        if self.status == "resolved" and end is None:
            end = seen
        # Frozen model: the normalised times are written once, here.
        object.__setattr__(self, "starts_at", start)
        object.__setattr__(self, "last_seen_at", max(seen, start))
        object.__setattr__(self, "ends_at", end)
        return self

    @property
    def fingerprint(self) -> str:
        """:func:`fingerprint` of the name and labels."""
        return fingerprint(self.name, self.labels)

    @property
    def seen_at(self) -> datetime:
        """``last_seen_at``, which is always set after validation."""
        return self.last_seen_at or self.starts_at


# -- recording ---------------------------------------------------------------------------------


def record_alerts(store: Store, alerts: Sequence[AlertIn]) -> list[AlertInfo]:
    """Deduplicate and store alerts in one transaction, without correlating them.

    Returns:
        The stored row of each alert given, in order (a repeat returns its updated row).
    """
    return store.incidents.record_alerts(alerts)


def list_alerts(
    store: Store,
    *,
    status: str | None = None,
    incident_id: int | None = None,
    name: str | None = None,
    limit: int = 1000,
) -> list[AlertInfo]:
    """Stored alerts, oldest first, filtered by status, incident or name."""
    return store.incidents.list_alerts(
        status=status, incident_id=incident_id, name=name, limit=limit
    )


def get_alert(store: Store, alert_id: int) -> AlertInfo:
    """One stored alert.

    Raises:
        NotFoundError: There is no alert with that id.
    """
    return store.incidents.get_alert(alert_id)


# -- Alertmanager webhooks ---------------------------------------------------------------------


def _parse_time(value: object, field: str, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WebhookPayloadError(f"expected an RFC 3339 time string, got {value!r}", field=field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise WebhookPayloadError(f"{value!r} is not an RFC 3339 time", field=field) from None
    if parsed.year == _GO_ZERO_YEAR:
        return None
    parsed = _utc(parsed)
    if parsed > now + MAX_CLOCK_SKEW:
        raise WebhookPayloadError(
            f"{value!r} is more than {MAX_CLOCK_SKEW} ahead of the receiver's clock", field=field
        )
    return parsed


def _text(value: object, field: str, longest: int) -> str:
    """A string a store can hold (no NUL, no lone surrogate), at most ``longest`` long."""
    if not isinstance(value, str):
        raise WebhookPayloadError(f"expected a string, got {value!r:.80}", field=field)
    if len(value) > longest:
        raise WebhookPayloadError(f"{len(value)} characters, at most {longest}", field=field)
    if "\x00" in value:
        raise WebhookPayloadError("a NUL character", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise WebhookPayloadError("not valid Unicode (a lone surrogate)", field=field) from None
    return value


def _str_map(value: object, field: str, longest: int = MAX_LABEL_CHARS) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WebhookPayloadError("expected an object of strings", field=field)
    if len(value) > MAX_LABELS:
        raise WebhookPayloadError(f"{len(value)} entries, at most {MAX_LABELS}", field=field)
    out = {}
    for k, v in value.items():
        key = str(k)
        if len(key) > MAX_LABEL_CHARS:
            raise WebhookPayloadError(
                f"a name of {len(key)} characters, at most {MAX_LABEL_CHARS}",
                field=f"{field}.{key[:64]}...",
            )
        _text(key, f"{field}.{key!r}", MAX_LABEL_CHARS)
        out[key] = _text(v, f"{field}.{key}", longest)
    return out


def parse_alertmanager(
    payload: Mapping[str, Any] | str | bytes, *, received_at: datetime | None = None
) -> list[AlertIn]:
    """Alerts of an Alertmanager webhook payload (version 4).

    ``alertname`` becomes the alert's name and ``severity`` its severity; the other labels
    are kept. Alertmanager's own fingerprint and ``generatorURL`` go into ``details``.

    Args:
        payload: The JSON body, parsed or not.
        received_at: When the webhook arrived (``last_seen_at`` of each alert); default now.

    Raises:
        WebhookPayloadError: The body is not a version 4 payload; the message names the field.
    """
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            # (Nesting deep enough to exhaust the parser is not JSON an Alertmanager sends.)
            raise WebhookPayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, Mapping):
        raise WebhookPayloadError("body must be a JSON object")
    version = payload.get("version")
    if version is not None and str(version) != "4":
        raise WebhookPayloadError(
            f"payload version {version!r} is not supported (only 4)", field="version"
        )
    items = payload.get("alerts")
    if not isinstance(items, list):
        raise WebhookPayloadError("missing or not a list", field="alerts")
    if len(items) > MAX_WEBHOOK_ALERTS:
        raise WebhookPayloadError(
            f"{len(items)} alerts, at most {MAX_WEBHOOK_ALERTS} in one payload", field="alerts"
        )
    now = _utc(received_at) if received_at is not None else _now()
    group = {}
    for key in ("receiver", "groupKey", "externalURL"):
        if payload.get(key) is not None:
            group[key] = _text(payload[key], key, MAX_LABEL_CHARS)
    out = []
    for i, item in enumerate(items):
        at = f"alerts[{i}]"
        if not isinstance(item, Mapping):
            raise WebhookPayloadError("expected an object", field=at)
        status = item.get("status")
        if status not in ("firing", "resolved"):
            raise WebhookPayloadError(
                f"must be 'firing' or 'resolved', got {status!r}", field=f"{at}.status"
            )
        labels = _str_map(item.get("labels"), f"{at}.labels")
        name = labels.pop("alertname", "")
        if not name:
            raise WebhookPayloadError("required label is missing", field=f"{at}.labels.alertname")
        if len(name) > _MAX_NAME:
            raise WebhookPayloadError(
                f"{len(name)} characters, at most {_MAX_NAME}", field=f"{at}.labels.alertname"
            )
        severity = labels.pop("severity", None)
        starts = _parse_time(item.get("startsAt"), f"{at}.startsAt", now) or now
        ends = _parse_time(item.get("endsAt"), f"{at}.endsAt", now)
        details: dict[str, Any] = {"alertmanager": group} if group else {}
        for key in ("fingerprint", "generatorURL"):
            if isinstance(item.get(key), str) and item[key]:
                details[key] = item[key]
        if severity is not None:
            details["severity_label"] = severity
        out.append(
            AlertIn(
                name=name,
                labels=labels,
                annotations=_str_map(
                    item.get("annotations"), f"{at}.annotations", MAX_ANNOTATION_CHARS
                ),
                severity=normalize_severity(severity),
                status=status,
                source="alertmanager",
                starts_at=starts,
                last_seen_at=max(now, starts) if status == "firing" else (ends or now),
                ends_at=ends if status == "resolved" else None,
                details=details,
            )
        )
    return out


# -- alerts from a metric series -----------------------------------------------------------------


def alerts_from_flags(
    name: str,
    labels: Mapping[str, str],
    times: Sequence[datetime],
    flags: Sequence[bool],
    *,
    for_points: int = 1,
    severity: str = "warning",
    source: str = "rule",
    annotations: Mapping[str, str] | None = None,
    details: Callable[[int], dict[str, Any]] | None = None,
) -> list[AlertIn]:
    """Alerts for a series whose points are flagged bad or good, in time order.

    A run of at least ``for_points`` bad points fires: one firing alert per bad point from the
    ``for_points``-th on (the repeats are deduplicated when stored), each starting at the first
    bad point of the run; the first good point after it resolves the alert.

    Args:
        name: Alert name.
        labels: Alert labels.
        times: Time of each point.
        flags: Whether each point is bad.
        for_points: How many bad points in a row it takes to fire.
        severity: Severity of the alerts.
        source: ``rule`` or ``detector``.
        annotations: Annotations of every alert.
        details: Details of the alert at point ``i``.
    """
    if len(times) != len(flags):
        raise AIOpsError(f"{len(times)} times but {len(flags)} flags")
    out: list[AlertIn] = []
    run_start: int | None = None
    fired = False
    for i, (t, bad) in enumerate(zip(times, flags, strict=True)):
        if bad:
            if run_start is None:
                run_start = i
            if i - run_start + 1 >= for_points:
                fired = True
                out.append(
                    AlertIn(
                        name=name,
                        labels=dict(labels),
                        annotations=dict(annotations or {}),
                        severity=normalize_severity(severity),
                        source=source,
                        starts_at=times[run_start],
                        last_seen_at=t,
                        details=details(i) if details else {},
                    )
                )
        else:
            if fired and run_start is not None:
                out.append(
                    AlertIn(
                        name=name,
                        labels=dict(labels),
                        annotations=dict(annotations or {}),
                        severity=normalize_severity(severity),
                        status="resolved",
                        source=source,
                        starts_at=times[run_start],
                        last_seen_at=t,
                        ends_at=t,
                        details=details(i) if details else {},
                    )
                )
            run_start, fired = None, False
    return out


NOT_DETECTED = ("monitor.", "server.", "service.up", "drift.detected")
"""Series no detector watches unless asked: the monitor's bookkeeping, raw counters and 0/1
flags (threshold rules cover those)."""
DETECTOR_HISTORY = 1000
"""Latest points of a series a detector replays each time it is run."""


def detect_anomalies(
    store: Store,
    *,
    series_prefix: str = "",
    threshold: float | None = None,
    detector: Callable[[], Detector] | None = None,
    since: datetime | None = None,
    severity: str = "warning",
    for_points: int = 1,
    exclude: Sequence[str] = NOT_DETECTED,
    where: Callable[[Mapping[str, str]], bool] | None = None,
    last: int | None = DETECTOR_HISTORY,
    checkpoint: bool = True,
) -> list[AlertIn]:
    """Alerts from a streaming detector run over every stored metric series.

    Each series is scored point by point (learning from every point); a score at or over
    ``threshold`` is a bad point (see :func:`alerts_from_flags`). The alert is named after the
    series, with the series' labels.

    With ``checkpoint``, the detector's state is saved in the store after each series and the
    next pass resumes it, scoring only the points that arrived since: a resumed detector
    scores exactly as one that had run without a break. Without a checkpoint (the first pass,
    a changed detector setting, a remote store), the latest ``last`` points are replayed into
    a fresh detector.

    Args:
        store: The metadata store holding the series.
        series_prefix: Only series whose name starts with this.
        threshold: Score in (0, 1] from which a point is anomalous; default the detector's
            own :attr:`~opsloop.aiops.detectors.base.Detector.alert_threshold`.
        detector: Makes a fresh detector; default :func:`~opsloop.aiops.default_detector`.
        since: Learn from every point but raise alerts only for points from this time on.
        severity: Severity of the alerts.
        for_points: Anomalous points in a row it takes to fire.
        exclude: Skip series whose name starts with any of these.
        where: Only series whose labels pass this test.
        last: Replay only the latest ``last`` points of each series (the detectors' memory
            is bounded, so a long enough replay rebuilds their state at a bounded cost).
        checkpoint: Save and resume the detector's state in the store between passes.
    """
    if threshold is not None and not 0 < threshold <= 1:
        raise AIOpsError(f"detector threshold must be in (0, 1], got {threshold}")
    if last is not None and last < 1:
        raise AIOpsError(f"last must be at least 1, got {last}")
    if detector is None:
        # Lazy imports here and below (noqa: PLC0415) of opsloop.aiops: each loads only where it is
        # used, so importing this module stays light.
        from opsloop.aiops.detectors import default_detector  # noqa: PLC0415

        detector = default_detector
    since_utc = _utc(since) if since is not None else None
    # A remote store keeps no checkpoints: its detectors replay their history each pass.
    states = getattr(store, "detector_states", None) if checkpoint else None
    out: list[AlertIn] = []
    for series, labels in store.series.list(series_prefix):
        if series.startswith(tuple(exclude)) or (where is not None and not where(labels)):
            continue
        if since_utc is not None:
            # Nothing new to alert on: neither read its history nor score it.
            newest = store.series.read(series, labels, last=1)
            if not newest or _utc(newest[0].time) < since_utc:
                continue
        det, kept, fresh, learnt = _resume(store, states, detector, series, labels, last)
        if not kept and not fresh:
            continue
        scored = det.score_many([p.value for p in fresh], [p.time for p in fresh])
        # The points scored in earlier passes count for the alerts as they did then.
        points = [
            *kept,
            *(_Scored(p.time, p.value, float(sc)) for p, sc in zip(fresh, scored, strict=True)),
        ]
        if last is not None:
            points = points[-last:]
        if states is not None and fresh:
            # The scored tail kept for the next pass's alerts is bounded even without `last`.
            tail = points[-(last or DETECTOR_HISTORY) :]
            _save(states, det, series, labels, tail, learnt + len(fresh))
        times = [p.time for p in points]
        scores = [p.score for p in points]
        limit = det.alert_threshold if threshold is None else threshold
        first = 0
        if since_utc is not None:
            first = next((i for i, t in enumerate(times) if t >= since_utc), len(times))
        alerts = alerts_from_flags(
            f"{series} anomaly",
            {**labels, "series": series},
            times[first:],
            [bool(sc >= limit) for sc in scores[first:]],
            for_points=for_points,
            severity=severity,
            source="detector",
            annotations={"summary": f"{series} is anomalous"},
            details=_detail_reader(points[first:], scores[first:], type(det).__name__),
        )
        out.extend(alerts)
    return out


class _Scored(NamedTuple):
    time: datetime
    value: float
    score: float


def _resume(
    store: Store,
    states: Any,
    detector: Callable[[], Detector],
    series: str,
    labels: dict[str, str],
    last: int | None,
) -> tuple[Detector, list[_Scored], list[Any], int]:
    """The detector of a series (resumed from its checkpoint when there is one), the points
    scored in earlier passes, the points still to learn, and how many it learnt before."""
    # Lazy import (noqa: PLC0415) for the same reason as the detectors' above.
    from opsloop.aiops.detectors.state import detector_digest, load_state  # noqa: PLC0415

    det = detector()
    saved = states.get(series, labels, detector_digest(det)) if states is not None else None
    if saved is not None:
        try:
            data = json.loads(saved.state)
            resumed = load_state(data["detector"])
            kept = [_Scored(_utc(datetime.fromisoformat(t)), v, sc) for t, v, sc in data["recent"]]
        except (AIOpsError, ValueError, KeyError, TypeError):
            resumed = None  # unreadable or from an older layout: replay instead
        if resumed is not None:
            cut = _utc(saved.last_time)
            newer = store.series.read(series, labels, since=saved.last_time)
            return resumed, kept, [p for p in newer if _utc(p.time) > cut], saved.points
    return det, [], store.series.read(series, labels, last=last), 0


def _save(
    states: Any, det: Detector, series: str, labels: dict[str, str], points: list[_Scored], n: int
) -> None:
    from opsloop.aiops.detectors.state import detector_digest, dump_state  # noqa: PLC0415

    try:
        state = dump_state(det)
    except AIOpsError:
        return  # a plug-in detector holding something JSON cannot: it replays each pass
    recent = [[_utc(p.time).isoformat(), p.value, p.score] for p in points]
    text = json.dumps({"detector": state, "recent": recent}, separators=(",", ":"))
    last_time = points[-1].time
    states.put(series, labels, detector_digest(det), last_time=last_time, points=n, state=text)


def _detail_reader(
    points: Sequence[Any], scores: Any, detector: str
) -> Callable[[int], dict[str, Any]]:
    def read(i: int) -> dict[str, Any]:
        return {"score": round(float(scores[i]), 4), "value": points[i].value, "detector": detector}

    return read
