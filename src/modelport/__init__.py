"""modelport: package a model, keep its versions, load it anywhere.

>>> import modelport
>>> modelport.save(model, "out/churn", input_example=X[:5])
>>> reg = modelport.Registry()
>>> v = reg.register("churn", model, input_example=X[:5], reference_data=X_train)
>>> reg.set_alias("churn", "production", v.version)
>>> modelport.load("churn@production").predict(X_new)
"""

from __future__ import annotations

from modelport import errors
from modelport._load import load
from modelport.artifact.manifest import Manifest
from modelport.artifact.signature import Signature, TensorSpec
from modelport.client import Client
from modelport.config import Settings
from modelport.errors import ModelportError
from modelport.packaging import LoadedModel, save
from modelport.ref import ModelRef
from modelport.registry import Registry

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
