"""A pyfunc model: churn scored by hand-written rules whose weights live in a JSON file.

This module is what modelport saves with the model (docs/pyfunc.md): the class must live in
a module like this one, not in a script or notebook cell, and be constructible with no
arguments. Its state comes back through ``load`` from the artifact files, never from a pickle.
``examples/pyfunc_walkthrough.py`` saves, registers, loads and serves it.
"""

from __future__ import annotations

import json

import numpy as np

from modelport.flavors.pyfunc import PythonModel, PythonModelContext


class ChurnRules(PythonModel):
    """Logistic score from per-feature weights and a per-plan offset; 1 means "will churn"."""

    def __init__(self) -> None:
        self.weights: dict[str, float] = {}
        self.plans: dict[str, float] = {}
        self.bias = 0.0
        self.threshold = 0.5

    def load(self, context: PythonModelContext) -> None:
        """Read the weights file saved with the model under the artifact name ``weights``."""
        config = json.loads(context.artifacts["weights"].read_text(encoding="utf-8"))
        self.weights = {str(k): float(v) for k, v in config["weights"].items()}
        self.plans = {str(k): float(v) for k, v in config["plans"].items()}
        self.bias = float(config["bias"])
        self.threshold = float(config.get("threshold", 0.5))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One value per row for each output; rows stay in input order (the server batches
        concurrent requests into one call and splits the outputs back by row)."""
        logit = np.full(len(inputs["plan"]), self.bias)
        for feature, weight in self.weights.items():
            logit += weight * inputs[feature].astype(np.float64)
        unknown = sorted({str(p) for p in inputs["plan"]} - self.plans.keys())
        if unknown:
            raise ValueError(f"unknown plan {unknown[0]!r} (known: {', '.join(self.plans)})")
        logit += np.array([self.plans[str(p)] for p in inputs["plan"]])
        probability = 1.0 / (1.0 + np.exp(-logit))
        return {
            "predictions": (probability >= self.threshold).astype(np.int64),
            "churn_probability": probability,
        }
