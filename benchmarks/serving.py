"""Serving throughput and latency, as ratios to a hand-written FastAPI endpoint and in-process.

One run measures, for a LogisticRegression on 20 float features
(``make_classification(n_samples=5000, n_features=20, random_state=0)``):

- the in-process ``predict`` rate (calls/s, 1 and 256 rows);
- a minimal hand-written FastAPI + uvicorn endpoint that calls ``predict``;
- ``modelport serve`` (V2 JSON; binary tensors for 256 rows), batching on and off, 1 and 2 workers,
  with the JSON access log (the default) and, once, without it;

Like the FastAPI endpoint, which returns ``predictions`` only, the V2 requests ask for the
``predictions`` output only (V2 returns every output by default: here also ``probabilities``).

with ``wrk`` (Debian package) pinned to core 0 and the server pinned to core 1 (``taskset``).
Run: ``.venv/bin/python benchmarks/serving.py [--seconds 10]``. Needs ``wrk`` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.serving.codecs import v2 as codec

FASTAPI_APP = """
import joblib, numpy as np
from fastapi import FastAPI, Request
model = joblib.load({model_path!r})
app = FastAPI()

@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    x = np.asarray(body["instances"], dtype=np.float32)
    return {{"predictions": model.predict(x).tolist()}}
"""

LUA = """
wrk.method = "POST"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
{headers}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def wrk(
    url: str, body: bytes, headers: dict[str, str], conns: int, seconds: int, tmp: Path
) -> tuple[float, float]:
    """(requests/s, p99 ms) from wrk on core 0."""
    body_file = tmp / f"body-{len(body)}-{abs(hash(tuple(headers.items())))}.bin"
    body_file.write_bytes(body)
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = tmp / "post.lua"
    script.write_text(LUA.format(body=body_file, headers=lines))
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests against {url}")
    return rps, float(p99.group(1)) * scale


def rate(call: object, seconds: float = 2.0) -> float:
    fn = call  # a zero-argument callable
    fn()  # type: ignore[operator]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()  # type: ignore[operator]
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    x, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    x = x.astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(x, y)
    rows = {1: x[:1], 256: x[:256]}
    results: list[tuple[str, int, int, float, float]] = []

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        with modelport.Registry(modelport.Settings(home=home)) as registry:
            registry.register("bench", model, input_example=x[:5])
        loaded = modelport.load("bench", settings=modelport.Settings(home=home))
        in_process = {n: rate(lambda r=r: loaded.predict(r)) for n, r in rows.items()}
        raw = {n: rate(lambda r=r: model.predict(r)) for n, r in rows.items()}

        import joblib

        joblib.dump(model, tmp / "model.joblib")
        (tmp / "fastapi_app.py").write_text(
            FASTAPI_APP.format(model_path=str(tmp / "model.joblib"))
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
        env["MODELPORT_HOME"] = str(home)
        exe_dir = Path(sys.executable).parent

        def run_server(
            label: str,
            cmd: list[str],
            url: str,
            cases: list[tuple[str, int, bytes, dict[str, str]]],
        ) -> None:
            process = subprocess.Popen(
                ["taskset", "-c", "1", *cmd],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_ready("http://" + url.split("/")[2] + "/", process)
                for tag, n, body, headers in cases:
                    for conns in (1, 32):
                        rps, p99 = wrk(url, body, headers, conns, args.seconds, tmp)
                        results.append((label + tag, n, conns, rps, p99))
                        print(
                            f"{label + tag:<34}{n:>5} rows c={conns:<3}"
                            f"{rps:>10.0f} req/s  p99 {p99:7.2f} ms",
                            flush=True,
                        )
            finally:
                process.terminate()
                process.wait()

        port = free_port()
        fastapi_cases = [
            (
                "",
                n,
                json.dumps({"instances": r.tolist()}).encode(),
                {"Content-Type": "application/json"},
            )
            for n, r in rows.items()
        ]
        run_server(
            "hand-written FastAPI",
            [
                str(exe_dir / "uvicorn"),
                "fastapi_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            f"http://127.0.0.1:{port}/predict",
            fastapi_cases,
        )
        v2_cases = []
        for n, r in rows.items():
            body, headers = codec.encode_request({"input": r}, outputs=["predictions"])
            v2_cases.append(("", n, body, headers))
        binary_body, binary_headers = codec.encode_request(
            {"input": rows[256]}, outputs=["predictions"], binary=True, binary_outputs=True
        )
        for workers, batching, access_log in (
            (1, True, True),
            (1, True, False),
            (1, False, True),
            (2, True, True),
            (2, False, True),
        ):
            port = free_port()
            label = f"modelport w={workers} batching={'on' if batching else 'off'}"
            label += "" if access_log else " no-log"
            cmd = [
                str(exe_dir / "modelport"),
                "serve",
                "bench",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--batching" if batching else "--no-batching",
                "--access-log" if access_log else "--no-access-log",
            ]
            cases = (
                [*v2_cases, (" binary", 256, binary_body, binary_headers)]
                if workers == 1 and batching and access_log
                else v2_cases
            )
            run_server(label, cmd, f"http://127.0.0.1:{port}/v2/models/bench/infer", cases)

    print(
        f"\nin-process modelport predict: {in_process[1]:.0f} calls/s (1 row), "
        f"{in_process[256]:.0f} calls/s (256 rows = {in_process[256] * 256:.0f} rows/s); "
        f"raw model.predict {raw[1]:.0f} / {raw[256]:.0f} calls/s"
    )
    base = {(n, c): rps for label, n, c, rps, _ in results if label.startswith("hand")}
    print("\nratios to the hand-written FastAPI endpoint (same rows, same concurrency):")
    for label, n, c, rps, p99 in results:
        print(f"{label:<34}{n:>5} rows c={c:<3} {rps / base[(n, c)]:5.2f}x  p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
