"""The `make demo` tour: train a small churn model, register it, alias it, load it, predict.

Everything lives under ./.demo (registry.db + artifacts/), so the demo never touches
~/.modelport and can be run again and again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelport

DEMO = Path(__file__).resolve().parent.parent / ".demo"


def make_churn_data(n: int = 5000, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic customers: churn rises with support calls and falls with tenure."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 72, n).astype(np.float64),
            "monthly_spend": rng.gamma(4.0, 15.0, n),
            "support_calls": rng.poisson(1.5, n).astype(np.float64),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    logit = (
        -1.0
        - 0.05 * frame["tenure_months"]
        + 0.8 * frame["support_calls"]
        + 0.01 * frame["monthly_spend"]
        + frame["plan"].map({"basic": 0.6, "plus": 0.0, "pro": -0.7})
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame, churned


def train(frame: pd.DataFrame, y: np.ndarray) -> Pipeline:
    numeric = ["tenure_months", "monthly_spend", "support_calls"]
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), numeric),
                        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    return pipe.fit(frame, y)


def cli(*args: str) -> None:
    print(f"\n$ modelport {' '.join(args)}", flush=True)
    exe = Path(sys.executable).with_name("modelport")
    subprocess.run([str(exe), *args], check=True, env={**os.environ, "MODELPORT_HOME": str(DEMO)})


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    frame, y = make_churn_data()
    x_train, x_test, y_train, y_test = train_test_split(frame, y, test_size=0.2, random_state=0)
    model = train(x_train, y_train)
    accuracy = float((model.predict(x_test) == y_test).mean())
    print(f"trained a churn model: accuracy {accuracy:.3f} on {len(x_test)} held-out rows")

    registry = modelport.Registry(modelport.Settings(home=DEMO))
    version = registry.register(
        "churn",
        model,
        input_example=x_train.head(5),
        reference_data=x_train,
        metrics={"accuracy": accuracy},
        description="demo churn model",
    )
    registry.set_alias("churn", "production", version.version)
    registry.close()
    print(f"registered churn/{version.version} and pointed churn@production at it")

    loaded = modelport.load("churn@production", settings=modelport.Settings(home=DEMO))
    predictions = loaded.predict(x_test)
    assert (predictions == model.predict(x_test)).all()
    print(f"loaded churn@production in-process: {len(predictions)} predictions match the original")

    rows = DEMO / "rows.csv"
    x_test.head(3).to_csv(rows, index=False)
    cli("models")
    cli("versions", "churn")
    cli("alias", "history", "churn", "production")
    cli("predict", "churn@production", "--input", str(rows))
    serve_and_show(x_test.head(2))


PORT = int(os.environ.get("DEMO_PORT", "8000"))


def serve_and_show(rows: pd.DataFrame) -> None:
    """Start `modelport serve`, prove the curl lines work, then keep serving until Ctrl-C."""
    exe = Path(sys.executable).with_name("modelport")
    env = {**os.environ, "MODELPORT_HOME": str(DEMO)}
    server = subprocess.Popen([str(exe), "serve", "churn@production", "--port", str(PORT)], env=env)
    url = f"http://127.0.0.1:{PORT}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        v2 = {"inputs": [
            {"name": c, "shape": [2], "datatype": "BYTES" if c == "plan" else "FP64",
             "data": rows[c].tolist()} for c in rows.columns]}  # fmt: skip
        tf = {"instances": rows.to_dict(orient="records")}
        mlflow = {"dataframe_split": rows.to_dict(orient="split")}
        for path, body in (("/v2/models/churn/infer", v2), ("/v1/models/churn:predict", tf),
                           ("/invocations", mlflow)):  # fmt: skip
            text = json.dumps(body)
            print(f"\n$ curl -s {url}{path} -H 'Content-Type: application/json' -d '{text}'")
            print(httpx.post(f"{url}{path}", content=text,
                             headers={"Content-Type": "application/json"}).text)  # fmt: skip
        print(f"\nserving churn@production at {url} (docs: {url}/docs); Ctrl-C to stop")
        if os.environ.get("DEMO_NO_WAIT"):
            return
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
