"""False alarms of the drift verdicts on data that did not drift, and detection of the drift
the quickstart injects.

A monitor that flags stable data gets switched off, so this measures how often a feature of
a window drawn from the reference distribution itself is called drifted (the false-alarm rate
per feature per window), over many seeds and realistic window sizes, for each set of verdict
rules given with ``--rules``:

* ``evidently``: one test per feature with Evidently's ``DataDriftPreset`` rules
  (``verdict: evidently``);
* ``default``: opsloop's default rules (``DriftThresholds()``).

Scenarios (every one seeded; a seed draws a fresh reference where the reference is synthetic,
and always a fresh window):

* **synthetic** - six columns: normal, log-normal, Poisson counts (integers, more than five
  values, so tied values in the KS test), a numeric column of four values (tested as values),
  a ten-level category with rare levels (down to 0.2 %), and a boolean. References of 19,184
  rows (the quickstart's training part) and of 1,000 rows (the largest for which Evidently's
  rules use p-value tests).
* **churn** - the churn example's generator with a new seed, the training period of the
  time-based split (the rows the quickstart's reference profile describes), against the
  reference profile of the shipped data's training part, exactly as the quickstart builds it.
* **quickstart replay, level 0** - what the quickstart's monitor sees before any drift: rows
  sampled from the whole shipped data (the newest 20 % of customers, held out of training,
  included) against the training part. Not a null: the flags here are a real difference
  between the training customers and all customers (shorter tenures among the new ones).
* **detection** - the quickstart's drifted phase (``opsloop.loop.traffic.drifted_sample`` at
  levels 0.8 and 1.0; it shifts ``monthly_charges`` and ``tenure_months``): how often each
  feature and the data set are called drifted.

Run from the repository root (about 2 minutes on two cores)::

    .venv/bin/python benchmarks/drift_false_alarms.py
    .venv/bin/python benchmarks/drift_false_alarms.py --seeds 50 --windows 100,1000  # quicker
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from opsloop.data.reference import ReferenceProfile, build_reference_profile
from opsloop.loop.traffic import drifted_sample
from opsloop.ml.features import infer_feature_types
from opsloop.ml.split import split_dataset
from opsloop.monitor.drift import compute_drift
from opsloop.spec.monitoring import DriftThresholds

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
CHURN = ROOT / "examples" / "churn"
RULES: dict[str, dict[str, Any]] = {"evidently": {"verdict": "evidently"}, "default": {}}
TARGET = 0.05

SYNTHETIC_NUMERIC = ["normal", "lognormal", "poisson", "four_values"]
SYNTHETIC_CATEGORICAL = ["rare_levels", "boolean"]
RARE_P = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.01, 0.005, 0.003, 0.002])
SYNTHETIC_REFERENCES = (19_184, 1_000)
DETECTION_LEVELS = (0.8, 1.0)
DETECTION_WINDOWS = (100, 300, 600)  # 600: the quickstart's requests per window
SEED_BASE = 20_250_611

Key = tuple[str, str, int, str]  # scenario, rules, window, feature


def synthetic(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``n`` rows of the synthetic columns."""
    return pd.DataFrame(
        {
            "normal": rng.normal(50.0, 10.0, n),
            "lognormal": rng.lognormal(0.0, 1.0, n),
            "poisson": rng.poisson(2.0, n).astype(np.int64),
            "four_values": rng.binomial(3, 0.3, n).astype(np.float64),
            "rare_levels": rng.choice([f"level_{i}" for i in range(RARE_P.size)], n, p=RARE_P),
            "boolean": rng.random(n) < 0.6,
        }
    )


def _churn_generate() -> Any:
    sys.path.insert(0, str(CHURN))
    from generate import generate  # noqa: PLC0415 (the example's own script, on sys.path now)

    return generate


def churn_training_part(data: pd.DataFrame) -> pd.DataFrame:
    """The features of the training part, split and typed as the quickstart's lifecycle does."""
    train, _ = split_dataset(
        data, target="churned", problem_type="classification", time_column="signup_date"
    )
    return train.drop(columns=["churned", "customer_id", "signup_date"])


def churn_reference() -> tuple[pd.DataFrame, ReferenceProfile]:
    data = pd.read_parquet(CHURN / "data" / "customers.parquet")
    train = data.loc[churn_training_part(data).index]
    spec = infer_feature_types(train, "churned", drop=["customer_id"], time_column="signup_date")
    x = train[list(spec.dtypes)]
    profile = build_reference_profile(x, numeric=spec.numeric, categorical=spec.categorical)
    return data, profile


_STATE: dict[str, Any] = {}


def _init(rules: list[str], windows: list[int]) -> None:
    data, profile = churn_reference()
    _STATE.update(
        data=data,
        profile=profile,
        generate=_churn_generate(),
        rules={name: DriftThresholds(**RULES[name]) for name in rules},
        windows=windows,
    )


def _flags(
    scenario: str, window: int, profile: ReferenceProfile, current: pd.DataFrame
) -> Iterator[tuple[Key, bool]]:
    for name, limits in _STATE["rules"].items():
        result = compute_drift(profile, current, thresholds=limits)
        for feature in result.features.values():
            yield (scenario, name, window, feature.name), feature.drift_detected
        yield (scenario, name, window, "(data set)"), result.dataset_drift


def one_seed(seed: int) -> dict[Key, bool]:
    """Every scenario's verdicts for one seed."""
    rng = np.random.default_rng([SEED_BASE, seed])
    windows: list[int] = _STATE["windows"]
    out: dict[Key, bool] = {}

    for n_ref in SYNTHETIC_REFERENCES:
        reference = build_reference_profile(
            synthetic(rng, n_ref), numeric=SYNTHETIC_NUMERIC, categorical=SYNTHETIC_CATEGORICAL
        )
        for n in windows:
            out.update(_flags(f"synthetic, reference {n_ref:,}", n, reference, synthetic(rng, n)))

    profile: ReferenceProfile = _STATE["profile"]
    fresh = churn_training_part(_STATE["generate"](24_000, seed=SEED_BASE + seed))
    for n in windows:
        window = fresh.sample(n=n, random_state=rng.integers(2**31))
        out.update(_flags("churn, training period", n, profile, window))
    for n in windows:
        inputs, _ = drifted_sample(_STATE["data"], n, 0.0, seed=int(rng.integers(2**31)))
        out.update(_flags("quickstart replay, level 0", n, profile, inputs))
    for level in DETECTION_LEVELS:
        for n in DETECTION_WINDOWS:
            inputs, _ = drifted_sample(_STATE["data"], n, level, seed=int(rng.integers(2**31)))
            out.update(_flags(f"detection, level {level}", n, profile, inputs))
    return out


def _cell(rates: dict[str, float], mark: bool) -> str:
    text = " / ".join(f"{100 * r:.1f}" for r in rates.values())
    if mark and any(r >= TARGET for r in rates.values()):
        worst = list(rates.values())[-1] >= TARGET
        return f"[red]{text}[/red]" if worst else f"[yellow]{text}[/yellow]"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--windows", default="100,300,1000,5000", help="window sizes, rows")
    parser.add_argument("--rules", default="evidently,default", help=f"of {', '.join(RULES)}")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    rules = args.rules.split(",")
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        parser.error(f"unknown rules {', '.join(unknown)}; choose from {', '.join(RULES)}")

    counts: dict[Key, int] = defaultdict(int)
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=(rules, windows)) as pool:
        for result in pool.map(one_seed, range(args.seeds), chunksize=4):
            for key, flagged in result.items():
                counts[key] += int(flagged)

    console = Console(width=160)
    scenarios = list(dict.fromkeys(k[0] for k in counts))
    worst: dict[str, float] = defaultdict(float)
    for scenario in scenarios:
        null = not scenario.startswith(("detection", "quickstart"))
        sizes = sorted({k[2] for k in counts if k[0] == scenario})
        features = list(dict.fromkeys(k[3] for k in counts if k[0] == scenario))
        what = "false alarms" if null else "flagged"
        table = Table(
            title=f"{scenario}: % of windows {what} per feature ({' / '.join(rules)}), "
            f"{args.seeds} seeds",
            title_justify="left",
        )
        table.add_column("feature")
        for n in sizes:
            table.add_column(f"{n:,} rows", justify="right")
        for feature in features:
            cells = []
            for n in sizes:
                rates = {r: counts[(scenario, r, n, feature)] / args.seeds for r in rules}
                if null and feature != "(data set)":
                    for r, rate in rates.items():
                        worst[r] = max(worst[r], rate)
                cells.append(_cell(rates, null and feature != "(data set)"))
            table.add_row(feature, *cells)
        console.print(table)
    console.print(
        "worst false-alarm rate per feature per window on data that did not drift: "
        + ", ".join(f"{r} {100 * worst[r]:.1f} %" for r in rules)
        + f" (target < {100 * TARGET:.0f} %)"
    )


if __name__ == "__main__":
    main()
