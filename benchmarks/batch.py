"""Batch scoring throughput and memory, against in-memory predict and a hand-written script.

One run: 1 M rows x 20 float32 features in one Parquet file (plus a ``row_id``), through a
LogisticRegression and a HistGradientBoostingClassifier(max_iter=100), each:

- in memory: ``model.predict(X)`` on the whole array already loaded (the ceiling);
- a hand-written script: ``pd.read_parquet`` -> ``model.predict`` -> ``to_parquet``;
- ``modelport.batch.score`` with the local engine and with the Ray engine on a local Ray
  instance (50,000-row chunks, the default);
- the ``modelport batch`` command (``modelport.cli.main``) with the local engine: the command
  sets Arrow's allocator settings (``MIMALLOC_*``) before pyarrow loads, and
  ``modelport.batch.score`` in a plain Python process runs without them.

Each measurement runs in a fresh process, ``--repeat`` times (default 3), and the median is
reported: on a shared two-core machine one run can be 20% off. Rows/s is measured inside the
process, from loading the model to the last row written (interpreter start and library
imports excluded for both: pandas, pyarrow and scikit-learn for the script, the same and
skops for modelport; for in-memory, the ``predict`` call alone); memory is the process's peak
RSS (``VmHWM``) and what the job added to the RSS it had after its imports.
For the command, "after its imports" is once ``modelport.batch``, pyarrow, skops and
scikit-learn are loaded, as for the others. ``--memory`` runs only the script and the two
local modelport paths, whose memory it compares (no in-memory ceiling, no Ray).
Run: ``.venv/bin/python benchmarks/batch.py [--rows 1000000] [--repeat 3] [--memory]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import modelport

MEMORY = """
def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
"""

SCRIPT = (
    MEMORY
    + """
import json, sys, time
import joblib, pandas as pd, pyarrow.parquet, sklearn.ensemble, sklearn.linear_model
base = rss_mb("VmRSS")
start = time.perf_counter()
model = joblib.load(sys.argv[1])
frame = pd.read_parquet(sys.argv[2])
features = frame.drop(columns="row_id").to_numpy()
out = pd.DataFrame({"row_id": frame["row_id"], "predictions": model.predict(features)})
out.to_parquet(sys.argv[3])
seconds = time.perf_counter() - start
peak = rss_mb("VmHWM")
print(json.dumps({"seconds": seconds, "peak_mb": peak, "job_mb": peak - base}))
"""
)

ENGINE = (
    MEMORY
    + """
import json, sys, time
import shutil
import modelport, pyarrow.parquet, skops.io, sklearn.ensemble, sklearn.linear_model
from modelport import batch
shutil.rmtree(sys.argv[4], ignore_errors=True)  # a fresh job each run, not a resumed one
settings = modelport.Settings(home=sys.argv[1])
base = rss_mb("VmRSS")
start = time.perf_counter()
result = batch.score(sys.argv[2], sys.argv[3], sys.argv[4], id_columns=["row_id"],
                     engine=sys.argv[5], settings=settings)
seconds = time.perf_counter() - start
assert result.status == "succeeded", result.error
peak = rss_mb("VmHWM")
print(json.dumps({"seconds": seconds, "peak_mb": peak, "job_mb": peak - base}))
"""
)

# The command, run as the ``modelport`` entry point runs it. Its imports happen inside
# ``main``, after it set the allocator settings, so the RSS "after the imports" is taken by a
# finder that marks the moment ``modelport.batch`` is loaded, and imports there what the other
# plans import before they start (loading pyarrow earlier would bypass the command's settings).
CLI = (
    MEMORY
    + """
import importlib.util, json, shutil, sys, time
from modelport.cli import main
shutil.rmtree(sys.argv[4], ignore_errors=True)
mark = {}
class Mark:
    def find_spec(self, name, path, target=None):
        if name != "modelport.batch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module
        def exec_module(module):
            load(module)
            import pyarrow.parquet, skops.io, sklearn.ensemble, sklearn.linear_model
            mark["base"], mark["start"] = rss_mb("VmRSS"), time.perf_counter()
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Mark())
argv = ["--home", sys.argv[1], "batch", sys.argv[2], sys.argv[3], sys.argv[4],
        "--id-column", "row_id", "--engine", sys.argv[5]]
try:
    main(argv)
except SystemExit as exc:
    assert not exc.code, exc.code
seconds = time.perf_counter() - mark["start"]
peak = rss_mb("VmHWM")
print(json.dumps({"seconds": seconds, "peak_mb": peak, "job_mb": peak - mark["base"]}))
"""
)


IN_MEMORY = (
    MEMORY
    + """
import json, sys, time
import joblib, pandas as pd, pyarrow.parquet, sklearn.ensemble, sklearn.linear_model
model = joblib.load(sys.argv[1])
features = pd.read_parquet(sys.argv[2]).drop(columns="row_id").to_numpy()
start = time.perf_counter()
model.predict(features)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": rss_mb("VmHWM"), "job_mb": 0}))
"""
)


# The environment without allocator settings: the hand-written script runs without them,
# as it would on its own (the command sets its own).
_PLAIN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}


def run(code: str, *args: str, plain: bool = False) -> dict[str, float]:
    """Run ``code`` once in a fresh process; the figures it printed."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_PLAIN_ENV if plain else None,
    )
    if done.returncode != 0:
        sys.exit(done.stderr)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="only the script, modelport local and the modelport command (no in-memory, no Ray)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50_000, 20)).astype(np.float32)
    target = (train[:, 0] + train[:, 1] ** 2 - train[:, 2] > 0.5).astype(np.int64)
    models = {
        "LogisticRegression": LogisticRegression(max_iter=500).fit(train, target),
        "HistGradientBoosting": HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(
            train, target
        ),
    }
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        source = tmp / "rows.parquet"
        writer = None
        for start in range(0, args.rows, 100_000):
            n = min(100_000, args.rows - start)
            block = rng.normal(size=(n, 20)).astype(np.float32)
            frame = pd.DataFrame(block, columns=[f"f{i}" for i in range(20)])
            frame.insert(0, "row_id", np.arange(start, start + n))
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(source, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()
        home = tmp / "home"
        print(f"{args.rows:,} rows x 20 float32 features, {source.stat().st_size / 2**20:.0f} MB")
        for name, model in models.items():
            with modelport.Registry(modelport.Settings(home=home)) as registry:
                registry.register(name.lower(), model, input_example=train[:5])
            joblib.dump(model, tmp / f"{name}.joblib")
            model_file, ref = str(tmp / f"{name}.joblib"), name.lower()
            plans = {
                "in-memory": (IN_MEMORY, (model_file, str(source)), True),
                "hand-written script": (
                    SCRIPT,
                    (model_file, str(source), str(tmp / "s.parquet")),
                    True,
                ),
                "modelport local": (
                    ENGINE,
                    (str(home), ref, str(source), str(tmp / "l.parquet"), "local"),
                    False,
                ),
                "modelport command": (
                    CLI,
                    (str(home), ref, str(source), str(tmp / "c.parquet"), "local"),
                    True,
                ),
            }
            if args.memory:
                del plans["in-memory"]
            runs: dict[str, list[dict[str, float]]] = {label: [] for label in plans}
            for _ in range(args.repeat):  # interleaved, so a slow spell hits all of them
                for label, (code, argv, plain) in plans.items():
                    runs[label].append(run(code, *argv, plain=plain))
            results = {label: median(runs[label]) for label in plans}
            script = results["hand-written script"]
            s_rate = args.rows / script["seconds"]
            print(f"\n{name}")
            memory_rate = None
            if "in-memory" in results:
                memory_rate = args.rows / results.pop("in-memory")["seconds"]
                rates = sorted(args.rows / r["seconds"] / 1e6 for r in runs["in-memory"])
                print(
                    f"  in-memory predict   {memory_rate / 1e6:6.2f} M rows/s "
                    f"[{rates[0]:.2f}-{rates[-1]:.2f}]"
                )
            if not args.memory:
                results["modelport ray"] = run(
                    ENGINE, str(home), ref, str(source), str(tmp / "r.parquet"), "ray"
                )
            for label, mem in results.items():
                rate = args.rows / mem["seconds"]
                spread = ""
                if label in runs and len(runs[label]) > 1:
                    rates = sorted(args.rows / r["seconds"] / 1e6 for r in runs[label])
                    spread = f" [{rates[0]:.2f}-{rates[-1]:.2f}]"
                ceiling = "" if memory_rate is None else f", {rate / memory_rate:4.2f}x in-memory"
                print(
                    f"  {label:<19} {rate / 1e6:6.2f} M rows/s{spread} "
                    f"({rate / s_rate:4.2f}x script{ceiling})  peak {mem['peak_mb']:5.0f} MB "
                    f"(job +{mem['job_mb']:.0f} MB, {mem['job_mb'] / script['job_mb']:4.2f}x "
                    "the script's)"
                )


if __name__ == "__main__":
    main()
