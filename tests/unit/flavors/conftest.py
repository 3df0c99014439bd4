"""Tiny synthetic data sets and fitted models for the flavor tests; nothing is downloaded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Four float features with a binary, a 3-class and a continuous target; 60 train rows."""
    x = rng.normal(size=(80, 4))
    return {
        "x_train": x[:60],
        "x_test": x[60:],
        "y_binary": (x[:60, 0] + x[:60, 1] > 0).astype(np.int64),
        "y_multi": np.digitize(x[:60, 0], [-0.5, 0.5]).astype(np.int64),
        "y_reg": x[:60, 0] * 2.0 - x[:60, 2],
    }


@pytest.fixture
def table(rng: np.random.Generator) -> dict[str, Any]:
    """A DataFrame with two numeric columns and one string column, and string labels."""
    n = 80
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, size=n),
            "income": rng.normal(50, 15, size=n),
            "city": rng.choice(np.array(["paris", "lyon", "nice"], dtype=object), size=n),
        }
    )
    labels = np.where((frame["age"] > 40) ^ (frame["city"] == "nice"), "churn", "stay")
    return {"train": frame.iloc[:60], "test": frame.iloc[60:], "y": labels[:60]}
