"""Write the breast cancer example's data set as CSV.

The Breast Cancer Wisconsin (Diagnostic) data ships with scikit-learn; this script turns it into
the file the example reads: column names in snake_case, and the target ``malignant`` (1 for a
malignant tumour, 0 for a benign one; scikit-learn codes them the other way round).

Run from the repository root::

    python examples/breast_cancer/prepare.py

It writes ``examples/breast_cancer/data/breast_cancer.csv``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer


def prepare() -> pd.DataFrame:
    """Load the data set as a frame with a ``sample_id`` and the ``malignant`` target."""
    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data.rename(columns=lambda c: re.sub(r"\W+", "_", c.strip()).lower())
    # scikit-learn codes 0 = malignant, 1 = benign; the positive class should be the disease.
    malignant = (bunch.target == 0).astype("int64").rename("malignant")
    sample_id = pd.Series([f"S{i:04d}" for i in range(len(features))], name="sample_id")
    return pd.concat([sample_id, features.round(6), malignant], axis=1)


def main() -> None:
    """Write the CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "data" / "breast_cancer.csv"
    )
    args = parser.parse_args()
    df = prepare()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(f"wrote {args.out}: {len(df)} rows, {int(df['malignant'].sum())} malignant")


if __name__ == "__main__":
    main()
