"""What every framework flavor needs: optional imports, type checks by package, model input."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature
from modelport.errors import FlavorError, MissingDependency


def import_framework(module: str, package: str, extra: str) -> Any:  # Any: untyped frameworks
    """Import an optional framework, or say which ``modelport[extra]`` to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(package, extra) from None


def from_package(model: object, package: str) -> bool:
    """True when ``model``'s class comes from ``package``; decided without importing it."""
    module = type(model).__module__
    return module == package or module.startswith(f"{package}.")


def model_input(inputs: Mapping[str, np.ndarray], signature: Signature, framework: str) -> Any:
    """A DataFrame in signature column order (a categorical column as pandas ``category``
    with its recorded categories), or the single tensor; Any: either type."""
    if signature.kind == "columns":
        import pandas as pd

        return pd.DataFrame(
            {
                s.name: inputs[s.name]
                if s.categories is None
                else pd.Categorical(inputs[s.name], categories=list(s.categories))
                for s in signature.inputs
            }
        )
    if len(signature.inputs) != 1:
        raise FlavorError(
            f"a {framework} model takes one input; signature has {len(signature.inputs)}"
        )
    return inputs[signature.input_names[0]]
