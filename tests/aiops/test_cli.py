"""``opsloop aiops`` commands."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from opsloop.cli.aiops import app

runner = CliRunner()


def test_benchmark_prints_the_scoreboard(nab_slice: Path, tmp_path: Path) -> None:
    out = tmp_path / "board.json"
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--nab",
            str(nab_slice),
            "--detector",
            "ensemble",
            "--detector",
            "mad",
            "--profile",
            "standard",
            "--results",
            str(nab_slice / "results" / "numenta"),
            "--no-progress",
            "--chart",
            str(tmp_path / "chart.png"),
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "NAB scoreboard: 4 files" in result.output
    for name in ("ensemble", "mad", "numenta"):
        assert name in result.output
    assert (tmp_path / "chart.png").stat().st_size > 0
    board = json.loads(out.read_text())
    assert board["profiles"] == ["standard"]
    assert {r["detector"] for r in board["rows"]} == {"ensemble", "mad", "numenta"}


def test_benchmark_reports_errors_with_status_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["benchmark", "--nab", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1
    assert "not an NAB folder" in result.output


def test_detectors_lists_the_registry() -> None:
    result = runner.invoke(app, ["detectors"])
    assert result.exit_code == 0
    for name in ("fused (default)", "ensemble", "artime", "mad", "ewma", "seasonal"):
        assert name in result.output
