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
from prometheus_client.parser import text_string_to_metric_families
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
    customers = DEMO / "customers.csv"
    x_test.assign(customer_id=range(len(x_test))).to_csv(customers, index=False)
    cli("batch", "churn@production", str(customers), str(DEMO / "scores.parquet"),
        "--id-column", "customer_id", "--probabilities")  # fmt: skip
    cli("runs", "churn")
    serve_and_show(x_test, y_test)


PORT = int(os.environ.get("DEMO_PORT", "8000"))


def serve_and_show(x_test: pd.DataFrame, y_test: np.ndarray) -> None:
    """Start `modelport serve`, prove the curl lines work, show monitoring, then keep serving
    until Ctrl-C."""
    rows = x_test.head(2)
    exe = Path(sys.executable).with_name("modelport")
    env = {**os.environ, "MODELPORT_HOME": str(DEMO)}
    command = ["serve", "churn@production", "--port", str(PORT), "--log-sample-rate", "1"]
    server = subprocess.Popen([str(exe), *command, "--no-access-log"], env=env)
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
        show_monitoring(url, x_test, y_test)
        print(f"\nserving churn@production at {url} (docs: {url}/docs); Ctrl-C to stop")
        print(f"dashboard: {url}/ui/   metrics: {url}/metrics")
        if os.environ.get("DEMO_NO_WAIT"):
            return
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait()


def wait_until_logged(client: httpx.Client, requests: int) -> None:
    """The prediction log is written in the background: wait (10 s at most) for it."""
    for _ in range(100):
        families = text_string_to_metric_families(client.get("/metrics").text)
        written = sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == "modelport_prediction_log_written_total"
        )
        if written >= requests:
            return
        time.sleep(0.1)


def show_monitoring(url: str, x_test: pd.DataFrame, y_test: np.ndarray) -> None:
    """Traffic whose support calls drift upwards, labels posted back, then what the server
    says about drift and live accuracy."""
    live = x_test.assign(support_calls=x_test["support_calls"] + 3.0)
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(0, len(live), 10):
            chunk = live.iloc[i : i + 10]
            body = {"inputs": [
                {"name": c, "shape": [len(chunk)], "datatype": "BYTES" if c == "plan" else "FP64",
                 "data": chunk[c].tolist()} for c in chunk.columns]}  # fmt: skip
            client.post("/v2/models/churn/infer", json=body, headers={"X-Request-ID": f"demo-{i}"})
        wait_until_logged(client, requests=3 + len(range(0, len(live), 10)))
        labels = [
            {"id": f"demo-{i}", "label": y_test[i : i + 10].tolist()}
            for i in range(0, len(live), 10)
        ]
        print(f"\nsent {len(live)} rows with support_calls shifted by +3; posting their labels:")
        print(client.post("/v2/models/churn/feedback", json={"labels": labels}).text)
    cli("quality", "churn", "--since", "1h")
    exe = Path(sys.executable).with_name("modelport")
    print("\n$ modelport drift churn@production --since 1h", flush=True)
    subprocess.run(  # exits 8 when a feature drifts, as it does here
        [str(exe), "drift", "churn@production", "--since", "1h"],
        env={**os.environ, "MODELPORT_HOME": str(DEMO)},
        check=False,
    )


if __name__ == "__main__":
    main()
