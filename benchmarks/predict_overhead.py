"""How much does modelport's in-process path cost over calling the model directly?

Compares, in the same run, ``model.predict(X)`` (the framework alone) with
``modelport.load(...).predict(X)`` (signature check + canonical conversion + flavor) at several
batch sizes, for a numpy LogisticRegression and a DataFrame pipeline with a string column.
Reports calls/s and the ratio modelport/raw.

Run: ``.venv/bin/python benchmarks/predict_overhead.py``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import modelport


def rate(call: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls per second over a fixed time budget, after a warm-up call."""
    call()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        call()
        n += 1
    return n / elapsed


def numpy_model() -> tuple[Any, Any]:  # Any: an estimator and its data
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    return LogisticRegression(max_iter=200).fit(x, y), x


def frame_model() -> tuple[Any, Any]:  # Any: an estimator and its data
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {f"f{i}": rng.normal(size=5000) for i in range(8)}
        | {"plan": rng.choice(["a", "b", "c"], 5000)}
    )
    y = (frame["f0"] > 0).astype(int)
    prep = ColumnTransformer([("p", OneHotEncoder(), ["plan"])], remainder="passthrough")
    return Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=200))]).fit(
        frame, y
    ), frame


def main() -> None:
    print(f"{'model':<22}{'batch':>7}{'raw calls/s':>14}{'modelport':>12}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, data) in {
            "LogReg numpy f32x20": numpy_model(),
            "Pipeline DataFrame": frame_model(),
        }.items():
            path = Path(tmp) / label.split()[0]
            modelport.save(model, path, input_example=data[:5])
            loaded = modelport.load(path)
            for batch in (1, 100, 5000):
                rows = data[:batch]
                raw = rate(partial(model.predict, rows))
                ours = rate(partial(loaded.predict, rows))
                print(f"{label:<22}{batch:>7}{raw:>14.0f}{ours:>12.0f}{ours / raw:>8.2f}")


if __name__ == "__main__":
    main()
