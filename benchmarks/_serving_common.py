"""The model every server in benchmarks/serving.py serves, trained identically in each venv.

Plain numpy + scikit-learn so it runs in the anchors' own environments too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

FEATURES = 30
COLUMNS = [f"f{i}" for i in range(FEATURES)]


def make_data(directory: Path) -> None:
    """Write the seeded training data (X.npy, y.npy) and the probe row."""
    rng = np.random.default_rng(42)
    x = rng.normal(size=(5000, FEATURES))
    weights = rng.normal(size=FEATURES)
    y = (x @ weights + rng.normal(scale=0.5, size=5000) > 0).astype(int)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "X.npy", x)
    np.save(directory / "y.npy", y)


def train(directory: Path, *, with_names: bool) -> Any:
    """StandardScaler + LogisticRegression on the saved data.

    Args:
        directory: Where X.npy and y.npy are.
        with_names: Fit on a DataFrame with columns f0..f29 (MLflow, opsloop) or on the bare
            array (MLServer's sklearn runtime passes arrays).
    """
    # Lazy imports here and below (noqa: PLC0415) of sklearn, pandas: each loads only where it is
    # used, so importing this module stays light.
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    x = np.load(directory / "X.npy")
    y = np.load(directory / "y.npy")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if with_names:
        import pandas as pd  # noqa: PLC0415

        return pipe.fit(pd.DataFrame(x, columns=COLUMNS), y)
    return pipe.fit(x, y)


def probe_row(directory: Path) -> list[float]:
    """The row every request sends (a real training row, rounded for a short body)."""
    return [round(float(v), 4) for v in np.load(directory / "X.npy")[7]]
