"""``trust_unsafe``: a model the safety checks refuse is registered only when a person trusts
it; the version records who and when, and only such a version loads without the allow-list.

The payloads write a marker file into ``tmp_path``: it must never appear while the model is
refused, and appearing once the model is trusted is what proves trust reached the loader.
"""

from __future__ import annotations

import getpass
import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

import modelport
from modelport import packaging
from modelport.artifact.bundle import pack
from modelport.errors import FlavorError, InvalidInput, UnsafeArtifact, UntrustedArtifact
from modelport.registry import Registry

Data = tuple[np.ndarray, np.ndarray]
SYSTEM = f"{os.system.__module__}.system"  # posix.system on Linux, nt.system on Windows


class Payload:
    """Unpickling this runs ``os.system(command)``: the classic pickle attack."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return os.system, (self.command,)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


@pytest.fixture
def booby_trapped(tiny_model: object, marker: Path) -> Any:  # Any: an estimator with extras
    """A working LogisticRegression that runs ``touch MARKER`` whenever it is unpickled."""
    import copy

    model: Any = copy.deepcopy(tiny_model)
    model.hook_ = Payload(f"touch {marker}")
    return model


def _pickled_folder(model: object, folder: Path) -> Path:
    """An artifact folder holding ``model`` as a plain pickle, as someone else could send it.

    No input example, so writing it loads (and runs) nothing.
    """
    packaging.save(model, folder, flavor_options={"serialization": "pickle"}, trust_unsafe=True)
    return folder


def test_a_pickle_file_naming_a_bad_global_is_refused_and_never_runs(
    registry: Registry, booby_trapped: Any, marker: Path, tmp_path: Path
) -> None:
    file = tmp_path / "model.pkl"
    joblib.dump(booby_trapped, file)
    with pytest.raises(UntrustedArtifact, match=rf"global '{SYSTEM}' is not allowed.*trust_unsafe"):
        registry.register("evil", file)
    assert not marker.exists()
    failed = registry.get_version("evil", 1)
    assert failed.status == "failed"
    assert failed.trusted_unsafe_by is None
    assert failed.error is not None
    assert SYSTEM in failed.error


@pytest.mark.parametrize("as_bundle", [False, True], ids=["folder", "bundle"])
def test_an_artifact_holding_a_bad_pickle_is_refused_before_loading(
    registry: Registry, booby_trapped: Any, marker: Path, tmp_path: Path, as_bundle: bool
) -> None:
    source = _pickled_folder(booby_trapped, tmp_path / "sent" / "evil")
    if as_bundle:
        source = pack(source, tmp_path / "evil.tar")
    with pytest.raises(UntrustedArtifact, match=rf"'model\.pkl': global '{SYSTEM}' is not allowed"):
        registry.register("evil", source)
    assert not marker.exists()
    assert registry.get_version("evil", 1).status == "failed"


def test_a_model_object_that_pickles_a_bad_global_is_refused(
    registry: Registry, booby_trapped: Any, marker: Path, tiny_data: Data
) -> None:
    with pytest.raises(FlavorError, match=rf"cannot be saved safely: global '{SYSTEM}'"):
        registry.register(
            "evil",
            booby_trapped,
            input_example=tiny_data[0][:2],
            flavor_options={"serialization": "pickle"},
        )
    assert not marker.exists()


def test_a_trusted_pickle_is_recorded_and_loads_without_the_allow_list(
    registry: Registry,
    registry_uri: str,
    artifact_uri: str,
    booby_trapped: Any,
    marker: Path,
    tiny_data: Data,
    tmp_path: Path,
) -> None:
    source = _pickled_folder(booby_trapped, tmp_path / "sent" / "evil")
    version = registry.register("evil", source, trust_unsafe=True, trusted_by="alice")
    assert not marker.exists(), "registering a folder loads nothing"
    assert (version.status, version.trusted_unsafe_by, version.trusts_unsafe) == (
        "ready",
        "alice",
        True,
    )
    assert version.trusted_unsafe_at is not None
    assert registry.get_version("evil", 1).trusted_unsafe_at == version.trusted_unsafe_at

    features = tiny_data[0]
    expected = booby_trapped.predict(features)
    np.testing.assert_array_equal(registry.load("evil/1").predict(features), expected)
    assert marker.exists(), "the payload ran: the version loaded without the allow-list"
    marker.unlink()
    settings = modelport.Settings(
        registry_uri=registry_uri, artifact_uri=artifact_uri, cache_dir=tmp_path / "cache2"
    )
    np.testing.assert_array_equal(
        modelport.load("evil", settings=settings).predict(features), expected
    )
    assert marker.exists(), "modelport.load follows the registry's record too"
    marker.unlink()

    # The trust belongs to the registry's record, never to the files: loaded as a path
    # (no record), the same artifact goes through the allow-list again.
    folder = registry.artifact_path("evil/1")
    with pytest.raises(UnsafeArtifact, match=rf"global '{SYSTEM}' is not allowed"):
        packaging.load_artifact(folder)
    with pytest.raises(UnsafeArtifact, match=rf"global '{SYSTEM}' is not allowed"):
        registry.load(folder)
    assert not marker.exists()


def test_a_trusted_pickle_file_is_read_as_it_is(
    registry: Registry, booby_trapped: Any, marker: Path, tiny_data: Data, tmp_path: Path
) -> None:
    file = tmp_path / "model.pkl"
    joblib.dump(booby_trapped, file)
    version = registry.register("evil", file, trust_unsafe=True)
    assert marker.exists(), "a trusted file is unpickled as it is (expected here)"
    assert version.trusted_unsafe_by
    features = tiny_data[0]
    np.testing.assert_array_equal(
        registry.load("evil").predict(features), booby_trapped.predict(features)
    )


def test_trusted_by_defaults_to_the_os_user(
    registry: Registry, tiny_model: object, tiny_data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "bob")
    version = registry.register("m", tiny_model, input_example=tiny_data[0][:2], trust_unsafe=True)
    assert version.trusted_unsafe_by == "bob"


def test_untrusted_versions_record_nothing_and_trusted_by_needs_trust(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    version = registry.register("m", tiny_model, input_example=tiny_data[0][:2])
    assert (version.trusted_unsafe_by, version.trusted_unsafe_at) == (None, None)
    with pytest.raises(InvalidInput, match="trusted_by is recorded only with trust_unsafe"):
        registry.register("m", tiny_model, input_example=tiny_data[0][:2], trusted_by="eve")


# -- pyfunc code -------------------------------------------------------------------------

DANGEROUS = """
    import os

    from modelport.flavors.pyfunc import PythonModel


    class Model(PythonModel):
        def load(self, context):
            os.system("touch {marker}")

        def predict(self, inputs):
            return inputs["x"].sum(axis=1)
"""


@pytest.fixture
def dangerous_pyfunc(tmp_path: Path, marker: Path) -> Iterator[tuple[object, str]]:
    """An instance of a user class whose ``load`` shells out, and its module's name."""
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    module = f"shelling_model_{uuid.uuid4().hex[:8]}"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{module}.py").write_text(textwrap.dedent(DANGEROUS.format(marker=marker)))
    sys.path.insert(0, str(src))
    try:
        yield __import__(module).Model(), module
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name == module or name.startswith("_modelport_pyfunc_"):
                del sys.modules[name]


def test_pyfunc_code_with_a_dangerous_call_is_refused_naming_file_and_line(
    registry: Registry, dangerous_pyfunc: tuple[object, str]
) -> None:
    model, module = dangerous_pyfunc
    with pytest.raises(
        UntrustedArtifact, match=rf"refusing 'code/{module}\.py': line 9 calls os\.system"
    ):
        registry.register("shell", model, input_example={"x": np.ones((2, 2))})
    assert registry.get_version("shell", 1).status == "failed"


def test_a_pyfunc_folder_is_scanned_before_its_code_runs(
    registry: Registry, dangerous_pyfunc: tuple[object, str], marker: Path, tmp_path: Path
) -> None:
    model, module = dangerous_pyfunc
    folder = tmp_path / "sent" / "shell"
    modelport.save(model, folder, input_example={"x": np.ones((2, 2))})
    marker.unlink()  # saving proved the model loads, which ran its code
    with pytest.raises(UntrustedArtifact, match=rf"'code/{module}\.py': line 9 calls os\.system"):
        registry.register("shell", folder)
    assert not marker.exists()
    version = registry.register("shell", folder, trust_unsafe=True, trusted_by="alice")
    assert version.trusted_unsafe_by == "alice"
    np.testing.assert_array_equal(
        registry.load("shell").predict({"x": np.ones((2, 2))}), [2.0, 2.0]
    )
    assert marker.exists()
