"""OpenLineage events of pipeline runs and their steps, sent through the client's transports.

Every pipeline run is an OpenLineage job run (job ``PIPELINE``) and every step a job run of
its own (``PIPELINE.STEP``) whose ``parent`` facet names the pipeline run. Each emits START and
then COMPLETE or FAIL; a step reused from the cache emits START and COMPLETE at once, and a
step skipped because an upstream step failed emits ABORT.

Data sets:

* each step output is a data set ``PIPELINE.STEP.OUTPUT`` in the lineage namespace, versioned
  by its artifact digest (``version`` facet); a DataFrame output also carries its ``schema``;
* a step's inputs are the upstream outputs it reads, under the same names;
* a step output that describes a data set version (:class:`opsloop.data.DatasetVersion`,
  the lifecycle's ``ingest``) adds the source it was read from as an input data set
  (namespace ``file``, its path), with its schema and its content digest as its version;
* a step output that is a contract report (:class:`opsloop.data.ContractReport`) puts every
  rule checked into the ``dataQualityAssertions`` facet of the DataFrames the step read.

Run ids are UUIDs derived from the opsloop run id and step name, so events of one run can be
matched with the store. Emitting never fails a run: a transport that cannot deliver is
logged as a warning. Events are built in the runner and sent, in order, by one background
thread, so a slow receiver does not hold the steps up; the run waits for the last ones to go
(at most ``close_timeout`` seconds) when it ends.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import uuid
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from pydantic import ValidationError

from opsloop.data import ContractReport, DatasetVersion
from opsloop.pipeline.materializers import META_FILE
from opsloop.pipeline.observers import RunObserver
from opsloop.secretrefs import resolve_secret

if TYPE_CHECKING:
    from collections.abc import Mapping

    from openlineage.client.facet_v2 import DatasetFacet, InputDatasetFacet, JobFacet, RunFacet

    from opsloop.artifacts import ArtifactStore
    from opsloop.pipeline.observers import RunView, StepView
    from opsloop.spec.lineage import LineageSection, LineageTransport

__all__ = ["OpenLineageObserver", "run_uuid", "transport_config"]

log = logging.getLogger(__name__)

_MAX_PARQUET_BYTES = 256 * 2**20
"""Larger DataFrame outputs get no schema facet: reading them would slow the run down."""
_MAX_JSON_BYTES = 4 * 2**20
_CONTRACT_KEYS = frozenset({"passed", "rows", "rules_checked", "failures"})
_VERSION_KEYS = frozenset({"digest", "scheme", "columns", "rows", "source"})


def _version(name: str) -> str:
    try:
        return package_version(name)
    except PackageNotFoundError:  # pragma: no cover - both are installed with the extra
        return "0"


OPSLOOP_VERSION = _version("opsloop")
OPENLINEAGE_VERSION = _version("openlineage-python")
PRODUCER = f"https://pypi.org/project/opsloop/{OPSLOOP_VERSION}/"
"""The ``producer`` URI of every event."""


def run_uuid(run_id: str, step: str | None = None) -> str:
    """The OpenLineage run id of a pipeline run, or of one of its steps (a stable UUID)."""
    key = f"opsloop:run:{run_id}" + (f":step:{step}" if step is not None else "")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def transport_config(transport: LineageTransport, *, base_dir: Path) -> dict[str, Any]:
    """The ``openlineage-python`` transport configuration for one ``lineage.transports`` entry.

    Args:
        transport: The entry.
        base_dir: The project folder (relative file paths and ``file:`` references).
    """
    if transport.type == "http":
        retry = {
            "total": transport.retries,
            "connect": transport.retries,
            "read": transport.retries,
            "backoff_factor": 0.2,
            "status_forcelist": [500, 502, 503, 504],
            "allowed_methods": ["POST"],
        }
        config: dict[str, Any] = {
            "type": "http",
            "url": transport.url,
            "endpoint": transport.endpoint,
            "timeout": transport.timeout,
            "retry": retry,
        }
        if transport.api_key:
            key = resolve_secret(
                transport.api_key, setting="lineage.transports.api_key", base_dir=base_dir
            )
            config["auth"] = {"type": "api_key", "apiKey": key}
        if transport.compression:
            config["compression"] = transport.compression
        return config
    if transport.type == "file":
        path = Path(transport.path)
        path = path if path.is_absolute() else base_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return {"type": "file", "log_file_path": str(path), "append": True}
    return {"type": "console"}


class _Described:
    """What the emitter learnt of one artifact."""

    __slots__ = ("fields", "value")

    def __init__(self, fields: list[tuple[str, str]] | None, value: Any = None) -> None:
        self.fields = fields
        self.value = value


class OpenLineageObserver(RunObserver):
    """Emits OpenLineage run events for a pipeline run and its steps.

    Args:
        clients: One client per transport; each gets every event.
        namespace: Namespace of the jobs and the step-output data sets.
        base_dir: Folder that relative source paths are relative to.
        close_timeout: Seconds the end of a run waits for unsent events.
    """

    def __init__(
        self,
        clients: list[OpenLineageClient],
        *,
        namespace: str,
        base_dir: Path | None = None,
        close_timeout: float = 30.0,
    ) -> None:
        self.clients = clients
        self.namespace = namespace
        self.base_dir = base_dir
        self.close_timeout = close_timeout
        self._queue: queue.Queue[RunEvent | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._described: dict[str, _Described] = {}
        self._open: set[str] = set()
        self._sources: dict[tuple[str, str], InputDataset] = {}
        self._consumed: set[tuple[str, str]] = set()
        self._produced: dict[tuple[str, str], str] = {}

    @classmethod
    def from_section(
        cls, section: LineageSection, *, namespace: str, base_dir: Path
    ) -> OpenLineageObserver:
        """An observer for the transports of a ``lineage:`` section."""
        clients = [
            OpenLineageClient(config={"transport": transport_config(t, base_dir=base_dir)})
            for t in section.transports
        ]
        return cls(clients, namespace=section.namespace or namespace, base_dir=base_dir)

    # -- the hooks ------------------------------------------------------------------------

    def run_started(self, *, run: RunView) -> None:
        self._emit(
            RunState.START,
            run.time,
            self._run(run),
            self._job(run.pipeline, "PIPELINE"),
        )

    def step_started(self, *, run: RunView, step: StepView) -> None:
        self._open.add(step.name)
        self._emit(
            RunState.START,
            step.time,
            self._step_run(run, step.name),
            self._job(f"{run.pipeline}.{step.name}", "STEP"),
            inputs=self._inputs(run, step, with_quality=False),
        )

    def step_finished(self, *, run: RunView, step: StepView) -> None:
        job = self._job(f"{run.pipeline}.{step.name}", "STEP")
        if step.status == "cached":
            # Reused: it never started, but consumers expect a START for every COMPLETE.
            self._emit(RunState.START, step.time, self._step_run(run, step.name), job)
        if step.status in ("succeeded", "cached"):
            self._open.discard(step.name)
            inputs = self._inputs(run, step, with_quality=True)
            outputs = self._outputs(run, step)
            inputs.extend(self._source_inputs(run, step))
            self._emit(
                RunState.COMPLETE,
                step.time,
                self._step_run(run, step.name),
                job,
                inputs=inputs,
                outputs=outputs,
            )
            return
        if step.status == "failed":
            self._open.discard(step.name)
            facets = {"errorMessage": _error_facet(step.error, step.traceback)}
            self._emit(
                RunState.FAIL,
                step.time,
                self._step_run(run, step.name, facets),
                job,
                inputs=self._inputs(run, step, with_quality=False),
            )
            return
        if step.status == "skipped":
            self._emit(RunState.ABORT, step.time, self._step_run(run, step.name), job)

    def run_finished(self, *, run: RunView) -> None:
        # Steps still open when the run ends were stopped by the interruption.
        for name in sorted(self._open):
            facets = {"errorMessage": _error_facet(run.error, None)}
            self._emit(
                RunState.FAIL,
                run.time,
                self._step_run(run, name, facets),
                self._job(f"{run.pipeline}.{name}", "STEP"),
            )
        self._open.clear()
        if run.status == "finished":
            inputs = list(self._sources.values())
            outputs = [
                OutputDataset(
                    namespace=self.namespace,
                    name=f"{run.pipeline}.{step}.{output}",
                    facets=self._facets(run, digest),
                )
                for (step, output), digest in self._produced.items()
                if (step, output) not in self._consumed
            ]
            self._emit(
                RunState.COMPLETE,
                run.time,
                self._run(run),
                self._job(run.pipeline, "PIPELINE"),
                inputs=inputs,
                outputs=outputs,
            )
            return
        state = RunState.ABORT if run.status == "killed" else RunState.FAIL
        self._emit(
            state,
            run.time,
            self._run(run, {"errorMessage": _error_facet(run.error, None)}),
            self._job(run.pipeline, "PIPELINE"),
        )

    def close(self) -> None:
        if self._sender is not None:
            self._queue.put(None)
            self._sender.join(self.close_timeout)
            if self._sender.is_alive():
                log.warning(
                    "OpenLineage: %d event(s) still unsent after %gs; giving up on them",
                    self._queue.qsize(),
                    self.close_timeout,
                )
            self._sender = None
        for client in self.clients:
            try:
                client.close(timeout=5.0)
            except Exception as exc:
                log.warning("OpenLineage transport did not close cleanly: %s", exc)

    def _send_all(self) -> None:
        while (event := self._queue.get()) is not None:
            for client in self.clients:
                try:
                    client.emit(event)
                except Exception as exc:
                    state = event.eventType.value if event.eventType else "?"
                    log.warning(
                        "OpenLineage %s event of %s not delivered by the %s transport: %s: %s",
                        state,
                        event.job.name,
                        client.transport.kind,
                        type(exc).__name__,
                        exc,
                    )

    # -- events ---------------------------------------------------------------------------

    def _emit(
        self,
        state: RunState,
        when: datetime,
        run: Run,
        job: Job,
        *,
        inputs: list[InputDataset] | None = None,
        outputs: list[OutputDataset] | None = None,
    ) -> None:
        event = RunEvent(
            eventType=state,
            eventTime=when.astimezone(UTC).isoformat(),
            run=run,
            job=job,
            inputs=inputs or [],
            outputs=outputs or [],
            producer=PRODUCER,
        )
        if self._sender is None:
            self._sender = threading.Thread(
                target=self._send_all, name="opsloop-openlineage", daemon=True
            )
            self._sender.start()
        self._queue.put(event)

    def _job(self, name: str, job_type: str) -> Job:
        facets: dict[str, JobFacet] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="OPSLOOP",
                jobType=job_type,
                producer=PRODUCER,
            )
        }
        return Job(namespace=self.namespace, name=name, facets=facets)

    def _engine(self) -> processing_engine_run.ProcessingEngineRunFacet:
        return processing_engine_run.ProcessingEngineRunFacet(
            version=OPSLOOP_VERSION,
            name="opsloop",
            openlineageAdapterVersion=OPENLINEAGE_VERSION,
            producer=PRODUCER,
        )

    def _run(self, run: RunView, facets: Mapping[str, RunFacet] | None = None) -> Run:
        all_facets: dict[str, RunFacet] = {"processing_engine": self._engine(), **(facets or {})}
        return Run(runId=run_uuid(run.run_id), facets=all_facets)

    def _step_run(
        self, run: RunView, step: str, facets: Mapping[str, RunFacet] | None = None
    ) -> Run:
        parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_uuid(run.run_id)),
            job=parent_run.Job(namespace=self.namespace, name=run.pipeline),
            producer=PRODUCER,
        )
        all_facets: dict[str, RunFacet] = {
            "parent": parent,
            "processing_engine": self._engine(),
            **(facets or {}),
        }
        return Run(runId=run_uuid(run.run_id, step), facets=all_facets)

    # -- data sets ------------------------------------------------------------------------

    def _facets(self, run: RunView, digest: str) -> dict[str, DatasetFacet]:
        facets: dict[str, DatasetFacet] = {
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=digest, producer=PRODUCER
            )
        }
        described = self._describe(run.artifacts, digest)
        if described.fields is not None:
            facets["schema"] = _schema_facet(described.fields)
        return facets

    def _inputs(self, run: RunView, step: StepView, *, with_quality: bool) -> list[InputDataset]:
        quality = self._quality(run, step) if with_quality else None
        inputs = []
        for ref in step.inputs.values():
            self._consumed.add((ref.step, ref.output))
            dataset = InputDataset(
                namespace=self.namespace,
                name=f"{run.pipeline}.{ref.step}.{ref.output}",
                facets=self._facets(run, ref.digest),
            )
            if quality is not None and self._describe(run.artifacts, ref.digest).fields:
                dataset.inputFacets = {"dataQualityAssertions": quality}
            inputs.append(dataset)
        return inputs

    def _outputs(self, run: RunView, step: StepView) -> list[OutputDataset]:
        outputs = []
        for output, digest in step.outputs.items():
            self._produced[(step.name, output)] = digest
            outputs.append(
                OutputDataset(
                    namespace=self.namespace,
                    name=f"{run.pipeline}.{step.name}.{output}",
                    facets=self._facets(run, digest),
                )
            )
        return outputs

    def _quality(self, run: RunView, step: StepView) -> InputDatasetFacet | None:
        """The assertions of a contract report among the step's outputs, if there is one."""
        for digest in step.outputs.values():
            value = self._describe(run.artifacts, digest).value
            if not (isinstance(value, dict) and value.keys() >= _CONTRACT_KEYS):
                continue
            try:
                report = ContractReport.model_validate(value)
            except ValidationError:
                continue
            assertions = _assertions(report)
            if assertions:
                return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=assertions, producer=PRODUCER
                )
        return None

    def _source_inputs(self, run: RunView, step: StepView) -> list[InputDataset]:
        """The sources described by data set versions among the step's outputs."""
        found = []
        for digest in step.outputs.values():
            value = self._describe(run.artifacts, digest).value
            if not (isinstance(value, dict) and value.keys() >= _VERSION_KEYS):
                continue
            try:
                version = DatasetVersion.model_validate(value)
            except ValidationError:
                continue
            source = Path(version.source)
            if not source.is_absolute() and self.base_dir is not None:
                source = self.base_dir / source
            facets: dict[str, DatasetFacet] = {
                "version": dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=version.digest, producer=PRODUCER
                ),
                "schema": _schema_facet(list(version.columns.items())),
            }
            dataset = InputDataset(namespace="file", name=str(source), facets=facets)
            self._sources[(dataset.namespace, dataset.name)] = dataset
            found.append(dataset)
        return found

    def _describe(self, artifacts: ArtifactStore, digest: str) -> _Described:
        known = self._described.get(digest)
        if known is None:
            try:
                known = _describe(artifacts, digest)
            except Exception as exc:
                log.warning("OpenLineage: cannot describe artifact %s: %s", digest, exc)
                known = _Described(None)
            self._described[digest] = known
        return known


def _describe(artifacts: ArtifactStore, digest: str) -> _Described:
    manifest = artifacts.get_manifest(digest)
    meta_entry = manifest.files.get(META_FILE)
    if meta_entry is None:
        return _Described(None)
    meta = json.loads(artifacts.get_bytes(meta_entry.digest))
    kind = meta.get("materializer")
    parquet = manifest.files.get("data.parquet")
    if kind == "pandas.parquet" and parquet is not None and parquet.size <= _MAX_PARQUET_BYTES:
        # On a local store only the file's footer is read; a remote blob is fetched whole.
        local = getattr(artifacts, "local_path", None)
        path = local(parquet.digest) if local is not None else None
        source = path if path is not None else io.BytesIO(artifacts.get_bytes(parquet.digest))
        schema = pq.read_schema(source)
        index_columns = _index_columns(schema.pandas_metadata)
        # Arrow's 64-bit offset variants (large_string …) are the same type to a reader.
        fields = [
            (name, str(typ).replace("large_", ""))
            for name, typ in zip(schema.names, schema.types, strict=True)
            if name not in index_columns
        ]
        return _Described(fields)
    data = manifest.files.get("data.json")
    if kind == "json" and data is not None and data.size <= _MAX_JSON_BYTES:
        return _Described(None, json.loads(artifacts.get_bytes(data.digest)))
    return _Described(None)


def _index_columns(pandas_meta: dict[str, Any] | None) -> set[str]:
    if not pandas_meta:
        return set()
    return {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}


def _schema_facet(fields: list[tuple[str, str]]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=str(name), type=typ, ordinal_position=i)
            for i, (name, typ) in enumerate(fields, start=1)
        ],
        producer=PRODUCER,
    )


def _assertions(report: ContractReport) -> list[data_quality_assertions_dataset.Assertion]:
    seen: set[tuple[str | None, str]] = set()
    out = []
    failed = {(f.column, f.rule) for f in report.failures}
    for rule in report.results:
        seen.add((rule.column, rule.rule))
        out.append(
            data_quality_assertions_dataset.Assertion(
                assertion=rule.rule,
                success=(rule.column, rule.rule) not in failed,
                column=rule.column,
                severity=rule.severity,
            )
        )
    # Failures outside the declared rules (undeclared personal data) are assertions too.
    for failure in report.failures:
        if (failure.column, failure.rule) not in seen:
            seen.add((failure.column, failure.rule))
            out.append(
                data_quality_assertions_dataset.Assertion(
                    assertion=failure.rule,
                    success=False,
                    column=failure.column,
                    severity=failure.severity,
                    description=failure.message,
                )
            )
    return out


def _error_facet(
    error: str | None, traceback: str | None
) -> error_message_run.ErrorMessageRunFacet:
    return error_message_run.ErrorMessageRunFacet(
        message=error or "failed",
        programmingLanguage="python",
        stackTrace=traceback,
        producer=PRODUCER,
    )
