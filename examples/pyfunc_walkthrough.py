"""docs/pyfunc.md, end to end: save, register, load and predict the ``ChurnRules`` pyfunc model.

Run it from the repository root (it keeps its registry in a temporary folder, or in WORKDIR):

    .venv/bin/python examples/pyfunc_walkthrough.py [WORKDIR]

Python puts this file's folder on ``sys.path``, so ``import pyfunc_model`` finds the model's
module next to it, the way your own script finds your own modules.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from pyfunc_model import ChurnRules

import modelport

WEIGHTS = {
    "bias": -1.0,
    "weights": {"tenure_months": -0.05, "support_calls": 0.8, "monthly_spend": 0.01},
    "plans": {"basic": 0.6, "plus": 0.0, "pro": -0.7},
    "threshold": 0.5,
}

CUSTOMERS = pd.DataFrame(
    {
        "tenure_months": [3.0, 48.0, 12.0],
        "monthly_spend": [80.0, 35.5, 60.0],
        "support_calls": [4, 0, 1],
        "plan": ["basic", "pro", "plus"],
    }
)


def write_weights(path: Path) -> Path:
    """What a training step would produce: the weights file the model reads in ``load``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(WEIGHTS, indent=2), encoding="utf-8")
    return path


def main(workdir: Path) -> dict[str, np.ndarray]:
    """Save an artifact folder, register a version, load it by alias, predict; return the
    outputs for ``CUSTOMERS``."""
    weights = write_weights(workdir / "weights.json")
    options = {"artifacts": {"weights": str(weights)}, "requirements": ["numpy>=1.26"]}

    # 1. An artifact folder: the class's module, the weights file, a manifest with checksums.
    #    Saving calls load() and predict() on the example once, to prove the folder works.
    folder = workdir / "out" / "churn-rules"
    manifest = modelport.save(ChurnRules(), folder, input_example=CUSTOMERS, flavor_options=options)
    print(f"saved {folder}: inputs {[spec.name for spec in manifest.signature.inputs]}")

    # 2. A registered version. Registered from the object in this process, it is trusted by
    #    you (the version records your OS user), so it loads anywhere the registry is used.
    settings = modelport.Settings(home=workdir / "home")
    with modelport.Registry(settings) as registry:
        version = registry.register(
            "churn-rules",
            ChurnRules(),
            input_example=CUSTOMERS,
            reference_data=CUSTOMERS,
            flavor_options=options,
            description="hand-written churn rules",
        )
        registry.set_alias("churn-rules", "production", version.version)
        print(f"registered churn-rules/{version.version}, trusted by {version.trusted_unsafe_by}")

    # 3. Load and predict: the code is imported from the version's checksummed sources.
    model = modelport.load("churn-rules@production", settings=settings)
    outputs = model.predict_outputs(CUSTOMERS)
    print({name: values.tolist() for name, values in outputs.items()})
    return outputs


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="modelport-pyfunc-") as tmp:
            main(Path(tmp))
