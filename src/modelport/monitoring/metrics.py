"""The server's Prometheus metrics, correct across ``--workers N`` processes.

With one process, metrics live in prometheus_client's default registry (which also carries
its ``process_*`` and ``python_*`` collectors). With several, :func:`enable_multiprocess`
points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder *before* any worker imports this module:
each worker then keeps its values in memory-mapped files there, and a scrape answered by any
worker sums them all (prometheus_client's multiprocess mode). Gauges say how they combine:
queue depth is summed over live workers, per-process CPU and memory keep a ``pid`` label.

Request labels are bounded: ``model`` is only set once the model was found among the served
ones, so requests naming random models cannot create new series.
"""

from __future__ import annotations

import atexit
import os
import resource
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# ``*_created`` series would double the output, and no alert rule uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUESTS = Counter(
    "modelport_requests",
    "HTTP requests answered, by model, version, protocol and status code.",
    ["model", "version", "protocol", "code"],
)
LATENCY = Histogram(
    "modelport_request_duration_seconds",
    "Time from the request's arrival to its response, by model and protocol.",
    ["model", "protocol"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "modelport_batch_size",
    "Rows per predict call made by the adaptive batcher.",
    ["model"],
    buckets=BATCH_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "modelport_queue_depth",
    "Requests waiting in a model's batcher queue (summed over live workers).",
    ["model"],
    multiprocess_mode="livesum",
)
LOAD_SECONDS = Gauge(
    "modelport_model_load_seconds",
    "Seconds to read and deserialize a model version.",
    ["model", "version"],
    multiprocess_mode="max",
)
WARMUP_SECONDS = Gauge(
    "modelport_model_warmup_seconds",
    "Seconds of the warm-up predict calls on the input example.",
    ["model", "version"],
    multiprocess_mode="max",
)
INFERENCE_ERRORS = Counter(
    "modelport_inference_errors",
    "Predict calls that failed after the input was valid: the model raised, or timed out.",
    ["model", "reason"],
)
LOG_SAMPLED = Counter(
    "modelport_prediction_log_sampled",
    "Requests chosen by the sample rate for the prediction log.",
    ["model"],
)
LOG_WRITTEN = Counter(
    "modelport_prediction_log_written",
    "Sampled requests written to the prediction log.",
    ["model"],
)
LOG_DROPPED = Counter(
    "modelport_prediction_log_dropped",
    "Sampled requests dropped because the log's queue was full or the write failed.",
    ["model"],
)
DRIFT = Gauge(
    "modelport_feature_drift",
    "1 when the feature drifted in the last drift check (p < alpha and PSI > threshold).",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
)
DRIFT_PSI = Gauge(
    "modelport_feature_psi",
    "Population stability index of the feature in the last drift check.",
    ["model", "version", "feature"],
    multiprocess_mode="mostrecent",
)
LIVE_QUALITY = Gauge(
    "modelport_live_quality",
    "Accuracy, F1, AUC (classifiers) or MAE, RMSE (regressors) from posted labels.",
    ["model", "version", "metric"],
    multiprocess_mode="mostrecent",
)
PROCESS_CPU = Gauge(
    "modelport_process_cpu_seconds",
    "CPU seconds used by the server process (user + system).",
    multiprocess_mode="all",
)
PROCESS_MEMORY = Gauge(
    "modelport_process_resident_memory_bytes",
    "Resident memory of the server process.",
    multiprocess_mode="all",
)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def enable_multiprocess() -> Path:
    """Give worker processes a fresh shared folder for their metric files; returns it.

    Must run in the parent before workers start. An existing ``PROMETHEUS_MULTIPROC_DIR`` is
    kept (a supervisor may have chosen one); otherwise a new temporary folder is made.
    """
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        return Path(existing)
    folder = Path(tempfile.mkdtemp(prefix="modelport-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def exposition(
    only_models: Collection[str] | None = None, serving: Mapping[str, str] | None = None
) -> bytes:
    """The text a scrape of ``/metrics`` gets: this process, or every worker summed.

    ``only_models`` keeps the samples of those (served) models and those of no model (process
    CPU and memory), for a caller allowed to see one model only. ``serving`` (model -> the
    version it serves now, "" for none) drops per-version gauges (load and warm-up time, drift, live
    quality) of versions no longer served: they describe a model that is gone. Counters keep
    every version: their history is what rates are computed from.
    """
    if only_models is None and serving is None:
        return generate_latest(_registry())
    return generate_latest(_View(_registry(), only_models, serving))


class _View:
    """A collector view of a registry without the samples :func:`exposition` leaves out."""

    def __init__(
        self,
        registry: CollectorRegistry,
        only_models: Collection[str] | None,
        serving: Mapping[str, str] | None,
    ) -> None:
        self._registry, self._only, self._serving = registry, only_models, serving

    def _keeps(self, kind: str, labels: Mapping[str, str]) -> bool:
        model = labels.get("model")
        if self._only is not None and model is not None and model not in self._only:
            return False
        if self._serving is not None and kind == "gauge" and "version" in labels:
            return self._serving.get(model or "") == labels["version"]
        return True

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            kept = [s for s in family.samples if self._keeps(family.type, s.labels)]
            if kept:
                family.samples = kept
                yield family


def collect_families() -> list[Metric]:
    """The same metric families as :func:`exposition`, as objects (for the dashboard)."""
    return list(_registry().collect())


def _registry() -> CollectorRegistry:
    """This process's registry, or with several workers one that reads all their files."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def record_process() -> None:
    """Update this process's CPU and memory gauges (called every few seconds)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    PROCESS_CPU.set(usage.ru_utime + usage.ru_stime)
    try:
        with open("/proc/self/statm") as statm:
            PROCESS_MEMORY.set(int(statm.read().split()[1]) * _PAGE)
    except OSError:  # not Linux: the peak is the best there is
        PROCESS_MEMORY.set(usage.ru_maxrss * 1024)
