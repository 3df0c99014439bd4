"""A registering process killed with SIGKILL never leaves a ready version behind, and
``cleanup_stale`` turns what it left into a failed version without files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from modelport.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")]

WORKER = Path(__file__).with_name("registry_worker.py")


def _wait_for(path: Path, child: subprocess.Popen[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            _, err = child.communicate()
            pytest.fail(f"worker exited early ({child.returncode}): {err}")
        if time.monotonic() > deadline:
            child.kill()
            child.communicate()
            pytest.fail("worker never reached the crash point")
        time.sleep(0.02)
    return path.read_text()


def test_sigkill_mid_registration_leaves_no_ready_version(
    registry_uri: str, tmp_path: Path, tiny_model: object
) -> None:
    artifacts = str(tmp_path / "artifacts")
    marker = tmp_path / "stopped"
    child = subprocess.Popen(
        [sys.executable, str(WORKER), "hang", registry_uri, artifacts, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for(marker, child) == "1"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with Registry(registry_uri=registry_uri, artifact_uri=artifacts) as registry:
        orphan = registry.get_version("churn", 1)
        assert orphan.status == "pending"
        assert registry.artifacts.exists(orphan.artifact_key), "killed after the files landed"
        assert registry.get_model("churn").latest_version is None

        cleaned = registry.cleanup_stale(timedelta(0))
        assert [(v.version, v.status) for v in cleaned] == [(1, "failed")]
        assert not registry.artifacts.exists(orphan.artifact_key)

        features = tiny_model.coef_  # type: ignore[attr-defined]  # any (n, 3) array will do
        assert registry.register("churn", tiny_model, input_example=features).version == 2
        assert registry.resolve("churn").version == 2
