"""HTML drift report."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.errors import MonitorError
from opsloop.monitor import (
    DriftResult,
    ReferenceProfile,
    build_reference_profile,
    compute_drift,
    write_drift_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _images(html: str) -> list[bytes]:
    encoded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    return [base64.b64decode(m) for m in encoded]


def _check(n: int = 2000) -> tuple[ReferenceProfile, DriftResult, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "city": rng.choice(["oslo", "rome"], n),
            "<b>stable</b>": rng.normal(0, 1, n),
        }
    )
    cur = pd.DataFrame(
        {
            "age": rng.normal(48, 10, n),
            "city": rng.choice(["oslo", "rome", "lima"], n),
            "<b>stable</b>": rng.normal(0, 1, n),
        }
    )
    profile = build_reference_profile(ref)
    return profile, compute_drift(profile, cur), cur


def test_report_has_a_chart_per_drifted_feature_and_per_series(tmp_path: Path) -> None:
    profile, result, cur = _check()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    series = {"share drifted": [(start + timedelta(hours=h), h / 10) for h in range(10)]}
    path = write_drift_report(
        result, tmp_path / "out" / "drift.html", profile=profile, current=cur, series=series
    )
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "drift.html"
    assert result.drifted_features == ["age", "city"]
    images = _images(html)
    assert len(images) == 3  # age, city, and the series
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    assert "Data set drift detected" in html and "share drifted" in html
    # Names are escaped, never injected as markup.
    assert "&lt;b&gt;stable&lt;/b&gt;" in html and "<b>stable</b>" not in html
    assert not list(path.parent.glob(".*partial"))


def test_report_without_extras(tmp_path: Path) -> None:
    profile = build_reference_profile(pd.DataFrame({"x": np.arange(100.0)}))
    result = compute_drift(profile, pd.DataFrame({"x": np.arange(100.0)}))
    html = write_drift_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No data set drift" in html and _images(html) == []


def test_unwritable_path_is_a_monitor_error(tmp_path: Path) -> None:
    _, result, _ = _check(200)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MonitorError, match="cannot write drift report"):
        write_drift_report(result, blocker / "report.html")
