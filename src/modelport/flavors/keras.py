"""The Keras 3 flavor: ``.keras`` files and legacy HDF5 ``.h5`` files, loaded in safe mode.

Files written: ``model.keras`` (default; Keras's zip of ``config.json``, ``metadata.json`` and
``model.weights.h5``) or ``model.h5`` (``{"format": "h5"}``; the model config is the file's
``model_config`` attribute). Both hold a JSON config and arrays of weights.

Backend: Keras chooses its backend (torch, tensorflow or jax) from ``KERAS_BACKEND`` once, when
it is first imported. The files do not depend on it, so modelport loads every Keras model on
``torch`` unless the flavor option ``backend`` says otherwise; the options also record the
backend the model was saved with (``saved_backend``). A process in which Keras already runs
another backend than the one asked for gets a FlavorError saying so, never a silent switch.

Safety: weights and a plain config load without running code. Some layers carry Python in
their config: a ``Lambda`` layer (its function, as marshalled bytecode or by name), any
serialized Python lambda (``__lambda__``, e.g. an activation), a ``TorchModuleWrapper`` (a
pickled torch module) and a ``TFSMLayer`` (an external SavedModel). Keras's ``safe_mode``
refuses these when building the model, but Keras documents it for the ``.keras`` format only
and earlier Keras 3 releases ignored it for ``.h5`` files (3.15 honours it there too). So
:func:`find_unsafe` reads the config itself (from the zip, or through h5py), without building
the model, and every load without trust refuses what it finds, naming the layer; Keras's own
safe mode stays on behind it. Trusted models (``trust_unsafe=True``) load with
``safe_mode=False``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import DTYPES, Signature, TensorSpec
from modelport.errors import FlavorError, UntrustedArtifact
from modelport.flavors import Options, Predictor, SavedFlavor
from modelport.flavors._framework import import_framework

NAME = "keras"
FILE_SUFFIXES = (".keras", ".h5", ".hdf5")
DECLARES_INPUTS = True  # a model's input layers are its signature; an example must fit

_FORMATS = {"keras": "model.keras", "h5": "model.h5"}
DEFAULT_BACKEND = "torch"
# backend -> (module to import, distribution to require, modelport extra that installs it)
_BACKENDS = {
    "torch": ("torch", "torch", "torch"),
    "tensorflow": ("tensorflow", "tensorflow", "tensorflow"),
    "jax": ("jax", "jax", "keras"),
}
# Packages whose modules a config may name; ``builtins`` is how Keras writes a registered
# custom function (resolved by name through its registry, never imported).
_KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "builtins"})
# Keras APIs that build no model: a config calling them is not a model (Keras 3.11+ refuses
# them too).
_NON_MODELING = (
    "keras.config", "keras.utils", "keras.saving", "keras.export", "keras.src.utils",
    "keras.src.saving", "keras.src.export", "keras.src.backend.config",
)  # fmt: skip
# A .keras file's config.json is a few kB to a few MB; more is not a model config.
_MAX_CONFIG_BYTES = 64 * 2**20
# Keras's torch backend reads weights with ``np.array(tensor)``, which numpy 2 warns about
# for torch's ``__array__``: harmless, and nothing a user can act on.
_NUMPY_COPY_WARNING = r"__array__ implementation doesn't accept a copy keyword"


def handles(model: object) -> bool:
    """True for Keras models (a user's subclass too), from the class hierarchy's module names.

    Must run before the torch flavor's check: on the torch backend a Keras model is also a
    ``torch.nn.Module``."""
    return any(
        c.__module__ == "keras" or c.__module__.startswith("keras.") for c in type(model).__mro__
    )


def _backend_option(options: Options) -> str:
    backend = str(options.get("backend", DEFAULT_BACKEND))
    if backend not in _BACKENDS:
        raise FlavorError(f"unknown Keras backend {backend!r}; use one of: {', '.join(_BACKENDS)}")
    return backend


def _keras(backend: str) -> Any:  # Any: keras is untyped
    """Keras, running ``backend``: chosen through KERAS_BACKEND if Keras is not imported yet
    (a value the user set wins), else checked, since Keras cannot switch once imported."""
    if "keras" not in sys.modules:
        module, package, extra = _BACKENDS[backend]
        import_framework(module, package, extra)  # a missing backend is named as such
        os.environ.setdefault("KERAS_BACKEND", backend)
    keras = import_framework("keras", "keras", "keras")
    running = str(keras.backend.backend())
    if running != backend:
        raise FlavorError(
            f"Keras runs the {running!r} backend in this process, but this model is to load "
            f"on {backend!r}: Keras reads KERAS_BACKEND once, when first imported. Load it in "
            f"a process where Keras runs {backend!r} (KERAS_BACKEND={backend} before Keras is "
            f"imported), or save it with flavor_options={{'backend': {running!r}}}"
        )
    return keras


def save(model: object, path: Path, options: Options, *, trust_unsafe: bool = False) -> SavedFlavor:
    """Save with ``model.save`` as ``.keras`` (or ``.h5``); refuse a model whose config
    carries Python code (a Lambda layer, say) unless ``trust_unsafe``, since loading it
    would run that code."""
    keras = import_framework("keras", "keras", "keras")  # imported already: the model exists
    fmt = str(options.get("format", "keras"))
    if fmt not in _FORMATS:
        raise FlavorError(f"unknown Keras format {fmt!r}; use one of: {', '.join(_FORMATS)}")
    backend = _backend_option(options)
    if not isinstance(model, keras.Model):
        raise FlavorError(f"the keras flavor saves models, not a {type(model).__qualname__}")
    file = path / _FORMATS[fmt]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NUMPY_COPY_WARNING, DeprecationWarning)
        model.save(str(file))
    if not trust_unsafe:
        _refuse_code(file, "save")
    requirements = [f"keras=={keras.__version__}"]
    if fmt == "h5":
        requirements.append(f"h5py=={_version('h5py')}")
    requirements.append(_backend_requirement(backend))
    return SavedFlavor(
        framework="keras",
        framework_version=str(keras.__version__),
        options={
            "file": file.name,
            "format": fmt,
            "backend": backend,
            "saved_backend": str(keras.backend.backend()),
        },
        requirements=requirements,
    )


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def _backend_requirement(backend: str) -> str:
    """``torch==2.13.0`` (no local ``+cpu`` part, which any build satisfies), or the bare
    name when the backend is not installed where the model is saved."""
    distribution = _BACKENDS[backend][1]
    try:
        return f"{distribution}=={_version(distribution).partition('+')[0]}"
    except importlib.metadata.PackageNotFoundError:
        return distribution


def load(
    path: Path, options: Options, signature: Signature, *, trust_unsafe: bool = False
) -> Predictor:
    """Rebuild the model on the recorded backend in safe mode, after refusing a config that
    carries Python code; ``trust_unsafe`` skips both checks."""
    fmt = str(options.get("format", "keras"))
    file = path / str(options.get("file", _FORMATS.get(fmt, "")))
    if file.parent != path or fmt not in _FORMATS:
        raise FlavorError(f"invalid keras flavor options: {dict(options)!r}")
    backend = _backend_option(options)
    keras = _keras(backend)
    if not trust_unsafe:
        _refuse_code(file, "load")
    return KerasPredictor(_load_model(keras, file, trust_unsafe), signature, backend)


def read_file(path: Path, *, trust_unsafe: bool = False) -> object:
    """Read a user's ``.keras``, ``.h5`` or ``.hdf5`` model on the torch backend, refusing
    one whose config carries Python code unless ``trust_unsafe``."""
    keras = _keras(DEFAULT_BACKEND)
    if not trust_unsafe:
        _refuse_code(path, "load")
    return _load_model(keras, path, trust_unsafe)


def _load_model(keras: Any, file: Path, trust_unsafe: bool) -> Any:  # Any: keras.Model
    """``keras.saving.load_model`` uncompiled (serving needs no optimizer or loss, whose
    config could name functions too), in safe mode unless trusted."""
    try:
        return keras.saving.load_model(str(file), compile=False, safe_mode=not trust_unsafe)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError... for bad files
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "safe_mode" in str(exc):  # Keras's own safe mode refused what the scan let by
            raise UntrustedArtifact(f"refusing to load {file.name!r}: {message}") from None
        raise FlavorError(f"cannot read Keras model {file.name!r}: {message}") from None


def find_unsafe(path: Path, options: Options) -> list[tuple[str, str]]:
    """``(file, reason)`` for every layer whose config carries Python code, read from the
    config alone (``config.json`` in the zip, ``model_config`` in the HDF5 file)."""
    fmt = str(options.get("format", "keras"))
    file = path / str(options.get("file", _FORMATS.get(fmt, "")))
    if file.parent != path or fmt not in _FORMATS:
        raise FlavorError(f"invalid keras flavor options: {dict(options)!r}")
    return [(file.name, reason) for reason in code_in_config(read_config(file))]


def _refuse_code(file: Path, action: str) -> None:
    found = code_in_config(read_config(file))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UntrustedArtifact(f"refusing to {action} {file.name!r}: {found[0]}{more}")


def read_config(file: Path) -> Any:  # Any: the JSON model config
    """The model config in a ``.keras`` zip or an HDF5 file, read as data: nothing is built."""
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                info = archive.getinfo("config.json")
                if info.file_size > _MAX_CONFIG_BYTES:
                    raise FlavorError(f"the config in {file.name!r} is {info.file_size} bytes")
                return json.loads(archive.read(info))
        h5py = import_framework("h5py", "h5py", "keras")
        with h5py.File(file, "r") as handle:
            raw = handle.attrs.get("model_config")
    # ValueError covers JSON errors; RecursionError, JSON nested too deep to be a config.
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile) as exc:
        raise FlavorError(f"cannot read the Keras model config in {file.name!r}: {exc}") from None
    if raw is None:
        raise FlavorError(
            f"{file.name!r} holds no model config (only weights?): it cannot be loaded as a model"
        )
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    except (ValueError, RecursionError) as exc:
        raise FlavorError(f"cannot read the Keras model config in {file.name!r}: {exc}") from None


def code_in_config(config: object) -> list[str]:
    """Why each layer in ``config`` (nested models and wrappers included) would run Python
    code when loaded, one line per finding."""
    found: dict[str, None] = {}  # ordered and without repeats
    try:
        for (name, class_name), node in _objects(config, ("model", "Model")):
            inner = node.get("config")
            reasons = [
                _code_in_layer(name, class_name, inner) if isinstance(inner, dict) else None,
                _module_reference(name, class_name, node),
            ]
            found.update(dict.fromkeys(r for r in reasons if r))
    except RecursionError:  # fail closed: what cannot be checked is not called safe
        found["the model config is nested too deeply to check"] = None
    return list(found)


def _objects(
    node: object, layer: tuple[str, str]
) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    """Every serialized object in the config, with the (name, class name) of the nearest
    named object around it (itself, for a layer)."""
    if isinstance(node, dict):
        inner = node.get("config")
        class_name = node.get("class_name")
        if isinstance(class_name, str) and isinstance(inner, dict):
            layer = (str(inner.get("name", class_name)), class_name)
        yield layer, node
        for value in node.values():
            yield from _objects(value, layer)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value, layer)


def _module_reference(name: str, class_name: str, node: dict[str, Any]) -> str | None:
    """A ``module`` outside Keras's packages (Keras before 3.9 imported any module a config
    named, CVE-2025-1550), or a function from Keras's non-modeling APIs (which can turn safe
    mode off or fetch files). A registered custom object (``registered_name`` of the form
    ``package>Name``, a custom function as ``builtins``) resolves through Keras's registry
    to code already in the process, so it passes; Keras 3.9+ imports nothing else."""
    module = node.get("module")
    if not isinstance(module, str) or "class_name" not in node:  # a layer setting, say
        return None
    registered = ">" in str(node.get("registered_name") or "")  # "package>Name"
    if module.partition(".")[0] not in _KERAS_PACKAGES and not registered:
        return f"layer {name!r} ({class_name}) names the Python module {module!r}"
    if node.get("class_name") == "function" and module.startswith(_NON_MODELING):
        function = f"{module}.{node.get('config')}"
        return f"layer {name!r} ({class_name}) calls {function}, which is not a modeling function"
    return None


def _code_in_layer(name: str, class_name: str, config: dict[str, Any]) -> str | None:
    bytecode = _has_bytecode(config)
    if class_name == "Lambda":
        if bytecode:
            return f"Lambda layer {name!r} holds Python bytecode, which runs when it is loaded"
        return f"Lambda layer {name!r} runs Python code ({_function_name(config.get('function'))})"
    if class_name == "TorchModuleWrapper" and "module" in config:
        return f"layer {name!r} (TorchModuleWrapper) holds a pickled torch module"
    if class_name == "TFSMLayer":
        return f"layer {name!r} (TFSMLayer) loads an external SavedModel, whose graph is code"
    if bytecode:
        return f"layer {name!r} ({class_name}) holds Python bytecode, which runs when it is loaded"
    return None


def _has_bytecode(config: dict[str, Any]) -> bool:
    """A Python function serialized as marshalled bytecode among the layer's own settings:
    Keras 3's ``{"class_name": "__lambda__"}``, or Keras 2's ``function_type: "lambda"``."""
    if config.get("function_type") == "lambda" or config.get("output_shape_type") == "lambda":
        return True
    return any(
        isinstance(value, dict) and value.get("class_name") == "__lambda__"
        for value in config.values()
    )


def _function_name(function: object) -> str:
    if isinstance(function, dict) and isinstance(function.get("config"), str):
        module = function.get("module")
        registered = not module or module == "builtins"  # a custom function, by its name
        return str(function["config"]) if registered else f"{module}.{function['config']}"
    return f"function {function!r}"[:100]


def infer_signature(model: object) -> Signature | None:
    """Named tensors from the model's declared inputs (``keras.Input``): their names, dtypes
    and shapes, an unknown dimension as ``-1``; None when the model declares none yet.

    The first axis is always the batch axis (``-1``): a Sequential model built by a call
    records that call's batch size, which is no limit on what it predicts. An input Keras
    named itself (``keras_tensor_3``, numbered per process) is called ``input``.
    """
    try:
        tensors = list(getattr(model, "inputs", None) or [])
    except (AttributeError, ValueError):  # a subclassed or unbuilt model declares none
        return None
    specs = []
    for tensor in tensors:
        dtype = str(getattr(tensor, "dtype", ""))
        dtype = "str" if dtype == "string" else dtype
        shape = tuple(-1 if d is None else int(d) for d in getattr(tensor, "shape", ()))
        if dtype not in DTYPES or not shape:
            return None
        name = str(tensor.name)
        if name.startswith("keras_tensor") and len(tensors) == 1:
            name = "input"
        specs.append(TensorSpec(name, dtype, (-1, *shape[1:])))
    return Signature("tensors", tuple(specs)) if specs else None


class KerasPredictor:
    """Feeds canonical arrays to a Keras model by input name and returns its outputs: one
    output as ``predictions``, several by the model's output names."""

    def __init__(self, model: Any, signature: Signature, backend: str) -> None:  # Any: Model
        self.model = model
        self.signature = signature
        declared = infer_signature(model)
        self.inputs = list(declared.inputs) if declared else []
        self.output_names = [str(n) for n in getattr(model, "output_names", None) or []]
        self._no_grad: Any = contextlib.nullcontext  # Any: a context manager factory
        if backend == "torch":  # no autograd graph: less memory, faster
            self._no_grad = import_framework("torch", "torch", "torch").no_grad
        self._to_numpy = import_framework("keras", "keras", "keras").ops.convert_to_numpy

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the model (inference mode) on every output; ``outputs`` is not needed."""
        with self._no_grad():
            result = self.model(self._feed(inputs), training=False)
        if isinstance(result, Mapping):
            return {str(k): self._numpy(v) for k, v in result.items()}
        flat = list(result) if isinstance(result, list | tuple) else [result]
        if len(flat) == 1:
            return {"predictions": self._numpy(flat[0])}
        names = self.output_names if len(self.output_names) == len(flat) else None
        return {names[i] if names else f"output_{i}": self._numpy(v) for i, v in enumerate(flat)}

    def _feed(self, inputs: Mapping[str, np.ndarray]) -> Any:  # Any: an array or a dict
        """The single array for a single-input model (whatever the signature calls it), else
        arrays by input name, which Keras matches to a functional model's inputs."""
        if len(self.inputs) <= 1 and len(self.signature.inputs) == 1:
            arr = inputs[self.signature.input_names[0]]
            return _as_dtype(arr, self.inputs[0].dtype) if self.inputs else arr
        missing = [spec.name for spec in self.inputs if spec.name not in inputs]
        if missing:
            raise FlavorError(f"the Keras model needs input {missing[0]!r}")
        return {spec.name: _as_dtype(inputs[spec.name], spec.dtype) for spec in self.inputs}

    def _numpy(self, value: Any) -> np.ndarray:  # Any: a backend tensor
        if hasattr(value, "detach"):  # a torch tensor: skips numpy's __array__ warning
            return np.asarray(value.detach().cpu().numpy())
        return np.asarray(self._to_numpy(value))


def _as_dtype(arr: np.ndarray, dtype: str) -> np.ndarray:
    """The model's own input dtype (a float64 example fed to a float32 input)."""
    if dtype == "str" or arr.dtype == np.dtype(dtype):
        return arr
    return arr.astype(dtype)
