"""Test helper run as a child process by the registry integration tests (not a test module).

python registry_worker.py register REGISTRY_URI ARTIFACT_URI GO_FILE COUNT
    wait until GO_FILE exists (so every child opens the registry at the same moment),
    then register a tiny model COUNT times; print the version numbers as JSON.

python registry_worker.py hang REGISTRY_URI ARTIFACT_URI MARKER_FILE
    register once, but stop for good between storing the artifact and publishing it,
    after writing the version number to MARKER_FILE; the test then SIGKILLs us.

python registry_worker.py hang-upload REGISTRY_URI ARTIFACT_URI MARKER_FILE
    the same, but stop in the middle of the upload to an S3 store: after its first file
    is stored and before the rest and the completion marker.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from modelport.registry import Registry


def _model() -> tuple[LogisticRegression, np.ndarray]:
    features = np.random.default_rng(0).normal(size=(20, 3))
    return LogisticRegression().fit(features, features[:, 0] > 0), features[:2]


def register(registry_uri: str, artifact_uri: str, go_file: str, count: int) -> None:
    model, example = _model()
    deadline = time.monotonic() + 60
    while not Path(go_file).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    with Registry(registry_uri=registry_uri, artifact_uri=artifact_uri) as registry:
        versions = [
            registry.register("churn", model, input_example=example).version for _ in range(count)
        ]
    sys.stdout.write(json.dumps(versions))


def hang(registry_uri: str, artifact_uri: str, marker: str) -> None:
    model, example = _model()
    registry = Registry(registry_uri=registry_uri, artifact_uri=artifact_uri)

    def stop_before_publishing(name: str, version: int, **kwargs: object) -> None:
        Path(marker).write_text(str(version))
        time.sleep(600)

    setattr(registry._store, "mark_version_ready", stop_before_publishing)  # noqa: B010
    registry.register("churn", model, input_example=example)


def hang_upload(registry_uri: str, artifact_uri: str, marker: str) -> None:
    model, example = _model()
    registry = Registry(registry_uri=registry_uri, artifact_uri=artifact_uri)
    store = registry.artifacts
    upload = store._upload  # type: ignore[attr-defined]  # S3ArtifactStore's, one file

    def stop_after_one_file(name: str, file: Path) -> str:
        uploaded: str = upload(name, file)
        Path(marker).write_text(name)
        time.sleep(600)
        return uploaded

    setattr(store, "_upload", stop_after_one_file)  # noqa: B010
    registry.register("churn", model, input_example=example)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "register":
        register(args[0], args[1], args[2], int(args[3]))
    elif mode == "hang-upload":
        hang_upload(args[0], args[1], args[2])
    else:
        hang(args[0], args[1], args[2])
