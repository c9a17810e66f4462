"""The loop's data step: load each database or HTTP source when its check is due, judge its
data SLAs and raise (or resolve) alerts for them in the AIOps part.

An alert is ``data-freshness`` or ``data-volume`` with the label ``dataset`` (the source's
name), so that the correlation puts the incident on the data set; it resolves when the SLA
holds again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsloop.aiops.alerts import AlertIn
from opsloop.aiops.incidents import IngestResult, ingest_alerts
from opsloop.aiops.lineage import lineage_from_store
from opsloop.data.sla import SlaResult, check_sla
from opsloop.data.sources import load_source

if TYPE_CHECKING:
    from datetime import datetime

    from opsloop.context import Project

__all__ = ["DataStepResult", "data_step"]

ALERT_SOURCE = "data-sla"


@dataclass
class DataStepResult:
    """What the data step did.

    Attributes:
        loaded: Sources loaded, with the rows they added.
        results: The SLAs judged.
        ingest: The alerts raised or resolved and the incidents they touched.
    """

    loaded: dict[str, int] = field(default_factory=dict)
    results: list[SlaResult] = field(default_factory=list)
    ingest: IngestResult = field(default_factory=IngestResult)


def data_step(project: Project, now: datetime) -> DataStepResult:
    """Load the source if its check is due, judge its SLAs, alert on them."""
    result = DataStepResult()
    spec = project.spec
    if spec is None or spec.data is None or spec.data.sla is None:
        return result
    data, sla = spec.data, spec.data.sla
    name = data.source_name
    store = project.store
    latest = store.sources.latest(name)
    if not isinstance(data.source, str) and (
        latest is None or now - latest.loaded_at >= sla.check_every
    ):
        load = load_source(project, data, at=now)
        result.loaded[name] = load.record.new_rows
    horizon = max(sla.freshness or sla.volume_period, sla.volume_period * (sla.volume_days + 1))
    loads = store.sources.list(name, since=now - horizon)
    if not loads and latest is not None:
        loads = [latest]
    result.results = check_sla(name, sla, loads, now)
    firing = {a.name for a in store.incidents.list_alerts(status="firing") if _ours(a.labels, name)}
    alerts: list[AlertIn] = []
    for judged in result.results:
        alert_name = f"data-{judged.sla}"
        if judged.ok and alert_name not in firing:
            continue
        alerts.append(
            AlertIn(
                name=alert_name,
                labels={"dataset": name, "sla": judged.sla},
                annotations={"summary": judged.message},
                severity=sla.severity,
                status="resolved" if judged.ok else "firing",
                source=ALERT_SOURCE,
                starts_at=now,
                details={"value": judged.value, "expected": judged.expected},
            )
        )
    if alerts:
        result.ingest = ingest_alerts(store, alerts, lineage_from_store(store))
    return result


def _ours(labels: dict[str, str], name: str) -> bool:
    return labels.get("dataset") == name and "sla" in labels
