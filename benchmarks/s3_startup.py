"""Time from ``modelport serve`` start to ready for a ~50 MB artifact: local folder, S3 cold
(an empty host cache) and S3 from the host cache.

One run: a scikit-learn MLP whose weights make a ~50 MB skops file is registered twice, in
a registry whose artifacts are a local folder and in one whose artifacts are in S3 (moto's
standalone server, a process on a free loopback port). Then, ``--repeat`` times, interleaved
so that the machine's drift hits all three alike:

- **local**: ``modelport serve big`` on the local folder;
- **S3 cold**: the host cache (``MODELPORT_CACHE_DIR``) emptied first, so the artifact is
  downloaded, checked against the registry's SHA-256 and renamed into the cache;
- **S3 cached**: the same cache kept, so the copy is only checked.

Each is timed from the process start to the first ``200`` from ``/v2/health/ready`` (the
model loaded), then stopped with SIGTERM. Printed: the median and the range of each, and each
median as a ratio to the local folder's. moto is on loopback and keeps objects in memory, so
"cold" here is the cost of the S3 protocol and the checks, not of a network: add the
transfer time of your link (50 MB at 1 Gbit/s is about 0.4 s).

Run: ``.venv/bin/python benchmarks/s3_startup.py [--repeat 5] [--megabytes 50]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from _procs import free_port, seconds_until
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

import modelport

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto(log: Path) -> Iterator[str]:
    """moto's S3 server on a free port; its endpoint."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIALS},
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"moto_server did not start; see {log}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


def big_model(megabytes: int) -> tuple[MLPRegressor, np.ndarray]:
    """An MLP with one hidden layer sized so its artifact takes about ``megabytes``: the
    float64 weights, and the optimizer's three arrays of the same shape that skops keeps."""
    features = 200
    hidden = megabytes * 1024**2 // 8 // (features + 1) // 4
    x = np.random.default_rng(0).normal(size=(64, features))
    model = MLPRegressor(hidden_layer_sizes=(hidden,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, x[:, 0])  # one step: the weights, not the fit, are the point
    return model, x[:1]


def time_to_ready(env: dict[str, str], log: Path) -> float:
    """Seconds from starting ``modelport serve big`` to its first ready answer."""

    def ready(client: httpx.Client, url: str) -> bool:
        return client.get(f"{url}/v2/health/ready").status_code == 200

    return seconds_until(["big"], env, log, ready, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mp-s3-bench-") as tmp:
        root = Path(tmp)
        with moto(root / "moto.log") as endpoint:
            aws = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
            os.environ.update(aws)
            import boto3

            boto3.client("s3").create_bucket(Bucket="bench")
            model, example = big_model(args.megabytes)
            base = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
            local_home, s3_home = root / "local", root / "s3"
            with modelport.Registry(modelport.Settings(home=local_home)) as registry:
                version = registry.register("big", model, input_example=example)
            artifact = local_home / "artifacts" / version.artifact_key
            size = sum(f.stat().st_size for f in artifact.rglob("*") if f.is_file())
            s3_env = {"MODELPORT_ARTIFACT_URI": "s3://bench/prod"}
            with modelport.Registry(
                modelport.Settings(home=s3_home), artifact_uri=s3_env["MODELPORT_ARTIFACT_URI"]
            ) as registry:
                registry.register("big", model, input_example=example)
            print(f"artifact: {size / 1024**2:.1f} MiB; {args.repeat} rounds, interleaved")

            cache = s3_home / "cache"
            runs: dict[str, list[float]] = {"local": [], "S3 cold": [], "S3 cached": []}
            for _ in range(args.repeat):
                runs["local"].append(
                    time_to_ready({**base, "MODELPORT_HOME": str(local_home)}, root / "l.log")
                )
                shutil.rmtree(cache, ignore_errors=True)
                env = {**base, **aws, **s3_env, "MODELPORT_HOME": str(s3_home)}
                runs["S3 cold"].append(time_to_ready(env, root / "s.log"))
                runs["S3 cached"].append(time_to_ready(env, root / "s.log"))

    local = statistics.median(runs["local"])
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        print(
            f"{name:>10}: median {median:.2f} s (range {min(seconds):.2f}-{max(seconds):.2f}), "
            f"{median / local:.2f}x the local folder"
        )


if __name__ == "__main__":
    main()
