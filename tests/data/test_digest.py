"""Content digests: stable, format-independent, and sensitive to what matters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.data import content_digest, read_source

# A fixed frame and its digest under scheme opsloop-frame-v1. If this changes, every stored
# dataset version changes identity: bump DIGEST_SCHEME instead of editing the value.
GOLDEN_FRAME = {
    "id": [1, 2, 3],
    "name": ["a", None, "Zoë"],
    "score": [0.5, np.nan, -1.25],
}
GOLDEN_DIGEST = "950151d5db425dbf08c357ad0bc5d76dd6977dd35fdcddd576b3353d433f6dd7"


def golden() -> pd.DataFrame:
    return pd.DataFrame(GOLDEN_FRAME)


def test_golden_digest_is_stable() -> None:
    assert content_digest(golden()) == GOLDEN_DIGEST


def test_digest_is_the_same_in_a_fresh_interpreter() -> None:
    # String hashing is salted per process; the digest must not depend on it.
    code = (
        "import pandas as pd\n"
        "from opsloop.data import content_digest\n"
        "frame = pd.DataFrame({'id': [1, 2, 3], 'name': ['a', None, 'Zoë'],"
        " 'score': [0.5, float('nan'), -1.25]})\n"
        "print(content_digest(frame))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == GOLDEN_DIGEST


def test_csv_and_parquet_of_the_same_frame_agree(tmp_path: Path, customers: pd.DataFrame) -> None:
    customers.to_csv(tmp_path / "c.csv", index=False)
    customers.to_parquet(tmp_path / "c.parquet")
    from_csv = read_source("c.csv", base_dir=tmp_path)
    from_parquet = read_source("c.parquet", base_dir=tmp_path)
    # The formats do hand back different dtypes ...
    assert from_csv["tenure_months"].dtype != from_parquet["tenure_months"].dtype
    assert from_csv["plan"].dtype != from_parquet["plan"].dtype
    # ... but the same content.
    assert content_digest(from_csv) == content_digest(from_parquet) == content_digest(customers)


def test_the_index_is_not_content(customers: pd.DataFrame) -> None:
    shifted = customers.set_axis(range(1000, 1000 + len(customers)))
    assert content_digest(shifted) == content_digest(customers)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda df: df.iloc[::-1], id="row-order"),
        pytest.param(lambda df: df.iloc[:-1], id="row-dropped"),
        pytest.param(lambda df: df[list(reversed(df.columns))], id="column-order"),
        pytest.param(lambda df: df.rename(columns={"email": "mail"}), id="column-name"),
        pytest.param(lambda df: df.assign(monthly_fee=df["monthly_fee"] + 0.01), id="floats"),
        pytest.param(lambda df: df.assign(churned=~df["churned"]), id="bools"),
        pytest.param(
            lambda df: df.assign(signup_date=df["signup_date"] + pd.Timedelta(seconds=1)),
            id="datetimes",
        ),
        pytest.param(lambda df: df.assign(email=df["email"].str.upper()), id="strings"),
        pytest.param(
            lambda df: df.assign(tenure_months=df["tenure_months"].fillna(0)), id="null-to-zero"
        ),
        pytest.param(lambda df: df.assign(email=df["email"].fillna("")), id="null-to-empty"),
    ],
)
def test_any_change_changes_the_digest(customers: pd.DataFrame, change: object) -> None:
    changed = change(customers)  # type: ignore[operator]
    assert content_digest(changed) != content_digest(customers)


def test_string_boundaries_are_unambiguous() -> None:
    left = pd.DataFrame({"s": ["ab", "c"]})
    right = pd.DataFrame({"s": ["a", "bc"]})
    assert content_digest(left) != content_digest(right)


def test_equal_values_in_other_storage_agree() -> None:
    base = pd.DataFrame({"n": [1, 2, None], "s": ["x", "y", "x"], "b": [True, False, None]})
    other = pd.DataFrame(
        {
            "n": pd.array([1, 2, None], dtype="Int32"),
            "s": pd.Categorical(["x", "y", "x"]),
            "b": pd.array([True, False, None], dtype="boolean"),
        }
    )
    assert content_digest(base) == content_digest(other)
    times_s = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None]).as_unit("s")})
    times_ns = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None]).as_unit("ns")})
    assert content_digest(times_s) == content_digest(times_ns)


def test_unusual_columns_are_digested() -> None:
    frame = pd.DataFrame(
        {
            "mixed": [1, "a", None],
            "lists": [[1], [2, 3], None],
            "bytes": [b"a", b"b", None],
            "delta": pd.to_timedelta([1, 2, None], unit="s"),
            "far": pd.to_datetime(["2024-01-01", "9999-12-31", None]).as_unit("us"),
            "tz": pd.to_datetime(["2024-01-01T00:00:00+01:00"] * 3, utc=True),
            "empty": [None, None, None],
        }
    )
    digest = content_digest(frame)
    assert len(digest) == 64
    assert digest == content_digest(frame.copy())
    assert digest != content_digest(frame.assign(far=frame["far"].iloc[::-1].to_numpy()))
