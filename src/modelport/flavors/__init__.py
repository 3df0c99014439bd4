"""Flavors: one module per framework, each turning a model into files and files into a Predictor.

A flavor is a module (or any object) with:

- ``NAME: str`` - the value written to the manifest's ``flavor`` field.
- ``handles(model) -> bool`` - True if this flavor can save ``model``. Must decide from
  ``type(model).__module__`` and friends, without importing its framework for foreign models.
- ``save(model, path, options) -> SavedFlavor`` - write the model's files into the empty folder
  ``path`` (a temporary folder that is renamed into place afterwards). ``options`` are the
  user's flavor options (e.g. ``{"serialization": "pickle"}``).
- ``load(path, options, signature) -> Predictor`` - rebuild a predictor from the files that
  ``save`` wrote; ``options`` is what ``save`` returned in ``SavedFlavor.options``. Called only
  after every file's checksum was verified.
- ``infer_signature(model) -> Signature | None`` - the input signature when the user gave no
  example (e.g. from ``n_features_in_`` or an ONNX graph), or None.
- ``read_file(path) -> object`` - read a plain model file a user already has (``.onnx``, ...)
  into an in-memory model that ``save`` accepts. ``FILE_SUFFIXES`` lists the suffixes it takes.

Optional, for flavors whose model files declare their inputs (ONNX, torch.export, Keras,
SavedModel):

- ``DECLARES_INPUTS = True`` - ``infer_signature`` reads that declaration. It is then the
  signature even when an input example is given, and the example must fit it (a bare array
  maps onto a single declared input); a model registered without an example still gets it.

Optional, for flavors whose files can run code when loaded (sklearn pickles, pyfunc code):

- ``RUNS_CODE = True`` - the artifact *is* code (pyfunc): every loader refuses it unless it
  is trusted (see :func:`modelport.packaging.load_artifact`).
- ``find_unsafe(path, options) -> list[tuple[str, str]]`` - ``(file, reason)`` for what a
  safe load would refuse or what looks dangerous, found without running it. The registry
  calls it before a version is published, unless a person trusts the model.
- a keyword ``trust_unsafe: bool = False`` on ``save``, ``load`` and ``read_file``: True skips
  the flavor's safety checks. It is passed only when True and only to hooks that declare it,
  so a flavor whose formats run no code needs neither.
- a keyword ``input_example: Mapping[str, np.ndarray] | None`` on ``save``: the example in
  canonical form, named by the signature, passed only to a ``save`` that declares it (torch
  exports the module with it).
- a keyword ``device: str`` on ``load`` (``cpu``, ``cuda``, ``cuda:N``) for a flavor that can
  run on a GPU; any other refuses a GPU device (see :func:`modelport.packaging.load_artifact`).
- a keyword ``checksums: Mapping[str, str] | None`` on ``load``: the manifest's verified
  SHA-256 of every file, for a flavor that reads files again itself (pyfunc compiles its
  sources from bytes it checks against these).

Built-in flavors are registered as import strings so a framework is imported only when used;
other packages add flavors through the ``modelport.flavors`` entry-point group.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelport.artifact.signature import Signature
from modelport.errors import FlavorError, UnsupportedModel

# JSON-able flavor options; Any because their shape is each flavor's own business.
Options = Mapping[str, Any]


class Predictor(Protocol):
    """Named numpy arrays in, named numpy arrays out, batch axis first. Sync; may be slow.

    ``outputs`` names the outputs the caller needs (None: all). It is a hint that lets a
    flavor skip work, e.g. ``predict_proba`` when only ``predictions`` is wanted; returning
    more is allowed, the caller drops what it did not ask for.
    """

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class SavedFlavor:
    """What a flavor's ``save`` reports, recorded in the manifest."""

    framework: str
    framework_version: str
    options: dict[str, Any] = field(default_factory=dict)
    requirements: list[str] = field(default_factory=list)


class Flavor(Protocol):
    """The shape of a flavor module; see the module docstring for when each is called."""

    NAME: str
    FILE_SUFFIXES: tuple[str, ...]

    def handles(self, model: object) -> bool: ...

    def save(self, model: object, path: Path, options: Options) -> SavedFlavor: ...

    def load(self, path: Path, options: Options, signature: Signature) -> Predictor: ...

    def infer_signature(self, model: object) -> Signature | None: ...

    def read_file(self, path: Path) -> object: ...


# Detection order matters: xgboost/lightgbm/catboost estimators also look like scikit-learn
# ones, and a Keras model on the torch backend is also a torch module.
_BUILTIN: dict[str, str] = {
    "xgboost": "modelport.flavors.xgboost",
    "lightgbm": "modelport.flavors.lightgbm",
    "catboost": "modelport.flavors.catboost",
    "keras": "modelport.flavors.keras",
    "torch": "modelport.flavors.torch",
    "tensorflow": "modelport.flavors.tensorflow",
    "onnx": "modelport.flavors.onnx",
    "sklearn": "modelport.flavors.sklearn",
    "pyfunc": "modelport.flavors.pyfunc",
}
_loaded: dict[str, Flavor] = {}
_plugins: dict[str, str] | None = None


def _registry() -> dict[str, str]:
    global _plugins
    if _plugins is None:
        _plugins = {ep.name: ep.value for ep in entry_points(group="modelport.flavors")}
    return {**_BUILTIN, **_plugins}


def flavor_names() -> list[str]:
    """Every known flavor name, built-ins first."""
    return list(_registry())


def get_flavor(name: str) -> Flavor:
    """The flavor registered as ``name``; raises FlavorError if none is."""
    if name in _loaded:
        return _loaded[name]
    target = _registry().get(name)
    if target is None:
        raise FlavorError(f"unknown flavor {name!r}; known: {', '.join(flavor_names())}")
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    if attr:
        obj = getattr(obj, attr)
    _loaded[name] = obj
    return obj  # type: ignore[no-any-return]


def flavor_for_model(model: object) -> Flavor:
    """The first flavor whose ``handles`` accepts ``model``."""
    for name in flavor_names():
        flavor = get_flavor(name)
        if flavor.handles(model):
            return flavor
    raise UnsupportedModel(f"a model of type {type(model).__module__}.{type(model).__qualname__}")


def flavor_for_file(path: Path) -> Flavor:
    """The flavor that reads plain model files with ``path``'s suffix."""
    suffix = path.suffix.lower()
    for name in flavor_names():
        flavor = get_flavor(name)
        if suffix in flavor.FILE_SUFFIXES:
            return flavor
    raise UnsupportedModel(f"a file named {path.name!r} (unknown suffix {suffix!r})")
