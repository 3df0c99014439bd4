"""The pickle guard refuses dangerous globals in find_class, before any payload can run."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import UnsafeArtifact
from modelport.flavors import _pickle_guard
from modelport.flavors import sklearn as flavor

SIGNATURE = Signature("tensors", (TensorSpec("input", "float64", (-1, 4)),))


class Payload:
    """Unpickling this calls ``func(*args)``: the classic pickle attack."""

    def __init__(self, func: Callable[..., object], args: tuple[object, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, tuple[Payload, str]]:
    """Each payload would create ``marker``; with the name the guard must report."""
    return {
        "os.system": (Payload(os.system, (f"touch {marker}",)), f"{os.system.__module__}.system"),
        "subprocess.Popen": (
            Payload(subprocess.Popen, (["touch", str(marker)],)),
            "subprocess.Popen",
        ),
        "builtins.eval": (
            Payload(builtins.eval, (f"open({str(marker)!r}, 'w').close()",)),
            "builtins.eval",
        ),
    }


@pytest.fixture(params=["os.system", "subprocess.Popen", "builtins.eval"])
def payload(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Payload, str, Path]:
    marker = tmp_path / "MARKER"
    obj, name = _payloads(marker)[request.param]
    return obj, name, marker


def _message(name: str) -> str:
    return f"global '{name.replace('.', '[.]')}' is not allowed"


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_payload_never_runs(
    payload: tuple[Payload, str, Path], protocol: int, tmp_path: Path
) -> None:
    obj, name, marker = payload
    (tmp_path / "model.pkl").write_bytes(pickle.dumps([1, obj], protocol=protocol))
    with pytest.raises(UnsafeArtifact, match=_message(name)):
        flavor.load(tmp_path, {"file": "model.pkl", "serialization": "pickle"}, SIGNATURE)
    assert not marker.exists()


@pytest.mark.parametrize("compress", [0, 3])
def test_joblib_payload_never_runs(
    payload: tuple[Payload, str, Path], compress: int, tmp_path: Path
) -> None:
    obj, name, marker = payload
    joblib.dump({"model": obj, "weights": np.ones(3)}, tmp_path / "model.joblib", compress=compress)
    with pytest.raises(UnsafeArtifact, match=_message(name)):
        flavor.load(tmp_path, {"file": "model.joblib", "serialization": "joblib"}, SIGNATURE)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_read_file_payload_never_runs(
    payload: tuple[Payload, str, Path], suffix: str, tmp_path: Path
) -> None:
    obj, name, marker = payload
    (tmp_path / f"user{suffix}").write_bytes(pickle.dumps(obj))
    with pytest.raises(UnsafeArtifact, match=_message(name)):
        flavor.read_file(tmp_path / f"user{suffix}")
    assert not marker.exists()


def test_object_arrays_inside_joblib_files_are_guarded_too(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    cells = np.empty(2, dtype=object)
    cells[0], cells[1] = "ok", Payload(os.system, (f"touch {marker}",))
    joblib.dump(cells, tmp_path / "cells.joblib")
    with pytest.raises(UnsafeArtifact, match="system' is not allowed"):
        flavor.read_file(tmp_path / "cells.joblib")
    assert not marker.exists()


def test_object_arrays_are_guarded_whatever_joblib_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from joblib.numpy_pickle import NumpyArrayWrapper

    def unguarded(self: Any, unpickler: Any, *args: Any) -> Any:
        return pickle.load(unpickler.file_handle)  # what joblib < 1.6 did

    monkeypatch.setattr(NumpyArrayWrapper, "read_array", unguarded)
    marker = tmp_path / "MARKER"
    cells = np.array([None, Payload(os.system, (f"touch {marker}",))], dtype=object)
    joblib.dump(cells, tmp_path / "cells.joblib")
    with pytest.raises(UnsafeArtifact, match="system' is not allowed"):
        flavor.read_file(tmp_path / "cells.joblib")
    assert not marker.exists()


def test_dotted_name_cannot_walk_out_of_a_trusted_module(tmp_path: Path) -> None:
    # Protocol 4 resolves "a.b" names by getattr: sklearn._config imports os.
    frame = pickle.PROTO + b"\x04" + pickle.SHORT_BINUNICODE + bytes([15]) + b"sklearn._config"
    frame += pickle.SHORT_BINUNICODE + bytes([9]) + b"os.system" + pickle.STACK_GLOBAL + pickle.STOP
    (tmp_path / "dotted.pkl").write_bytes(frame)
    with pytest.raises(UnsafeArtifact, match=_message("sklearn._config.os.system")):
        flavor.read_file(tmp_path / "dotted.pkl")


@pytest.mark.parametrize(
    ("module", "name", "allowed"),
    [
        ("sklearn.linear_model._logistic", "LogisticRegression", True),
        ("numpy", "ndarray", True),
        ("numpy._core.multiarray", "_reconstruct", True),
        ("numpy.random._pickle", "__bit_generator_ctor", True),
        ("copyreg", "_reconstructor", True),
        ("__builtin__", "set", True),
        ("builtins", "frozenset", True),
        ("builtins", "getattr", False),
        ("builtins", "__import__", False),
        ("numpy", "load", False),  # a function, not a class
        ("numpy", "memmap", False),  # a class that writes files
        ("numpy._core.memmap", "memmap", False),
        ("numpy.tests.test_public_api", "ModuleType", False),
        ("numpy.lib._npyio_impl", "NpzFile", False),
        ("scipy.io", "FortranFile", False),
        ("sklearn._config", "os._wrap_close", False),  # a foreign class behind a dotted name
        ("joblib", "Parallel", False),
        ("joblib.numpy_pickle", "NumpyArrayWrapper", True),
        ("numpyx", "ndarray", False),
        ("sklearn.linear_model", "NoSuchThing", False),
    ],
)
def test_allow_list(module: str, name: str, allowed: bool) -> None:
    assert _pickle_guard.is_allowed(module, name) is allowed


def test_untrusted_type_names_accepts_nested_sklearn_classes() -> None:
    names = ["sklearn.tree._tree.Tree", "numpy.dtype", "mymodule.Thing", "builtins.eval"]
    assert _pickle_guard.untrusted_type_names(names) == ["mymodule.Thing", "builtins.eval"]


def test_real_models_pass_the_guard(arrays: dict[str, np.ndarray], tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    model: Any = LogisticRegression().fit(arrays["x_train"], arrays["y_binary"])
    model.rng_ = rng  # a Generator pickles through numpy.random._pickle helpers
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(model, protocol=2))
    loaded: Any = flavor.read_file(tmp_path / "m.pkl")
    np.testing.assert_array_equal(loaded.predict(arrays["x_test"]), model.predict(arrays["x_test"]))


@pytest.mark.parametrize("serialization", ["pickle", "joblib"])
def test_find_unsafe_names_the_global_and_trust_unsafe_skips_the_guard(
    serialization: str, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    obj, name = _payloads(marker)["os.system"]
    file = "model.pkl" if serialization == "pickle" else "model.joblib"
    joblib.dump([1, obj], tmp_path / file)
    options = {"file": file, "serialization": serialization}
    assert flavor.find_unsafe(tmp_path, options) == [(file, f"global '{name}' is not allowed")]
    assert not marker.exists()
    flavor.load(tmp_path, options, SIGNATURE, trust_unsafe=True)
    assert marker.exists(), "trusted: loaded as it is, payload and all"
