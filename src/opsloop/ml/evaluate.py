"""Evaluation of a trained model on the held-out test part, beside the current champion.

Writes into ``out_dir``: the plots as PNG files, ``evaluation.json`` (the result) and
``report.html``, a single self-contained page (plots embedded) with metrics, the champion
comparison, the plots and the gate verdicts.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from jinja2 import Environment, Template
from matplotlib.figure import Figure
from pydantic import BaseModel, Field
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    PredictionErrorDisplay,
    RocCurveDisplay,
    confusion_matrix,
)

from opsloop.errors import MLError
from opsloop.ml.gates import GateResult, evaluate_gates, gates_passed
from opsloop.ml.metrics import METRICS, ProblemType, check_problem_type, compute_metrics
from opsloop.ml.split import check_target

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

__all__ = [
    "METRICS",
    "EvaluationResult",
    "compare_on_frame",
    "evaluate_model",
    "predict_for_metrics",
    "write_report",
]

REPORT_FILE = "report.html"
RESULT_FILE = "evaluation.json"


class EvaluationResult(BaseModel):
    """Metrics of a model (and of the champion) on the test part, and the files written.

    Attributes:
        problem_type: ``classification`` or ``regression``.
        n_rows: Rows in the test part.
        metrics: The model's metrics.
        higher_is_better: Direction of every metric.
        champion_metrics: The champion's metrics on the same rows, when a champion was given.
        champion_error: Why the champion could not be scored, if it could not.
        classes: Class labels (classification), the last one positive for binary problems.
        confusion_matrix: Rows are true classes, columns predicted ones, in ``classes`` order.
        plots: Plot name to PNG file name, relative to ``out_dir``.
        gates: Gate verdicts, when gates were evaluated.
        report_path: The HTML report.
        created_at: When the evaluation ran (UTC, ISO 8601).
        tuning_cost: The metric gained per unit of cost across the tuning trials (see
            :func:`opsloop.ml.tune.cost_curve`), when tuning was priced.
        tuning_max_cost: The tuning budget, if one was set.
    """

    problem_type: ProblemType
    n_rows: int
    metrics: dict[str, float]
    higher_is_better: dict[str, bool]
    champion_metrics: dict[str, float] | None = None
    champion_error: str | None = None
    classes: list[Any] | None = None
    confusion_matrix: list[list[int]] | None = None
    plots: dict[str, str] = Field(default_factory=dict)
    gates: list[GateResult] | None = None
    report_path: str
    created_at: str
    tuning_cost: list[dict[str, Any]] | None = None
    tuning_max_cost: float | None = None

    @property
    def gates_passed(self) -> bool | None:
        """Whether every gate passed, or None when no gate was evaluated."""
        return None if self.gates is None else gates_passed(self.gates)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _model_input(model: Any, df: pd.DataFrame, target: str, who: str) -> pd.DataFrame:
    columns = getattr(model, "feature_names_in_", None)
    if columns is None:
        return df.drop(columns=[target])
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MLError(f"the {who} needs column(s) missing from the test data: {missing}")
    return df[list(columns)]


def predict_for_metrics(
    model: Any, test_df: pd.DataFrame, *, target: str, problem_type: str, who: str = "model"
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None, list[Any] | None]:
    """Predict on ``test_df`` the way evaluation does.

    Returns:
        ``(predictions, class probabilities or None, classes or None)``.
    """
    x = _model_input(model, test_df, target, who)
    pred = np.asarray(model.predict(x))
    if check_problem_type(problem_type) == "regression":
        return pred, None, None
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise MLError(f"the {who} is not a fitted classifier: it has no classes_")
    proba = np.asarray(model.predict_proba(x)) if hasattr(model, "predict_proba") else None
    return pred, proba, [_plain(c) for c in classes]


def evaluate_model(
    model: Any,
    test_df: pd.DataFrame,
    *,
    target: str,
    problem_type: str,
    out_dir: str | Path,
    champion: Any | None = None,
    gates_config: Mapping[str, Any] | None = None,
    contract_passed: bool = True,
    title: str = "Model evaluation",
    tuning: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Score ``model`` (and ``champion``) on the test part and write the report.

    Args:
        model: A fitted estimator or pipeline taking the raw feature columns.
        test_df: The held-out test part, target included.
        target: Target column.
        problem_type: ``classification`` or ``regression``.
        out_dir: Folder for plots, ``evaluation.json`` and ``report.html`` (created).
        champion: The current production model, scored on the same rows for comparison.
        gates_config: The ``evaluate.gates`` mapping; when given, the gates are judged and
            shown in the report.
        contract_passed: Whether the data contract passed (for the contract gate).
        title: Heading of the report.
        tuning: The tuning summary (:meth:`opsloop.ml.tune.TuneResult.summary`): its cost
            curve is shown when its trials were priced.

    Returns:
        The evaluation result.

    Raises:
        MLError: The model cannot predict on the test data, or a gate is misconfigured.
        DataError: The test part has no usable target.
    """
    ptype = check_problem_type(problem_type)
    check_target(test_df, target=target, problem_type=ptype, min_class_rows=1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = test_df[target].to_numpy()

    pred, proba, classes = predict_for_metrics(model, test_df, target=target, problem_type=ptype)
    metrics = compute_metrics(y, problem_type=ptype, y_pred=pred, proba=proba, classes=classes)

    champion_metrics: dict[str, float] | None = None
    champion_error: str | None = None
    champ_pred: np.ndarray[Any, Any] | None = None
    champ_proba: np.ndarray[Any, Any] | None = None
    if champion is not None:
        try:
            champ_pred, champ_proba, champ_classes = predict_for_metrics(
                champion, test_df, target=target, problem_type=ptype, who="champion"
            )
            champion_metrics = compute_metrics(
                y, problem_type=ptype, y_pred=champ_pred, proba=champ_proba, classes=champ_classes
            )
            if champ_classes != classes:
                champ_proba = None  # curves of different class sets are not comparable
        except Exception as exc:  # a champion from an older schema must not block evaluation
            champion_error = f"{type(exc).__name__}: {exc}".splitlines()[0]

    plots: dict[str, str] = {}
    matrix: list[list[int]] | None = None
    if ptype == "classification":
        assert classes is not None
        cm = confusion_matrix(y, pred, labels=classes)
        matrix = cm.astype(int).tolist()
        plots["confusion_matrix"] = _plot_confusion(cm, classes, out)
        if proba is not None:
            plots.update(_plot_curves(y, proba, classes, champ_proba, out))
    else:
        plots["residuals"] = _plot_residuals(y, pred, champ_pred, out)

    gates = None
    if gates_config is not None:
        gates = evaluate_gates(
            gates_config,
            metrics,
            champion_metrics=champion_metrics,
            contract_passed=contract_passed,
            problem_type=ptype,
        )

    result = EvaluationResult(
        problem_type=ptype,
        n_rows=len(test_df),
        metrics=metrics,
        higher_is_better={m: METRICS[ptype][m].higher_is_better for m in metrics},
        champion_metrics=champion_metrics,
        champion_error=champion_error,
        classes=classes,
        confusion_matrix=matrix,
        plots=plots,
        gates=gates,
        report_path=str(out / REPORT_FILE),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tuning_cost=_priced_curve(tuning),
        tuning_max_cost=(tuning or {}).get("max_cost"),
    )
    return write_report(result, out, title=title)


def _priced_curve(tuning: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    curve = (tuning or {}).get("cost_curve")
    if not isinstance(curve, list) or not curve or not curve[-1].get("cost"):
        return None  # unpriced tuning (no rate card price) says nothing per unit of cost
    return [dict(point) for point in curve]


def compare_on_frame(
    model: Any,
    champion: Any | None,
    frame: pd.DataFrame,
    *,
    target: str,
    problem_type: str,
) -> dict[str, Any]:
    """Metrics of a model and of the champion on another labelled frame (recent traffic).

    Returns:
        ``{"rows", "metrics", "champion_metrics"}``, or ``{"rows", "error"}`` when the frame
        cannot be scored (a column the model needs is missing, one class only …): recent
        traffic is extra evidence, and its absence must not stop an evaluation.
    """
    ptype = check_problem_type(problem_type)
    out: dict[str, Any] = {"rows": len(frame)}
    try:
        check_target(frame, target=target, problem_type=ptype, min_class_rows=1)
        y = frame[target].to_numpy()
        scored = {}
        for who, m in (("model", model), ("champion", champion)):
            if m is None:
                continue
            pred, proba, classes = predict_for_metrics(
                m, frame, target=target, problem_type=ptype, who=who
            )
            scored[who] = compute_metrics(
                y, problem_type=ptype, y_pred=pred, proba=proba, classes=classes
            )
    except Exception as exc:  # any failure only means "not compared"
        out["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return out
    out["metrics"] = scored["model"]
    out["champion_metrics"] = scored.get("champion")
    return out


def write_report(
    result: EvaluationResult,
    out_dir: str | Path,
    *,
    gates: Sequence[GateResult] | None = None,
    title: str = "Model evaluation",
) -> EvaluationResult:
    """(Re)write ``report.html`` and ``evaluation.json`` for ``result``.

    Use it to add gate verdicts computed elsewhere to an existing evaluation.

    Returns:
        The result, with ``gates`` replaced when given.
    """
    out = Path(out_dir)
    if gates is not None:
        result = result.model_copy(update={"gates": list(gates)})
    result = result.model_copy(update={"report_path": str(out / REPORT_FILE)})
    images = {
        name: base64.b64encode((out / file).read_bytes()).decode("ascii")
        for name, file in result.plots.items()
    }
    rows = []
    for name, value in result.metrics.items():
        champ = (result.champion_metrics or {}).get(name)
        delta = value - champ if champ is not None else None
        better = None
        if delta is not None and delta != 0:
            better = (delta > 0) == result.higher_is_better[name]
        rows.append(
            {
                "name": name,
                "value": value,
                "champion": champ,
                "delta": delta,
                "better": better,
                "direction": "higher" if result.higher_is_better[name] else "lower",
            }
        )
    page = _template().render(
        title=title,
        result=result,
        rows=rows,
        images=images,
        fmt=_fmt,
        gates_ok=result.gates_passed,
    )
    (out / REPORT_FILE).write_text(page, encoding="utf-8")
    (out / RESULT_FILE).write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return result


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


# --- plots ------------------------------------------------------------------------------------
# Figures are built with matplotlib's object API (no pyplot), so no global backend is touched
# and nothing stays registered after saving.


def _save(fig: Figure, out: Path, name: str) -> str:
    file = f"{name}.png"
    fig.tight_layout()
    fig.savefig(out / file, dpi=100)
    return file


def _plot_confusion(cm: np.ndarray[Any, Any], classes: list[Any], out: Path) -> str:
    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.add_subplot()
    ConfusionMatrixDisplay(cm, display_labels=[str(c) for c in classes]).plot(
        ax=ax, colorbar=False, values_format="d", cmap="Blues"
    )
    ax.set_title("Confusion matrix (test)")
    return _save(fig, out, "confusion_matrix")


def _plot_curves(
    y: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any],
    classes: list[Any],
    champ_proba: np.ndarray[Any, Any] | None,
    out: Path,
) -> dict[str, str]:
    files: dict[str, str] = {}
    for kind, display in (("roc_curve", RocCurveDisplay), ("pr_curve", PrecisionRecallDisplay)):
        fig = Figure(figsize=(5.2, 4.4))
        ax = fig.add_subplot()
        if len(classes) == 2:
            series = [("model", proba[:, 1])]
            if champ_proba is not None:
                series.append(("champion", champ_proba[:, 1]))
            for label, scores in series:
                display.from_predictions(y, scores, name=label, ax=ax, pos_label=classes[1])
        else:
            for i, cls in enumerate(classes):
                display.from_predictions(
                    y == cls, proba[:, i], name=f"class {cls}", ax=ax, pos_label=True
                )
        if kind == "roc_curve":
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
            ax.set_title("ROC curve (test)")
        else:
            ax.set_title("Precision-recall curve (test)")
        ax.legend(loc="lower right" if kind == "roc_curve" else "lower left", fontsize="small")
        files[kind] = _save(fig, out, kind)
    return files


def _plot_residuals(
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    champ_pred: np.ndarray[Any, Any] | None,
    out: Path,
) -> str:
    fig = Figure(figsize=(10, 4.4))
    left, right = fig.subplots(1, 2)
    PredictionErrorDisplay.from_predictions(
        y, pred, kind="actual_vs_predicted", ax=left, subsample=2000, random_state=0
    )
    left.set_title("Actual vs predicted (test)")
    PredictionErrorDisplay.from_predictions(
        y, pred, kind="residual_vs_predicted", ax=right, subsample=2000, random_state=0
    )
    right.set_title("Residuals vs predicted (test)")
    if champ_pred is not None:
        right.scatter(
            champ_pred[:2000],
            (y - champ_pred)[:2000],
            s=6,
            alpha=0.3,
            color="tab:orange",
            label="champion",
        )
        right.legend(fontsize="small")
    return _save(fig, out, "residuals")


def _template() -> Template:
    source = resources.files("opsloop.ml").joinpath("report.html.j2").read_text("utf-8")
    return Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(source)
