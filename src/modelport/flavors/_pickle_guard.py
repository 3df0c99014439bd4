"""Restricted unpickling: pickle and joblib files may import only what a fitted model needs.

Unpickling runs whatever callables the file names, so every global a pickle asks for passes
:func:`check_global` before it is imported or called. Allowed are classes defined under the
``sklearn``, ``numpy`` and ``scipy`` packages (minus a few that touch files or run code), a
handful of safe builtins, and a short list of reconstruction functions that numpy and
``copyreg`` pickles need. Anything else is refused with :class:`UnsafeArtifact` inside
``find_class``, that is before the pickle's ``REDUCE`` opcode could call it.

The same rule decides which types of a skops file are trusted (see
:func:`untrusted_type_names`). This guard is defense in depth: artifacts are also checksummed,
and skops is the default format for scikit-learn.
"""

from __future__ import annotations

import _compat_pickle
import functools
import importlib
import pickle
from pathlib import Path
from typing import IO, Any

from modelport.errors import FlavorError, MissingDependency, UnsafeArtifact

_TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")

# Parts of the trusted packages that read or write files, fetch URLs or compile code.
_DENIED_MODULES = (
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "numpy.ctypeslib",
    "numpy.lib._datasource",
    "numpy.lib._npyio_impl",
    "numpy.lib.npyio",
    "scipy.io",
    "scipy._lib._testutils",
    "sklearn.datasets",
    "sklearn.utils._testing",
)
_DENIED_NAMES = frozenset({"memmap", "DataSource", "NpzFile"})

_SAFE_BUILTINS = frozenset(
    {
        "set", "frozenset", "slice", "complex", "range", "bytearray", "dict", "list",
        "tuple", "int", "float", "str", "bytes", "bool", "object",
    }
)  # fmt: skip

# Functions (not classes) that ordinary numpy / scikit-learn pickles call while loading.
_ALLOWED_FUNCTIONS = frozenset(
    {
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__legacy_seeding"),
    }
)

# joblib's own placeholder for arrays stored beside the pickle stream.
_JOBLIB_CLASSES = frozenset({("joblib.numpy_pickle", "NumpyArrayWrapper")})


def _in_package(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _trusted_module(module: str) -> bool:
    """Inside sklearn/numpy/scipy, outside the denied parts and outside any test suite."""
    parts = module.split(".")
    return (
        _in_package(module, _TRUSTED_PACKAGES)
        and not _in_package(module, _DENIED_MODULES)
        and not {"tests", "testing", "conftest"} & set(parts)
    )


def _normalize(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names (protocol < 3 pickles) to the names Python 3 imports."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _resolve(module: str, name: str) -> object:
    obj: object = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def is_allowed(module: str, name: str) -> bool:
    """True if a pickle or skops file may import ``module.name``; imports only trusted modules."""
    module, name = _normalize(module, name)
    if (module, name) in _ALLOWED_FUNCTIONS or (module, name) in _JOBLIB_CLASSES:
        return True
    if module == "builtins":
        return name in _SAFE_BUILTINS
    if not _trusted_module(module) or name in _DENIED_NAMES:
        return False
    try:
        obj = _resolve(module, name)
    except (ImportError, AttributeError):
        return False
    if isinstance(obj, type):
        # A dotted name can walk into a re-exported foreign class (``mod.subprocess.Popen``),
        # and an alias or subclass can hide a denied class (``numpy.memmap``).
        return _trusted_module(obj.__module__) and not any(
            c.__name__ in _DENIED_NAMES for c in obj.__mro__
        )
    # Cython's generated unpickle helpers only rebuild their own extension type.
    return name.startswith("__pyx_unpickle_") and "." not in name


def check_global(path: Path, module: str, name: str) -> tuple[str, str]:
    """The Python 3 ``(module, name)`` to import; :class:`UnsafeArtifact` if not allowed."""
    module, name = _normalize(module, name)
    if not is_allowed(module, name):
        raise UnsafeArtifact(str(path), f"global '{module}.{name}' is not allowed")
    return module, name


def untrusted_type_names(type_names: list[str]) -> list[str]:
    """The skops type names (``module.Name``) that :func:`is_allowed` refuses."""
    refused = []
    for full in type_names:
        module, _, name = full.rpartition(".")
        if not any(is_allowed(m, n) for m, n in _splits(module, name)):
            refused.append(full)
    return refused


def _splits(module: str, name: str) -> list[tuple[str, str]]:
    """Every (module, qualname) reading of a dotted name, for nested class names."""
    parts = [*module.split("."), name] if module else [name]
    return [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)]


class _GuardMixin:
    """``find_class`` that checks every global against the allow-list before importing it."""

    guarded_path: Path

    def find_class(self, module: str, name: str) -> Any:  # Any: whatever the pickle rebuilds
        # Import exactly the names that were checked (already mapped from Python 2).
        module, name = check_global(self.guarded_path, module, name)
        return super().find_class(module, name)  # type: ignore[misc]


class _GuardedUnpickler(_GuardMixin, pickle.Unpickler):
    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file)
        self.guarded_path = path


class _GuardedPyUnpickler(_GuardMixin, pickle._Unpickler):
    """The pure-Python unpickler, which reads exactly its own frames from a shared stream."""

    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file)
        self.guarded_path = path


def load_pickle(path: Path) -> object:
    """Unpickle a plain pickle file, refusing any global outside the allow-list."""
    with path.open("rb") as f:
        try:
            return _GuardedUnpickler(f, path).load()
        except UnsafeArtifact:
            raise
        except Exception as exc:  # a damaged or foreign file: report it, not a traceback
            raise FlavorError(f"cannot read pickle file {path.name!r}: {exc}") from None


@functools.cache
def _joblib_unpickler() -> type[Any]:  # Any: a subclass of joblib's untyped NumpyUnpickler
    """joblib's ``NumpyUnpickler`` with our ``find_class`` and a guarded array wrapper."""
    try:
        from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
    except ImportError:
        raise MissingDependency("joblib", "sklearn") from None

    class GuardedArrayWrapper(NumpyArrayWrapper):  # type: ignore[misc]
        # Object arrays are a nested pickle stream; joblib before 1.6 read it with a bare
        # ``pickle.load`` (GHSA-m62q-453p-gv66), so read it here, through the guard.
        def read_array(self, unpickler: Any, *args: Any, **kwargs: Any) -> Any:
            if self.dtype.hasobject:
                return _GuardedPyUnpickler(unpickler.file_handle, unpickler.guarded_path).load()
            return super().read_array(unpickler, *args, **kwargs)

    class GuardedNumpyUnpickler(_GuardMixin, NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            found = super().find_class(module, name)
            return GuardedArrayWrapper if found is NumpyArrayWrapper else found

    return GuardedNumpyUnpickler


def load_joblib(path: Path) -> object:
    """Load a joblib file (plain or compressed) through the same allow-list as pickles.

    Mirrors ``joblib.load`` (``joblib/numpy_pickle.py``) with a guarded ``NumpyUnpickler``;
    joblib's reader also takes plain pickles.
    """
    unpickler_class = _joblib_unpickler()
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    with path.open("rb") as f, _validate_fileobject_and_memmap(f, str(path)) as (fobj, _):
        if isinstance(fobj, str):
            # joblib < 0.10 stored arrays in side files read by an unguarded loader.
            raise UnsafeArtifact(str(path), "joblib files older than joblib 0.10 are not supported")
        unpickler = unpickler_class(str(path), fobj, ensure_native_byte_order=True)
        unpickler.guarded_path = path
        try:
            return unpickler.load()
        except UnsafeArtifact:
            raise
        except Exception as exc:  # a damaged or foreign file: report it, not a traceback
            raise FlavorError(f"cannot read joblib file {path.name!r}: {exc}") from None
