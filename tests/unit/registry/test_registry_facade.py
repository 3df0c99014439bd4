"""The Registry facade on both backends: two-phase registration, refs, aliases, cleanup."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from modelport import packaging
from modelport.artifact import files
from modelport.config import Settings
from modelport.errors import (
    ArtifactCorrupted,
    FlavorError,
    InvalidRef,
    ModelInUse,
    ModelNotFound,
    NotFound,
    UnsupportedModel,
    VersionInUse,
    VersionNotReady,
)
from modelport.registry import LocalArtifactStore, Registry

Data = tuple[np.ndarray, np.ndarray]


def test_register_then_load_by_every_kind_of_ref(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    features, _ = tiny_data
    version = registry.register("churn", tiny_model, input_example=features[:2], metrics={"auc": 1})
    assert (version.version, version.status, version.flavor) == (1, "ready", "sklearn")
    assert version.manifest_sha256 == files.manifest_sha256(registry.artifact_path("churn/1"))
    registry.set_alias("churn", "production", 1)
    expected = tiny_model.predict(features)  # type: ignore[attr-defined]
    for ref in ("churn", "churn/1", "churn@production"):
        assert registry.resolve(ref).version == 1
        np.testing.assert_array_equal(registry.load(ref).predict(features), expected)
    assert registry.get_model("churn").aliases == {"production": 1}


def test_register_from_an_artifact_folder(
    registry: Registry, tiny_model: object, tiny_data: Data, tmp_path: Path
) -> None:
    folder = tmp_path / "exported"
    packaging.save(tiny_model, folder, name="exported", input_example=tiny_data[0][:2])
    version = registry.register("churn", folder, tags={"team": "growth"})
    assert version.source == str(folder)
    assert registry.load(folder).name == "exported"
    assert registry.load("churn").name == "churn"
    assert registry.artifact_path(folder) == folder


def test_a_fault_before_commit_leaves_a_failed_version_and_no_files(
    registry: Registry,
    tiny_model: object,
    tiny_data: Data,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(registry._store, "mark_version_ready", crash)
    with pytest.raises(RuntimeError, match="injected fault"):
        registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    monkeypatch.undo()
    failed = registry.get_version("churn", 1)
    assert failed.status == "failed"
    assert failed.error == "RuntimeError: injected fault"
    assert not registry.artifacts.exists(failed.artifact_key)
    with pytest.raises(VersionNotReady, match="is failed, not ready"):
        registry.resolve("churn/1")
    with pytest.raises(NotFound, match="has no ready version"):
        registry.load("churn")
    assert registry.register("churn", tiny_model, input_example=tiny_data[0][:2]).version == 2


def test_a_model_no_flavor_handles_fails_the_version(registry: Registry) -> None:
    with pytest.raises(UnsupportedModel, match="no flavor can handle"):
        registry.register("churn", object())
    failed = registry.get_version("churn", 1)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith("unsupported_model:")


def test_delete_version_is_refused_while_aliased_and_removes_files(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    version = registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    registry.set_alias("churn", "production", 1)
    with pytest.raises(VersionInUse, match="'production'"):
        registry.delete_version("churn", 1)
    assert registry.artifacts.exists(version.artifact_key)
    registry.delete_alias("churn", "production")
    assert [c.version for c in registry.alias_history("churn", "production")] == [None, 1]
    registry.delete_version("churn", 1)
    assert not registry.artifacts.exists(version.artifact_key)
    assert registry.list_versions("churn").items == []


def test_delete_model_removes_every_file(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    keys = [
        registry.register("churn", tiny_model, input_example=tiny_data[0][:2]).artifact_key
        for _ in range(2)
    ]
    registry.delete_model("churn")
    assert not any(registry.artifacts.exists(key) for key in keys)
    assert registry.list_models().items == []


def test_delete_model_with_aliases_needs_confirmation_and_takes_failed_versions(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    ready = registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    with pytest.raises(FlavorError, match="cannot tell what a"):
        registry.register("churn", tiny_model, flavor="pyfunc")  # fails: version 2 failed
    assert registry.get_version("churn", 2).status == "failed"
    registry.set_alias("churn", "production", ready.version)
    with pytest.raises(ModelInUse, match=r"aliases \(production -> 1\).*--force"):
        registry.delete_model("churn")
    assert registry.get_model("churn").latest_version == 1
    gone = registry.delete_model("churn", with_aliases=True)
    assert gone.aliases == {"production": 1}
    assert registry.list_models().items == []
    assert not registry.artifacts.exists(ready.artifact_key)


def test_a_key_for_an_unknown_model_is_refused_with_the_closest_name(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    with pytest.raises(ModelNotFound, match="model 'chrun' not found; did you mean 'churn'"):
        registry.keys.create_key("ci", "predict", model="chrun")
    assert registry.keys.create_key("ci", "predict", model="churn")[0].model == "churn"


def test_a_loaded_version_knows_its_number(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    registry.set_alias("churn", "production", 1)
    assert registry.load("churn@production").version == 1
    assert registry.load("churn").version == 2
    assert registry.load(registry.artifact_path("churn/1")).version is None


def test_cleanup_stale_fails_abandoned_registrations(
    registry: Registry, tiny_model: object, tiny_data: Data, tmp_path: Path
) -> None:
    ready = registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    abandoned = registry._store.create_version("churn")
    partial = tmp_path / "partial"
    partial.mkdir()
    registry.artifacts.put_dir(abandoned.artifact_key, partial)
    assert registry.cleanup_stale(timedelta(hours=1)) == []
    cleaned = registry.cleanup_stale(timedelta(0))
    assert [(v.version, v.status) for v in cleaned] == [(2, "failed")]
    assert not registry.artifacts.exists(abandoned.artifact_key)
    assert registry.artifacts.exists(ready.artifact_key)
    assert registry.get_version("churn", 1).status == "ready"


@pytest.mark.parametrize("artifact_uri", ["local"], indirect=True)  # S3: test_s3_artifacts.py
def test_cleanup_removes_interrupted_copies_but_not_recent_ones(
    registry: Registry, tmp_path: Path
) -> None:
    store = registry.artifacts
    assert isinstance(store, LocalArtifactStore)
    old, recent = store.root / ".tmp" / "put-old", store.root / ".tmp" / "put-recent"
    for leftover in (old, recent):
        leftover.mkdir()
        (leftover / "half-written.bin").write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    registry.cleanup_stale(timedelta(hours=1))
    assert not old.exists()
    assert recent.exists(), "a copy that may still be running is left alone"


def test_pending_versions_are_not_resolved(registry: Registry) -> None:
    registry._store.create_version("churn")
    with pytest.raises(VersionNotReady, match="is pending, not ready"):
        registry.resolve("churn/1")
    with pytest.raises(NotFound, match="has no ready version"):
        registry.resolve("churn")
    with pytest.raises(InvalidRef, match="a path is not a registry ref"):
        registry.resolve("./some/folder")


def test_an_edited_manifest_is_caught_on_load(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    manifest = registry.artifact_path("churn") / "modelport.json"
    manifest.write_text(manifest.read_text().replace('"churn"', '"evil"'))
    with pytest.raises(ArtifactCorrupted, match="does not match the registry"):
        registry.load("churn")


def test_settings_supply_the_default_locations(tmp_path: Path) -> None:
    with Registry(Settings(home=tmp_path / "home")) as embedded:
        embedded._store.create_version("churn")
    assert (tmp_path / "home" / "registry.db").is_file()
    assert (tmp_path / "home" / "artifacts").is_dir()


def test_manifest_and_delete_by_ref(
    registry: Registry, tiny_model: object, tiny_data: Data
) -> None:
    registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    assert registry.manifest("churn/1").flavor == "sklearn"
    assert registry.manifest(registry.artifact_path("churn")).name == "churn"
    assert [v.version for v in registry.list_versions("churn")] == [1]
    with pytest.raises(InvalidRef, match="like 'churn/3'"):
        registry.delete_version("churn@production")
    deleted = registry.delete_version("churn/1")
    assert (deleted.name, deleted.version) == ("churn", 1)
    assert len(registry.list_versions("churn")) == 0
