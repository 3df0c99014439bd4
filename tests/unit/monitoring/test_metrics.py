"""ServerMetrics: one registry per app, the exposition's filters, and multiprocess files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from modelport.monitoring.metrics import MULTIPROC_ENV, ServerMetrics


def _samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_each_instance_counts_apart_and_shows_no_created_series() -> None:
    one, other = ServerMetrics(), ServerMetrics()
    one.requests.labels("churn", "1", "v2", "200").inc()
    one.latency.labels("churn", "v2").observe(0.01)
    labels = frozenset({"model": "churn", "version": "1", "protocol": "v2", "code": "200"}.items())
    assert _samples(one.exposition())[("modelport_requests_total", labels)] == 1.0
    assert ("modelport_requests_total", labels) not in _samples(other.exposition())
    assert b"_created" not in one.exposition()
    assert b"process_cpu_seconds_total" in one.exposition()


def test_the_exposition_keeps_what_a_caller_may_see_and_what_is_served() -> None:
    metrics = ServerMetrics()
    metrics.requests.labels("a", "1", "v2", "200").inc()
    metrics.requests.labels("b", "1", "v2", "200").inc()
    metrics.load_seconds.labels("a", "1").set(1.0)
    metrics.load_seconds.labels("a", "2").set(2.0)
    metrics.record_process()
    names = {(name, dict(labels).get("model")) for name, labels in _samples(
        metrics.exposition(only_models={"a"}, serving={"a": "2"})
    )}  # fmt: skip
    assert ("modelport_requests_total", "a") in names
    assert ("modelport_requests_total", "b") not in names  # another model's
    assert ("modelport_process_cpu_seconds", None) in names  # no model: always kept
    loads = {
        dict(labels)["version"]
        for (name, labels) in _samples(metrics.exposition(serving={"a": "2"}))
        if name == "modelport_model_load_seconds"
    }
    assert loads == {"2"}  # the version no longer served is gone; its counters are not


def test_drift_and_quality_are_published_by_the_caller() -> None:
    metrics = ServerMetrics()
    metrics.set_drift("churn", 3, "amount", True, 0.4)
    metrics.set_drift("churn", None, "rate", False, None)
    metrics.set_live_quality("churn", "3", "accuracy", 0.9)
    samples = _samples(metrics.exposition())

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("modelport_feature_drift", model="churn", version="3", feature="amount") == 1.0
    assert value("modelport_feature_psi", model="churn", version="3", feature="amount") == 0.4
    assert value("modelport_feature_drift", model="churn", version="", feature="rate") == 0.0
    assert value("modelport_live_quality", model="churn", version="3", metric="accuracy") == 0.9


def test_in_multiprocess_mode_each_process_writes_the_shared_files(tmp_path: Path) -> None:
    """prometheus_client picks its value class from the environment when first imported: a
    ServerMetrics made later in a worker still writes the worker's files, and a scrape from
    any instance sums every process."""
    script = textwrap.dedent(
        """
        import sys
        from modelport.monitoring.metrics import ServerMetrics
        metrics = ServerMetrics()
        metrics.requests.labels("churn", "1", "v2", "200").inc(int(sys.argv[1]))
        sys.stdout.write(metrics.exposition().decode())
        """
    )
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}
    for n in (2, 3):
        subprocess.run(
            [sys.executable, "-c", script, str(n)], env=env, check=True, capture_output=True
        )
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())
    last = subprocess.run(
        [sys.executable, "-c", script, "4"], env=env, check=True, capture_output=True
    ).stdout
    labels = frozenset({"model": "churn", "version": "1", "protocol": "v2", "code": "200"}.items())
    assert _samples(last)[("modelport_requests_total", labels)] == 9.0
