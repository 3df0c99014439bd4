"""The scikit-learn flavor: estimators and pipelines, stored with skops unless asked otherwise.

Files written into the artifact's flavor folder:

- ``model.skops`` (default): skops' zip format, which rebuilds objects without unpickling. On
  load, any type skops does not trust by default must pass the same allow-list as pickles.
- ``model.joblib`` / ``model.pkl`` (``{"serialization": "joblib" | "pickle"}``): loaded through
  :mod:`modelport.flavors._pickle_guard`, which refuses globals outside the allow-list.

``trust_unsafe=True`` (given only for versions a person registered as trusted) skips the
allow-list: pickles are then loaded as they are, running whatever they name.

skops is imported through :func:`_skops_io`, which gives it default trust lists without
scikit-learn's estimators: skops builds that list with ``all_estimators()``, which imports every
scikit-learn module (and PyTorch, when installed), costing seconds and hundreds of MB in every
process that loads a model. Every scikit-learn type a skops file names must then be on the
allow-list by exact name, and the allow-list names all of them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pickle
import sys
import threading
import types
import warnings
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, MissingDependency, UnsafeArtifact
from modelport.flavors import Options, Predictor, SavedFlavor, _pickle_guard
from modelport.flavors._framework import from_package, import_framework, model_input

NAME = "sklearn"
FILE_SUFFIXES = (".pkl", ".pickle", ".joblib")

_FILES = {"skops": "model.skops", "joblib": "model.joblib", "pickle": "model.pkl"}
T = TypeVar("T")

# skops's module of default trust lists, and its lists of scikit-learn types (left empty here).
SKOPS_DEFAULTS = "skops.io._trusted_types"
SKOPS_SKLEARN_LISTS = ("SKLEARN_ESTIMATOR_TYPE_NAMES", "SKLEARN_INTERNAL_TYPE_NAMES")
_skops_import = threading.Lock()


def handles(model: object) -> bool:
    """True for scikit-learn estimators, decided by module name so nothing is imported."""
    return from_package(model, "sklearn") and hasattr(model, "predict")


def save(model: object, path: Path, options: Options, *, trust_unsafe: bool = False) -> SavedFlavor:
    """Write the estimator with skops, or joblib/pickle when asked, and check it loads back
    through the allow-list (unless ``trust_unsafe``).

    Without an explicit ``serialization``, a model skops cannot write (it supports most but
    not all estimators, e.g. not Birch) is written with joblib instead, which loads through
    the same audited allow-list.
    """
    sklearn = import_framework("sklearn", "scikit-learn", "sklearn")
    chosen = options.get("serialization")
    serialization = str(chosen or "skops")
    if serialization not in _FILES:
        raise FlavorError(
            f"unknown sklearn serialization {serialization!r}; use one of: {', '.join(_FILES)}"
        )
    if serialization == "skops" and chosen is None:
        try:
            _write(model, path, "skops")
        except Exception:  # skops refuses some estimator types: joblib covers them
            (path / _FILES["skops"]).unlink(missing_ok=True)
            serialization = "joblib"
    if not (path / _FILES[serialization]).exists():
        _write(model, path, serialization)
    file = path / _FILES[serialization]
    if not trust_unsafe:
        _check_loadable(file, serialization)
    requirements = [f"scikit-learn=={sklearn.__version__}"]
    if serialization != "pickle":
        requirements.append(f"{serialization}=={_version(serialization)}")
    saved_options: dict[str, Any] = {"file": file.name, "serialization": serialization}
    classes = getattr(model, "classes_", None)
    if classes is not None:
        saved_options["classes"] = np.asarray(classes).tolist()
    return SavedFlavor(
        framework="scikit-learn",
        framework_version=str(sklearn.__version__),
        options=saved_options,
        requirements=requirements,
    )


def _write(model: object, path: Path, serialization: str) -> None:
    file = path / _FILES[serialization]
    if serialization == "skops":
        _skops_io().dump(model, file)
    elif serialization == "joblib":
        import_framework("joblib", "joblib", "sklearn").dump(model, file)
    else:
        with file.open("wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)


def load(
    path: Path, options: Options, signature: Signature, *, trust_unsafe: bool = False
) -> Predictor:
    """Rebuild the estimator from its file, refusing any type outside the allow-list unless
    ``trust_unsafe``."""
    import_framework("sklearn", "scikit-learn", "sklearn")
    serialization = str(options.get("serialization", "skops"))
    file = path / str(options.get("file", _FILES.get(serialization, "")))
    if file.parent != path or serialization not in _FILES:
        raise FlavorError(f"invalid sklearn flavor options: {dict(options)!r}")
    if trust_unsafe:
        model = _load_unguarded(file, serialization)
    elif serialization == "skops":
        sio = _skops_io()
        trusted = _check_skops_types(file, sio)
        model = _read_skops(file, lambda: sio.load(file, trusted=trusted))
    elif serialization == "joblib":
        model = _pickle_guard.load_joblib(file)
    else:
        model = _pickle_guard.load_pickle(file)
    return SklearnPredictor(model, signature)


def _load_unguarded(file: Path, serialization: str) -> Any:  # Any: whatever the file holds
    """Load without the allow-list: only for files a person registered as trusted."""
    if serialization == "skops":
        sio = _skops_io()
        return sio.load(file, trusted=sio.get_untrusted_types(file=file))
    joblib = import_framework("joblib", "joblib", "sklearn")
    # joblib's reader takes plain pickles as well.
    return joblib.load(file)


def find_unsafe(path: Path, options: Options) -> list[tuple[str, str]]:
    """``(file, reason)`` for a model file that the allow-list refuses (at most one: the
    file is refused at its first bad global). Loads through the guard, which runs nothing
    outside the allow-list."""
    serialization = str(options.get("serialization", "skops"))
    file = path / str(options.get("file", _FILES.get(serialization, "")))
    if file.parent != path or serialization not in _FILES:
        raise FlavorError(f"invalid sklearn flavor options: {dict(options)!r}")
    import_framework("sklearn", "scikit-learn", "sklearn")
    try:
        _guard(file, serialization)
    except UnsafeArtifact as exc:
        return [(file.name, _reason(exc))]
    return []


def _guard(file: Path, serialization: str) -> None:
    """Raise UnsafeArtifact if ``file`` names a type or global outside the allow-list; reads
    names only, constructing nothing from the file."""
    if serialization == "skops":
        _check_skops_types(file, _skops_io())
    elif serialization == "joblib":
        _pickle_guard.scan_joblib(file)
    else:
        _pickle_guard.scan_pickle(file)


def _reason(exc: UnsafeArtifact) -> str:
    """The reason part of ``refusing to load '<path>': <reason>``."""
    return str(exc).partition("': ")[2] or str(exc)


def _check_loadable(file: Path, serialization: str) -> None:
    """Fail at save time, not when the model is served, if load would refuse what it holds."""
    try:
        _guard(file, serialization)
    except UnsafeArtifact as exc:
        raise FlavorError(
            f"this model cannot be saved safely: {_reason(exc)}; a scikit-learn model may hold "
            "only the scikit-learn, numpy and scipy types on modelport's audited allow-list "
            "(see docs/security.md; trust_unsafe=True skips this check for a model you trust)"
        ) from None


def _skops_io() -> Any:  # Any: skops is untyped
    """``skops.io``, imported with :func:`skops_defaults` in place of its own module of
    default trust lists (unless skops was imported before, or its module holds names the
    stand-in lacks: then skops's own, slower but the same for what modelport trusts).

    Every caller goes through the lock and then the import system, never straight to
    ``sys.modules``: while one thread imports skops, the module is there half-initialized, and
    a server loading two models at once got it without ``get_untrusted_types``."""
    import_framework("skops", "skops", "sklearn")
    with _skops_import:
        if "skops.io" not in sys.modules:
            stand_in = sys.modules.setdefault(SKOPS_DEFAULTS, skops_defaults())
            try:
                importlib.import_module("skops.io")
            except ImportError:  # another skops release: its module defines other names
                if sys.modules.get(SKOPS_DEFAULTS) is stand_in:
                    del sys.modules[SKOPS_DEFAULTS]
    return import_framework("skops.io", "skops", "sklearn")


def skops_defaults() -> types.ModuleType:
    """A stand-in for ``skops.io._trusted_types``: skops's default trust lists for Python,
    numpy and scipy types, built as skops 0.16 builds them, and empty lists of scikit-learn
    types (:data:`SKOPS_SKLEARN_LISTS`).

    skops lists scikit-learn estimators with ``all_estimators()``, which imports every
    scikit-learn module, and PyTorch too when it is installed (``pkgutil`` imports scikit-learn's
    bundled array-API package for it to walk). Without those lists, ``get_untrusted_types``
    reports every scikit-learn type a file names, and :func:`_check_skops_types` requires each
    on the allow-list by exact name. The allow-list names every type skops's lists hold, so
    what loads is unchanged; ``tests/unit/flavors/test_imports_skops.py`` checks that, and
    that the other lists equal skops's own.

    The lists are computed when skops first reads them, while ``skops.io`` is being imported
    (its helpers in ``skops.io._utils`` already are).
    """
    module = types.ModuleType(SKOPS_DEFAULTS, skops_defaults.__doc__)
    values: dict[str, Any] = {}  # Any: lists of names or of types
    computing = threading.RLock()
    busy: list[bool] = []

    def lookup(name: str) -> Any:
        with computing:  # other threads wait for the lists
            if not values:
                if busy:  # the lists' own scan of sys.modules reached this module
                    raise AttributeError(f"{SKOPS_DEFAULTS!r} is computing its lists")
                busy.append(True)
                try:
                    values.update(_skops_default_lists())
                finally:
                    busy.clear()
        try:
            return values[name]
        except KeyError:
            raise AttributeError(f"module {SKOPS_DEFAULTS!r} has no attribute {name!r}") from None

    module.__getattr__ = lookup  # type: ignore[method-assign]
    return module


def _skops_default_lists() -> dict[str, Any]:  # Any: lists of names or of types
    """What ``skops/io/_trusted_types.py`` (skops 0.16) defines, less the scikit-learn walk."""
    import scipy.special
    from skops.io._utils import get_public_type_names, get_type_name
    from skops.utils._fixes import get_scipy_ufunc_wrapper_type

    primitives: list[type[Any]] = [int, float, str, bool]
    containers: list[type[Any]] = [list, set, map, tuple]
    with warnings.catch_warnings():
        # as in skops: scipy reports ufuncs in numpy.core, which warns that it was renamed
        warnings.simplefilter("ignore", category=DeprecationWarning)
        scipy_ufuncs = _public_type_names(scipy.special, np.ufunc)
        wrapper = get_scipy_ufunc_wrapper_type()
        if wrapper is not None:
            wrapped = _public_type_names(scipy.special, wrapper)
            scipy_ufuncs = sorted(set(scipy_ufuncs) | set(wrapped))
    bit_generators = sorted(
        f"numpy.random.{attr}"
        for attr in dir(np.random)
        if isinstance(obj := getattr(np.random, attr), type)
        and issubclass(obj, np.random.BitGenerator)
        and obj is not np.random.BitGenerator
    )
    dtypes = sorted(
        {
            type_name
            for dtype in np.sctypeDict.values()
            if (type_name := get_type_name(dtype)).startswith("numpy")
        }
    )
    return {
        "PRIMITIVES_TYPES": primitives,
        "PRIMITIVE_TYPE_NAMES": ["builtins." + t.__name__ for t in primitives],
        "CONTAINER_TYPES": containers,
        "CONTAINER_TYPE_NAMES": ["builtins." + t.__name__ for t in containers],
        **{name: [] for name in SKOPS_SKLEARN_LISTS},
        "SCIPY_UFUNC_TYPE_NAMES": scipy_ufuncs,
        "NUMPY_UFUNC_TYPE_NAMES": get_public_type_names(module=np, oftype=np.ufunc),
        "NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES": bit_generators,
        "NUMPY_DTYPE_TYPE_NAMES": dtypes,
    }


def _public_type_names(module: types.ModuleType, oftype: type[Any]) -> list[str]:
    """skops's ``get_public_type_names(module, oftype)``: ``module.name`` of each public object
    of type ``oftype`` in ``module``, if under ``module``'s parent package.

    skops finds an object's module with ``whichmodule``: its ``__module__``, else the first
    module in ``sys.modules`` that holds it under its name. scipy's ufuncs have no
    ``__module__``, and a server has imported some 1,600 modules before scipy's: one scan per
    ufunc (about 230) took 1.5 s of a model's load. This finds the same modules in one scan, in
    the same order; for a plain module it reads the namespace that ``getattr`` would read.
    Called with DeprecationWarning ignored, as skops does.
    """
    from skops.io._utils import get_public_type_names

    objects = [
        obj for attr in dir(module) if issubclass((obj := getattr(module, attr)).__class__, oftype)
    ]
    if any("." in obj.__name__ for obj in objects):  # skops resolves dotted names its own way
        return list(get_public_type_names(module=module, oftype=oftype))
    found = {id(obj): obj.__module__ for obj in objects if _has_module(obj)}
    pending = {id(obj): obj for obj in objects if id(obj) not in found}
    shadowed = {key for key, obj in pending.items() if hasattr(types.ModuleType, obj.__name__)}
    for name, candidate in sys.modules.copy().items():
        if not pending:
            break
        if name in ("__main__", "__mp_main__") or candidate is None:
            continue
        plain = type(candidate) is types.ModuleType
        namespace = vars(candidate) if plain else {}
        lazy = not plain or "__getattr__" in namespace
        for key, obj in list(pending.items()):
            attr = obj.__name__
            if plain and key not in shadowed and (attr in namespace or not lazy):
                value = namespace.get(attr)
            else:
                try:
                    value = getattr(candidate, attr, None)
                except (AttributeError, ImportError):
                    continue
            if value is obj:
                found[key] = name
                del pending[key]
    found.update(dict.fromkeys(pending, "__main__"))
    parent = module.__name__.rpartition(".")[0]
    names = {f"{found[id(obj)]}.{obj.__name__}" for obj in objects}
    return sorted(name for name in names if name.startswith(parent))


def _has_module(obj: object) -> bool:
    return getattr(obj, "__module__", None) is not None


def _check_skops_types(file: Path, sio: Any) -> list[str]:
    """The skops file's types outside skops's defaults (which hold no scikit-learn type when
    :func:`_skops_io` imported skops), each of which must be on the pickle allow-list by exact
    name."""
    unknown: list[str] = _read_skops(file, lambda: list(sio.get_untrusted_types(file=file)))
    refused = _pickle_guard.untrusted_type_names(unknown)
    if refused:
        raise UnsafeArtifact(str(file), f"types {', '.join(refused)} are not trusted")
    return unknown


def _read_skops(file: Path, read: Callable[[], T]) -> T:
    """Run a skops read, reporting a damaged file as a FlavorError rather than a traceback."""
    try:
        return read()
    except (UnsafeArtifact, MissingDependency):
        raise
    except Exception as exc:  # skops raises whatever its parser meets
        raise FlavorError(f"cannot read skops file {file.name!r}: {exc!r}") from None


def read_file(path: Path, *, trust_unsafe: bool = False) -> object:
    """Read a user's ``.pkl``/``.pickle``/``.joblib`` file through the pickle guard (or, with
    ``trust_unsafe``, as it is)."""
    import_framework("sklearn", "scikit-learn", "sklearn")
    if trust_unsafe:
        return _load_unguarded(path, "joblib")
    # joblib's reader also takes plain pickles, and users name joblib files ``.pkl`` too.
    return _pickle_guard.load_joblib(path)


def infer_signature(model: object) -> Signature | None:
    """Columns from ``feature_names_in_`` (str for categorical columns), else one tensor."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        text_columns = _text_columns(model)
        return Signature(
            "columns",
            tuple(
                TensorSpec(str(n), "str" if str(n) in text_columns else "float64") for n in names
            ),
        )
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(n_features, int | np.integer):
        return Signature("tensors", (TensorSpec("input", "float64", (-1, int(n_features))),))
    return None


def _text_columns(model: object) -> set[str]:
    """Columns a fitted ColumnTransformer sends to an encoder that learned string categories."""
    steps = getattr(model, "steps", None)
    first = steps[0][1] if steps else model
    found: set[str] = set()
    for _, transformer, columns in getattr(first, "transformers_", []):
        if isinstance(columns, str):
            columns = [columns]
        inner = getattr(transformer, "steps", None)
        encoder = inner[0][1] if inner else transformer
        categories = getattr(encoder, "categories_", None)
        if not categories or not all(isinstance(c, str) for c in columns):
            continue
        for column, values in zip(columns, categories, strict=False):
            if np.asarray(values).dtype.kind in "OUS":
                found.add(column)
    return found


def _version(package: str) -> str:
    return importlib.metadata.version(package)


class SklearnPredictor:
    """Calls ``predict`` (and ``predict_proba`` for classifiers) on canonical inputs."""

    def __init__(self, model: Any, signature: Signature) -> None:  # Any: any estimator
        self.model = model
        self.signature = signature

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Primary output ``predictions`` first, then ``probabilities`` when available."""
        data = model_input(inputs, self.signature, "scikit-learn")
        out: dict[str, np.ndarray] = {}
        if outputs is None or "predictions" in outputs:
            out["predictions"] = _canonical(np.asarray(self.model.predict(data)))
        if hasattr(self.model, "predict_proba") and (outputs is None or "probabilities" in outputs):
            out["probabilities"] = np.asarray(self.model.predict_proba(data))
        return out


def _canonical(arr: np.ndarray) -> np.ndarray:
    """Strings as object arrays of ``str``, as everywhere else in modelport."""
    return arr.astype(object) if arr.dtype.kind in "US" else arr
