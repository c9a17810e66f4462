"""Synthetic series for the detector tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

POINTS_PER_DAY = 288


def five_minute_stamps(n: int, start: datetime | None = None) -> list[datetime]:
    """``n`` timestamps five minutes apart."""
    start = start or datetime(2024, 1, 1)
    return [start + timedelta(minutes=5 * i) for i in range(n)]


def daily_series(n: int, seed: int = 0, noise: float = 1.0) -> npt.NDArray[np.float64]:
    """A 5-minute series: a daily sine profile plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(n) / POINTS_PER_DAY
    return 50 + 20 * np.sin(phase) + noise * rng.standard_normal(n)
