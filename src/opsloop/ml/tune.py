"""Hyperparameter tuning of model candidates with Optuna and cross-validation.

Tuning sees the training part only. Each cross-validation fold fits its own preprocessor on
its own training rows, so no statistic of a validation fold leaks into the fit that is scored
on it. The folds are preprocessed once per tuning run, not once per trial: the preprocessor has
no hyperparameters, so every trial would refit the very same transform.

Parallelism: on a small machine the cheapest win is to fit the folds of one trial in parallel
worker processes. Unlike running Optuna trials in threads, this keeps the sampler's sequence,
and therefore the result, identical for a given seed. Candidates whose fits take only a few
hundred milliseconds run in-process, where starting workers would cost more than it saves.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np
import optuna
from joblib.externals.loky import ProcessPoolExecutor
from pydantic import BaseModel, ConfigDict, Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from opsloop.errors import MLError
from opsloop.ml.candidates import DEFAULT_CANDIDATES, Candidate, get_candidate
from opsloop.ml.features import FeatureSpec, build_preprocessor, check_feature_frame
from opsloop.ml.metrics import ProblemType, check_problem_type, get_metric, score_model
from opsloop.ml.split import check_target

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

__all__ = [
    "CandidateResult",
    "FoldOutcome",
    "InProcessTrials",
    "TrialBackend",
    "TrialBackendFactory",
    "TrialRecord",
    "TuneResult",
    "cost_curve",
    "render_tune_table",
    "tune_candidates",
]

_T = TypeVar("_T")

# Below this mean fit time per fold, worker processes cost more than they save.
_PARALLEL_MIN_FOLD_S = 0.2


class TrialRecord(BaseModel):
    """One tuning trial of one candidate, as reported to ``on_trial``.

    Attributes:
        candidate: Candidate name as requested.
        number: Trial number within the candidate's study, from 0.
        params: Hyperparameters of the trial.
        score: Mean cross-validation score (in the metric's own units), None if failed.
        score_std: Standard deviation of the fold scores.
        fold_scores: Score of every fold.
        duration_s: Wall time of the trial.
        state: ``complete`` or ``failed``.
        error: The exception, as one line, when failed.
        warnings: Distinct warnings the fits emitted (e.g. convergence).
        cost: What the trial cost: its CPU time at the price per vCPU-hour tuning was given
            (its wall time times the processes that fitted its folds).
    """

    candidate: str
    number: int
    params: dict[str, Any]
    score: float | None
    score_std: float | None = None
    fold_scores: list[float] = Field(default_factory=list)
    duration_s: float
    state: Literal["complete", "failed"]
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    cost: float = 0.0

    def describe(self, metric: str) -> str:
        """One line for a progress log: ``random_forest trial 3: roc_auc 0.8236 (4.1s)``."""
        head = f"{self.candidate} trial {self.number + 1}"
        if self.score is None:
            return f"{head}: failed ({self.error or 'no score'}) after {self.duration_s:.1f}s"
        return f"{head}: cross-validated {metric} {self.score:.4f} ({self.duration_s:.1f}s)"


class CandidateResult(BaseModel):
    """Outcome of tuning one candidate."""

    candidate: str
    best_params: dict[str, Any] | None
    best_score: float | None
    n_trials: int
    n_failed: int
    budget_trials: int
    budget_s: float | None
    duration_s: float
    parallel: bool


class TuneResult(BaseModel):
    """Outcome of tuning: the leaderboard, every trial, and the refitted best model.

    ``model`` is a fitted scikit-learn ``Pipeline(preprocess, model)`` taking the raw feature
    columns; it is left out of ``model_dump()`` so the rest serialises to JSON.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    problem_type: ProblemType
    metric: str
    higher_is_better: bool
    best_candidate: str
    best_params: dict[str, Any]
    best_score: float
    candidates: list[CandidateResult]
    trials: list[TrialRecord]
    cv: int
    seed: int
    train_rows: int
    tune_rows: int
    feature_columns: list[str]
    duration_s: float
    refit_duration_s: float
    refit_warnings: list[str] = Field(default_factory=list)
    max_cost: float | None = None
    cost: float = 0.0
    stopped_by_cost: bool = False
    model: Any = Field(default=None, exclude=True, repr=False)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but the model, candidates keyed by name.

        Each candidate entry holds the :class:`CandidateResult` fields plus ``trials`` (the
        number of trials run); ``trials`` at the top level lists every :class:`TrialRecord`.
        """
        data = self.model_dump(mode="json")
        data["candidates"] = {
            c["candidate"]: {**c, "trials": c["n_trials"]} for c in data["candidates"]
        }
        data["cost_curve"] = cost_curve(self.trials, higher_is_better=self.higher_is_better)
        return data


def cost_curve(trials: Sequence[TrialRecord], *, higher_is_better: bool) -> list[dict[str, Any]]:
    """The metric gained per unit of cost across trials, in the order they ran: after each
    trial, what tuning had spent, the best score so far, what that gained over the first
    trial's score (in the better direction) and that gain per unit of cost spent since."""
    curve: list[dict[str, Any]] = []
    spent = 0.0
    first: float | None = None
    best: float | None = None
    first_cost = 0.0
    for i, trial in enumerate(trials):
        spent += trial.cost
        if trial.score is not None:
            if first is None:
                first, first_cost = trial.score, spent
            if best is None or (trial.score > best if higher_is_better else trial.score < best):
                best = trial.score
        gain = None
        if best is not None and first is not None:
            gain = (best - first) if higher_is_better else (first - best)
        extra = spent - first_cost
        curve.append(
            {
                "trial": i + 1,
                "candidate": trial.candidate,
                "cost": spent,
                "best": best,
                "gain": gain,
                "gain_per_cost": gain / extra if gain is not None and extra > 0 else None,
            }
        )
    return curve


Fold = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]


FoldOutcome = tuple[float, list[str]]
"""The score of one fitted fold and the warnings the fit raised."""


class TrialBackend(Protocol):
    """Fits the folds of several trials at once, e.g. as Ray tasks across a cluster.

    With a backend, each study asks the sampler for a batch of trials, fits them together and
    tells the results back (Optuna's ask-and-tell). A batch is never larger than ``workers``
    divided by the number of folds (at least one trial), so with no more workers than folds
    the trials are sequential and the results are those of sequential tuning for any sampler.
    Larger batches give the same results as long as the sampler does not learn from earlier
    trials: the TPE sampler's first ten (random) trials, or a random sampler.
    """

    workers: int

    def fit_many(
        self, estimators: list[Any], metric: str, problem_type: str
    ) -> list[list[FoldOutcome] | BaseException]:
        """For each estimator, its outcome on every fold, or the error that failed it."""

    def close(self) -> None:
        """Release what the backend holds."""


TrialBackendFactory = Callable[[list[Fold]], TrialBackend]
"""Builds a backend for the folds of one tuning run."""


def _warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    return sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})


def _fit_fold(
    estimator: Any, fold: Fold, metric: str, problem_type: str
) -> tuple[float, list[str]]:
    """Fit a clone of ``estimator`` on one fold and score it."""
    x_fit, y_fit, x_val, y_val = fold
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = clone(estimator).fit(x_fit, y_fit)
        score = score_model(model, x_val, y_val, metric=metric, problem_type=problem_type)
    return score, _warning_lines(caught)


class InProcessTrials:
    """A :class:`TrialBackend` that fits every trial's folds in this process, one by one:
    the reference the distributed backends are compared with."""

    def __init__(self, folds: list[Fold], workers: int = 1) -> None:
        self._folds = folds
        self.workers = workers

    def fit_many(
        self, estimators: list[Any], metric: str, problem_type: str
    ) -> list[list[FoldOutcome] | BaseException]:
        out: list[list[FoldOutcome] | BaseException] = []
        for estimator in estimators:
            try:
                with threadpool_limits(limits=1):
                    out.append([_fit_fold(estimator, f, metric, problem_type) for f in self._folds])
            except Exception as exc:
                out.append(exc)
        return out

    def close(self) -> None:
        return None


# Set before the worker interpreters load numpy or OpenMP: one thread per worker process, so
# workers x threads never exceeds the cores.
_ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

_WORKER_FOLDS: list[Fold] = []


def _init_worker(folds: list[Fold]) -> None:
    _WORKER_FOLDS[:] = folds


def _fit_worker_fold(
    estimator: Any, index: int, metric: str, problem_type: str
) -> tuple[float, list[str]]:
    return _fit_fold(estimator, _WORKER_FOLDS[index], metric, problem_type)


class _FoldPool:
    """Worker processes that hold the folds and fit one fold per task.

    The pool belongs to one tuning run and is shut down when it ends. A process-wide reusable
    pool would outlive the call by its idle timeout, and a caller that waits for its children
    before exiting (a pipeline step in a forked process) would wait for it. The folds travel
    once, when a worker starts, not with every trial.
    """

    def __init__(self, folds: list[Fold], workers: int) -> None:
        self._folds = folds
        self._workers = workers
        self._executor: Any = None

    @property
    def workers(self) -> int:
        """Worker processes (each fits a fold of a trial at once)."""
        return self._workers

    def fit(self, estimator: Any, metric: str, problem_type: str) -> list[tuple[float, list[str]]]:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._workers,
                initializer=_init_worker,
                initargs=(self._folds,),
                env=_ONE_THREAD_ENV,
            )
        futures = [
            self._executor.submit(_fit_worker_fold, estimator, i, metric, problem_type)
            for i in range(len(self._folds))
        ]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _prepare_folds(
    x: pd.DataFrame, y: np.ndarray[Any, Any], spec: FeatureSpec, splitter: Any
) -> list[Fold]:
    folds: list[Fold] = []
    with warnings.catch_warnings():
        # A fold can miss a rare category or have an all-missing column by chance; the final
        # refit on the whole training part reports such problems, the folds need not.
        warnings.simplefilter("ignore", UserWarning)
        for fit_idx, val_idx in splitter.split(x, y):
            pre = build_preprocessor(spec).fit(x.iloc[fit_idx], y[fit_idx])
            folds.append(
                (
                    pre.transform(x.iloc[fit_idx]),
                    y[fit_idx],
                    pre.transform(x.iloc[val_idx]),
                    y[val_idx],
                )
            )
    return folds


def _best(items: Sequence[_T], score: Callable[[_T], float | None], higher: bool) -> _T | None:
    """The item with the best score; the earliest one wins a tie, and a NaN never wins."""
    best: _T | None = None
    best_score = 0.0
    for item in items:
        value = score(item)
        if value is None or math.isnan(value):
            continue
        if best is None or (value > best_score if higher else value < best_score):
            best, best_score = item, value
    return best


def _split_budget(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [max(1, base + (1 if i < extra else 0)) for i in range(parts)]


def _default_jobs(cv: int) -> int:
    return max(1, min(cv, os.cpu_count() or 1))


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[best]}"),
        TimeElapsedColumn(),
        console=console,
    )


def tune_candidates(
    train_df: pd.DataFrame,
    *,
    target: str,
    problem_type: str,
    metric: str,
    feature_spec: FeatureSpec,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    trials: int = 30,
    timeout_s: float | None = 120.0,
    seed: int = 42,
    cv: int = 3,
    n_jobs: int | None = None,
    max_tune_rows: int | None = 10_000,
    on_trial: Callable[[TrialRecord], None] | None = None,
    progress: bool = True,
    console: Console | None = None,
    max_cost: float | None = None,
    vcpu_hour: float = 0.0,
    trial_backend: TrialBackendFactory | None = None,
) -> TuneResult:
    """Tune every candidate and refit the best one on the whole training part.

    The trial and time budgets are split evenly across candidates; time a candidate leaves
    unused passes on to the next ones. Each study uses a TPE sampler seeded with ``seed`` and
    tries the candidate's default parameters first.

    Args:
        train_df: The training part (target included). The test part must not be passed.
        target: Target column.
        problem_type: ``classification`` or ``regression``.
        metric: Metric to optimise (see :data:`opsloop.ml.metrics.METRICS`).
        feature_spec: Feature columns and their types.
        candidates: Candidate names (see :mod:`opsloop.ml.candidates`).
        trials: Total number of trials over all candidates (at least one per candidate).
        timeout_s: Total time budget in seconds, or None for no limit. A trial running when
            the budget ends is finished.
        seed: Seed of samplers, folds, subsampling and models.
        cv: Number of cross-validation folds.
        n_jobs: Worker processes for fitting folds in parallel; None uses one per core (up to
            ``cv``), 1 fits everything in-process.
        max_tune_rows: Cross-validate on a (stratified) sample of at most this many training
            rows, which bounds the cost of a trial; None uses every row. The final refit always
            uses the whole training part.
        on_trial: Called with every finished trial, e.g. to log it as a child run.
        progress: Show a rich progress bar per candidate.
        console: Console for the progress bars.
        max_cost: Stop tuning once the trials have cost this much (split across candidates
            like the time budget); None for no limit.
        vcpu_hour: Price of a vCPU-hour, by which each trial's cost is its CPU time.
        trial_backend: Fits several trials at once (see :class:`TrialBackend`), e.g.
            :class:`opsloop.ml.tune_ray.RayTrials` across a Ray cluster; ``n_jobs`` then
            only sizes the final refit.

    Returns:
        The tuning result, with the refitted ``Pipeline(preprocess, model)`` in ``model``.

    Raises:
        MLError: Unknown metric or candidate, bad budget, or every trial failed.
        MissingDependencyError: A candidate's optional package is not installed.
        DataError: Unusable target or feature columns in the training part.
    """
    started = time.perf_counter()
    ptype = check_problem_type(problem_type)
    info = get_metric(metric, ptype)
    if not candidates:
        raise MLError("no model candidates to tune; list at least one in train.candidates")
    if len(set(candidates)) != len(candidates):
        raise MLError(f"train.candidates lists a candidate twice: {list(candidates)}")
    if trials < 1:
        raise MLError(f"train.tune.trials must be at least 1, got {trials}")
    if timeout_s is not None and timeout_s <= 0:
        raise MLError(f"train.tune.timeout_s must be positive, got {timeout_s}")
    if max_cost is not None and max_cost <= 0:
        raise MLError(f"train.tune.budget.max_cost must be positive, got {max_cost}")
    if cv < 2:
        raise MLError(f"cross-validation needs at least 2 folds, got cv={cv}")
    resolved = [(name, get_candidate(name)) for name in candidates]

    check_target(train_df, target=target, problem_type=ptype, min_class_rows=cv)
    check_feature_frame(train_df, feature_spec, part="training part")
    for name, cand in resolved:
        problem = cand.check_target(train_df[target], ptype) if cand.check_target else None
        if problem:
            raise MLError(f"candidate '{name}' cannot train on target '{target}': {problem}")

    tune_df = train_df
    if max_tune_rows is not None and len(train_df) > max_tune_rows:
        tune_df, _ = train_test_split(
            train_df,
            train_size=max_tune_rows,
            random_state=seed,
            stratify=train_df[target] if ptype == "classification" else None,
        )
    x_tune = tune_df[feature_spec.columns]
    y_tune = tune_df[target].to_numpy()
    splitter = (
        StratifiedKFold(cv, shuffle=True, random_state=seed)
        if ptype == "classification"
        else KFold(cv, shuffle=True, random_state=seed)
    )
    folds = _prepare_folds(x_tune, y_tune, feature_spec, splitter)
    jobs = _default_jobs(cv) if n_jobs is None else max(1, n_jobs)

    all_trials: list[TrialRecord] = []
    summaries: list[CandidateResult] = []
    budgets = _split_budget(trials, len(resolved))
    previous_verbosity = optuna.logging.get_verbosity()
    # Failed trials are reported through TrialRecord; Optuna's own log lines would repeat them.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    bars = _progress(console) if progress else None
    try:
        if bars is not None:
            bars.start()
        backend = trial_backend(folds) if trial_backend is not None else None
        pool = _FoldPool(folds, min(jobs, len(folds))) if jobs > 1 and backend is None else None
        try:
            for index, ((name, cand), budget) in enumerate(zip(resolved, budgets, strict=True)):
                remaining = len(resolved) - index
                budget_s = None
                if timeout_s is not None:
                    left = timeout_s - (time.perf_counter() - started)
                    budget_s = max(left / remaining, 1e-3)
                spent = sum(t.cost for t in all_trials)
                budget_cost = None
                if max_cost is not None:
                    # Each candidate gets its share of what is left (at least one trial).
                    budget_cost = max(max_cost - spent, 0.0) / remaining
                summary, records = _tune_one(
                    name,
                    cand,
                    ptype=ptype,
                    metric=metric,
                    higher_is_better=info.higher_is_better,
                    folds=folds,
                    budget_trials=budget,
                    budget_s=budget_s,
                    seed=seed,
                    pool=pool,
                    on_trial=on_trial,
                    bars=bars,
                    budget_cost=budget_cost,
                    vcpu_hour=vcpu_hour,
                    backend=backend,
                )
                summaries.append(summary)
                all_trials.extend(records)
        finally:
            if pool is not None:
                pool.close()
            if backend is not None:
                backend.close()
    finally:
        if bars is not None:
            bars.stop()
        optuna.logging.set_verbosity(previous_verbosity)

    scored = [s for s in summaries if s.best_score is not None]
    if not scored:
        errors = [t.error for t in all_trials if t.error]
        raise MLError(
            f"every tuning trial failed; first error: {errors[0] if errors else 'unknown'}"
        )
    best = _best(scored, lambda s: s.best_score, info.higher_is_better)
    assert best is not None and best.best_params is not None and best.best_score is not None

    refit_started = time.perf_counter()
    estimator = get_candidate(best.candidate).make(ptype, best.best_params, seed, jobs)
    model = Pipeline([("preprocess", build_preprocessor(feature_spec)), ("model", estimator)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with threadpool_limits(limits=jobs):
            model.fit(train_df[feature_spec.columns], train_df[target].to_numpy())
    refit_s = time.perf_counter() - refit_started

    return TuneResult(
        problem_type=ptype,
        metric=metric,
        higher_is_better=info.higher_is_better,
        best_candidate=best.candidate,
        best_params=best.best_params,
        best_score=best.best_score,
        candidates=summaries,
        trials=all_trials,
        cv=cv,
        seed=seed,
        train_rows=len(train_df),
        tune_rows=len(tune_df),
        feature_columns=feature_spec.columns,
        duration_s=time.perf_counter() - started,
        refit_duration_s=refit_s,
        refit_warnings=_warning_lines(caught),
        max_cost=max_cost,
        cost=sum(t.cost for t in all_trials),
        stopped_by_cost=max_cost is not None and sum(t.cost for t in all_trials) >= max_cost,
        model=model,
    )


def _tune_one(
    name: str,
    cand: Candidate,
    *,
    ptype: ProblemType,
    metric: str,
    higher_is_better: bool,
    folds: list[Fold],
    budget_trials: int,
    budget_s: float | None,
    seed: int,
    pool: _FoldPool | None,
    on_trial: Callable[[TrialRecord], None] | None,
    bars: Progress | None,
    budget_cost: float | None = None,
    vcpu_hour: float = 0.0,
    backend: TrialBackend | None = None,
) -> tuple[CandidateResult, list[TrialRecord]]:
    started = time.perf_counter()
    records: list[TrialRecord] = []
    use_pool = False
    task = bars.add_task(name, total=budget_trials, best="") if bars is not None else None

    def processes() -> int:
        return pool.workers if use_pool and pool is not None else 1

    def objective(trial: optuna.Trial) -> float:
        nonlocal use_pool
        t0 = time.perf_counter()
        params = cand.suggest(trial, ptype)
        outcome: list[FoldOutcome] | BaseException
        try:
            estimator = cand.make(ptype, params, seed, 1)
            if use_pool and pool is not None:
                outcome = pool.fit(estimator, metric, ptype)
            else:
                # One thread, as in the workers: OpenMP models spinning on a busy machine can be
                # several times slower with more threads than free cores.
                with threadpool_limits(limits=1):
                    outcome = [_fit_fold(estimator, f, metric, ptype) for f in folds]
        except Exception as exc:  # any model error fails this trial only, as Optuna would
            outcome = exc
        duration = time.perf_counter() - t0
        record = _trial_record(
            name,
            trial.number,
            params,
            metric,
            outcome,
            duration,
            duration * processes() * vcpu_hour / 3600.0,
        )
        value = record.score if record.score is not None else math.nan
        # Decide once, from the first (default-parameter) trial, whether workers pay off.
        if record.state == "complete" and trial.number == 0 and pool is not None:
            use_pool = record.duration_s / len(folds) >= _PARALLEL_MIN_FOLD_S
        records.append(record)
        if bars is not None and task is not None:
            done = [r.score for r in records if r.score is not None]
            best = (max if higher_is_better else min)(done) if done else None
            bars.update(
                task, advance=1, best=f"best {metric} {best:.4f}" if best is not None else ""
            )
        if on_trial is not None:
            on_trial(record)
        if budget_cost is not None and sum(r.cost for r in records) >= budget_cost:
            trial.study.stop()
        return value

    study = optuna.create_study(
        direction="maximize" if higher_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    study.enqueue_trial(cand.defaults(ptype))
    if backend is None:
        study.optimize(objective, n_trials=budget_trials, timeout=budget_s)
    else:
        per_batch = max(1, backend.workers // max(1, len(folds)))
        while (
            len(records) < budget_trials
            and (budget_s is None or time.perf_counter() - started < budget_s)
            and (budget_cost is None or sum(r.cost for r in records) < budget_cost)
        ):
            batch = [study.ask() for _ in range(min(per_batch, budget_trials - len(records)))]
            fitted = _fit_batch(
                name, batch, cand, ptype, metric, seed, backend, len(folds) * vcpu_hour
            )
            for trial, record in zip(batch, fitted, strict=True):
                study.tell(trial, record.score if record.score is not None else math.nan)
                records.append(record)
                if bars is not None and task is not None:
                    done = [r.score for r in records if r.score is not None]
                    best = (max if higher_is_better else min)(done) if done else None
                    text = f"best {metric} {best:.4f}" if best is not None else ""
                    bars.update(task, advance=1, best=text)
                if on_trial is not None:
                    on_trial(record)

    complete = [r for r in records if r.state == "complete" and r.score is not None]
    best_record = _best(complete, lambda r: r.score, higher_is_better)
    if bars is not None and task is not None:
        bars.update(task, total=len(records))
    return (
        CandidateResult(
            candidate=name,
            best_params=best_record.params if best_record else None,
            best_score=best_record.score if best_record else None,
            n_trials=len(records),
            n_failed=len(records) - len(complete),
            budget_trials=budget_trials,
            budget_s=budget_s,
            duration_s=time.perf_counter() - started,
            parallel=use_pool,
        ),
        records,
    )


def _fit_batch(
    name: str,
    batch: list[optuna.Trial],
    cand: Candidate,
    ptype: ProblemType,
    metric: str,
    seed: int,
    backend: TrialBackend,
    fold_cpu_hour: float = 0.0,
) -> list[TrialRecord]:
    """Suggest the parameters of a batch of asked trials (in order, as sequential tuning
    would), fit them on the backend, and make their records.

    A trial's cost is its folds' CPUs (one each, as the backend reserves them) for the batch's
    wall time: ``fold_cpu_hour`` is the price of its folds' CPUs per hour."""
    t0 = time.perf_counter()
    params = [cand.suggest(trial, ptype) for trial in batch]
    estimators: list[Any] = []
    errors: dict[int, BaseException] = {}
    for i, p in enumerate(params):
        try:
            estimators.append(cand.make(ptype, p, seed, 1))
        except Exception as exc:
            errors[i] = exc
    fitted = iter(backend.fit_many(estimators, metric, ptype))
    outcomes = [errors[i] if i in errors else next(fitted) for i in range(len(batch))]
    wall = time.perf_counter() - t0
    took = wall / max(1, len(batch))
    cost = wall * fold_cpu_hour / 3600.0
    return [
        _trial_record(name, trial.number, p, metric, outcome, took, cost)
        for trial, p, outcome in zip(batch, params, outcomes, strict=True)
    ]


def _trial_record(
    name: str,
    number: int,
    params: dict[str, Any],
    metric: str,
    outcome: Sequence[FoldOutcome] | BaseException,
    duration: float,
    cost: float,
) -> TrialRecord:
    """The record of one trial from its fold outcomes, or the error that failed it.

    A score that is not finite on some fold fails the trial."""
    scores = [] if isinstance(outcome, BaseException) else [float(o[0]) for o in outcome]
    if not isinstance(outcome, BaseException) and not all(math.isfinite(x) for x in scores):
        outcome = MLError(f"{metric} is not finite on some fold: {scores}")
    if isinstance(outcome, BaseException):
        return TrialRecord(
            candidate=name,
            number=number,
            params=params,
            score=None,
            duration_s=duration,
            state="failed",
            error=f"{type(outcome).__name__}: {outcome}".splitlines()[0],
            cost=cost,
        )
    return TrialRecord(
        candidate=name,
        number=number,
        params=params,
        score=float(np.mean(scores)),
        score_std=float(np.std(scores)),
        fold_scores=scores,
        duration_s=duration,
        state="complete",
        warnings=sorted({w for o in outcome for w in o[1]}),
        cost=cost,
    )


def render_tune_table(result: TuneResult) -> Table:
    """A leaderboard of the candidates, best first, for the console."""
    table = Table(title=f"tuning: {result.metric} ({result.cv}-fold CV on {result.tune_rows} rows)")
    table.add_column("candidate")
    table.add_column(result.metric, justify="right")
    table.add_column("trials", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("time", justify="right")
    table.add_column("best parameters", overflow="fold")

    def key(c: CandidateResult) -> float:
        if c.best_score is None:
            return math.inf
        return -c.best_score if result.higher_is_better else c.best_score

    for c in sorted(result.candidates, key=key):
        mark = " *" if c.candidate == result.best_candidate else ""
        score = f"{c.best_score:.4f}" if c.best_score is not None else "-"
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (c.best_params or {}).items()
        )
        table.add_row(
            c.candidate + mark,
            score,
            str(c.n_trials),
            str(c.n_failed),
            f"{c.duration_s:.1f}s",
            params,
        )
    return table
