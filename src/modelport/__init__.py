"""modelport: package a model, keep its versions, load it anywhere.

>>> import modelport
>>> modelport.save(model, "out/churn", input_example=X[:5])
>>> reg = modelport.Registry()
>>> v = reg.register("churn", model, input_example=X[:5], reference_data=X_train)
>>> reg.set_alias("churn", "production", v.version)
>>> modelport.load("churn@production").predict(X_new)
"""

from __future__ import annotations

import importlib
import typing

from modelport import errors
from modelport.errors import ModelportError

if typing.TYPE_CHECKING:
    from modelport._load import load
    from modelport.artifact.manifest import Manifest
    from modelport.artifact.signature import Signature, TensorSpec
    from modelport.client import Client
    from modelport.config import Settings
    from modelport.packaging import LoadedModel, save
    from modelport.ref import ModelRef
    from modelport.registry import Registry

# Imported on first use, so that ``modelport --help`` or a batch job does not pay for the
# HTTP client, the server and pandas when it needs none of them.
_WHERE = {
    "Client": "modelport.client",
    "LoadedModel": "modelport.packaging",
    "Manifest": "modelport.artifact.manifest",
    "ModelRef": "modelport.ref",
    "Registry": "modelport.registry",
    "Settings": "modelport.config",
    "Signature": "modelport.artifact.signature",
    "TensorSpec": "modelport.artifact.signature",
    "load": "modelport._load",
    "save": "modelport.packaging",
}


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "Client",
    "LoadedModel",
    "Manifest",
    "ModelRef",
    "ModelportError",
    "Registry",
    "Settings",
    "Signature",
    "TensorSpec",
    "errors",
    "load",
    "save",
]
