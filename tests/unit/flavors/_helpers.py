"""Helpers shared by the flavor tests (not fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature
from modelport.flavors import Predictor


def round_trip(
    flavor: Any, model: object, path: Path, options: dict[str, Any], signature: Signature
) -> Predictor:
    """save -> JSON options -> load, the way packaging does; Any: a flavor module."""
    folder = path / f"flavor-{len(list(path.glob('flavor-*')))}"
    folder.mkdir(parents=True)
    saved = flavor.save(model, folder, options)
    recorded = json.loads(json.dumps(saved.options))  # the manifest stores JSON
    return flavor.load(folder, recorded, signature)  # type: ignore[no-any-return]


def canonical(signature: Signature, data: object) -> dict[str, np.ndarray]:
    """What the serving layer hands a predictor: data checked against the signature."""
    return signature.coerce(data)
