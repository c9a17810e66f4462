"""Generate the synthetic customer-churn data set of the churn example.

The data describes the customers of a made-up subscription business as they stood on a snapshot
date; ``churned`` says whether the customer cancelled in the 90 days after it. The churn signal
is a logistic model over tenure, contract type, monthly charges, support calls, payment method,
internet service and paperless billing, plus hidden noise, so a good model reaches a ROC AUC of
roughly 0.80-0.90 and no model can reach 1.0. ``region`` carries no signal on purpose.

Run it from its folder (the repository's ``examples/churn/`` or a quickstart project)::

    python generate.py            # writes data/customers.parquet beside this file

The output is a pure function of ``--rows`` and ``--seed``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SNAPSHOT = np.datetime64("2024-09-30")
FIRST_SIGNUP = np.datetime64("2017-10-01")
DAYS_PER_MONTH = 30.44

PLANS = ["basic", "plus", "pro"]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
INTERNET = ["dsl", "fiber", "none"]
PAYMENTS = ["electronic_check", "mailed_check", "bank_transfer", "credit_card"]
REGIONS = ["north", "south", "east", "west"]


def generate(rows: int = 24_000, seed: int = 7) -> pd.DataFrame:
    """Build the customer table.

    Args:
        rows: Number of customers.
        seed: Seed of the random generator; the same seed gives the same table.

    Returns:
        One row per customer, with the ``churned`` target (0/1).
    """
    rng = np.random.default_rng(seed)

    # A growing business: more recent signups are more frequent.
    span_days = int((SNAPSHOT - FIRST_SIGNUP) / np.timedelta64(1, "D"))
    offsets = np.floor(span_days * rng.random(rows) ** 0.9).astype("int64")
    signup = np.sort(FIRST_SIGNUP + offsets.astype("timedelta64[D]"))
    tenure = np.floor((SNAPSHOT - signup) / np.timedelta64(1, "D") / DAYS_PER_MONTH).astype("int64")

    plan = rng.choice(PLANS, size=rows, p=[0.5, 0.32, 0.18])
    # Long-standing customers have more often moved to a longer contract.
    long_share = np.clip(0.35 + tenure / 300, 0, 0.7)
    u = rng.random(rows)
    contract = np.where(
        u < 1 - long_share,
        CONTRACTS[0],
        np.where(u < 1 - long_share / 2.2, CONTRACTS[1], CONTRACTS[2]),
    )
    internet = rng.choice(INTERNET, size=rows, p=[0.35, 0.45, 0.20])
    payment = rng.choice(PAYMENTS, size=rows, p=[0.33, 0.17, 0.25, 0.25])
    region = rng.choice(REGIONS, size=rows)
    paperless = rng.random(rows) < 0.6
    age = np.clip(rng.normal(45, 14, rows), 18, 90).round()

    base_charge = np.select([plan == "basic", plan == "plus"], [30.0, 55.0], 85.0)
    monthly = base_charge + np.select([internet == "fiber", internet == "dsl"], [18.0, 8.0], 0.0)
    monthly = np.clip(monthly + rng.normal(0, 9, rows), 10, None).round(2)
    total = (monthly * np.maximum(tenure, 1) * rng.uniform(0.95, 1.05, rows)).round(2)
    support_calls = rng.poisson(0.7 + 0.5 * (internet == "fiber") + 0.3 * (plan == "basic"))

    month_to_month = contract == CONTRACTS[0]
    logit = (
        -2.85
        + 1.0 * month_to_month
        - 0.9 * (contract == CONTRACTS[2])
        - 0.35 * (np.log1p(tenure) - 2.5)
        + 0.04 * (monthly - 60)
        + 0.7 * support_calls
        + 0.15 * support_calls * month_to_month
        + 0.8 * (payment == "electronic_check")
        - 0.25 * np.isin(payment, ["bank_transfer", "credit_card"])
        + 0.45 * (internet == "fiber")
        + 0.2 * paperless
        - 0.006 * (age - 45)
        # Hidden causes (moves, competitor offers) that no column explains.
        + rng.normal(0, 0.4, rows)
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")

    df = pd.DataFrame(
        {
            "customer_id": [f"C{100_000 + i}" for i in range(rows)],
            "signup_date": pd.to_datetime(signup).astype("datetime64[ns]"),
            "tenure_months": tenure,
            "plan": pd.Categorical(plan, categories=PLANS),
            "contract_type": contract,
            "internet_service": internet,
            "payment_method": payment,
            "paperless_billing": paperless,
            "region": region,
            "age": age,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls_90d": support_calls,
            "churned": churned,
        }
    )
    # Missing values as they arrive from real systems: unknown age, a payment method not yet
    # captured, and billing records that failed to load (both charge columns missing).
    df.loc[rng.random(rows) < 0.06, "age"] = np.nan
    df.loc[rng.random(rows) < 0.03, "payment_method"] = None
    billing_gap = rng.random(rows) < 0.02
    df.loc[billing_gap, ["monthly_charges", "total_charges"]] = np.nan
    return df


def main() -> None:
    """Write the table as Parquet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=24_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "data" / "customers.parquet"
    )
    args = parser.parse_args()
    df = generate(args.rows, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out, index=False, compression="zstd")
    print(
        f"wrote {args.out}: {len(df)} rows, churn rate {df['churned'].mean():.1%}, "
        f"{args.out.stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
