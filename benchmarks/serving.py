"""Serving throughput and latency, as ratios to a hand-written FastAPI endpoint and in-process.

One run measures, for a LogisticRegression on 20 float features
(``make_classification(n_samples=5000, n_features=20, random_state=0)``):

- the in-process ``predict`` rate (calls/s, 1 and 256 rows);
- a minimal hand-written FastAPI + uvicorn endpoint that calls ``predict``;
- ``modelport serve`` (V2 JSON; binary tensors for 256 rows), batching on and off, 1 and 2 workers,
  with the JSON access log (the default) and, once, without it;
- what the prediction log costs: ``modelport serve`` (1 worker, batching, access log) at 1 row and
  32 connections with ``--log-sample-rate`` 0 (off), 0.1 and 1, interleaved (off, 10 %, 100 %,
  off, ...) for ``--log-rounds`` rounds, each server fresh; medians with their ranges, and the
  ratios of 10 % and 100 % to off, plus the server's CPU time per request (the ratio a core of
  its own would show, however busy the rest of the machine), its resident memory before and
  after the load, and how many sampled requests the log wrote and dropped.

Like the FastAPI endpoint, which returns ``predictions`` only, the V2 requests ask for the
``predictions`` output only (V2 returns every output by default: here also ``probabilities``).

with ``wrk`` (Debian package) pinned to core 0 and the server pinned to core 1 (``taskset``).
Run: ``.venv/bin/python benchmarks/serving.py [--seconds 10] [--log-rounds 3] [--only-log]
[--log-seconds 75]``. Needs ``wrk`` on PATH. ``--only-log`` runs the prediction-log part alone;
``--log-seconds`` sets its runs' length (past a minute, they include the server's periodic
drift and quality check over the log).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from _procs import free_port
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport
from modelport.monitoring.prediction_log import FLUSH_S
from modelport.protocol import v2_client as codec

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


def resident_mb(pid: int) -> float:
    """A process's resident memory (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, all its threads, user and system (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_counts(base_url: str) -> dict[str, float]:
    """The prediction log's sampled, written and dropped counters from ``/metrics``."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    counts = {}
    for kind in ("sampled", "written", "dropped"):
        found = re.search(rf"modelport_prediction_log_{kind}_total{{[^}}]*}} ([\d.e+]+)", text)
        counts[kind] = float(found.group(1)) if found else 0.0
    return counts


def spread(values: list[float], fmt: str = ".0f") -> str:
    """Median and range: ``8600 (8100-9000)``."""
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument(
        "--log-rounds", type=int, default=3, help="rounds of prediction log off / 10 %% / 100 %%"
    )
    parser.add_argument(
        "--only-log", action="store_true", help="measure the prediction log's cost only"
    )
    parser.add_argument(
        "--log-seconds",
        type=int,
        help="wrk duration of each prediction-log run (default: --seconds); past "
        "--monitor-interval-s (60 s) it includes the server's periodic drift and quality check",
    )
    args = parser.parse_args()
    if args.log_seconds is None:
        args.log_seconds = args.seconds
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
            conns_list: tuple[int, ...] = (1, 32),
            log_runs: list[dict[str, float]] | None = None,
        ) -> None:
            process = subprocess.Popen(
                ["taskset", "-c", "1", *cmd],
                env=env,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base_url = "http://" + url.split("/")[2]
            try:
                wait_ready(base_url + "/", process)
                before = resident_mb(process.pid)
                for tag, n, body, headers in cases:
                    for conns in conns_list:
                        cpu_start = cpu_seconds(process.pid)
                        seconds = args.seconds if log_runs is None else args.log_seconds
                        rps, p99 = wrk(url, body, headers, conns, seconds, tmp)
                        cpu = cpu_seconds(process.pid) - cpu_start
                        results.append((label + tag, n, conns, rps, p99))
                        print(
                            f"{label + tag:<34}{n:>5} rows c={conns:<3}"
                            f"{rps:>10.0f} req/s  p99 {p99:7.2f} ms",
                            flush=True,
                        )
                        if log_runs is not None:
                            time.sleep(2 * FLUSH_S)  # the log writer's last batch
                            log_runs.append(
                                {
                                    "rps": rps,
                                    "p99": p99,
                                    # CPU per request: what a core of its own would serve,
                                    # whatever else this machine runs meanwhile.
                                    "cpu_us": cpu / (rps * seconds) * 1e6,
                                    "rss_before": before,
                                    "rss_after": resident_mb(process.pid),
                                }
                                | log_counts(base_url)
                            )
            finally:
                process.terminate()
                process.wait()

        if not args.only_log:
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

        # The prediction log: off, 10 % and 100 % interleaved, a fresh server each time.
        log_body, log_headers = codec.encode_request({"input": rows[1]}, outputs=["predictions"])
        log_runs: dict[float, list[dict[str, float]]] = {0.0: [], 0.1: [], 1.0: []}
        for _ in range(args.log_rounds):
            for sample_rate, runs in log_runs.items():
                port = free_port()
                cmd = [
                    str(exe_dir / "modelport"),
                    "serve",
                    "bench",
                    "--port",
                    str(port),
                    "--log-sample-rate",
                    str(sample_rate),
                ]
                run_server(
                    f"modelport log {sample_rate:.0%}",
                    cmd,
                    f"http://127.0.0.1:{port}/v2/models/bench/infer",
                    [("", 1, log_body, log_headers)],
                    conns_list=(32,),
                    log_runs=runs,
                )

    if not args.only_log:
        summarize(results, in_process, raw)
    summarize_log(log_runs, args)


def summarize(
    results: list[tuple[str, int, int, float, float]],
    in_process: dict[int, float],
    raw: dict[int, float],
) -> None:
    """The in-process rates and each server's ratio to the hand-written endpoint."""
    print(
        f"\nin-process modelport predict: {in_process[1]:.0f} calls/s (1 row), "
        f"{in_process[256]:.0f} calls/s (256 rows = {in_process[256] * 256:.0f} rows/s); "
        f"raw model.predict {raw[1]:.0f} / {raw[256]:.0f} calls/s"
    )
    base = {(n, c): rps for label, n, c, rps, _ in results if label.startswith("hand")}
    print("\nratios to the hand-written FastAPI endpoint (same rows, same concurrency):")
    for label, n, c, rps, p99 in results:
        print(f"{label:<34}{n:>5} rows c={c:<3} {rps / base[(n, c)]:5.2f}x  p99 {p99:.2f} ms")


def summarize_log(log_runs: dict[float, list[dict[str, float]]], args: argparse.Namespace) -> None:
    """Off, 10 % and 100 %: medians (ranges) and the ratios to off, round by round."""
    print(
        f"\nprediction log, 1 row, 32 connections, {args.log_rounds} interleaved rounds of "
        f"{args.log_seconds} s (median, range):"
    )
    off = log_runs[0.0]
    for sample_rate, runs in log_runs.items():
        rps = [r["rps"] for r in runs]
        p99 = [r["p99"] for r in runs]
        cpu_us = [r["cpu_us"] for r in runs]
        growth = [r["rss_after"] - r["rss_before"] for r in runs]
        line = (
            f"  {sample_rate:>4.0%}: {spread(rps)} req/s, p99 {spread(p99, '.2f')} ms, "
            f"server CPU {spread(cpu_us, '.1f')} us/request, "
            f"memory after load +{spread(growth, '.1f')} MiB"
        )
        if sample_rate > 0:
            # Ratios within a round (the same minute of a shared machine), then their median.
            ratio = [r["rps"] / o["rps"] for r, o in zip(runs, off, strict=True)]
            p99_ratio = [r["p99"] / o["p99"] for r, o in zip(runs, off, strict=True)]
            cpu_ratio = [o["cpu_us"] / r["cpu_us"] for r, o in zip(runs, off, strict=True)]
            sampled = sum(r["sampled"] for r in runs)
            written = sum(r["written"] for r in runs)
            dropped = sum(r["dropped"] for r in runs)
            line += (
                f"\n        throughput {spread(ratio, '.2f')}x of off (by CPU per request "
                f"{spread(cpu_ratio, '.2f')}x), p99 {spread(p99_ratio, '.2f')}x of off; "
                f"sampled {sampled:.0f}, written {written:.0f}, dropped {dropped:.0f}"
            )
        print(line)


if __name__ == "__main__":
    main()
