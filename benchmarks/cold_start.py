"""Cold start: from starting ``modelport serve`` to its first successful inference.

What decides whether scale-to-zero (KServe's serverless mode, ``minReplicas: 0``) is usable
is how long the first request waits for a pod that was not running. This measures the part
modelport owns, outside any container: the interpreter starting, imports, opening the model,
loading and warming it, binding the port, answering one V2 inference. Two ways in:

- **folder**: ``modelport serve /path --name m``, an artifact folder with no registry entry,
  as KServe's storage initializer hands it (``STORAGE_URI``, ``/mnt/models``);
- **registry**: ``modelport serve m`` from the embedded SQLite registry and local folder.

The model is a scikit-learn LogisticRegression (20 features, skops). ``--repeat`` rounds,
the two interleaved; printed: the median and the range of each, and the time the server
itself reports for the model's load ("loaded in N s" in its log).

Run: ``.venv/bin/python benchmarks/cold_start.py [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
from pathlib import Path

import httpx
import numpy as np
from _procs import seconds_until
from sklearn.linear_model import LogisticRegression

import modelport

BODY = {"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": [0.5] * 20}]}


def first_answer(args: list[str], env: dict[str, str], name: str, log: Path) -> float:
    """Seconds from starting ``modelport serve ARGS`` to the first 200 from its infer route."""

    def answered(client: httpx.Client, url: str) -> bool:
        return client.post(f"{url}/v2/models/{name}/infer", json=BODY).status_code == 200

    return seconds_until(args, env, log, answered, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mp-cold-") as tmp:
        root = Path(tmp)
        x = np.random.default_rng(0).normal(size=(200, 20)).astype(np.float32)
        model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
        folder = root / "mnt" / "models"
        modelport.save(model, folder, input_example=x[:2])
        home = root / "home"
        with modelport.Registry(modelport.Settings(home=home)) as registry:
            registry.register("m", model, input_example=x[:2])
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
        env["MODELPORT_HOME"] = str(home)
        ways = {
            "folder (serve DIR --name m)": [str(folder), "--name", "m"],
            "registry (serve m)": ["m"],
        }
        runs: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.repeat):
            for way, argv in ways.items():
                runs[way].append(first_answer(argv, env, "m", root / "server.log"))
        log = (root / "server.log").read_text()
        loads = [float(v) for v in re.findall(r"\(loaded in ([0-9.]+) s\)", log)]
    print(f"{args.repeat} rounds, interleaved; a LogisticRegression of 20 features")
    for way, seconds in runs.items():
        print(
            f"{way:>28}: median {statistics.median(seconds):.2f} s "
            f"(range {min(seconds):.2f}-{max(seconds):.2f})"
        )
    if loads:
        print(f"{'model load (server log)':>28}: median {statistics.median(loads):.2f} s")


if __name__ == "__main__":
    main()
