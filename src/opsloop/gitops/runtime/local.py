"""The ``local`` runtime: model server processes on this machine, supervised through a state
file.

Each replica is an ``opsloop serve`` process listening on ``127.0.0.1`` (replica ``i`` on
``port + i``). The state file ``<project>/.opsloop/runtime/local.json`` records, per
deployment, the spec it runs and each replica's PID, process start time (so a reused PID is
not mistaken for the server), port and log file. Servers outlive the command that started
them; any later command reads the state file to find them again.

Changes are made without downtime where the server allows it: versions are loaded, routed
and unloaded through the server's admin endpoint while it keeps answering. A change the
admin endpoint cannot make (another model, another port) starts the new server, waits for
it to be ready, then stops the old one; only a change on the same port that the admin
endpoint refuses falls back to stop-then-start.

Tokens reach the servers through their environment, never their arguments (which anyone on
the machine can read in the process list): ``OPSLOOP_SERVE_TOKEN`` and ``OPSLOOP_ADMIN_TOKEN``
from ``env`` or this process' environment. The runtime sends the admin token with its own
admin calls; without one the servers take admin calls from loopback only.

``spec.resources`` are not enforced here; they matter on Kubernetes (and to cost reports).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil
from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError

from opsloop.errors import ConfigError, GitOpsError
from opsloop.gitops.runtime.base import Runtime
from opsloop.gitops.types import Health, HealthStatus, LiveDeployment, ObservedRouting, RuntimeSpec
from opsloop.secretrefs import resolve_secret

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["LocalRuntime", "ReplicaRecord", "RuntimeRecord", "exit_reason"]

STATE_FILE = "local.json"
_ADMIN = "/v1/admin/models"
_READY = "/v2/health/ready"
# Where ``opsloop serve`` reads its admin token from (gitops does not import serve).
_ADMIN_TOKEN_ENV = "OPSLOOP_ADMIN_TOKEN"

# Servers must outlive the command that starts them, and must not become zombies of a
# long-lived parent (``opsloop up``, a test run) when they die. A tiny launcher process
# starts the server in a session of its own and exits at once, so the server is nobody's
# child in this process and no Popen object outlives its process.
_LAUNCHER = """
import os, subprocess, sys
with open(sys.argv[1], "ab") as log:
    proc = subprocess.Popen(
        sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


class ReplicaRecord(BaseModel):
    """One server process of a deployment."""

    index: int
    pid: int
    create_time: float
    port: int
    log: str
    started_at: datetime
    command: list[str] = Field(default_factory=list)


class RuntimeRecord(BaseModel):
    """What the local runtime runs for one deployment."""

    spec: RuntimeSpec
    replicas: list[ReplicaRecord] = Field(default_factory=list)
    updated_at: datetime


class _StateFile(BaseModel):
    version: int = 1
    deployments: dict[str, RuntimeRecord] = Field(default_factory=dict)


class _NeedsRestartError(Exception):
    """The running server cannot make this change in place."""


class LocalRuntime(Runtime):
    """Model server processes on this machine.

    Args:
        project_dir: The project folder (servers run there, with it as their project).
        host: Address the servers listen on.
        server_command: The command that starts a server, before its arguments (default
            ``python -m opsloop serve``).
        state_dir: Where the state file and logs go (default
            ``<project>/.opsloop/runtime``).
        ready_timeout_s: Longest wait for a new server's ``/v2/health/ready``.
        stop_timeout_s: Longest wait for a server to exit on SIGTERM before SIGKILL.
        port_wait_s: Longest wait for a deployment's port that another process holds before
            a server is started on it (one that just died may still be letting it go).
        env: Extra environment variables for the servers (``OPSLOOP_SERVE_TOKEN``,
            ``OPSLOOP_ADMIN_TOKEN`` … go here or in this process' environment).
    """

    name = "local"

    def __init__(
        self,
        project_dir: Path,
        *,
        host: str = "127.0.0.1",
        server_command: Sequence[str] | None = None,
        state_dir: Path | None = None,
        ready_timeout_s: float = 90.0,
        stop_timeout_s: float = 15.0,
        port_wait_s: float = 2.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.host = host
        self.server_command = list(server_command or [sys.executable, "-m", "opsloop", "serve"])
        self.dir = (
            Path(state_dir) if state_dir is not None else self.project_dir / ".opsloop" / "runtime"
        )
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.port_wait_s = port_wait_s
        self.env = dict(env or {})
        admin_token = self.env.get(_ADMIN_TOKEN_ENV, os.environ.get(_ADMIN_TOKEN_ENV, "")).strip()
        self._admin_headers = {"authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.state_path = self.dir / STATE_FILE
        self._lock = FileLock(str(self.dir / "local.lock"), timeout=600)

    # -- state file ---------------------------------------------------------------------------

    def _read(self) -> _StateFile:
        try:
            raw = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _StateFile()
        try:
            return _StateFile.model_validate_json(raw)
        except ValidationError as exc:
            raise GitOpsError(
                f"{self.state_path} is not a valid runtime state file: {exc.errors()[0]['msg']}",
                hint="stop the servers it lists by hand, then delete the file",
            ) from exc

    def _write(self, state: _StateFile) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(state.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_StateFile]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield self._read()

    # -- processes ----------------------------------------------------------------------------

    @staticmethod
    def alive(replica: ReplicaRecord) -> bool:
        """Whether the replica's server process is still running (and is still that process)."""
        try:
            proc = psutil.Process(replica.pid)
            if abs(proc.create_time() - replica.create_time) > 1.0:
                return False
            return proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def _url(self, port: int, path: str) -> str:
        return f"http://{self.host}:{port}{path}"

    def _ready(self, port: int, timeout: float = 2.0) -> bool:
        try:
            return httpx.get(self._url(port, _READY), timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def port_free(self, port: int) -> bool:
        """Whether a server could listen on ``port`` now (as the servers do, SO_REUSEADDR)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
            except OSError:
                return False
        return True

    def _command(self, name: str, spec: RuntimeSpec, port: int) -> list[str]:
        return [*self.server_command, *spec.server_args(self.host, port)]

    def _start(self, name: str, spec: RuntimeSpec, index: int, port: int) -> ReplicaRecord:
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{name}-{index}.log"
        cmd = self._command(name, spec, port)
        started = datetime.now(UTC)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"--- {started.isoformat()} starting: {' '.join(cmd)}\n")
        env = {
            **os.environ,
            "OPSLOOP_PROJECT_DIR": str(self.project_dir),
            **self.env,
            **self._tokens(name, spec),
        }
        try:
            out = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, str(log), *cmd],
                cwd=self.project_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            pid = int(out.stdout.strip())
            create_time = psutil.Process(pid).create_time()
        except (OSError, ValueError, subprocess.SubprocessError, psutil.Error) as exc:
            raise GitOpsError(f"deployment '{name}': could not start a server: {exc}") from exc
        replica = ReplicaRecord(
            index=index,
            pid=pid,
            create_time=create_time,
            port=port,
            log=str(log),
            started_at=started,
            command=cmd,
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if not self.alive(replica):
                if not self.port_free(port):
                    # Taken between the check and the server's bind: the same one line.
                    raise self._taken(name, port)
                raise GitOpsError(
                    f"deployment '{name}': the server on port {port} exited before it was "
                    f"ready: {exit_reason(log)}",
                    hint=f"see {log}",
                )
            if self._ready(port, timeout=1.0):
                return replica
            if time.monotonic() > deadline:
                self._stop_replica(replica)
                raise GitOpsError(
                    f"deployment '{name}': the server on port {port} was not ready after "
                    f"{self.ready_timeout_s:g} s: {_log_tail(log)}",
                    hint=f"see {log}",
                )
            time.sleep(0.1)

    def _stop_replica(self, replica: ReplicaRecord) -> None:
        for sig, wait in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 5.0)):
            if not self.alive(replica):
                return
            try:
                # The server leads a session of its own: signal the group, so helpers go too.
                os.killpg(replica.pid, sig)
            except OSError:
                with contextlib.suppress(OSError):
                    os.kill(replica.pid, sig)
            # Polled rather than waited on: the server is not our child, and where nobody
            # reaps it, it lingers as a zombie that alive() already counts as gone.
            deadline = time.monotonic() + wait
            while self.alive(replica) and time.monotonic() < deadline:
                time.sleep(0.05)

    # -- admin endpoint -----------------------------------------------------------------------

    def _tokens(self, name: str, spec: RuntimeSpec) -> dict[str, str]:
        """The tokens the deployment's ``spec.auth`` names, resolved now (its servers read
        them from their environment)."""
        try:
            return {
                env: resolve_secret(
                    ref, setting=f"deployment '{name}': spec.auth", base_dir=self.project_dir
                )
                for env, ref in spec.auth.items()
            }
        except ConfigError as exc:
            # The reconciler shows a deployment it cannot start as Degraded with this reason.
            raise GitOpsError(exc.message, hint=exc.hint) from exc

    def _headers(self, spec: RuntimeSpec) -> dict[str, str]:
        """What the runtime's admin calls to the deployment's servers send."""
        ref = spec.auth.get(_ADMIN_TOKEN_ENV)
        if ref is None:
            return self._admin_headers
        try:
            token = resolve_secret(
                ref, setting=f"deployment '{spec.name}': spec.auth", base_dir=self.project_dir
            )
        except ConfigError as exc:
            raise GitOpsError(exc.message, hint=exc.hint) from exc
        return {"authorization": f"Bearer {token}"}

    def _routing(
        self, port: int, spec: RuntimeSpec, timeout: float = 2.0
    ) -> ObservedRouting | None:
        model = spec.model
        try:
            resp = httpx.get(self._url(port, _ADMIN), timeout=timeout, headers=self._headers(spec))
            if resp.status_code != 200:
                return None
            entry = resp.json().get("models", {}).get(model)
            if entry is None:
                return ObservedRouting(versions=[], traffic={}, shadow=[])
            return ObservedRouting(
                versions=[int(v) for v in entry.get("versions", [])],
                traffic={int(v): float(w) for v, w in entry.get("traffic", {}).items()},
                shadow=[int(v) for v in entry.get("shadow", [])],
            )
        except (httpx.HTTPError, ValueError, TypeError, AttributeError):
            return None

    def _update_in_place(self, name: str, replica: ReplicaRecord, spec: RuntimeSpec) -> None:
        current = self._routing(replica.port, spec)
        if current is None or not current.versions:
            raise _NeedsRestartError
        url = self._url(replica.port, _ADMIN)
        want = set(spec.versions)
        with httpx.Client(
            timeout=httpx.Timeout(10.0, read=max(self.ready_timeout_s, 10.0)),
            headers=self._headers(spec),
        ) as http:

            def post(payload: dict[str, Any], what: str) -> None:
                try:
                    resp = http.post(url, json=payload)
                except httpx.HTTPError as exc:
                    raise GitOpsError(
                        f"deployment '{name}': {what} on port {replica.port} failed: {exc}"
                    ) from exc
                if resp.status_code in (401, 403, 404, 405, 501):
                    raise _NeedsRestartError
                if resp.status_code != 200:
                    raise GitOpsError(
                        f"deployment '{name}': {what} on port {replica.port} failed: "
                        f"{_error_text(resp)}"
                    )

            for version in sorted(want - set(current.versions)):
                post(
                    {"action": "load", "uri": f"models:/{spec.model}/{version}"},
                    f"loading version {version}",
                )
            post(
                {
                    "action": "set_traffic",
                    "model": spec.model,
                    "traffic": {str(v): w for v, w in spec.traffic.items()},
                    "shadow": [str(v) for v in sorted(spec.shadow)],
                },
                "setting the traffic split",
            )
            for version in sorted(set(current.versions) - want):
                post(
                    {"action": "unload", "model": spec.model, "version": str(version)},
                    f"unloading version {version}",
                )

    # -- the contract -------------------------------------------------------------------------

    def live_state(self) -> dict[str, LiveDeployment]:
        """Every deployment in the state file, with its processes checked now."""
        return {name: self._live(name, rec) for name, rec in self._read().deployments.items()}

    def _live(self, name: str, rec: RuntimeRecord) -> LiveDeployment:
        alive = [r for r in rec.replicas if self.alive(r)]
        return LiveDeployment(
            name=name,
            spec=rec.spec,
            running=len(alive),
            routing=[self._routing(r.port, rec.spec) for r in alive],
            endpoints=[self._url(r.port, "") for r in alive],
            details={
                "replicas": [
                    {
                        "index": r.index,
                        "pid": r.pid,
                        "port": r.port,
                        "alive": r in alive,
                        "log": r.log,
                    }
                    for r in rec.replicas
                ]
            },
        )

    def apply(self, name: str, desired: RuntimeSpec) -> LiveDeployment:
        """Run ``desired`` for ``name``: start, update in place, replace or stop replicas.

        Raises:
            GitOpsError: A port is taken by another process (checked before anything
                changes), or a new server did not become ready (the replicas already running
                keep running).
        """
        with self._locked() as state:
            rec = state.deployments.get(name)
            alive = [r for r in (rec.replicas if rec else []) if self.alive(r)]
            targets = [desired.port + i for i in range(desired.replicas)]
            self._check_ports(name, targets, alive, state)
            kept: list[ReplicaRecord] = []
            same_model = rec is not None and rec.spec.model == desired.model
            try:
                for index, port in enumerate(targets):
                    current = next((r for r in alive if r.index == index), None)
                    if current is not None and current.port == port and same_model:
                        try:
                            self._update_in_place(name, current, desired)
                            kept.append(current)
                            alive.remove(current)
                            continue
                        except _NeedsRestartError:
                            pass
                    holder = next((r for r in alive if r.port == port), None)
                    if holder is not None:
                        # The port is ours but cannot be shared: stop-then-start.
                        self._stop_replica(holder)
                        alive.remove(holder)
                    replica = self._start(name, desired, index, port)
                    kept.append(replica)
                    if current is not None and current in alive:
                        # Started beside the old one (other port): only now stop the old.
                        self._stop_replica(current)
                        alive.remove(current)
                for extra in alive:
                    self._stop_replica(extra)
                alive = []
            except BaseException:
                running = [r for r in [*kept, *alive] if self.alive(r)]
                if rec is not None or running:
                    state.deployments[name] = RuntimeRecord(
                        spec=rec.spec if rec is not None else desired,
                        replicas=running,
                        updated_at=datetime.now(UTC),
                    )
                    self._write(state)
                raise
            record = RuntimeRecord(spec=desired, replicas=kept, updated_at=datetime.now(UTC))
            state.deployments[name] = record
            self._write(state)
            return self._live(name, record)

    def _check_ports(
        self, name: str, ports: list[int], own: list[ReplicaRecord], state: _StateFile
    ) -> None:
        own_ports = {r.port for r in own}
        for port in ports:
            if port in own_ports:
                continue
            for other, rec in state.deployments.items():
                if other != name and any(r.port == port and self.alive(r) for r in rec.replicas):
                    raise GitOpsError(
                        f"deployment '{name}': port {port} is in use by deployment '{other}'",
                        hint="give each deployment its own spec.port",
                    )
            # A port held for a moment (a process that is going, another one trying it) is
            # waited for before the start is refused.
            deadline = time.monotonic() + self.port_wait_s
            while not self.port_free(port):
                if time.monotonic() >= deadline:
                    raise self._taken(name, port)
                time.sleep(0.1)

    def _taken(self, name: str, port: int) -> GitOpsError:
        """The error of a port another process listens on, naming that process where the
        system tells (its pid and command line)."""
        holder = ""
        with contextlib.suppress(psutil.Error, OSError):
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    if conn.pid:
                        command = " ".join(psutil.Process(conn.pid).cmdline())
                        holder = f" (pid {conn.pid}: {command[:200]})"
                    break
        return GitOpsError(
            f"deployment '{name}': port {port} on {self.host} is in use by another process"
            + holder,
            hint="free the port or change spec.port in the deployment document",
        )

    def stop(self, name: str) -> None:
        """Stop every replica of ``name`` and forget it."""
        with self._locked() as state:
            rec = state.deployments.pop(name, None)
            if rec is None:
                return
            try:
                for replica in rec.replicas:
                    self._stop_replica(replica)
            finally:
                left = [r for r in rec.replicas if self.alive(r)]
                if left:
                    state.deployments[name] = rec.model_copy(update={"replicas": left})
                self._write(state)

    def stop_all(self) -> None:
        """Stop every deployment this runtime runs."""
        for name in list(self._read().deployments):
            self.stop(name)

    def health(self, name: str) -> Health:
        """Healthy when every replica answers ``/v2/health/ready``."""
        rec = self._read().deployments.get(name)
        if rec is None:
            return Health(status=HealthStatus.MISSING, reason="not running in the local runtime")
        if rec.spec.replicas == 0:
            return Health(status=HealthStatus.SUSPENDED, reason="scaled to 0 replicas")
        by_index = {r.index: r for r in rec.replicas}
        for index in range(rec.spec.replicas):
            replica = by_index.get(index)
            if replica is None:
                return Health(
                    status=HealthStatus.DEGRADED,
                    reason=f"replica {index} (port {rec.spec.port + index}) is not running",
                )
            if not self.alive(replica):
                return Health(
                    status=HealthStatus.DEGRADED,
                    reason=f"replica {index} (pid {replica.pid}, port {replica.port}) exited: "
                    f"{exit_reason(Path(replica.log))} (log: {replica.log})",
                )
        for replica in rec.replicas:
            if not self._ready(replica.port):
                return Health(
                    status=HealthStatus.PROGRESSING,
                    reason=f"replica {replica.index} on port {replica.port} is not ready yet",
                )
        ports = ", ".join(str(r.port) for r in rec.replicas)
        n = len(rec.replicas)
        return Health(
            status=HealthStatus.HEALTHY,
            reason=f"{n}/{n} replica{'s' if n > 1 else ''} ready on {self.host}:{ports}",
        )


def _last_run(log: Path) -> list[str] | None:
    """The non-empty lines the server's last start wrote to its log (None: no log)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    start = max((i for i, ln in enumerate(lines) if ln.startswith("--- ")), default=-1) + 1
    return [ln.strip() for ln in lines[start:] if ln.strip()]


def _log_tail(log: Path, limit: int = 300) -> str:
    """The last meaningful lines of a server log, as one line."""
    useful = _last_run(log)
    if useful is None:
        return "no log"
    text = " | ".join(useful[-3:]) or "no output"
    return text if len(text) <= limit else "…" + text[-limit:]


# The last line of a Python traceback: ``ValueError: ...``, ``pkg.mod.SomeError``.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:.*)?$")


def exit_reason(log: Path, limit: int = 300) -> str:
    """Why a server process ended, read from its log, as one line.

    ``opsloop serve`` prints an error as ``error: ...`` and a stop as ``stopped serving
    ...``; a crash leaves a traceback. A server killed by a signal (or the out-of-memory
    killer) writes nothing: then its start-up line is no reason, and that is said instead.
    """
    lines = _last_run(log)
    if lines is None:
        return "no log"
    reason: str | None = None
    for line in reversed(lines):
        if line.startswith("error:"):
            reason = line
            break
        if _EXCEPTION_LINE.match(line) or line.startswith("ERROR:"):
            reason = line
            break
        if line.startswith("stopped serving"):
            reason = "it was stopped (SIGTERM or Ctrl-C)"
            break
    if reason is None:
        reason = "its log shows no error: killed by a signal or out of memory?"
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except (json.JSONDecodeError, ValueError):
        pass
    return f"HTTP {resp.status_code}: {resp.text[:200]}"
