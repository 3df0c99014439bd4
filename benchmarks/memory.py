"""Server memory and load time: ``modelport serve`` beside a hand-written FastAPI app.

One run starts, for each Python interpreter given (``--python``, repeatable; the with-torch case
is a virtualenv with PyTorch installed), each of these servers ``--rounds`` times, interleaved,
on a LogisticRegression on 20 float features
(``make_classification(n_samples=5000, n_features=20, random_state=0)``):

- ``fastapi``: a hand-written FastAPI + uvicorn app that loads the model with ``joblib.load``;
- ``modelport``: ``modelport serve bench`` (the model registered, saved with skops);
- ``modelport-walk``: the same, with the sklearn flavor's stand-in for skops's trust-list module
  replaced by an empty module under another name, so that skops imports its own, which walks
  scikit-learn with ``all_estimators()`` while the model loads (what every load did before the
  stand-in, commit ca0fad8).

For each it measures:

- ``ready``: seconds from starting the process to its first answered prediction;
- ``load``: the server's own figure for loading the model: modelport's ``load_seconds``
  (reading and checking the artifact, importing scikit-learn and skops, unpickling); for the
  FastAPI app ``import joblib`` + ``joblib.load`` (which imports scikit-learn), timed after
  FastAPI and numpy are imported;
- resident memory (VmRSS, in MiB): ``start``, the server process just before it loads the model
  (its web framework and code imported); ``ready``, the process and its children once the first
  prediction is answered; ``after``, the same after 1000 one-row and 100 256-row requests, and
  of it the anonymous (RssAnon: private) part. The rest is pages of the files the process maps
  (its shared libraries), which other processes share and which vary with the page cache: the
  same libraries in two virtualenvs have measured 37 MB apart.

``start`` is read inside the server: the FastAPI app reads it before ``import joblib``; modelport
runs as ``python -c`` calling the CLI's ``main`` (what the ``modelport`` script does) with
``ModelManager.start``, which loads the models, wrapped to read it first. With ``--workers N``
(N > 1) the servers run as plain ``modelport serve`` / ``uvicorn --workers N``, the workers are
other processes, and ``start`` is not measured; ``ready`` and ``after`` sum the workers.

Each server runs pinned to core 1 (``taskset``) where there is one. The run prints every sample,
then medians with their ranges and ratios to the FastAPI app (on the same interpreter).

Run: ``.venv/bin/python benchmarks/memory.py [--rounds 5] [--python /tmp/torchvenv/bin/python]``
(each interpreter needs modelport, scikit-learn, skops, fastapi and uvicorn; the current one is
always measured). ``--kinds fastapi,modelport`` starts only those (``--workers 2`` needs it:
the walk's change is made in the one server process).
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
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import numpy as np
from _procs import free_port
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import modelport

VMRSS = """
def vmrss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
"""
FASTAPI_APP = (
    VMRSS
    + """
import time
import numpy as np
from fastapi import FastAPI, Request
START_RSS_MB = vmrss_mb()
_start = time.perf_counter()
import joblib
model = joblib.load({model_path!r})
LOAD_SECONDS = time.perf_counter() - _start
app = FastAPI()

@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    x = np.asarray(body["instances"], dtype=np.float32)
    return {{"predictions": model.predict(x).tolist()}}

@app.get("/stats")
def stats():
    return {{"load_seconds": LOAD_SECONDS, "start_rss_mb": START_RSS_MB}}
"""
)
# modelport serve as the ``modelport`` script runs it, with the model loading wrapped to note the
# process's RSS in $BENCH_START_RSS first; {walk} is empty or WALK.
MODELPORT = (
    VMRSS
    + """
import os, sys
from modelport.cli import main
from modelport.serving.manager import ModelManager
{walk}
_start_models = ModelManager.start

async def start(self):
    with open(os.environ["BENCH_START_RSS"], "w") as out:
        out.write(str(vmrss_mb()))
    await _start_models(self)

ModelManager.start = start
sys.argv[0] = "modelport"
main()
"""
)
# The flavor's stand-in for skops.io._trusted_types becomes an empty module under another name:
# skops imports its own module, which runs all_estimators() (benchmark only: private names).
WALK = """
import types
from modelport.flavors import sklearn as flavor
flavor.SKOPS_DEFAULTS = "modelport_bench.unused"
flavor.skops_defaults = lambda: types.ModuleType(flavor.SKOPS_DEFAULTS)
"""
KINDS = ("fastapi", "modelport", "modelport-walk")
ONE_ROW_REQUESTS = 1000
BATCH_REQUESTS = 100


@dataclass
class Sample:
    ready_s: float
    load_s: float
    rss_start_mb: float | None
    rss_ready_mb: float
    rss_after_mb: float
    anon_after_mb: float


def tree_rss_mb(root: int, field: str = "VmRSS") -> float:
    """``field`` of /proc/PID/status (VmRSS, RssAnon) summed over ``root`` and its descendants,
    in MiB."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields["PPid"])
        rss[int(entry.name)] = int(fields.get(field, "0 kB").split()[0])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree) / 1024


def describe(python: str) -> str:
    """``with torch 2.13.0+cpu`` or ``without torch``, as that interpreter sees it."""
    check = (
        "import importlib.metadata as m\n"
        "try: print('with torch ' + m.version('torch'))\n"
        "except m.PackageNotFoundError: print('without torch')"
    )
    result = subprocess.run([python, "-c", check], capture_output=True, text=True, check=True)
    return result.stdout.strip()


class Bench:
    def __init__(self, tmp: Path, x: np.ndarray, workers: int) -> None:
        self.tmp = tmp
        self.workers = workers
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
        self.env["MODELPORT_HOME"] = str(tmp / "home")
        self.one = x[:1]
        self.batch = x[:256]
        self.pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []

    def command(self, python: str, kind: str, port: int) -> list[str]:
        if kind == "fastapi":
            app = ["-m", "uvicorn", "fastapi_app:app", "--port", str(port)]
            workers = ["--workers", str(self.workers)] if self.workers > 1 else []
            return [python, *app, "--log-level", "warning", *workers]
        serve = ["serve", "bench", "--port", str(port), "--no-access-log"]
        if self.workers > 1:
            if kind == "modelport-walk":
                raise SystemExit("modelport-walk needs one worker (its change is in-process)")
            return [
                str(Path(python).with_name("modelport")),
                *serve,
                "--workers",
                str(self.workers),
            ]
        script = MODELPORT.format(walk=WALK if kind == "modelport-walk" else "")
        return [python, "-c", script, *serve]

    def request(self, kind: str, rows: np.ndarray) -> tuple[str, dict[str, object]]:
        if kind == "fastapi":
            return "/predict", {"instances": rows.tolist()}
        tensor = {
            "name": "input",
            "shape": list(rows.shape),
            "datatype": "FP32",
            "data": rows.ravel().tolist(),
        }
        return "/v2/models/bench/infer", {"inputs": [tensor], "outputs": [{"name": "predictions"}]}

    def measure(self, python: str, kind: str) -> Sample:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        path, first = self.request(kind, self.one)
        log = self.tmp / f"{kind}-{port}.log"
        start_rss = self.tmp / f"{kind}-{port}.rss"
        env = {**self.env, "BENCH_START_RSS": str(start_rss)}
        with log.open("wb") as out:
            start = time.perf_counter()
            process = subprocess.Popen(
                [*self.pin, *self.command(python, kind, port)],
                cwd=self.tmp,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                ready_s = self.wait_ready(client, process, path, first, start, log)
                rss_ready = tree_rss_mb(process.pid)
                rss_start: float | None = None
                if kind == "fastapi":
                    stats = client.get("/stats").json()
                    load_s = float(stats["load_seconds"])
                    rss_start = float(stats["start_rss_mb"]) if self.workers == 1 else None
                else:
                    load_s = float(client.get("/v2/models/bench").json()["load_seconds"])
                    if self.workers == 1:
                        rss_start = float(start_rss.read_text())
                for rows, count in ((self.one, ONE_ROW_REQUESTS), (self.batch, BATCH_REQUESTS)):
                    path, body = self.request(kind, rows)
                    for _ in range(count):
                        client.post(path, json=body).raise_for_status()
                rss_after = tree_rss_mb(process.pid)
                anon_after = tree_rss_mb(process.pid, "RssAnon")
        finally:
            process.terminate()
            process.wait(timeout=60)
        return Sample(ready_s, load_s, rss_start, rss_ready, rss_after, anon_after)

    @staticmethod
    def wait_ready(
        client: httpx.Client,
        process: subprocess.Popen[bytes],
        path: str,
        body: dict[str, object],
        start: float,
        log: Path,
    ) -> float:
        """Seconds from the start of the process to its first answered prediction."""
        while time.perf_counter() - start < 300:
            if process.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()[-2000:]}")
            try:
                if client.post(path, json=body).status_code == 200:
                    return time.perf_counter() - start
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"no answer after 300 s:\n{log.read_text()[-2000:]}")


def summary(values: list[float], unit: str, digits: int) -> str:
    med = statistics.median(values)
    return f"{med:.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def show(sample: Sample) -> str:
    start = "-" if sample.rss_start_mb is None else f"{sample.rss_start_mb:4.0f}"
    return (
        f"ready {sample.ready_s:5.2f} s  load {sample.load_s:5.2f} s"
        f"  RSS start {start} MB, ready {sample.rss_ready_mb:4.0f} MB,"
        f" after requests {sample.rss_after_mb:4.0f} MB (anonymous {sample.anon_after_mb:4.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="starts of each server")
    parser.add_argument("--python", action="append", default=[], help="another interpreter")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--kinds", default=",".join(KINDS), help="servers to start")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if "fastapi" not in kinds or set(kinds) - set(KINDS):
        parser.error(f"--kinds: some of {', '.join(KINDS)}, fastapi included")
    pythons = [sys.executable, *args.python]
    labels = {py: describe(py) for py in pythons}
    x, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    x = x.astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(x, y)
    results: dict[tuple[str, str], list[Sample]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with modelport.Registry(modelport.Settings(home=tmp / "home")) as registry:
            registry.register("bench", model, input_example=x[:5])
        joblib.dump(model, tmp / "model.joblib")
        (tmp / "fastapi_app.py").write_text(
            FASTAPI_APP.format(model_path=str(tmp / "model.joblib"))
        )
        bench = Bench(tmp, x, args.workers)
        for py in pythons:
            print(f"{labels[py]}: {py}")
        for round_ in range(args.rounds):
            for py in pythons:
                for kind in kinds:
                    sample = bench.measure(py, kind)
                    results.setdefault((py, kind), []).append(sample)
                    print(
                        f"round {round_ + 1} {labels[py]:<20} {kind:<15} {show(sample)}", flush=True
                    )
    print(f"\nmedians (ranges) over {args.rounds} rounds, workers={args.workers}:")
    for py in pythons:
        base = results[(py, "fastapi")]
        base_after = statistics.median(s.rss_after_mb for s in base)
        base_ready = statistics.median(s.ready_s for s in base)
        for kind in kinds:
            samples = results[(py, kind)]
            ready = [s.ready_s for s in samples]
            starts = [s.rss_start_mb for s in samples if s.rss_start_mb is not None]
            rss_start = f"  RSS start {summary(starts, 'MB', 0)}" if starts else ""
            after = [s.rss_after_mb for s in samples]
            print(
                f"{labels[py]:<20} {kind:<15} ready {summary(ready, 's', 2)}"
                f"  load {summary([s.load_s for s in samples], 's', 2)}{rss_start}"
                f"  RSS ready {summary([s.rss_ready_mb for s in samples], 'MB', 0)}"
                f"  after {summary(after, 'MB', 0)}"
                f" (anonymous {summary([s.anon_after_mb for s in samples], 'MB', 0)})"
                f"  vs fastapi: RSS after {statistics.median(after) / base_after:.2f}x"
                f" ready {statistics.median(ready) / base_ready:.2f}x"
            )


if __name__ == "__main__":
    main()
