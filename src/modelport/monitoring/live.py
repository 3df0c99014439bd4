"""Drift and live quality over a time window of the prediction log.

Both the server (``GET /v2/models/{name}/drift`` and ``/quality``, the gauges, the
dashboard) and the CLI (``modelport drift``, ``modelport quality``) call these, so a number
means the same thing wherever it is read. Each returns a JSON-ready dict and changes nothing
else: the server publishes the numbers of the dict into its own gauges.

- **Drift**: the logged inputs of the window against the reference profile stored in the
  artifact, per feature (see :mod:`modelport.monitoring.drift`); plus drift of the primary
  output, the window against the window of the same length just before it.
- **Quality**: logged predictions joined with the labels posted for their request ids.
  Classifiers (a non-float prediction, or a ``probabilities`` output) get accuracy, F1 (of
  the positive class when there are two classes, macro-averaged otherwise) and, with two
  classes and probabilities, ROC AUC; regressors get MAE and RMSE. Per model version over
  the whole window, and per version per bucket of the window for charts.

What they read: the whole window, up to :data:`MAX_ENTRIES` of its newest entries, unless a
caller passes ``most`` (the server's periodic check passes :data:`CHECK_ENTRIES`): then only
the newest ``most`` entries of the window, and for prediction drift also of the window
before, each read on its own, so a busy window never crowds out the one before it. The body
says what was read: ``n_entries`` (and ``n_entries_before`` for drift) and ``sampled``, true
when a window held more entries than were read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from modelport._extras import require
from modelport.artifact.signature import STRING_DTYPE, Signature
from modelport.errors import InvalidInput
from modelport.monitoring.drift import (
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    drift_report,
    live_features,
    prediction_drift,
)
from modelport.registry import LoggedPrediction, PredictionLog, Registry

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_WINDOW_S = 10 * 366 * 86400
MAX_ENTRIES = 100_000
"""Most entries a summary reads when the caller sets no bound (the HTTP routes, the CLI):
for drift, across the window and the one before it together."""
CHECK_ENTRIES = 10_000
"""Most entries of each window the server's periodic check reads (its newest ones).

Why that is enough: each entry holds at least one row, and a drift verdict needs both a PSI
over 0.1 and a significant test. PSI's own sampling noise over ten bins is about 9/n, under
0.001 at 10,000 rows. The two-sample tests' power is set by their effective size,
``n_ref * n_live / (n_ref + n_live)``, which cannot exceed the reference's size: 10,000 live
rows already give at least 90 % of it for references of up to 1,000 rows and half of it for
10,000; the smallest KS distance told from chance at alpha 0.01 is then 0.023 at most for
the latter, far below what a PSI of 0.1 takes. Accuracy's standard error is at most 0.005.
Reading 100,000 entries took about 3 s of CPU and 160 MiB in a thread that shares the
interpreter with requests; 10,000 take a tenth of each. A check of a busy hour describes its
newest part, which is also where a shift that is still going on shows."""
_DEFAULT = DriftThresholds()


def parse_window(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` (or combined, ``1h30m``) as a timedelta."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not parts or _DURATION.sub("", cleaned).strip():
        raise InvalidInput(f"window {text[:40]!r} is not a duration such as 30m, 1h or 7d")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in parts)
    if seconds <= 0:
        raise InvalidInput(f"window {text[:40]!r} must be longer than zero")
    if seconds > _MAX_WINDOW_S:
        raise InvalidInput(f"window {text[:40]!r} is longer than ten years")
    return timedelta(seconds=seconds)


def drift_summary(
    store: PredictionLog,
    model: str,
    version: int | None,
    signature: Signature,
    profile: Mapping[str, Any] | None,
    window: timedelta,
    thresholds: DriftThresholds = _DEFAULT,
    most: int | None = None,
) -> dict[str, Any]:
    """Per-feature drift of ``model`` (one version, or all when None) over the last
    ``window``; with ``most``, of the newest ``most`` entries of it (and of the window
    before, for prediction drift)."""
    now = datetime.now(UTC)
    start = now - window
    if most is None:
        # One read covers both windows: the current one and the one before.
        logged, sampled = _newest(store, model, since=now - 2 * window, version=version)
        current = [e for e in logged if e.created_at >= start]
        before = [e for e in logged if e.created_at < start]
    else:
        current, cut = _newest(store, model, since=start, version=version, most=most)
        before, cut_before = _newest(
            store, model, since=start - window, until=start, version=version, most=most
        )
        sampled = cut or cut_before
    body: dict[str, Any] = {
        "model": model,
        "version": version,
        "window_seconds": window.total_seconds(),
        "n_entries": len(current),
        "n_entries_before": len(before),
        "sampled": sampled,
        "thresholds": {
            "alpha": thresholds.alpha,
            "psi": thresholds.psi,
            "min_samples": thresholds.min_samples,
        },
    }
    if profile is None:
        body.update(n_live=_rows(current), enough_data=False, features=[], drifted=[])
        body["reason"] = "the artifact has no reference profile (register with training data)"
    else:
        report = drift_report(profile, _inputs(signature, current), thresholds)
        body.update(_report(report))
        if not report.enough_data:
            body["reason"] = (
                f"{report.n_live} logged rows in the window; a verdict needs "
                f"{thresholds.min_samples} (log more with a higher log_sample_rate)"
            )
    body["predictions"] = _prediction_drift(before, current, thresholds)
    return body


def quality_summary(
    store: PredictionLog,
    model: str,
    window: timedelta,
    buckets: int = 12,
    most: int | None = None,
) -> dict[str, Any]:
    """Live accuracy/F1/AUC or MAE/RMSE of ``model`` from posted labels, over ``window``;
    with ``most``, over the newest ``most`` labelled entries of it."""
    since = datetime.now(UTC) - window
    entries, sampled = _newest(
        store, model, since=since, labelled_only=True, most=MAX_ENTRIES if most is None else most
    )
    body: dict[str, Any] = {
        "model": model,
        "window_seconds": window.total_seconds(),
        "n_entries": len(entries),
        "sampled": sampled,
    }
    rows, unpaired = _labelled_rows(entries)
    body["unpaired"] = unpaired
    if not rows:
        body.update(task=None, n_labelled=0, versions={}, series=[])
        return body
    task = _task(rows)
    body.update(task=task, n_labelled=len(rows))
    by_version: dict[int | None, list[_Row]] = {}
    for row in rows:
        by_version.setdefault(row.version, []).append(row)
    body["versions"] = {
        str(v): {"n": len(group), **_scores(task, group)} for v, group in by_version.items()
    }
    step = window / max(1, buckets)
    series: list[dict[str, Any]] = []
    for index in range(max(1, buckets)):
        start = since + index * step
        for v, group in by_version.items():
            inside = [r for r in group if start <= r.created_at < start + step]
            if inside:
                series.append(
                    {
                        "start": start.isoformat(),
                        "version": v,
                        "n": len(inside),
                        **_scores(task, inside),
                    }
                )
    body["series"] = series
    return body


def _newest(
    store: PredictionLog,
    model: str,
    *,
    since: datetime,
    until: datetime | None = None,
    version: int | None = None,
    labelled_only: bool = False,
    most: int = MAX_ENTRIES,
) -> tuple[list[LoggedPrediction], bool]:
    """The newest ``most`` entries between ``since`` and ``until``, oldest first, and whether
    there were more (one more is read to know)."""
    logged = store.logged_predictions(
        model,
        since=since,
        until=until,
        version=version,
        labelled_only=labelled_only,
        limit=most + 1,
    )
    return (logged[1:], True) if len(logged) > most else (logged, False)


# -- drift helpers -----------------------------------------------------------------------


def _rows(entries: Sequence[LoggedPrediction]) -> int:
    return sum(_entry_rows(e.outputs) for e in entries)


def _entry_rows(values: Mapping[str, Any]) -> int:
    first: Any = next(iter(values.values()), [])
    return len(first) if isinstance(first, list) else 1


def _inputs(signature: Signature, entries: Sequence[LoggedPrediction]) -> dict[str, np.ndarray]:
    """The logged inputs of ``entries`` as one array per input, then per profiled feature."""
    arrays: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        values: list[Any] = []
        for entry in entries:
            logged = entry.inputs.get(spec.name)
            if isinstance(logged, list):
                values.extend(logged)
        categorical = spec.dtype in (STRING_DTYPE, "bool")
        dtype: Any = object if categorical else np.float64
        try:
            arr = np.array([np.nan if v is None else v for v in values], dtype=dtype)
        except (TypeError, ValueError):
            arr = np.array(values, dtype=object)
        arrays[spec.name] = arr
    return live_features(signature, arrays) if entries else {}


def _report(report: DriftReport) -> dict[str, Any]:
    return {
        "n_live": report.n_live,
        "enough_data": report.enough_data,
        "drifted": report.drifted,
        "features": [_feature(f) for f in report.features],
    }


def _feature(f: FeatureDrift) -> dict[str, Any]:
    return {
        "feature": f.feature,
        "kind": f.kind,
        "n_live": f.n_live,
        "psi": _finite(f.psi),
        "test": f.test,
        "statistic": _finite(f.statistic),
        "p_value": _finite(f.p_value),
        "drifted": f.drifted,
        "bins": f.bins,
        "reference": f.reference,
        "live": f.live,
    }


def _primary(entries: Sequence[LoggedPrediction]) -> np.ndarray | None:
    """The values of the first output (``predictions`` when there is one), one per row."""
    values: list[Any] = []
    for entry in entries:
        out = entry.outputs
        name = "predictions" if "predictions" in out else next(iter(out), None)
        if name is None or not isinstance(out[name], list):
            continue
        values.extend(out[name])
    if not values:
        return None
    arr = np.array(values, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 2:  # two-column scores: the positive column
        arr = arr[:, 1]
    elif arr.ndim != 1:
        return None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in arr):
        return arr.astype(np.float64)
    return np.array([str(v) for v in arr], dtype=object)


def _prediction_drift(
    before: Sequence[LoggedPrediction],
    current: Sequence[LoggedPrediction],
    thresholds: DriftThresholds,
) -> dict[str, Any] | None:
    base, live = _primary(before), _primary(current)
    if base is None or live is None:
        return None
    if min(len(base), len(live)) < thresholds.min_samples:
        return {"enough_data": False, "n_baseline": len(base), "n_live": len(live)}
    found = prediction_drift(base, live, thresholds)
    return {"enough_data": True, "n_baseline": len(base), **_feature(found)}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# -- quality helpers ---------------------------------------------------------------------


class _Row:
    __slots__ = ("created_at", "label", "prediction", "score", "version")

    def __init__(
        self, version: int | None, created_at: datetime, prediction: Any, score: Any, label: Any
    ) -> None:
        self.version = version
        self.created_at = created_at
        self.prediction = prediction
        self.score = score
        self.label = label


def _labelled_rows(entries: Iterable[LoggedPrediction]) -> tuple[list[_Row], int]:
    """One row per labelled prediction row (a request of n rows takes a list of n labels),
    and the number of requests whose label count did not match their rows."""
    rows: list[_Row] = []
    unpaired = 0
    for entry in entries:
        out = entry.outputs
        name = "predictions" if "predictions" in out else next(iter(out), None)
        if name is None:
            continue
        predictions = out[name] if isinstance(out[name], list) else [out[name]]
        probabilities = out.get("probabilities")
        labels = entry.label if isinstance(entry.label, list) else [entry.label]
        if len(labels) != len(predictions):
            unpaired += 1  # reported in the summary: these labels cannot be paired
            continue
        for i, (pred, label) in enumerate(zip(predictions, labels, strict=True)):
            score = None
            if isinstance(probabilities, list) and i < len(probabilities):
                p = probabilities[i]
                score = p[1] if isinstance(p, list) and len(p) == 2 else None
            rows.append(_Row(entry.version, entry.created_at, _norm(pred), score, _norm(label)))
    return rows, unpaired


def _norm(value: Any) -> Any:
    """1 and 1.0 are the same class; a list of one value is that value."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _task(rows: Sequence[_Row]) -> str:
    if any(r.score is not None for r in rows):
        return "classification"
    floats = any(isinstance(r.prediction, float) for r in rows)
    return "regression" if floats else "classification"


def _scores(task: str, rows: Sequence[_Row]) -> dict[str, float | None]:
    if task == "regression":
        errors = np.array([float(r.prediction) - float(r.label) for r in rows])
        return {
            "mae": float(np.mean(np.abs(errors))),
            "rmse": float(np.sqrt(np.mean(errors**2))),
        }
    preds = [str(r.prediction) for r in rows]
    labels = [str(r.label) for r in rows]
    classes = sorted(set(labels) | set(preds), key=_class_order)
    accuracy = float(np.mean([p == t for p, t in zip(preds, labels, strict=True)]))
    f1: float | None
    if len(classes) == 2:
        f1 = _f1(preds, labels, classes[1])
    else:
        f1 = float(np.mean([_f1(preds, labels, c) for c in classes])) if classes else None
    auc = None
    scores = [r.score for r in rows]
    if len(classes) == 2 and all(s is not None for s in scores):
        positive = np.array([t == classes[1] for t in labels])
        if 0 < positive.sum() < len(positive):
            try:  # lazily: scipy.stats takes 0.7 s to import
                from scipy.stats import rankdata
            except ImportError:
                require("drift")  # AUC's ranks: names modelport[drift]
                raise

            ranks = rankdata(np.array(scores, dtype=np.float64))
            n_pos = int(positive.sum())
            n_neg = len(positive) - n_pos
            auc = float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return {"accuracy": accuracy, "f1": f1, "auc": auc}


def _class_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order before text, as scikit-learn sorts its classes."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _f1(preds: Sequence[str], labels: Sequence[str], positive: str) -> float:
    tp = sum(p == positive and t == positive for p, t in zip(preds, labels, strict=True))
    fp = sum(p == positive and t != positive for p, t in zip(preds, labels, strict=True))
    fn = sum(p != positive and t == positive for p, t in zip(preds, labels, strict=True))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def drift_of(
    registry: Registry,
    ref: str,
    window: timedelta,
    thresholds: DriftThresholds = _DEFAULT,
    served_name: str | None = None,
) -> dict[str, Any]:
    """:func:`drift_summary` for a registry ref (``churn@production``): the version it
    resolves to, its signature and reference profile. The log is read under ``served_name``
    (default: the model's name, which is what the server logs under unless renamed)."""
    version = registry.resolve(ref)
    model = registry.load(version)  # the version just resolved: an alias may move meanwhile
    return drift_summary(
        registry.predictions,
        served_name or version.name,
        version.version,
        model.signature,
        model.reference_profile(),
        window,
        thresholds,
    )
