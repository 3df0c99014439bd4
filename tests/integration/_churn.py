"""Shared by the monitoring and dashboard tests: a churn model with a reference profile,
V2 bodies for it, and reading the server's metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelport

NUMERIC = ["tenure_months", "monthly_spend", "support_calls"]


def churn_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 72, n).astype(np.float64),
            "monthly_spend": rng.gamma(4.0, 15.0, n),
            "support_calls": rng.poisson(1.5, n).astype(np.float64),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    logit = -1.0 - 0.05 * frame["tenure_months"] + 0.8 * frame["support_calls"]
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame, churned


def churn_home(tmp_path: Path) -> Path:
    """A registry holding ``churn`` version 1, registered with its training data as the
    reference profile."""
    x, y = churn_frame(3000, seed=1)
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["plan"])]
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(x, y)
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        registry.register("churn", model, input_example=x[:5], reference_data=x)
    return tmp_path


def v2_body(frame: pd.DataFrame, request_id: str | None = None) -> dict[str, Any]:
    inputs = []
    for column in frame.columns:
        values = frame[column].tolist()
        datatype = "BYTES" if column == "plan" else "FP64"
        inputs.append(
            {"name": column, "shape": [len(values)], "datatype": datatype, "data": values}
        )
    body: dict[str, Any] = {"inputs": inputs}
    if request_id is not None:
        body["id"] = request_id
    return body


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics`` by (sample name, labels)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def written(url: str, *models: str) -> float:
    """Sampled requests the prediction log has written, over ``models``."""
    samples = scrape(url)
    return sum(sample(samples, "modelport_prediction_log_written_total", model=m) for m in models)


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return  # the caller's assertion then says what is wrong
        time.sleep(0.1)
