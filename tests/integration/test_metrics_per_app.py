"""Each app counts into its own metrics: two apps in one process keep apart, and building
one leaves prometheus_client's default registry, and its ``*_created`` series, alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import modelport
from modelport.serving.app import create_app
from modelport.serving.deployment import ModelSpec

from ._asgi import started
from ._churn import churn_frame, churn_home, v2_body


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return churn_home(tmp_path)


def _requests(text: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``modelport_requests_total`` of a scrape, by its labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "modelport_requests_total"
    }


def test_two_apps_in_one_process_count_apart(home: Path) -> None:
    settings = modelport.Settings(home=home)
    busy = create_app(settings, [ModelSpec(ref="churn")])
    idle = create_app(settings, [ModelSpec(ref="churn")])
    frame, _ = churn_frame(2, seed=3)

    async def run() -> tuple[str, str]:
        async with started(busy) as one, started(idle) as other:
            for _ in range(3):
                r = await one.post("/v2/models/churn/infer", json=v2_body(frame))
                assert r.status_code == 200, r.text
            return (await one.get("/metrics")).text, (await other.get("/metrics")).text

    busy_text, idle_text = asyncio.run(run())
    labels = (("code", "200"), ("model", "churn"), ("protocol", "v2"), ("version", "1"))
    assert _requests(busy_text) == {labels: 3.0}
    assert _requests(idle_text) == {}
    for text in (busy_text, idle_text):
        # Each app's model was loaded once, into its own gauges.
        assert 'modelport_model_load_seconds{model="churn",version="1"}' in text
        # As /metrics of one process always showed: the process and Python collectors,
        # and no ``*_created`` series.
        assert "process_cpu_seconds_total" in text
        assert "python_gc_collections_total" in text
        assert "_created" not in text


def test_building_an_app_leaves_the_default_registry_and_created_series_alone(
    home: Path,
) -> None:
    create_app(modelport.Settings(home=home), [ModelSpec(ref="churn")])
    names = {family.name for family in prometheus_client.REGISTRY.collect()}
    assert not {name for name in names if name.startswith("modelport")}
    registry = prometheus_client.CollectorRegistry()
    mine = prometheus_client.Counter("user_jobs", "A user's own counter.", registry=registry)
    mine.inc()
    samples = {s.name for family in registry.collect() for s in family.samples}
    assert samples == {"user_jobs_total", "user_jobs_created"}
