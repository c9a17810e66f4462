"""Without a terminal, a run writes a plain line per step and per progress report."""

from __future__ import annotations

import pytest

from opsloop.pipeline import run_pipeline
from opsloop.pipeline.progress import progress_file, report_progress

from . import progress_fixture as pf


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_plain_lines_per_step_and_per_report(store, artifacts, capsys, executor: str) -> None:
    result = run_pipeline(
        pf.progress_demo,
        {"n": 3},
        store=store,
        artifacts=artifacts,
        executor=executor,
        progress=True,
    )
    assert result.succeeded, result.error
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "pipeline progress_demo"
    expected = [
        "count: running",
        "  count: item 1 of 3",
        "  count: item 2 of 3",
        "  count: item 3 of 3",
    ]
    at = err.index("count: running")
    assert err[at : at + 4] == expected, err
    assert any(line.startswith("count: succeeded in ") for line in err)
    assert err.index("double: running") > at + 3
    assert not progress_file(result.run_id).exists()

    again = run_pipeline(
        pf.progress_demo, {"n": 3}, store=store, artifacts=artifacts, progress=True
    )
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("count: cached (from step run") for line in err), err
    assert not any("item 1 of 3" in line for line in err)
    assert again.succeeded


def test_reports_outside_a_step_or_unheard_go_nowhere(store, artifacts, capsys) -> None:
    report_progress("nobody listens")
    result = run_pipeline(
        pf.progress_demo, {"n": 2}, store=store, artifacts=artifacts, progress=False
    )
    assert result.succeeded
    out = capsys.readouterr()
    assert "item" not in out.err and "nobody" not in out.err + out.out
