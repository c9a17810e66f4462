"""Drift benchmark: opsloop against Evidently 0.7.23's ``DataDriftPreset``, in one run.

Data: 20 numeric columns of assorted shapes (normal, log-normal, uniform, exponential,
gamma), 100,000 reference rows, and current windows of 100,000 and 1,000,000 rows in which
5 of the 20 columns are shifted by half a standard deviation. Everything is seeded.

Each side runs in its own subprocess that reads the same parquet files the same way
(``_read``: column by column with pyarrow, so that loading holds one copy of the data, not
the two of ``pandas.read_parquet``):

* Evidently (in its own virtualenv, ``.bench/evidently``, created on first run) loads the
  reference and the current window and runs ``Report([DataDriftPreset()],
  include_tests=True)``; the tests carry Evidently's own verdict per column and for the data
  set. Only ``Report.run`` is timed.
* opsloop: the reference profile is built once in a separate subprocess (this is what model
  registration does; its time and memory are printed too) and saved as JSON. The drift
  worker loads that JSON and the current window and times ``compute_drift`` only, with
  ``verdict: evidently`` (the rules Evidently applies, so that the verdicts compare).
* For scale, a plain pass of ``scipy.stats.ks_2samp`` and ``wasserstein_distance`` over the
  full data (``--no-scipy`` skips it).

Memory, from the kernel's peak resident set size (VmHWM) of each worker process:

* process peak: everything, including the parquet read;
* drift peak: the peak while the timed computation runs, with interpreter, libraries and
  data loaded (the high-water mark is reset after loading; Linux only);
* drift +MB: what the computation adds to the loaded state.

The memory target holds when opsloop's share of Evidently's peak is at most a third on both
of the first two.

Every worker, on both sides, runs with Arrow's system allocator and glibc's mmap threshold
at 1 MiB (``WORKER_ENV``): otherwise the allocators keep a few hundred MB that parquet
decoding freed, which says nothing about either tool.

Finally a smaller check compares verdicts on mixed data: references of 500, 5,000 and
30,000 rows (so every default test is used), categorical columns, columns with few distinct
values, missing values (``--no-agreement`` skips it).

Run from the repository root (about 4 minutes, most of it Evidently at 1,000,000 rows)::

    .venv/bin/python benchmarks/drift.py
    .venv/bin/python benchmarks/drift.py --sizes 100000 --no-agreement  # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from opsloop.monitor import (
    DriftThresholds,
    ReferenceProfile,
    build_reference_profile,
    compute_drift,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
EVIDENTLY_ENV = BENCH / "evidently"
EVIDENTLY_VERSION = "0.7.23"
# Evidently 0.7.23 imports a pandas internal that pandas 3 removed.
EVIDENTLY_REQUIREMENTS = [f"evidently=={EVIDENTLY_VERSION}", "pandas<3", "pyarrow"]
DATA = BENCH / "drift-data"

N_COLUMNS = 20
SHIFTED = (0, 4, 8, 12, 16)
REFERENCE_ROWS = 100_000
SEED = 20_240_601

#: Environment of every worker subprocess, on both sides alike (see the module docstring).
WORKER_ENV = {
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
    "PYTHONWARNINGS": "ignore",
}

TARGET_SPEEDUP = 50.0
TARGET_MEMORY_SHARE = 1 / 3


# --- measurements shared by the workers (standard library only) -------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so that the next peak is the compute's."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _mb(kb: int | None) -> float | None:
    return None if kb is None else kb / 1024


class _Meter:
    """Peak memory around a timed section of a worker."""

    def __init__(self) -> None:
        self.load_peak_kb = _status_kb("VmHWM")
        self.after_load_kb = _status_kb("VmRSS")
        self.reset = _reset_peak()

    def report(self) -> dict[str, float | None]:
        compute_peak = _status_kb("VmHWM") if self.reset else None
        overall = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        if compute_peak is not None and self.load_peak_kb is not None:
            overall = max(compute_peak, self.load_peak_kb)
        return {
            "rss_after_load_mb": _mb(self.after_load_kb),
            "peak_compute_mb": _mb(compute_peak),
            "peak_process_mb": overall / 1024,
        }


# --- workers ------------------------------------------------------------------------------


def _read(path: str) -> Any:
    """A parquet file as a DataFrame, read one column at a time.

    ``pandas.read_parquet`` holds the whole Arrow table and the whole DataFrame at once (two
    copies of the data at the peak); column by column, the peak is one copy plus one column.
    The frame keeps one block per column (``copy=False``), which neither side minds.
    """
    # Lazy imports here and below (noqa: PLC0415) of pandas, pyarrow, evidently, numpy, scipy, rich:
    # each loads only where it is used, so importing this module stays light.
    import pandas as pd  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    parquet = pq.ParquetFile(path)
    names = [n for n in parquet.schema_arrow.names if not n.startswith("__index_level_")]
    columns = {n: parquet.read(columns=[n]).to_pandas()[n] for n in names}
    return pd.DataFrame(columns, copy=False)


def _worker_profile(args: argparse.Namespace) -> dict[str, Any]:
    reference = _read(args.reference)
    meter = _Meter()
    start = time.perf_counter()
    profile = build_reference_profile(reference)
    seconds = time.perf_counter() - start
    text = profile.model_dump_json()
    Path(args.profile).write_text(text, encoding="utf-8")
    return {"seconds": [seconds], "profile_bytes": len(text), **meter.report()}


def _worker_opsloop(args: argparse.Namespace) -> dict[str, Any]:
    profile = ReferenceProfile.model_validate_json(Path(args.profile).read_text("utf-8"))
    current = _read(args.current)
    meter = _Meter()
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = compute_drift(profile, current, thresholds=DriftThresholds(verdict="evidently"))
        seconds.append(time.perf_counter() - start)
    features = result.features.values()
    return {
        "seconds": seconds,
        **meter.report(),
        "verdicts": {f.name: f.drift_detected for f in features},
        "scores": {f.name: f.score for f in features},
        "methods": {f.name: f.method for f in features},
        "dataset_drift": result.dataset_drift,
    }


_EVIDENTLY_METHODS = {
    "K-S p_value": "ks",
    "Wasserstein distance (normed)": "wasserstein",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Jensen-Shannon distance": "jensenshannon",
}


def _worker_evidently(args: argparse.Namespace) -> dict[str, Any]:
    from evidently import Report  # noqa: PLC0415
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    warnings.simplefilter("ignore")  # Evidently's own deprecation chatter
    reference = _read(args.reference)
    current = _read(args.current)
    meter = _Meter()
    # include_tests adds Evidently's own pass/fail per column and for the data set: its
    # verdicts, read back below instead of re-deriving them from scores.
    report = Report([DataDriftPreset()], include_tests=True)
    start = time.perf_counter()
    snapshot = report.run(current_data=current, reference_data=reference)
    seconds = time.perf_counter() - start
    memory = meter.report()

    content = snapshot.dict()
    scores, methods, verdicts = {}, {}, {}
    for metric in content["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
            methods[config["column"]] = _EVIDENTLY_METHODS.get(config["method"], config["method"])
    dataset_drift = None
    for test in content["tests"]:
        failed = str(test["status"]).endswith("FAIL")
        if test["name"].startswith("Value Drift for column "):
            verdicts[test["name"].removeprefix("Value Drift for column ")] = failed
        elif test["name"].startswith("Share of Drifted Columns"):
            dataset_drift = failed
    return {
        "seconds": [seconds],
        **memory,
        "verdicts": verdicts,
        "scores": scores,
        "methods": methods,
        "dataset_drift": dataset_drift,
    }


def _worker_scipy(args: argparse.Namespace) -> dict[str, Any]:
    """A plain pass over the full data with scipy's KS and Wasserstein, for scale."""
    import numpy as np  # noqa: PLC0415
    from scipy import stats  # noqa: PLC0415

    reference = _read(args.reference)
    current = _read(args.current)
    meter = _Meter()
    start = time.perf_counter()
    verdicts = {}
    for column in reference.columns:
        ref = reference[column].to_numpy()
        cur = current[column].to_numpy()
        stats.ks_2samp(ref, cur)
        normed = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
        verdicts[column] = bool(normed >= 0.1)
    seconds = time.perf_counter() - start
    return {"seconds": [seconds], **meter.report(), "verdicts": verdicts}


WORKERS = {
    "profile": _worker_profile,
    "opsloop": _worker_opsloop,
    "evidently": _worker_evidently,
    "scipy": _worker_scipy,
}


# --- the driver ---------------------------------------------------------------------------


def _ensure_evidently(console: Any) -> Path:
    python = EVIDENTLY_ENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        f"import evidently; assert evidently.__version__ == '{EVIDENTLY_VERSION}'",
    ]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    with console.status(
        f"creating {EVIDENTLY_ENV.relative_to(ROOT)} with evidently {EVIDENTLY_VERSION}"
    ):
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_ENV)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS],
            capture_output=True,
            text=True,
            check=False,
        )
    if install.returncode != 0:
        raise SystemExit(f"installing evidently failed:\n{install.stderr[-3000:]}")
    subprocess.run(probe, check=True)
    return python


def _write_data(sizes: list[int], console: Any) -> tuple[Path, dict[int, Path]]:
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    DATA.mkdir(parents=True, exist_ok=True)
    shapes = ["normal", "lognormal", "uniform", "exponential", "gamma"]

    def column(rng: np.random.Generator, i: int, n: int) -> np.ndarray:
        shape = shapes[i % len(shapes)]
        if shape == "normal":
            return rng.normal(10.0 * i, 1.0 + i, n)
        if shape == "lognormal":
            return rng.lognormal(0.0, 0.5, n)
        if shape == "uniform":
            return rng.uniform(-i, i + 1.0, n)
        if shape == "exponential":
            return rng.exponential(2.0, n)
        return rng.gamma(2.0, 3.0, n)

    reference_path = DATA / "reference.parquet"
    with console.status("writing seeded parquet data"):
        rng = np.random.default_rng(SEED)
        reference = pd.DataFrame(
            {f"c{i:02d}": column(rng, i, REFERENCE_ROWS) for i in range(N_COLUMNS)}
        )
        reference.to_parquet(reference_path)
        spread = reference.std(ddof=0)
        currents = {}
        for rows in sizes:
            rng = np.random.default_rng(SEED + rows)
            current = pd.DataFrame({f"c{i:02d}": column(rng, i, rows) for i in range(N_COLUMNS)})
            for i in SHIFTED:
                name = f"c{i:02d}"
                current[name] += 0.5 * spread[name]
            currents[rows] = DATA / f"current_{rows}.parquet"
            current.to_parquet(currents[rows])
            del current
    return reference_path, currents


def _run_worker(python: Path, worker: str, **paths: Any) -> dict[str, Any]:
    out = DATA / f"result_{worker}_{time.time_ns()}.json"
    command = [str(python), str(Path(__file__).resolve()), "--worker", worker, "--out", str(out)]
    for key, value in paths.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, **WORKER_ENV}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{worker} worker failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def _agreement(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[int, int, bool, float]:
    columns = sorted(theirs["verdicts"])
    same = sum(ours["verdicts"].get(c) == theirs["verdicts"][c] for c in columns)
    score_gap = max(
        (abs(ours["scores"][c] - theirs["scores"][c]) for c in columns if c in ours["scores"]),
        default=0.0,
    )
    return same, len(columns), ours["dataset_drift"] == theirs["dataset_drift"], score_gap


class _Steps:
    """One rich progress bar over every worker run of the benchmark."""

    def __init__(self, progress: Any, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=total)

    def run(self, label: str, python: Path, worker: str, **paths: Any) -> dict[str, Any]:
        self.progress.update(self.task, description=label)
        result = _run_worker(python, worker, **paths)
        self.progress.advance(self.task)
        return result


def _agreement_suite(evidently: Path, steps: _Steps) -> list[tuple[str, int, int, bool, float]]:
    """Mixed data (small and large references, categories, few distinct values, gaps)."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    def frame(n: int, shift: float, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "normal": rng.normal(shift, 1.0, n),
                "skewed": rng.lognormal(shift, 1.0, n),
                "gaps": np.where(rng.random(n) < 0.2, np.nan, rng.normal(shift, 1.0, n)),
                "three_values": rng.choice(
                    [0.0, 1.0, 2.5], n, p=[0.5 - shift / 4, 0.3, 0.2 + shift / 4]
                ),
                "binary": rng.choice([0.0, 1.0], n, p=[0.6 - shift / 4, 0.4 + shift / 4]),
                "small_ints": rng.integers(0, 3 + int(shift > 0), n),
                "wide_ints": rng.integers(0, 50, n) + int(shift * 10),
                "city": rng.choice(["oslo", "rome", "lima"] + (["kyiv"] if shift else []), n),
                "flag": rng.choice(["x", "y"], n, p=[0.5 + shift / 5, 0.5 - shift / 5]),
                "constant": np.ones(n),
            }
        )

    rows = []
    cases = {
        "reference 500": (500, 800),
        "reference 5000": (5000, 3000),
        "reference 30000": (30000, 20000),
    }
    ours = Path(sys.executable)
    for label, (n_ref, n_cur) in cases.items():
        reference = DATA / "mixed_reference.parquet"
        profile = DATA / "mixed_profile.json"
        frame(n_ref, 0.0, 1).to_parquet(reference)
        steps.run(
            f"mixed data, {label}: profile", ours, "profile", reference=reference, profile=profile
        )
        for shift in (0.0, 0.4):
            current = DATA / "mixed_current.parquet"
            frame(n_cur, shift, 2 + int(10 * shift)).to_parquet(current)
            mine = steps.run(
                f"mixed data, {label}, shift {shift}: opsloop",
                ours,
                "opsloop",
                profile=profile,
                current=current,
                repeat=1,
            )
            theirs = steps.run(
                f"mixed data, {label}, shift {shift}: Evidently",
                evidently,
                "evidently",
                reference=reference,
                current=current,
            )
            rows.append((f"{label}, shift {shift}", *_agreement(mine, theirs)))
    return rows


def _fmt_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main() -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed opsloop runs per size (median)"
    )
    parser.add_argument("--no-scipy", action="store_true", help="skip the plain scipy pass")
    parser.add_argument("--no-agreement", action="store_true", help="skip the mixed-data check")
    args = parser.parse_args()

    console = Console(width=None if sys.stdout.isatty() else 120)
    evidently = _ensure_evidently(console)
    reference, currents = _write_data(args.sizes, console)
    profile = DATA / "profile.json"
    ours = Path(sys.executable)
    total = 1 + len(currents) * (2 if args.no_scipy else 3) + (0 if args.no_agreement else 15)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        steps = _Steps(progress, total)
        built = steps.run(
            "reference profile", ours, "profile", reference=reference, profile=profile
        )
        measured = []
        for rows, current in currents.items():
            mine = steps.run(
                f"{rows:,} rows: opsloop",
                ours,
                "opsloop",
                profile=profile,
                current=current,
                repeat=args.repeat,
            )
            theirs = steps.run(
                f"{rows:,} rows: Evidently {EVIDENTLY_VERSION} (slow)",
                evidently,
                "evidently",
                reference=reference,
                current=current,
            )
            baseline = None
            if not args.no_scipy:
                baseline = steps.run(
                    f"{rows:,} rows: plain scipy pass",
                    ours,
                    "scipy",
                    reference=reference,
                    current=current,
                )
            measured.append((rows, mine, theirs, baseline))
        mixed = [] if args.no_agreement else _agreement_suite(evidently, steps)

    console.print(
        f"reference profile: {REFERENCE_ROWS:,} rows x {N_COLUMNS} columns built in "
        f"{built['seconds'][0]:.2f} s, {built['profile_bytes'] / 1e6:.2f} MB of JSON, "
        f"worker peak {_fmt_mb(built['peak_process_mb'])} MB"
    )

    table = Table(title="Drift of 20 numeric columns, 5 shifted by 0.5 sd")
    columns = {
        "current rows": "",
        "side": "",
        "drift s": "time of the drift computation alone (opsloop: median of --repeat runs)",
        "process peak MB": "whole worker: interpreter, libraries, parquet read, computation",
        "loaded MB": "resident after reading the data (and the profile)",
        "drift peak MB": "peak during the drift computation, data loaded",
        "drift +MB": "drift peak minus loaded: what the computation itself adds",
        "verdicts": "columns whose verdict equals Evidently's",
    }
    for name in columns:
        table.add_column(name, justify="right")
    summary = []
    for rows, mine, theirs, baseline in measured:
        same, total, dataset_same, gap = _agreement(mine, theirs)
        sides = [("opsloop", mine), (f"Evidently {EVIDENTLY_VERSION}", theirs)]
        if baseline is not None:
            sides.append(("scipy KS + Wasserstein", baseline))
        for side, result in sides:
            added = None
            if result["peak_compute_mb"] is not None and result["rss_after_load_mb"] is not None:
                added = result["peak_compute_mb"] - result["rss_after_load_mb"]
            table.add_row(
                f"{rows:,}",
                side,
                f"{statistics.median(result['seconds']):.3f}",
                _fmt_mb(result["peak_process_mb"]),
                _fmt_mb(result["rss_after_load_mb"]),
                _fmt_mb(result["peak_compute_mb"]),
                _fmt_mb(added),
                f"{same}/{total}" if result is mine else "",
            )
        summary.append((rows, mine, theirs, same == total and dataset_same, gap))
    console.print(table)
    for name, meaning in columns.items():
        if meaning:
            console.print(f"  {name}: {meaning}")
    for rows, mine, theirs, agree, gap in summary:
        speedup = statistics.median(theirs["seconds"]) / statistics.median(mine["seconds"])
        process_share = mine["peak_process_mb"] / theirs["peak_process_mb"]
        drift_share = None
        if mine["peak_compute_mb"] and theirs["peak_compute_mb"]:
            drift_share = mine["peak_compute_mb"] / theirs["peak_compute_mb"]
        drifted = sorted(c for c, v in theirs["verdicts"].items() if v)
        console.print(
            f"{rows:,} rows: opsloop {speedup:,.0f}x faster; peak memory during the drift "
            f"computation {drift_share if drift_share is None else f'{drift_share:.2f}'} of "
            f"Evidently's (whole process incl. parquet read {process_share:.2f}); verdicts "
            f"{'agree' if agree else 'DIFFER'} (drifting: {', '.join(drifted) or 'none'}; data "
            f"set drift {theirs['dataset_drift']} vs {mine['dataset_drift']}); largest score gap "
            f"{gap:.1e}"
        )
        if rows == 1_000_000:
            met = (
                speedup >= TARGET_SPEEDUP
                and drift_share is not None
                and drift_share <= TARGET_MEMORY_SHARE
                and process_share <= TARGET_MEMORY_SHARE
                and agree
            )
            console.print(
                f"target at 1,000,000 rows (>= {TARGET_SPEEDUP:.0f}x faster, <= 1/3 of the peak "
                f"memory, both during the drift computation and for the whole process, same "
                f"verdicts): "
                f"{'met' if met else 'NOT met'}"
            )
    if not args.no_agreement:
        check = Table(
            title="Verdict agreement on mixed data (categories, few values, gaps, small references)"
        )
        for name in ("case", "columns agreeing", "data set flag", "largest score gap"):
            check.add_column(name, justify="right")
        for label, same, total, dataset_same, gap in mixed:
            check.add_row(
                label, f"{same}/{total}", "same" if dataset_same else "DIFFERENT", f"{gap:.2e}"
            )
        console.print(check)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_args = argparse.ArgumentParser()
        worker_args.add_argument("--worker", choices=sorted(WORKERS), required=True)
        worker_args.add_argument("--out", required=True)
        worker_args.add_argument("--reference")
        worker_args.add_argument("--current")
        worker_args.add_argument("--profile")
        worker_args.add_argument("--repeat", type=int, default=1)
        parsed = worker_args.parse_args()
        outcome = WORKERS[parsed.worker](parsed)
        Path(parsed.out).write_text(json.dumps(outcome), encoding="utf-8")
    else:
        main()
