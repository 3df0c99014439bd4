"""XGBoost and LightGBM trained on pandas ``category`` columns, end to end: registered (they
failed with the library's own error), served and batch-scored from plain strings, and
profiled as categorical for drift (issue 14, item 7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import modelport
from modelport import batch
from modelport.monitoring.drift import drift_report, live_features

from ._cli import cli
from ._server import Server, serving

PLANS = ["basic", "max", "pro"]


def customers(n: int, seed: int, plans: list[float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "spend": rng.normal(50, 10, n),
            "plan": pd.Categorical(rng.choice(PLANS, n, p=plans), categories=PLANS),
            "tier": pd.Categorical(rng.choice([1, 2, 3], n)),
        }
    )


def labels(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["spend"] > 50) ^ (frame["plan"] == "pro")).to_numpy().astype(np.int64)


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """What a client has: the values, not pandas categories."""
    return frame.astype({"plan": str, "tier": np.int64})


TRAIN = customers(600, seed=1)
MODELS: dict[str, Any] = {
    "xgb": xgb.XGBClassifier(n_estimators=10, enable_categorical=True, n_jobs=1),
    "lgbm": lgb.LGBMClassifier(n_estimators=10, verbose=-1),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("categorical")
    with modelport.Registry(modelport.Settings(home=root)) as registry:
        for name, model in MODELS.items():
            model.fit(TRAIN, labels(TRAIN))
            registry.register(name, model, input_example=TRAIN[:5], reference_data=TRAIN)
    return root


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    with serving(home, *MODELS) as srv:
        yield srv


@pytest.mark.parametrize("name", list(MODELS))
def test_the_signature_records_the_categories(home: Path, name: str) -> None:
    loaded = modelport.load(name, settings=modelport.Settings(home=home))
    specs = {s.name: s for s in loaded.signature.inputs}
    assert specs["plan"].categories == tuple(PLANS)
    assert specs["plan"].dtype == "str"
    assert specs["tier"].categories == (1, 2, 3)
    test = customers(50, seed=2)
    np.testing.assert_allclose(
        loaded.predict_outputs(plain(test))["probabilities"],
        MODELS[name].predict_proba(test),
        rtol=1e-6,
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_the_server_takes_strings(server: Server, name: str) -> None:
    test = customers(20, seed=3)
    want = MODELS[name].predict_proba(test)
    values = plain(test)
    rows = values.to_dict("records")
    r = httpx.post(f"{server.url}/v1/models/{name}:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    got = [row["probabilities"] for row in r.json()["predictions"]]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    columns = [("spend", "FP64"), ("plan", "BYTES"), ("tier", "INT64")]
    body = {
        "inputs": [
            {"name": c, "shape": [20], "datatype": t, "data": values[c].tolist()}
            for c, t in columns
        ]
    }
    r = httpx.post(f"{server.url}/v2/models/{name}/infer", json=body)
    assert r.status_code == 200, r.text
    [proba] = [o for o in r.json()["outputs"] if o["name"] == "probabilities"]
    np.testing.assert_allclose(np.reshape(proba["data"], (20, 2)), want, rtol=1e-6)
    r = httpx.post(
        f"{server.url}/v1/models/{name}:predict",
        json={"instances": [{"spend": 1.0, "plan": "platinum", "tier": 1}]},
    )
    assert r.status_code == 400
    assert r.json()["error"] == (
        "input 'plan': 'platinum' is not one of its categories ('basic', 'max', 'pro')"
    )


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_takes_strings_and_category_columns(
    home: Path, tmp_path: Path, name: str, suffix: str
) -> None:
    test = customers(400, seed=4)
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        plain(test).to_csv(source, index=False)
    else:
        test.to_parquet(source)  # category columns: Arrow dictionaries
    sink = tmp_path / "out.parquet"
    result = batch.score(
        name, source, sink, probabilities=True, settings=modelport.Settings(home=home)
    )
    assert (result.status, result.scored, result.rejected) == ("succeeded", 400, 0)
    out = pd.read_parquet(sink)
    np.testing.assert_allclose(
        out[["probabilities_0", "probabilities_1"]].to_numpy(),
        MODELS[name].predict_proba(test),
        rtol=1e-6,
    )


def test_batch_rejects_a_value_outside_the_categories(home: Path, tmp_path: Path) -> None:
    test = plain(customers(100, seed=5))
    test.loc[7, "plan"] = "platinum"
    source = tmp_path / "in.csv"
    test.to_csv(source, index=False)
    sink = tmp_path / "out.parquet"
    result = batch.score("xgb", source, sink, settings=modelport.Settings(home=home))
    assert (result.scored, result.rejected) == (99, 1)
    [line] = (sink / "_rejects" / "part-00000.jsonl").read_text().splitlines()
    assert json.loads(line)["reason"] == (
        "column 'plan': 'platinum' is not one of its categories ('basic', 'max', 'pro')"
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_drift_treats_them_as_categorical(home: Path, name: str) -> None:
    loaded = modelport.load(name, settings=modelport.Settings(home=home))
    profile = loaded.reference_profile()
    assert profile is not None
    assert profile["features"]["plan"]["type"] == "categorical"
    assert profile["features"]["tier"]["type"] == "categorical"
    assert set(profile["features"]["tier"]["frequencies"]) == {"1", "2", "3"}
    same = loaded.signature.coerce(plain(customers(500, seed=6)))
    moved = loaded.signature.coerce(plain(customers(500, seed=7, plans=[0.1, 0.1, 0.8])))
    for live, drifted in ((same, []), (moved, ["plan"])):
        report = drift_report(profile, live_features(loaded.signature, live))
        assert report.drifted == drifted
        kinds = {f.feature: (f.kind, f.test) for f in report.features}
        assert kinds["plan"] == ("categorical", "chi2")
        assert kinds["tier"] == ("categorical", "chi2")


def test_an_xgboost_file_registers_without_an_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The categories come from the model file itself; the CLI predicts from a CSV."""
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    model = xgb.XGBClassifier(n_estimators=10, enable_categorical=True, n_jobs=1)
    model.fit(TRAIN, labels(TRAIN))
    model.save_model(str(tmp_path / "model.json"))
    done = cli(capsys, "register", str(tmp_path / "model.json"), "--name", "fromfile")
    assert done.code == 0, done.err
    test = customers(5, seed=8)
    plain(test).to_csv(tmp_path / "rows.csv", index=False)
    done = cli(capsys, "predict", "fromfile", "--input", str(tmp_path / "rows.csv"))
    assert done.code == 0, done.err
    np.testing.assert_allclose(
        json.loads(done.out)["probabilities"], model.predict_proba(test), rtol=1e-6
    )
