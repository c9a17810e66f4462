"""Replay drifting traffic to a model server, with the true labels sent later as feedback.

Rows are sampled from the churn example's data. At drift level ``d`` (0 to 1) the inputs
shift (monthly charges up, tenures shorter) and, for a share ``d`` of the rows, the label
follows a new relation in which the churn drivers are reversed: long-standing customers
paying little leave, new customers paying much stay. A model trained before the drift ranks
those rows backwards; one trained on the recent labelled traffic learns the new relation.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop.errors import ServingError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

__all__ = ["Replay", "drifted_sample", "send_feedback", "send_requests"]

# Centre and spread of the undrifted data.
_TENURE = (39.0, 24.0)
_CHARGES = (59.0, 24.0)


def drifted_sample(
    data: pd.DataFrame,
    n: int,
    level: float,
    *,
    target: str = "churned",
    drop: Sequence[str] = ("customer_id", "signup_date"),
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """``n`` rows of ``data`` at drift level ``level``: the model inputs and the true labels.

    Args:
        data: The example data (inputs and ``target``).
        n: Rows to draw.
        level: Drift level, 0 (none) to 1 (the inputs shifted and every label from the new
            relation).
        target: The label column.
        drop: Columns the model does not take.
        seed: Seed of the draw; the same seed and level give the same rows.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"drift level must be within [0, 1], got {level}")
    rng = np.random.default_rng(seed)
    rows = data.sample(n=n, replace=n > len(data), random_state=rng.integers(2**31))
    rows = rows.reset_index(drop=True)
    labels = rows[target].to_numpy(dtype=np.int64).copy()
    inputs = rows.drop(columns=[target, *[c for c in drop if c in rows.columns]])
    if level == 0:
        return inputs, labels
    charges = inputs["monthly_charges"] + 25.0 * level
    tenure = np.floor(inputs["tenure_months"] * (1.0 - 0.5 * level)).astype(np.int64)
    inputs = inputs.assign(monthly_charges=charges.round(2), tenure_months=tenure)
    # Standardised around the drifted centre, so churn stays about as common as before.
    centre_tenure = _TENURE[0] * (1.0 - 0.5 * level)
    centre_charges = _CHARGES[0] + 25.0 * level
    z_tenure = (tenure.to_numpy() - centre_tenure) / _TENURE[1]
    z_charges = (np.nan_to_num(charges.to_numpy(), nan=centre_charges) - centre_charges) / _CHARGES[
        1
    ]
    logit = -1.0 + 2.2 * z_tenure - 2.2 * z_charges
    reversed_labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    new_world = rng.random(n) < level
    labels = np.where(new_world, reversed_labels, labels)
    return inputs, labels


# A classifier answers with labels unless asked for probabilities (as MLflow 2.x params).
_PROBA = {"params": {"predict_method": "predict_proba"}}


def _records(inputs: pd.DataFrame) -> list[dict[str, Any]]:
    # pandas' JSON writer turns NaN into null and numpy scalars into plain numbers.
    records: list[dict[str, Any]] = json.loads(inputs.to_json(orient="records"))
    return records


@dataclass
class Replay:
    """What one replay sent.

    Attributes:
        request_ids: The id of each answered request, in row order (None when it failed).
        scores: The positive-class probability of each answered request.
        failed: Requests that got no answer or an error status.
        errors: A few of the error messages.
    """

    request_ids: list[str | None] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def send_requests(
    base_url: str,
    inputs: pd.DataFrame,
    *,
    concurrency: int = 4,
    timeout_s: float = 30.0,
    advance: Callable[[int], None] | None = None,
) -> Replay:
    """Send each row as its own ``/invocations`` request (``dataframe_records``), asking
    for class probabilities (``params: {"predict_method": "predict_proba"}``).

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8601``.
        inputs: The rows.
        concurrency: Requests in flight at once.
        timeout_s: Timeout of each request.
        advance: Called with 1 after each request (a progress bar's advance).
    """
    # Lazy imports here and below (noqa: PLC0415) of httpx: each loads only where it is used, so
    # importing this module stays light.
    import httpx  # noqa: PLC0415

    records = _records(inputs)
    out = Replay(request_ids=[None] * len(records), scores=[None] * len(records))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=base_url, timeout=timeout_s, limits=limits) as client:

        def one(i: int) -> None:
            try:
                resp = client.post(
                    "/invocations", json={"dataframe_records": [records[i]], **_PROBA}
                )
            except httpx.HTTPError as exc:
                out.failed += 1
                if len(out.errors) < 5:
                    out.errors.append(f"{type(exc).__name__}: {exc}")
                return
            finally:
                if advance is not None:
                    advance(1)
            if resp.status_code != 200:
                out.failed += 1
                if len(out.errors) < 5:
                    out.errors.append(f"{resp.status_code}: {resp.text[:200]}")
                return
            out.request_ids[i] = resp.headers.get("x-request-id")
            prediction = resp.json()["predictions"][0]
            out.scores[i] = float(prediction[-1] if isinstance(prediction, list) else prediction)

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(len(records))))
    return out


def send_feedback(
    base_url: str,
    request_ids: Sequence[str | None],
    labels: Sequence[Any] | np.ndarray[Any, Any],
    *,
    concurrency: int = 4,
    timeout_s: float = 30.0,
) -> int:
    """``POST /v1/feedback`` the label of each answered request; returns how many went in.

    Raises:
        ServingError: The server refused a label.
    """
    import httpx  # noqa: PLC0415

    pairs = [(rid, int(lab)) for rid, lab in zip(request_ids, labels, strict=True) if rid]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=base_url, timeout=timeout_s, limits=limits) as client:

        def one(pair: tuple[str, int]) -> None:
            resp = client.post("/v1/feedback", json={"request_id": pair[0], "label": pair[1]})
            if resp.status_code >= 300:
                raise ServingError(
                    f"{base_url}/v1/feedback refused the label of request {pair[0]}: "
                    f"{resp.status_code} {resp.text[:200]}"
                )

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, pairs))
    return len(pairs)
