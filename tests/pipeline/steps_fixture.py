"""Steps and pipelines used by the pipeline tests (importable, so workers can find them)."""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Imported here so forked workers inherit them instead of importing them per step.
import skops.io  # noqa: F401
from sklearn.linear_model import LogisticRegression

from opsloop.pipeline import pipeline, step

log = logging.getLogger("opsloop.tests.steps")


# -- data flow ---------------------------------------------------------------------------


@step
def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": (x[:, 0] > 0).astype(int)})


@step(outputs=("train", "test"))
def split(df: pd.DataFrame, test_fraction: float = 0.25):
    cut = int(len(df) * (1 - test_fraction))
    return df.iloc[:cut], df.iloc[cut:]


@step
def fit(train: pd.DataFrame, c: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=c).fit(train[["a", "b"]], train["label"])


@step
def evaluate(model: LogisticRegression, test: pd.DataFrame) -> dict:
    return {"accuracy": float(model.score(test[["a", "b"]], test["label"])), "n": len(test)}


@pipeline
def training(rows: int = 200, c: float = 1.0, seed: int = 0):
    train, test = split(make_frame(rows, seed=seed))
    evaluate(fit(train, c=c), test)


@step
def parity(n: int) -> int:
    return n % 2


@step
def describe(value: int, marker: str) -> str:
    # Appends to a file so tests can count real executions.
    with open(marker, "a") as f:
        f.write("x")
    return f"parity {value}"


@pipeline
def parity_pipeline(n: int, marker: str):
    describe(parity(n), marker=marker)


# -- concurrency -------------------------------------------------------------------------


@step
def rendezvous(me: str, other: str, folder: str, wait: float = 20.0) -> str:
    """Finishes only if the other rendezvous step runs at the same time."""
    Path(folder, me).touch()
    deadline = time.monotonic() + wait
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me}: {other} never showed up")
        time.sleep(0.01)
    return me


@step
def join(left: str, right: str) -> list:
    return sorted([left, right])


@pipeline
def concurrent_pair(folder: str, wait: float = 20.0):
    join(rendezvous("a", "b", folder, wait=wait), rendezvous("b", "a", folder, wait=wait))


# -- failures ----------------------------------------------------------------------------


@step
def source_value() -> int:
    return 41


@step
def explode(value: int, marker: str = "") -> int:
    if not marker or Path(marker).exists():
        raise ValueError(f"cannot handle {value}")
    return value + 1


@step
def after_explode(value: int) -> int:
    return value * 2


@step
def independent() -> str:
    return "still ran"


@pipeline
def failing(marker: str = ""):
    after_explode(explode(source_value(), marker=marker))
    independent()


@step(retries=2)
def flaky(counter: str, fail_times: int) -> int:
    path = Path(counter)
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < fail_times:
        raise RuntimeError(f"flaky failure {seen + 1}")
    return seen + 1


@pipeline
def flaky_pipeline(counter: str, fail_times: int = 1):
    flaky(counter, fail_times)


@step
def hard_exit() -> int:
    os._exit(3)


@step
def segfault() -> int:
    # No core file in the working folder, whatever the machine's limit.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    ctypes.string_at(0)
    return 0


@pipeline
def crashing(kind: str = "exit"):
    if kind == "exit":
        after_explode(hard_exit())
    else:
        segfault()
    independent()


@step
def unsupported_output() -> object:
    return {1, 2, 3}


@pipeline
def unsupported():
    unsupported_output()


# -- logs and resources ------------------------------------------------------------------


@step
def chatty() -> int:
    print("hello from stdout")
    print("hello from stderr", file=sys.stderr)
    log.info("an info record")
    log.warning("a warning record")
    os.write(1, b"raw bytes on fd 1\n")
    return 1


@step
def very_chatty(lines: int) -> int:
    for i in range(lines):
        print(f"line {i:06d} " + "x" * 90)
    return lines


@step
def heavy(megabytes: int, cpu_seconds: float) -> float:
    block = np.ones(megabytes * (1 << 20) // 8)
    total = float(block.sum())
    end = time.process_time() + cpu_seconds
    acc = 0
    while time.process_time() < end:
        acc += 1
    return total


@step
def light() -> int:
    return 0


@pipeline
def logging_pipeline(lines: int = 0):
    chatty()
    if lines:
        very_chatty(lines)


@pipeline
def resources(megabytes: int = 64, cpu_seconds: float = 0.3):
    heavy(megabytes, cpu_seconds)
    light()


# -- materializers -----------------------------------------------------------------------


@step(outputs=("frame", "array", "mapping", "text", "number", "flag", "nothing", "items"))
def every_kind():
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}, index=[10, 20, 30])
    return (
        frame,
        np.arange(12, dtype=np.float32).reshape(3, 4),
        {"k": [1, 2.5, None, True], "nested": {"s": "é"}},
        "plain text",
        7,
        False,
        None,
        [1, "two", 3.0],
    )


@step
def consume_every_kind(frame, array, mapping, text, number, flag, nothing, items) -> dict:
    return {
        "frame_sum": int(frame["x"].sum()),
        "array_shape": list(array.shape),
        "mapping": mapping,
        "text": text,
        "number": number,
        "flag": flag,
        "nothing": nothing,
        "items": items,
    }


@pipeline
def materializer_pipeline():
    outs = every_kind()
    consume_every_kind(*outs)


@step
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@step(outputs=("one", "two"))
def wrong_arity() -> tuple:
    return (1, 2, 3)
