"""The pyfunc flavor: a user's own Python class, stored as source code and files, never pickled.

Subclass :class:`PythonModel`, implement ``predict`` (and ``load`` if it needs files), and save
an instance with ``options={"artifacts": {"weights": "w.npy"}, "code_paths": ["helpers.py"]}``.
The instance itself is not stored: on load the class is instantiated with no arguments and
``load(context)`` rebuilds its state from the artifact files. Layout written:

- ``code/``: the package (or single module) that defines the class, plus each ``code_paths``
  entry; imported on load under a private package name unique to this artifact, so two
  versions of the same module can be loaded side by side.
- ``artifacts/<name>/``: a copy of each artifact file or folder.

Options recorded: ``{"module": "churn.model", "class": "ChurnModel",
"artifacts": {name: relpath}}``.

Loading runs the saved code with the loader's rights, and no scan can make a stranger's code
safe. So a pyfunc artifact loads only when it is trusted (``RUNS_CODE``; see
:func:`modelport.packaging.load_artifact`): registered from a ``PythonModel`` object in the
user's own process, signed by a key the loader trusts, or allowed with ``trust_unsafe``. The
:mod:`~modelport.flavors._code_guard` scan still runs at registration as an early warning.

What runs is what was checksummed: modules are compiled by this module's own importer from the
``.py`` source bytes (verified against the manifest's checksums when the loader passes them),
decoded exactly as the scan decodes them. ``__pycache__``, ``.pyc`` files and extension modules
are never saved and never loaded, and the artifact's folder is never put on ``sys.path``.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import platform
import re
import shutil
import sys
import types
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature
from modelport.errors import ArtifactCorrupted, CodeNotTrusted, FlavorError
from modelport.flavors import Options, Predictor, SavedFlavor, _code_guard

NAME = "pyfunc"
FILE_SUFFIXES: tuple[str, ...] = ()
RUNS_CODE = True  # loading executes the artifact's own code: loaders require trust

_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Compiled files are never loaded (only checksummed .py sources are), so never saved either.
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so", "*.pyd", "*.dylib")


@dataclass(frozen=True)
class PythonModelContext:
    """What ``PythonModel.load`` gets: each artifact name mapped to its absolute path."""

    artifacts: Mapping[str, Path] = field(default_factory=dict)


class PythonModel(ABC):
    """Base class for custom models; the instance is rebuilt from code and artifacts on load."""

    def load(self, context: PythonModelContext) -> None:  # noqa: B027 - optional hook
        """Called once after the no-argument constructor, before any ``predict``."""

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray] | np.ndarray:
        """Named input arrays (batch axis first) -> an array, or named output arrays."""


def handles(model: object) -> bool:
    """True for instances of :class:`PythonModel`."""
    return isinstance(model, PythonModel)


def save(model: object, path: Path, options: Options) -> SavedFlavor:
    """Copy the class's source, any extra code and the artifact files into ``path``."""
    if not isinstance(model, PythonModel):
        raise FlavorError(f"the pyfunc flavor saves PythonModel instances, not {type(model)!r}")
    cls = type(model)
    module_name, class_name = cls.__module__, cls.__qualname__
    if module_name == "__main__":
        raise FlavorError(
            f"class {class_name} is defined in __main__ (a script or notebook); "
            "move it into a module (a .py file) so its code can be saved with the model"
        )
    _validate_names(module_name, class_name)
    try:
        inspect.signature(cls).bind()
    except TypeError:
        raise FlavorError(f"class {class_name} must be constructible with no arguments") from None
    code_dir = path / "code"
    code_dir.mkdir()
    _copy_code(_top_level_source(module_name), code_dir)
    for extra in options.get("code_paths", []):
        _copy_code(Path(extra), code_dir)
    artifacts = {
        str(name): _copy_artifact(str(name), Path(src), path)
        for name, src in dict(options.get("artifacts", {})).items()
    }
    return SavedFlavor(
        framework="python",
        framework_version=platform.python_version(),
        options={"module": module_name, "class": class_name, "artifacts": artifacts},
        requirements=[str(r) for r in options.get("requirements", [])],
    )


def _validate_names(module_name: str, class_name: str) -> None:
    """Module and class must be plain identifiers: options never carry code to evaluate."""
    if not all(part.isidentifier() for part in module_name.split(".")):
        raise FlavorError(f"invalid pyfunc module name {module_name!r}")
    if not class_name.isidentifier():
        raise FlavorError(f"class {class_name!r} must be defined at the top level of its module")


def _top_level_source(module_name: str) -> Path:
    """The file or package folder that holds the top-level package of ``module_name``."""
    top = sys.modules.get(module_name.split(".")[0])
    source = getattr(top, "__file__", None)
    if source is None:
        raise FlavorError(f"cannot find the source of module {module_name!r}; pass code_paths")
    file = Path(source)
    return file.parent if file.name == "__init__.py" else file


def _copy_code(source: Path, code_dir: Path) -> None:
    target = code_dir / source.name
    if target.exists():
        raise FlavorError(f"two code paths are both named {source.name!r}")
    if source.is_dir():
        shutil.copytree(source, target, ignore=_IGNORE)
    elif source.is_file() and source.suffix == ".py":
        shutil.copy2(source, target)
    else:
        raise FlavorError(f"code path {str(source)!r} is neither a .py file nor a folder")


def _copy_artifact(name: str, source: Path, path: Path) -> str:
    if not _ARTIFACT_NAME.fullmatch(name):
        raise FlavorError(f"invalid artifact name {name!r}; use letters, digits, '_', '-', '.'")
    target = path / "artifacts" / name
    if source.is_dir():
        shutil.copytree(source, target, ignore=_IGNORE)
        return f"artifacts/{name}"
    if not source.is_file():
        raise FlavorError(f"artifact {name!r}: no file at {str(source)!r}")
    target.mkdir(parents=True)
    shutil.copy2(source, target / source.name)
    return f"artifacts/{name}/{source.name}"


def load(
    path: Path,
    options: Options,
    signature: Signature,
    *,
    trust_unsafe: bool = False,
    checksums: Mapping[str, str] | None = None,
) -> Predictor:
    """Import the saved class from its verified sources, instantiate it and call its
    ``load`` with the artifact paths. Refused unless the caller trusts the artifact."""
    module_name, class_name = str(options.get("module", "")), str(options.get("class", ""))
    _validate_names(module_name, class_name)
    if not trust_unsafe:
        raise CodeNotTrusted(f"{module_name}.{class_name}", NAME)
    root = path.resolve()
    artifacts = {
        str(name): _inside(root, root / str(rel), f"artifact {name!r}")
        for name, rel in dict(options.get("artifacts", {})).items()
    }
    code = _ArtifactCode.read(root, checksums)
    cls = getattr(code.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, PythonModel)):
        raise FlavorError(f"{module_name}.{class_name} is not a PythonModel subclass")
    model = cls()
    model.load(PythonModelContext(artifacts=artifacts))
    return PyfuncPredictor(model)


def _inside(root: Path, candidate: Path, what: str) -> Path:
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root) or not resolved.exists():
        raise FlavorError(f"{what} is missing from the artifact or points outside it")
    return resolved


class _ArtifactCode(importlib.abc.Loader):
    """The ``.py`` sources of one artifact's ``code/`` folder, as text, by module name; loads
    them as modules. Nothing else in the folder (``.pyc``, ``.so``) can be imported."""

    def __init__(self, alias: str, sources: dict[str, tuple[str, str, bool]]) -> None:
        self.alias = alias
        self.sources = sources  # module name -> (text, origin path, is package)
        # The artifact's own top-level names (stdlib names keep meaning the stdlib).
        self._own = {n.partition(".")[0] for n in sources} - set(sys.stdlib_module_names)
        # Builtins for the artifact's modules, whose import statements resolve the
        # artifact's own names inside it (see _import).
        self._builtins = {**builtins.__dict__, "__import__": self._import}

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        """``__import__`` as the artifact's code sees it: an absolute import of one of its
        own modules (``import helpers``, ``from churn.features import f``) gets the
        artifact's checksummed copy, never a same-named file on ``sys.path`` (a
        ``helpers.py`` in the working directory would win otherwise)."""
        top = name.partition(".")[0]
        if level == 0 and top in self._own:
            module = builtins.__import__(f"{self.alias}.{name}", globals, locals, fromlist, 0)
            return module if fromlist else sys.modules[f"{self.alias}.{top}"]
        return builtins.__import__(name, globals, locals, fromlist, level)

    @classmethod
    def read(cls, root: Path, checksums: Mapping[str, str] | None) -> _ArtifactCode:
        """Read (and, given the manifest's checksums, verify) every source under ``code/``."""
        code_dir = root / "code"
        sources: dict[str, tuple[str, str, bool]] = {}
        # One private package per folder and content: each artifact's modules are its own.
        digest = hashlib.sha256(str(code_dir).encode())
        for file in sorted(code_dir.rglob("*.py")):
            rel = file.relative_to(root).as_posix()
            if checksums is not None and rel not in checksums:
                continue  # not part of the artifact as published: never importable
            _inside(code_dir, file, f"source {rel!r}")
            data = file.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if checksums is not None and sha != checksums[rel]:
                raise ArtifactCorrupted(rel, "sha256 does not match the manifest")
            parts = file.relative_to(code_dir).with_suffix("").parts
            package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if package else parts)
            if not name or not all(p.isidentifier() for p in name.split(".")):
                continue
            sources[name] = (_code_guard.decode_source(data, rel), str(file), package)
            digest.update(f"{rel}\0{sha}\0".encode())
        alias = "_modelport_pyfunc_" + digest.hexdigest()[:16]
        return _FINDER.add(cls(alias, sources))

    def import_module(self, module_name: str) -> types.ModuleType:
        """Import ``module_name`` from these sources under this artifact's private package."""
        if module_name not in self.sources:
            raise FlavorError(f"module {module_name!r} is missing from the artifact's code")
        try:
            return importlib.import_module(f"{self.alias}.{module_name}")
        except Exception as exc:  # the user's module failed at import time
            raise FlavorError(f"importing pyfunc module {module_name!r} failed: {exc!r}") from None

    def spec(self, fullname: str, name: str) -> importlib.machinery.ModuleSpec | None:
        if not name:  # the private top package itself
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        found = self.sources.get(name)
        if found is None:
            return None
        _, origin, package = found
        return importlib.util.spec_from_loader(fullname, self, origin=origin, is_package=package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        name = spec.name.removeprefix(self.alias).removeprefix(".")
        if name not in self.sources:
            return  # the private top package: empty
        text, origin, _ = self.sources[name]
        module.__file__ = origin
        module.__dict__["__builtins__"] = self._builtins
        exec(compile(text, origin, "exec", dont_inherit=True), module.__dict__)


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of loaded pyfunc artifacts, ``<alias>.<module>``; nothing else (an
    artifact's code reaches its own modules by plain name through its ``__import__``)."""

    def __init__(self) -> None:
        self.artifacts: dict[str, _ArtifactCode] = {}

    def add(self, code: _ArtifactCode) -> _ArtifactCode:
        if self not in sys.meta_path:
            sys.meta_path.append(self)
        return self.artifacts.setdefault(code.alias, code)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        head, _, rest = fullname.partition(".")
        code = self.artifacts.get(head)
        return None if code is None else code.spec(fullname, rest)


_FINDER = _SourceFinder()


def find_unsafe(path: Path, options: Options) -> list[tuple[str, str]]:
    """``(file, "line N calls os.system")`` for each dangerous call or import in the
    artifact's ``.py`` files (its code and any artifact files), read without running them.
    An early warning only: a pyfunc artifact needs trust whatever this finds."""
    return [
        (file, f"line {line} {what}" if line else what)
        for file, line, what in _code_guard.scan_folder(path)
    ]


def read_file(path: Path) -> object:
    """pyfunc models are Python classes, not files; always refused."""
    raise FlavorError(f"the pyfunc flavor does not read model files ({path.name!r})")


def infer_signature(model: object) -> Signature | None:
    """A Python class says nothing about its inputs: the user must give an example."""
    return None


class PyfuncPredictor:
    """Calls the user's ``predict`` and names a bare array ``predictions``."""

    def __init__(self, model: PythonModel) -> None:
        self.model = model

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The user's outputs as numpy arrays, batch axis first (all of them: user code
        decides what it computes)."""
        result: Any = self.model.predict(dict(inputs))  # Any: users return what they return
        if isinstance(result, Mapping):
            return {str(k): np.asarray(v) for k, v in result.items()}
        return {"predictions": np.asarray(result)}
