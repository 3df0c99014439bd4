"""The server's Prometheus metrics, correct across ``--workers N`` processes.

Each app holds one :class:`ServerMetrics`: its metric families in a ``CollectorRegistry`` of
its own (with the ``process_*`` and ``python_*`` collectors beside them), so importing
modelport leaves prometheus_client's default registry alone and two apps in one process
count apart. With several workers, :func:`enable_multiprocess` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder *before* any worker imports prometheus_client:
each worker's metrics then keep their values in memory-mapped files there, and a scrape
answered by any worker sums them all (prometheus_client's multiprocess mode). Gauges say how
they combine: queue depth is summed over live workers, per-process CPU and memory keep a
``pid`` label.

Request labels are bounded: ``model`` is only set once the model was found among the served
ones, so requests naming random models cannot create new series.
"""

from __future__ import annotations

import atexit
import math
import os
import resource
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ServerMetrics:
    """One server app's metrics, in a registry of its own.

    ``create_app`` makes one and hands it to everything that records: the request observer,
    the model manager and its batchers, the data plane, the prediction log and the monitor.
    """

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # What prometheus_client's default registry carries, in its order: /metrics of one
        # process shows them as it did when the metrics lived there.
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)
        ProcessCollector(registry=registry)
        self.requests = Counter(
            "modelport_requests",
            "HTTP requests answered, by model, version, protocol and status code.",
            ["model", "version", "protocol", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "modelport_request_duration_seconds",
            "Time from the request's arrival to its response, by model and protocol.",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "modelport_batch_size",
            "Rows per predict call made by the adaptive batcher.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "modelport_queue_depth",
            "Requests waiting in a model's batcher queue (summed over live workers).",
            ["model"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.load_seconds = Gauge(
            "modelport_model_load_seconds",
            "Seconds to read and deserialize a model version.",
            ["model", "version"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.warmup_seconds = Gauge(
            "modelport_model_warmup_seconds",
            "Seconds of the warm-up predict calls on the input example.",
            ["model", "version"],
            multiprocess_mode="max",
            registry=registry,
        )
        self.inference_errors = Counter(
            "modelport_inference_errors",
            "Predict calls that failed after the input was valid: the model raised, or timed out.",
            ["model", "reason"],
            registry=registry,
        )
        self.log_sampled = Counter(
            "modelport_prediction_log_sampled",
            "Requests chosen by the sample rate for the prediction log.",
            ["model"],
            registry=registry,
        )
        self.log_written = Counter(
            "modelport_prediction_log_written",
            "Sampled requests written to the prediction log.",
            ["model"],
            registry=registry,
        )
        self.log_dropped = Counter(
            "modelport_prediction_log_dropped",
            "Sampled requests dropped because the log's queue was full or the write failed.",
            ["model"],
            registry=registry,
        )
        self.drift = Gauge(
            "modelport_feature_drift",
            "1 when the feature drifted in the last drift check (p < alpha and PSI > threshold).",
            ["model", "version", "feature"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.drift_psi = Gauge(
            "modelport_feature_psi",
            "Population stability index of the feature in the last drift check.",
            ["model", "version", "feature"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.live_quality = Gauge(
            "modelport_live_quality",
            "Accuracy, F1, AUC (classifiers) or MAE, RMSE (regressors) from posted labels.",
            ["model", "version", "metric"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.process_cpu = Gauge(
            "modelport_process_cpu_seconds",
            "CPU seconds used by the server process (user + system).",
            multiprocess_mode="all",
            registry=registry,
        )
        self.process_memory = Gauge(
            "modelport_process_resident_memory_bytes",
            "Resident memory of the server process.",
            multiprocess_mode="all",
            registry=registry,
        )

    def exposition(
        self, only_models: Collection[str] | None = None, serving: Mapping[str, str] | None = None
    ) -> bytes:
        """The text a scrape of ``/metrics`` gets: this app, or every worker summed.

        ``only_models`` keeps the samples of those (served) models and those of no model
        (process CPU and memory), for a caller allowed to see one model only. ``serving``
        (model -> the version it serves now, "" for none) drops per-version gauges (load and
        warm-up time, drift, live quality) of versions no longer served: they describe a model
        that is gone. Counters keep every version: their history is what rates are computed
        from.
        """
        return generate_latest(_View(self._source(), only_models, serving))

    def collect_families(self) -> list[Metric]:
        """The same metric families as :meth:`exposition`, as objects (for the dashboard)."""
        return list(_View(self._source(), None, None).collect())

    def record_process(self) -> None:
        """Update this process's CPU and memory gauges (called every few seconds)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.process_cpu.set(usage.ru_utime + usage.ru_stime)
        try:
            with open("/proc/self/statm") as statm:
                self.process_memory.set(int(statm.read().split()[1]) * _PAGE)
        except OSError:  # not Linux: the peak is the best there is
            self.process_memory.set(usage.ru_maxrss * 1024)

    def set_drift(
        self, model: str, version: int | None, feature: str, drifted: bool, psi: float | None
    ) -> None:
        """Publish one feature's verdict of a drift check (``psi`` None: not a number)."""
        text = "" if version is None else str(version)
        self.drift.labels(model, text, feature).set(1.0 if drifted else 0.0)
        self.drift_psi.labels(model, text, feature).set(math.nan if psi is None else psi)

    def set_live_quality(self, model: str, version: str, metric: str, value: float) -> None:
        """Publish one score of a live-quality check (``version`` as the summary keys it)."""
        self.live_quality.labels(model, version, metric).set(value)

    def _source(self) -> CollectorRegistry:
        """This app's registry, or with several workers one that reads all their files."""
        if not os.environ.get(MULTIPROC_ENV):
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry


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


class _View:
    """A collector view of a registry without the samples :meth:`ServerMetrics.exposition`
    leaves out, and without ``*_created`` samples: they would double the output, and no alert
    rule uses them. (Dropped here rather than by ``disable_created_metrics()``, which would
    remove them from every metric of the process, a user's own too.)"""

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
            created = f"{family.name}_created"
            kept = [
                s
                for s in family.samples
                if s.name != created and self._keeps(family.type, s.labels)
            ]
            if kept:
                family.samples = kept
                yield family
