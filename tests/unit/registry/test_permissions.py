"""The embedded registry (API key hashes, logged model inputs) and the artifact store are
created owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelport.config import Settings
from modelport.registry import Registry


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default: new files world-readable
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_database_and_artifacts_are_owner_only(
    loose_umask: None, tmp_path: Path, tiny_model: object, tiny_data: tuple[np.ndarray, np.ndarray]
) -> None:
    home = tmp_path / "deep" / "home"
    with Registry(Settings(home=home)) as registry:
        registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
        registry.keys.create_key("ci", "predict")
    assert _mode(tmp_path / "deep") == 0o700
    assert _mode(home) == 0o700
    assert _mode(home / "registry.db") == 0o600
    assert _mode(home / "artifacts") == 0o700
    for sidecar in home.glob("registry.db-*"):  # SQLite's WAL files copy the database's mode
        assert _mode(sidecar) == 0o600, sidecar
    others = [p for p in (home / "artifacts").rglob("*") if _mode(p) & 0o077]
    assert others == [], "nothing in the store is readable by group or others"


def test_an_existing_folder_keeps_its_permissions(loose_umask: None, tmp_path: Path) -> None:
    home = tmp_path / "shared"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    with Registry(Settings(home=home)):
        pass
    assert _mode(home) == 0o755, "a folder someone set up is not changed"
    assert _mode(home / "registry.db") == 0o600
