"""NAB benchmark: opsloop's detectors against the published NAB scoreboard.

Runs every built-in detector as a stream over an NAB-layout folder, scores it with NAB's
method (one corpus-wide threshold per profile), and prints the scoreboard with the published
figures beside (and any precomputed results found in the folder, e.g. the reference
detector's). The anchor side is NAB's own published output, so both sides are scored by the
same scorer in the same run.

Usage::

    python benchmarks/nab.py /path/to/nab            # or set OPSLOOP_NAB_DIR
    python benchmarks/nab.py /path/to/nab --detector ensemble --workers 2
    python benchmarks/nab.py /path/to/nab --cv      # plus the out-of-sample check
    python benchmarks/nab.py /path/to/nab --loco -d context -d ensemble --workers 2

The default detector's settings were chosen on NAB itself, so its scoreboard figure is
in-sample. ``--cv`` adds an out-of-sample check: settings (from a small grid around the
defaults) and the threshold are chosen on some files and scored on the held-out rest, with
the reference detector's threshold chosen the same way. ``--loco`` runs the
leave-one-category-out protocol instead (settings and threshold chosen on the other
categories, each category with anomaly windows held out in turn) and measures each
detector's speed (points/s, one process) and state (size of its JSON checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from opsloop.aiops.benchmark import cross_validate_nab, run_nab_benchmark
from opsloop.aiops.benchmark_render import (
    render_cv_report,
    render_loco_report,
    render_scoreboard,
    write_chart,
)
from opsloop.aiops.detectors import DETECTORS, get_detector
from opsloop.aiops.detectors.state import dumps_state
from opsloop.aiops.loco import cross_validate_loco
from opsloop.aiops.nab import NabCorpus


def _speed(name: str, nab_dir: Path, files: int = 4) -> tuple[float, int]:
    """Points/s of one detector in one process over the longest files, and the largest
    size in bytes of its JSON checkpoint after any of them (its whole state)."""
    corpus = NabCorpus.load(nab_dir)
    longest = sorted(corpus.files.values(), key=lambda f: -len(f.values))[:files]
    points = 0
    seconds = 0.0
    state = 0
    for f in longest:
        detector = get_detector(name)
        start = time.perf_counter()
        detector.score_many(f.values, f.timestamps)
        seconds += time.perf_counter() - start
        points += len(f.values)
        state = max(state, len(dumps_state(detector)))
    return points / seconds, state


def _loco(args: argparse.Namespace, nab_dir: Path, console: Console) -> int:
    detectors = args.detector or ["ensemble", "artime", "fused", "context", "cad", "likelihood"]
    report = cross_validate_loco(
        nab_dir,
        detectors,
        results=_results_folders(nab_dir),
        workers=args.workers,
        console=console,
        hints=args.hints,
    )
    console.print(render_loco_report(report))
    for name in detectors:
        rate, state = _speed(name, nab_dir)
        console.print(f"{name}: {rate:,.0f} points/s in one process, checkpoint {state:,} bytes")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nab_loco.json").write_text(
        json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8"
    )
    return 0


def _results_folders(nab_dir: Path) -> list[Path]:
    found: list[Path] = []
    for parent in ("results", "reference_results"):
        base = nab_dir / parent
        if base.is_dir():
            found.extend(sorted(p for p in base.iterdir() if p.is_dir()))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nab_dir", nargs="?", default=os.environ.get("OPSLOOP_NAB_DIR"))
    parser.add_argument("--detector", "-d", action="append", choices=sorted(DETECTORS))
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--cv", action="store_true", help="add the out-of-sample check")
    parser.add_argument("--folds", type=int, default=2, help="folds per repeat (with --cv)")
    parser.add_argument("--repeats", type=int, default=5, help="seeded splits (with --cv)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits (with --cv)")
    parser.add_argument("--loco", action="store_true", help="leave-one-category-out only")
    parser.add_argument(
        "--no-hints",
        dest="hints",
        action="store_false",
        help="with --loco: tell detectors neither a file's range nor its probationary length "
        "(as the monitoring loop runs them)",
    )
    args = parser.parse_args(argv)
    if not args.nab_dir:
        parser.error("give the NAB folder as an argument or in OPSLOOP_NAB_DIR")
    nab_dir = Path(args.nab_dir)
    console = Console()
    if args.loco:
        return _loco(args, nab_dir, console)
    board = run_nab_benchmark(
        nab_dir,
        detectors=args.detector or list(DETECTORS),
        results=_results_folders(nab_dir),
        workers=args.workers,
        console=console,
    )
    console.print(render_scoreboard(board))
    best = board.best(source="opsloop")
    rivals = [r for r in board.rows if r.source != "opsloop" and "standard" in r.scores]
    if best is not None and rivals and "standard" in best.scores:
        rival = max(rivals, key=lambda r: r.scores["standard"])
        ours, theirs = best.scores["standard"], rival.scores["standard"]
        console.print(
            f"best opsloop detector '{best.detector}' {ours:.2f} vs best other "
            f"'{rival.detector}' ({rival.source}) {theirs:.2f}: "
            f"difference {ours - theirs:+.2f} points, ratio {ours / theirs:.3f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    chart = write_chart(board, args.out / "nab_scoreboard.png")
    (args.out / "nab_scoreboard.json").write_text(
        json.dumps(board.to_dict(), indent=2, default=str), encoding="utf-8"
    )
    console.print(f"chart: {chart}")
    if args.cv:
        report = cross_validate_nab(
            nab_dir,
            folds=args.folds,
            repeats=args.repeats,
            seed=args.seed,
            workers=args.workers,
            console=console,
        )
        console.print(render_cv_report(report))
        ours = report.held_out["mean"]
        ref = report.reference_held_out
        if ref is not None:
            console.print(
                f"held-out mean: {report.detector} {ours:.2f} vs {report.reference} "
                f"{ref['mean']:.2f}: difference {ours - ref['mean']:+.2f} points"
            )
        (args.out / "nab_cv.json").write_text(
            json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
