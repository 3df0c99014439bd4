"""Restricted unpickling: pickle, joblib and skops files may name only audited globals.

Unpickling calls whatever a file names, so loading is two passes:

1. **Scan**, constructing nothing from the file: a plain pickle is walked opcode by opcode with
   :mod:`pickletools`, simulating only the stack of strings that ``STACK_GLOBAL`` reads; a joblib
   file (whose raw array bytes sit between pickle opcodes, where ``pickletools`` cannot walk) is
   read by joblib's unpickler with every global replaced by an inert stand-in, array bytes
   skipped. Every global outside :data:`~modelport.flavors._pickle_allowlist.ALLOWED` is
   refused, all of them named, before anything from the file is built.
2. **Load** through an unpickler whose ``find_class`` checks each global again (defense in
   depth: both passes read the same verified bytes) and imports exactly the listed name.

A skops file is checked by type name: the types skops does not trust by default must each be
in the same list, by exact module and name. ``trust_unsafe`` (a version a person trusted)
skips all of this; such files load as they are.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import functools
import importlib
import pickle
import pickletools
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from modelport.errors import FlavorError, MissingDependency, UnsafeArtifact
from modelport.flavors._pickle_allowlist import ALLOWED, LATIN1_ENCODE

# numpy 2 renamed numpy.core to numpy._core; pickles written by numpy 1 name the old path.
_RENAMED_MODULES = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
}
_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_STRING_OPCODES = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
     "SHORT_BINSTRING"}
)  # fmt: skip


def normalize(module: str, name: str) -> tuple[str, str]:
    """The name Python 3 and numpy 2 import for a global a pickle names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return _RENAMED_MODULES.get(module, module), name


def is_allowed(module: str, name: str) -> bool:
    """True if ``module.name`` is on the allow-list (exact match; nothing is imported)."""
    module, name = normalize(module, name)
    return name in ALLOWED.get(module, frozenset())


def _refuse(path: Path, refused: list[str]) -> UnsafeArtifact:
    first = f"global '{refused[0]}' is not allowed"
    if len(refused) > 1:
        others = ", ".join(f"'{g}'" for g in refused[1:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        first += f" (nor {others}{more})"
    return UnsafeArtifact(str(path), first)


def _refused(found: list[tuple[str, str]]) -> list[str]:
    """Dotted names of the globals not allowed, each once, in file order."""
    refused: dict[str, None] = {}
    for module, name in found:
        if not is_allowed(module, name):
            refused[".".join(normalize(module, name))] = None
    return list(refused)


# -- pass 1: scanning ------------------------------------------------------------------------


def pickle_globals(stream: IO[bytes]) -> list[tuple[str, str]]:
    """Every ``(module, name)`` a pickle stream imports, in order, read with pickletools.

    The stack is simulated by each opcode's declared stack effect; only strings are tracked
    (``STACK_GLOBAL`` takes its module and name from the two topmost items), so nothing from
    the file is constructed. A ``STACK_GLOBAL`` whose operands are not plain strings cannot be
    checked and is reported as the global ``?.?``.
    """
    mark, other = object(), object()
    stack: list[object] = []
    memo: dict[int, object] = {}
    found: list[tuple[str, str]] = []
    for opcode, arg, _ in pickletools.genops(stream):
        op = opcode.name
        if op in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            found.append((module, name))
        if op == "STACK_GLOBAL":
            top, below = stack.pop(), stack.pop()
            found.append(
                (below, top) if isinstance(below, str) and isinstance(top, str) else ("?", "?")
            )
            stack.append(other)
            continue
        if op in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if op == "MEMOIZE" else cast(int, arg)] = stack[-1]
            continue
        if op in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[cast(int, arg)])
            continue
        for before in reversed(opcode.stack_before):
            if before is pickletools.stackslice:
                while stack.pop() is not mark:
                    pass
            elif before is not pickletools.markobject:  # popped with its stack slice
                stack.pop()
        for after in opcode.stack_after:
            if after is pickletools.markobject:
                stack.append(mark)
            else:
                stack.append(arg if op in _STRING_OPCODES else other)
    return found


def scan_pickle(path: Path) -> None:
    """Refuse a plain pickle file naming any global outside the allow-list."""
    with path.open("rb") as f:
        try:
            found = pickle_globals(f)
        except Exception as exc:  # damaged or malformed: nothing can be trusted in it
            raise FlavorError(f"cannot read pickle file {path.name!r}: {exc}") from None
    refused = _refused(found)
    if refused:
        raise _refuse(path, refused)


class _Inert:
    """Stands in for every global while a joblib file is scanned: takes any arguments and
    any state, runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Inert:
        return _Inert()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass

    def add(self, value: object) -> None:
        pass


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, and nothing else."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise FlavorError(f"pickle asks for the codec {encoding!r}; only latin1 is allowed")
    return text.encode("latin1", errors)


@functools.cache
def _joblib_classes() -> tuple[type[Any], type[Any], type[Any]]:  # Any: joblib is untyped
    """joblib's unpickler subclassed twice (scanning, guarded loading), and a guarded array
    wrapper, built on first use so that joblib is imported only when needed."""
    try:
        import numpy as np
        from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
    except ImportError:
        raise MissingDependency("joblib", "sklearn") from None

    class GuardedArrayWrapper(NumpyArrayWrapper):  # type: ignore[misc]
        # Object arrays are a nested pickle stream; read it through the same guard.
        def read_array(self, unpickler: Any, *args: Any, **kwargs: Any) -> Any:
            if self.dtype.hasobject:
                return _GuardedPyUnpickler(unpickler.file_handle, unpickler.guarded_path).load()
            return super().read_array(unpickler, *args, **kwargs)

    class ScanningArrayWrapper(NumpyArrayWrapper):  # type: ignore[misc]
        # Skips the array's bytes (or scans its nested pickle) without building the array.
        def read(self, unpickler: Any, ensure_native_byte_order: bool) -> _Inert:
            dtype = np.dtype(self.dtype)
            if dtype.hasobject:
                scanner = _ScanningPyUnpickler(unpickler.file_handle)
                scanner.load()
                unpickler.found.extend(scanner.found)
                return _Inert()
            if self.safe_get_numpy_array_alignment_bytes() is not None:
                padding = unpickler.file_handle.read(1)
                unpickler.file_handle.read(int.from_bytes(padding, "little"))
            count = 1
            for size in self.shape:
                count *= int(size)
            remaining = count * dtype.itemsize
            while remaining > 0:
                chunk = unpickler.file_handle.read(min(remaining, 1 << 20))
                if not chunk:
                    raise EOFError("array data ends early")
                remaining -= len(chunk)
            return _Inert()

    class GuardedNumpyUnpickler(_GuardMixin, NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            found = super().find_class(module, name)
            return GuardedArrayWrapper if found is NumpyArrayWrapper else found

    class ScanningNumpyUnpickler(NumpyUnpickler):  # type: ignore[misc]
        found: list[tuple[str, str]]

        def find_class(self, module: str, name: str) -> Any:
            self.found.append((module, name))
            return _scan_stand_in(module, name, ScanningArrayWrapper)

    return GuardedNumpyUnpickler, ScanningNumpyUnpickler, GuardedArrayWrapper


def _scan_stand_in(module: str, name: str, array_wrapper: type[Any]) -> Any:
    """What a global becomes during the scan: joblib's array wrapper and the few harmless
    values needed to size arrays (dtypes, builtins); everything else an inert stand-in."""
    module, name = normalize(module, name)
    if (module, name) == _JOBLIB_WRAPPER:
        return array_wrapper
    if (module, name) == LATIN1_ENCODE:
        return _latin1_encode
    if (module, name) == ("numpy", "dtype") or (module == "builtins" and is_allowed(module, name)):
        return _resolve(module, name)
    return _Inert


class _ScanningPyUnpickler(pickle._Unpickler):
    """Scans a nested pickle stream (a joblib object array) inside a joblib file."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.found: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:  # Any: a stand-in
        self.found.append((module, name))
        return _scan_stand_in(module, name, _Inert)


def scan_joblib(path: Path) -> None:
    """Refuse a joblib (or plain pickle) file naming any global outside the allow-list."""
    _, scanner_class, _ = _joblib_classes()
    found: list[tuple[str, str]] = []
    try:
        with _joblib_stream(path) as stream:
            scanner = scanner_class(str(path), stream, ensure_native_byte_order=False)
            scanner.found = found
            scanner.load()
    except UnsafeArtifact:
        raise
    except Exception as exc:  # damaged, or shaped so that it cannot be walked: refuse
        refused = _refused(found)
        if refused:  # a refused global explains the failure better than the failure does
            raise _refuse(path, refused) from None
        raise FlavorError(f"cannot read joblib file {path.name!r}: {exc}") from None
    refused = _refused(found)
    if refused:
        raise _refuse(path, refused)


# -- pass 2: guarded loading ---------------------------------------------------------------


def _resolve(module: str, name: str) -> Any:  # Any: whatever the allow-list names
    return getattr(importlib.import_module(module), name)


def check_global(path: Path, module: str, name: str) -> Any:  # Any: the allowed object
    """The object an allowed global names; :class:`UnsafeArtifact` for any other."""
    module, name = normalize(module, name)
    if not is_allowed(module, name):
        raise UnsafeArtifact(str(path), f"global '{module}.{name}' is not allowed")
    if (module, name) == LATIN1_ENCODE:
        return _latin1_encode
    return _resolve(module, name)


class _GuardMixin:
    """``find_class`` that returns only allowed globals, imported by their exact name."""

    guarded_path: Path

    def find_class(self, module: str, name: str) -> Any:  # Any: whatever the pickle rebuilds
        return check_global(self.guarded_path, module, name)


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
    """Scan, then unpickle, a plain pickle file; globals outside the allow-list are refused."""
    scan_pickle(path)
    with path.open("rb") as f:
        try:
            return _GuardedUnpickler(f, path).load()
        except UnsafeArtifact:
            raise
        except Exception as exc:  # a damaged or foreign file: report it, not a traceback
            raise FlavorError(f"cannot read pickle file {path.name!r}: {exc}") from None


@contextlib.contextmanager
def _joblib_stream(path: Path) -> Iterator[IO[bytes]]:
    """joblib's decompressing file object for ``path`` (plain and compressed files)."""
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    with path.open("rb") as f, _validate_fileobject_and_memmap(f, str(path)) as (stream, _):
        if isinstance(stream, str):
            # joblib < 0.10 stored arrays in side files read by an unguarded loader.
            raise UnsafeArtifact(str(path), "joblib files older than joblib 0.10 are not supported")
        yield stream


def load_joblib(path: Path) -> object:
    """Scan, then load, a joblib file (plain or compressed; joblib also reads plain
    pickles) through the same allow-list as pickles.

    Mirrors ``joblib.load`` (``joblib/numpy_pickle.py``) with a guarded ``NumpyUnpickler``.
    """
    scan_joblib(path)
    unpickler_class, _, _ = _joblib_classes()
    with _joblib_stream(path) as stream:
        unpickler = unpickler_class(str(path), stream, ensure_native_byte_order=True)
        unpickler.guarded_path = path
        try:
            return unpickler.load()
        except UnsafeArtifact:
            raise
        except Exception as exc:  # a damaged or foreign file: report it, not a traceback
            raise FlavorError(f"cannot read joblib file {path.name!r}: {exc}") from None


def untrusted_type_names(type_names: list[str]) -> list[str]:
    """The skops type names (``module.Name``) that are not on the allow-list, exactly."""
    return [full for full in type_names if not is_allowed(*_split(full))]


def _split(full: str) -> tuple[str, str]:
    module, _, name = full.rpartition(".")
    return module, name
