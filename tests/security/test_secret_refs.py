"""Secret references (env:NAME, file:PATH): resolved at use, never shown; committed secrets
are found by the secrets scan, and the baseline suppresses the audited ones."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from opsloop.errors import ConfigError
from opsloop.redact import MASK, redact
from opsloop.secops.secrets import BASELINE_FILE, scan_secrets
from opsloop.secretrefs import is_reference, resolve_secret
from opsloop.settings import load_settings
from opsloop.spec import parse_spec
from opsloop.store import open_store
from tests.security.test_secrets_urls import assert_hidden, opsloop

PW = "Rf7secretWq"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPSLOOP_STORE_URL", "OPSLOOP_ARTIFACT_URL", "OPSLOOP_PROJECT_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_store_url_from_env_never_appears_in_opsloop_output(
    tmp_path: Path, closed_port: int
) -> None:
    (tmp_path / "opsloop.yaml").write_text("project: refs\nstore: {url: env:REFS_STORE_URL}\n")
    url = f"postgresql://alice:{PW}@127.0.0.1:{closed_port}/db"
    for args in (("runs", "list"), ("--debug", "runs", "list")):
        out = opsloop(tmp_path, *args, env={"REFS_STORE_URL": url})
        assert out.returncode == 1
        assert_hidden(out, PW)
        assert "cannot open the metadata store" in out.stderr, out.stderr
    # Unset: a clear error naming the variable.
    out = opsloop(tmp_path, "runs", "list")
    assert out.returncode == 1
    assert "environment variable REFS_STORE_URL is not set" in out.stderr, out.stderr


def test_a_file_reference_is_read_relative_to_the_project_and_the_spec_keeps_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "store").write_text(f"sqlite:///{db}\n")
    text = "project: refs\nstore: {url: 'file:secrets/store'}\n"
    (tmp_path / "opsloop.yaml").write_text(text)
    spec = parse_spec(text)
    settings = load_settings(tmp_path, spec)
    assert settings.store_url == f"sqlite:///{db}"
    assert spec.store is not None and spec.store.url == "file:secrets/store"
    out = opsloop(tmp_path, "runs", "list")
    assert out.returncode == 0, out.stderr
    assert db.exists()
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        resolve_secret("file:nope", setting="store.url", base_dir=tmp_path)
    # A file:// URL is a URL (a local artifact store), not a reference.
    url = (tmp_path / "artifacts").as_uri()
    assert resolve_secret(url, setting="artifacts.url", base_dir=tmp_path) == url
    assert not is_reference(url) and is_reference("file:/run/secrets/x")


def test_resolved_secrets_are_masked_wherever_redact_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFS_WEBHOOK", f"https://hooks.example.com/services/{PW}")
    value = resolve_secret("env:REFS_WEBHOOK", setting="notify.webhook")
    assert value.endswith(PW)
    masked = redact(f"POST {value} failed: 500")
    assert PW not in masked and MASK in masked
    with pytest.raises(ConfigError, match="not an environment variable name") as info:
        resolve_secret("env:BAD-NAME", setting="notify.webhook")
    assert "notify.webhook" in str(info.value)


def test_a_literal_password_in_opsloop_yaml_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = parse_spec(f"project: refs\nstore: {{url: 'postgresql://alice:{PW}@db/x'}}\n")
    with caplog.at_level(logging.WARNING, logger="opsloop.settings"):
        load_settings(tmp_path, spec)
    [record] = [r for r in caplog.records if r.name == "opsloop.settings"]
    assert "store.url holds a password" in record.getMessage()
    assert PW not in record.getMessage()


def test_committed_keys_are_found_and_the_baseline_suppresses_known_ones(
    tmp_path: Path,
) -> None:
    aws = "AKIA" + "ZXCVBNMLKJHGFDSA"
    (tmp_path / "cfg.py").write_text(f'aws = "{aws}"\n')
    key = "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    (tmp_path / "deploy_key").write_text(key)
    report = scan_secrets(tmp_path)
    assert {f.type for f in report.new} == {"AWS Access Key", "Private Key"}
    # Audit the AWS key into a baseline by hand (the detect-secrets format).
    [found] = [f for f in report.findings if f.type == "AWS Access Key"]
    baseline = {
        "version": "1.5.0",
        "plugins_used": [{"name": "AWSKeyDetector"}, {"name": "PrivateKeyDetector"}],
        "filters_used": [],
        "results": {
            "cfg.py": [
                {
                    "type": "AWS Access Key",
                    "filename": "cfg.py",
                    "hashed_secret": found.hashed_secret,
                    "is_verified": False,
                    "line_number": 1,
                }
            ]
        },
        "generated_at": "2026-01-01T00:00:00Z",
    }

    (tmp_path / BASELINE_FILE).write_text(json.dumps(baseline))
    report = scan_secrets(tmp_path)
    assert [f.type for f in report.new] == ["Private Key"]
    assert [f.type for f in report.findings if f.known] == ["AWS Access Key"]


def test_a_resolved_secret_is_masked_in_stored_params_tags_and_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "tok-" + PW
    monkeypatch.setenv("REFS_TOKEN", token)
    assert resolve_secret("env:REFS_TOKEN", setting="notify.headers.Authorization") == token
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    run = store.runs.create("r", params={"header": f"Bearer {token}"}, tags={"t": [token]})
    store.runs.log_params(run.id, {"later": {"auth": token}})
    store.events.emit("notify.failed", "run", run.id, {"reason": f"401 for {token}"})
    shown = json.dumps(
        [
            store.runs.get(run.id).model_dump(mode="json"),
            [e.model_dump(mode="json") for e in store.events.list()],
        ]
    )
    assert PW not in shown
    assert shown.count(MASK) >= 4
