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

Loading runs the saved code, so registration first reads every ``.py`` file of the artifact
with :mod:`modelport.flavors._code_guard` (``find_unsafe``) and refuses plainly dangerous calls
unless a person trusts the code.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import platform
import re
import shutil
import sys
import types
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import Signature
from modelport.errors import FlavorError
from modelport.flavors import Options, Predictor, SavedFlavor, _code_guard

NAME = "pyfunc"
FILE_SUFFIXES: tuple[str, ...] = ()

_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


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
        shutil.copytree(source, target)
        return f"artifacts/{name}"
    if not source.is_file():
        raise FlavorError(f"artifact {name!r}: no file at {str(source)!r}")
    target.mkdir(parents=True)
    shutil.copy2(source, target / source.name)
    return f"artifacts/{name}/{source.name}"


def load(path: Path, options: Options, signature: Signature) -> Predictor:
    """Import the saved class, instantiate it and call its ``load`` with the artifact paths."""
    module_name, class_name = str(options.get("module", "")), str(options.get("class", ""))
    _validate_names(module_name, class_name)
    root = path.resolve()
    artifacts = {
        str(name): _inside(root, root / str(rel), f"artifact {name!r}")
        for name, rel in dict(options.get("artifacts", {})).items()
    }
    cls = getattr(_import_module(root / "code", module_name), class_name, None)
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


def _import_module(code_dir: Path, module_name: str) -> types.ModuleType:
    """Import ``module_name`` from ``code_dir`` under a package name private to this folder."""
    parts = module_name.split(".")
    file = code_dir.joinpath(*parts).with_suffix(".py")
    if not file.is_file():
        file = code_dir.joinpath(*parts, "__init__.py")
    _inside(code_dir, file, f"module {module_name!r}")
    alias = "_modelport_pyfunc_" + hashlib.sha256(str(code_dir).encode()).hexdigest()[:16]
    if alias not in sys.modules:
        package = types.ModuleType(alias)
        package.__path__ = [str(code_dir)]
        sys.modules[alias] = package
    # Appended, not prepended: a user file named like a stdlib module must not shadow it.
    if str(code_dir) not in sys.path:
        sys.path.append(str(code_dir))
    try:
        return importlib.import_module(f"{alias}.{module_name}")
    except Exception as exc:  # the user's module failed at import time
        raise FlavorError(f"importing pyfunc module {module_name!r} failed: {exc!r}") from None


def find_unsafe(path: Path, options: Options) -> list[tuple[str, str]]:
    """``(file, "line N calls os.system")`` for each dangerous call or import in the
    artifact's ``.py`` files (its code and any artifact files), read without running them."""
    return [(file, f"line {line} {what}") for file, line, what in _code_guard.scan_folder(path)]


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
