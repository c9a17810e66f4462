"""The lineage: section of opsloop.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.errors import SpecError
from opsloop.pipeline.lineage import transport_config
from opsloop.spec import parse_spec


def parse(text: str):
    return parse_spec(f"project: shop\n{text}", file="opsloop.yaml")


def test_transports_of_every_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse(
        "lineage:\n  namespace: team-a\n  transports:\n"
        "    - {type: http, url: 'http://marquez:5000', api_key: 'env:OL_KEY', retries: 1}\n"
        "    - {type: file, path: out/lineage.jsonl}\n"
        "    - {type: console}\n"
    )
    section = spec.lineage
    assert section.enabled and section.namespace == "team-a"
    monkeypatch.setenv("OL_KEY", "s3cret")
    http, file, console = (transport_config(t, base_dir=tmp_path) for t in section.transports)
    assert http["url"] == "http://marquez:5000" and http["endpoint"] == "api/v1/lineage"
    assert http["auth"] == {"type": "api_key", "apiKey": "s3cret"}
    assert http["retry"]["total"] == 1
    path = str(tmp_path / "out/lineage.jsonl")
    assert file == {"type": "file", "log_file_path": path, "append": True}
    assert console == {"type": "console"}


def test_no_section_emits_nothing() -> None:
    assert not parse("").lineage.enabled


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("lineage:\n  transports:\n    - {type: kafka}\n", "lineage.transports.0"),
        (
            "lineage:\n  transports:\n    - {type: http, url: 'ftp://x'}\n",
            "lineage.transports.0.http.url",
        ),
        ("lineage:\n  transports:\n    - {type: file}\n", "lineage.transports.0.file.path"),
        ("lineage:\n  namespace: 'has space'\n", "lineage.namespace"),
        ("lineage:\n  transport: []\n", "lineage.transport"),
    ],
)
def test_bad_sections_name_the_field(text: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse(text)
    assert field in str(info.value)
