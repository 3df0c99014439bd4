"""What bounding request heads costs: the same modelport app under uvicorn's httptools protocol
and under modelport's head-limited subclass of it, in one run, as a ratio.

The app serves a LogisticRegression (20 float features); ``wrk`` sends 1-row V2 JSON requests
at 32 connections, pinned to core 0 with the server on core 1 (``taskset``). The two protocols
alternate ``--repeat`` times and the medians are compared.

Run: ``.venv/bin/python benchmarks/head_limits.py [--seconds 5] [--repeat 3]``. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport

SERVER = """
import sys, uvicorn
from modelport.config import Settings
from modelport.serving.app import create_app
from modelport.serving.deployment import ModelSpec
from modelport.serving._http_limits import HeadLimits, protocol_factory

home, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = Settings(home=home)
settings.serving.access_log = False
http = "httptools" if mode == "plain" else protocol_factory(HeadLimits(65536, 16384))
app = create_app(settings, [ModelSpec(ref="churn")])
uvicorn.run(app, port=port, http=http, loop="uvloop", log_level="warning")
"""

LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rate(home: Path, mode: str, seconds: int, script: Path) -> float:
    port = _free_port()
    runner = home / "server.py"
    runner.write_text(textwrap.dedent(SERVER))
    server = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, str(runner), str(home), str(port), mode]
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v2/models/churn/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        out = subprocess.run(
            ["taskset", "-c", "0", "wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script),
             f"{url}/v2/models/churn/infer"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert match, out
        return float(match.group(1))
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per protocol, alternating")
    args = parser.parse_args()
    x, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    x = x.astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        with modelport.Registry(modelport.Settings(home=home)) as registry:
            registry.register("churn", LogisticRegression().fit(x, y), input_example=x[:3])
        body = {
            "inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32",
                        "data": x[0].tolist()}],
            "outputs": [{"name": "predictions"}],
        }  # fmt: skip
        script = home / "post.lua"
        script.write_text(LUA.format(body=json.dumps(body)))
        rates: dict[str, list[float]] = {"plain": [], "limited": []}
        for _ in range(args.repeat):
            for mode in rates:
                rates[mode].append(_rate(home, mode, args.seconds, script))
    plain, limited = (statistics.median(rates[m]) for m in ("plain", "limited"))
    print(json.dumps({"requests_per_s": rates, "median_plain": plain,
                      "median_limited": limited, "ratio": round(limited / plain, 3),
                      "cpu_count": os.cpu_count()}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
