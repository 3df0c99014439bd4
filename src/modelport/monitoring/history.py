"""Request rate, error rate and latency percentiles over the last hour, for the dashboard.

Every ``interval`` seconds the server reads its own Prometheus metrics (summed over every
worker in multiprocess mode) and keeps the cumulative request counts and latency histogram
buckets per model. A point of a chart is the difference between two snapshots: requests per
second, the share of them answered with a status other than 2xx, and p50/p99 interpolated
inside the histogram's buckets the way Prometheus' ``histogram_quantile`` does. Because
the snapshots come from the shared metrics, any worker answers the dashboard with the same
series.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from modelport.monitoring.metrics import ServerMetrics

_HOUR = 3600.0


@dataclass(slots=True)
class _Snapshot:
    at: float
    requests: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)


class MetricsHistory:
    """A ring of metric snapshots covering the last hour."""

    def __init__(self, metrics: ServerMetrics, interval: float = 10.0) -> None:
        self.metrics = metrics
        self.interval = interval
        self._snapshots: deque[_Snapshot] = deque(maxlen=int(_HOUR / interval) + 2)

    def sample(self, now: float | None = None) -> None:
        """Take a snapshot of the request metrics now."""
        snap = _Snapshot(at=time.time() if now is None else now)
        for family in self.metrics.collect_families():
            if family.name == "modelport_requests":
                for s in family.samples:
                    if not s.name.endswith("_total"):
                        continue
                    model = s.labels.get("model", "")
                    snap.requests[model] = snap.requests.get(model, 0.0) + s.value
                    if not s.labels.get("code", "").startswith("2"):
                        snap.errors[model] = snap.errors.get(model, 0.0) + s.value
            elif family.name == "modelport_request_duration_seconds":
                for s in family.samples:
                    if not s.name.endswith("_bucket"):
                        continue
                    model = s.labels.get("model", "")
                    le = float(s.labels["le"])
                    per_model = snap.buckets.setdefault(model, {})
                    per_model[le] = per_model.get(le, 0.0) + s.value
        self._snapshots.append(snap)

    def series(self, model: str) -> dict[str, list[Any]]:
        """Per interval: time (epoch s), requests/s, error share, p50 and p99 (ms)."""
        out: dict[str, list[Any]] = {"t": [], "rate": [], "error_rate": [], "p50": [], "p99": []}
        snaps = list(self._snapshots)
        for old, new in itertools.pairwise(snaps):
            seconds = new.at - old.at
            if seconds <= 0:
                continue
            count = new.requests.get(model, 0.0) - old.requests.get(model, 0.0)
            errors = new.errors.get(model, 0.0) - old.errors.get(model, 0.0)
            delta = {
                le: n - old.buckets.get(model, {}).get(le, 0.0)
                for le, n in new.buckets.get(model, {}).items()
            }
            out["t"].append(new.at)
            out["rate"].append(count / seconds)
            out["error_rate"].append(errors / count if count > 0 else 0.0)
            out["p50"].append(_quantile(0.5, delta))
            out["p99"].append(_quantile(0.99, delta))
        return out


def _quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile`` over cumulative bucket counts, in milliseconds."""
    if not buckets:
        return None
    edges = sorted(buckets)
    total = buckets[edges[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower * 1000.0  # beyond the last finite bucket: its bound is all we know
            inside = count - below
            share = (rank - below) / inside if inside > 0 else 1.0
            return (lower + (edge - lower) * share) * 1000.0
        lower, below = edge, count
    return lower * 1000.0
