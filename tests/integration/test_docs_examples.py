"""The examples behind docs/pyfunc.md and docs/deployment.md, run the way a user runs them:
the example modules imported from ``examples/`` (as ``python examples/...`` would find them),
the CLI lines of the pages run in process, and ``examples/deployment.yaml`` validated and
served once.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import modelport
from modelport.errors import (
    CodeNotTrusted,
    FlavorError,
    InvalidInput,
    InvalidName,
    PredictionFailed,
    SignatureError,
)
from modelport.serving.deployment import load_deployment

from ._cli import cli
from ._server import serving

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEPLOYMENT = EXAMPLES / "deployment.yaml"
NOT_TRUSTED = "loads only when trusted"


def example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` with ``examples/`` on ``sys.path``, as running a script
    from that folder does (the pyfunc flavor saves the model class's module from there)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def expected_probability(frame: pd.DataFrame, weights: dict[str, Any]) -> np.ndarray:
    """The rules of ``ChurnRules``, computed here independently of the example."""
    logit = weights["bias"] + sum(
        w * frame[name].to_numpy(np.float64) for name, w in weights["weights"].items()
    )
    logit = logit + frame["plan"].map(weights["plans"]).to_numpy(np.float64)
    return np.asarray(1.0 / (1.0 + np.exp(-logit)))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MODELPORT_HOME for the CLI and ``modelport.load`` without settings."""
    folder = tmp_path / "home"
    monkeypatch.setenv("MODELPORT_HOME", str(folder))
    return folder


# -- docs/pyfunc.md ---------------------------------------------------------------------------


def test_pyfunc_walkthrough(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    walkthrough = example("pyfunc_walkthrough")
    outputs = walkthrough.main(tmp_path)
    probability = expected_probability(walkthrough.CUSTOMERS, walkthrough.WEIGHTS)
    np.testing.assert_allclose(outputs["churn_probability"], probability)
    np.testing.assert_array_equal(outputs["predictions"], (probability >= 0.5).astype(np.int64))
    assert list(outputs) == ["predictions", "churn_probability"]
    printed = capsys.readouterr().out
    assert "registered churn-rules/1, trusted by " in printed
    folder = tmp_path / "out" / "churn-rules"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "artifacts/weights/weights.json",
        "code/pyfunc_model.py",
        "input_example.json",
        "modelport.json",
    ]
    manifest = json.loads((folder / "modelport.json").read_text())
    assert manifest["flavor"] == "pyfunc"
    assert manifest["flavor_options"] == {
        "module": "pyfunc_model",
        "class": "ChurnRules",
        "artifacts": {"weights": "artifacts/weights/weights.json"},
    }
    assert manifest["requirements"] == ["numpy>=1.26"]


def test_pyfunc_trust_rules_from_a_folder_and_a_bundle(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's "Moving a pyfunc model" steps, command by command."""
    walkthrough = example("pyfunc_walkthrough")
    walkthrough.main(tmp_path / "work")
    folder = tmp_path / "work" / "out" / "churn-rules"
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(walkthrough.CUSTOMERS.iloc[:1].to_dict("records")))

    # A folder or bundle is not trusted until you say so.
    result = cli(capsys, "predict", str(folder), "--input", str(rows))
    assert result.code == 5
    assert NOT_TRUSTED in result.err
    result = cli(capsys, "predict", str(folder), "--input", str(rows), "--trust-unsafe")
    assert result.code == 0, result.err
    assert json.loads(result.out)["predictions"] == [1]
    with pytest.raises(CodeNotTrusted, match=NOT_TRUSTED):
        modelport.load(folder)
    assert modelport.load(folder, trust_unsafe=True).trusted_by is not None

    # Sign, pack, and register the bundle on "another machine" that trusts the public key.
    keys = tmp_path / "keys"
    private, public = keys / "signing.pem", keys / "signing.pub"
    result = cli(capsys, "keygen", "--private", str(private), "--public", str(public))
    assert result.code == 0, result.err
    assert cli(capsys, "sign", str(folder), "--key", str(private)).code == 0
    bundle = tmp_path / "churn-rules.tar"
    assert cli(capsys, "pack", str(folder), str(bundle)).code == 0
    result = cli(capsys, "register", str(bundle), "--name", "churn-rules")
    assert result.code == 5
    assert NOT_TRUSTED in result.err
    trusted = ("--trusted-key", str(public))
    result = cli(capsys, *trusted, "register", str(bundle), "--name", "churn-rules",
                 "--alias", "production")  # fmt: skip
    assert result.code == 0, result.err
    assert "trusted by signature: sha256:" in result.out
    info = json.loads(cli(capsys, "info", "churn-rules").out)
    assert info["trusted_unsafe"]["by"].startswith("signature: sha256:")
    result = cli(capsys, "predict", "churn-rules@production", "--input", str(rows))
    assert result.code == 0, result.err
    result = cli(capsys, *trusted, "predict", str(bundle), "--input", str(rows))
    assert result.code == 0, result.err
    settings = modelport.Settings(trusted_keys=[public])
    assert modelport.load(bundle, settings=settings).trusted_by is not None

    # --trust-unsafe on register records who trusted the folder.
    result = cli(capsys, "register", str(folder), "--name", "mine", "--trust-unsafe")
    assert result.code == 0, result.err
    assert json.loads(cli(capsys, "info", "mine").out)["trusted_unsafe"]["by"]


def test_pyfunc_errors_a_user_meets(tmp_path: Path) -> None:
    walkthrough = example("pyfunc_walkthrough")
    model_module = example("pyfunc_model")
    weights = walkthrough.write_weights(tmp_path / "weights.json")
    options = {"artifacts": {"weights": str(weights)}}
    customers = walkthrough.CUSTOMERS
    folder = tmp_path / "ok"
    modelport.save(
        model_module.ChurnRules(), folder, input_example=customers, flavor_options=options
    )
    loaded = modelport.load(folder, trust_unsafe=True)
    gold = customers.assign(plan=["gold", "basic", "pro"])
    with pytest.raises(
        PredictionFailed, match=r"failed to predict: ValueError: unknown plan 'gold'"
    ):
        loaded.predict(gold)
    with pytest.raises(SignatureError, match=r"missing input 'plan'"):
        loaded.predict(customers.drop(columns="plan"))
    with pytest.raises(FlavorError, match=r"pass input_example="):
        modelport.save(model_module.ChurnRules(), tmp_path / "a", flavor_options=options)
    with pytest.raises(FlavorError, match=r"artifact 'weights': no file at"):
        modelport.save(
            model_module.ChurnRules(),
            tmp_path / "b",
            input_example=customers,
            flavor_options={"artifacts": {"weights": str(tmp_path / "missing.json")}},
        )
    with pytest.raises(FlavorError, match=r"is neither a \.py file nor a folder"):
        modelport.save(
            model_module.ChurnRules(),
            tmp_path / "c",
            input_example=customers,
            flavor_options={**options, "code_paths": [str(weights)]},
        )
    in_a_notebook = type("Notebook", (model_module.ChurnRules,), {"__module__": "__main__"})
    with pytest.raises(FlavorError, match=r"is defined in __main__ \(a script or notebook\)"):
        modelport.save(in_a_notebook(), tmp_path / "d", input_example=customers)


# -- docs/deployment.md -----------------------------------------------------------------------


def test_deployment_example_is_valid() -> None:
    deployment = load_deployment(DEPLOYMENT)
    assert [spec.served_name for spec in deployment.models] == ["churn", "churn-staging"]
    production, staging = deployment.models
    assert (production.ref, production.max_batch_size, production.log_sample_rate) == (
        "churn@production",
        32,
        0.1,
    )
    assert (staging.ref, staging.batching, staging.max_queue) == ("churn@staging", False, 64)
    assert deployment.serving["request_timeout_s"] == 10


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (
            "models:\n  - ref: churn\n    batch_size: 8\n",
            InvalidInput,
            r"models\.0\.batch_size: unknown field \(known: ref, name, max_batch_size, ",
        ),
        (
            "serving:\n  port: eighty\n",
            InvalidInput,
            r"setting serving\.port = 'eighty': must be a valid integer.*SERVING__PORT",
        ),
        (
            "models:\n  - ref: churn\n    log_sample_rate: 2\n",
            InvalidInput,
            r"models\.0\.log_sample_rate = 2: must be less than or equal to 1",
        ),
        (
            "models:\n  - ref: churn@production\n  - ref: churn@staging\n",
            InvalidInput,
            r"deployment file serves 'churn' twice; give one a name",
        ),
        (
            "serving:\n  port: 70000\n",
            InvalidInput,
            r"setting serving\.port = 70000: must be less than or equal to 65535",
        ),
        (
            "models:\n  - ref: churn\n    max_queue: 0\n",
            InvalidInput,
            r"models\.0\.max_queue = 0: must be greater than or equal to 1",
        ),
        ("models: [ref: churn\n", InvalidInput, r"is not valid YAML"),
        ("models:\n  - ref: churn\n    name: a/b\n", InvalidName, r"invalid model name 'a/b'"),
        ("bogus: 1\n", InvalidInput, r"bogus: unknown field \(known: serving, models\)"),
    ],
)
def test_deployment_errors_a_user_meets(
    tmp_path: Path, text: str, error: type[Exception], message: str
) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text(text)
    with pytest.raises(error, match=message):
        load_deployment(path)


def test_missing_deployment_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot read deployment file .*No such file"):
        load_deployment(tmp_path / "nope.yaml")


@pytest.mark.slow
def test_deployment_example_serves(tmp_path: Path) -> None:
    """``modelport serve --config examples/deployment.yaml`` over a registry holding churn
    versions 1 (production) and 2 (staging): both names answer with their alias's version, and
    only the batched one reports batching."""
    walkthrough = example("pyfunc_walkthrough")
    model_module = example("pyfunc_model")
    weights = walkthrough.write_weights(tmp_path / "weights.json")
    customers = walkthrough.CUSTOMERS
    home = tmp_path / "home"
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        for alias in ("production", "staging"):
            version = registry.register(
                "churn",
                model_module.ChurnRules(),
                input_example=customers,
                flavor_options={"artifacts": {"weights": str(weights)}},
            )
            registry.set_alias("churn", alias, version.version)
    inputs = [
        {"name": "tenure_months", "shape": [3], "datatype": "FP64",
         "data": customers["tenure_months"].tolist()},
        {"name": "monthly_spend", "shape": [3], "datatype": "FP64",
         "data": customers["monthly_spend"].tolist()},
        {"name": "support_calls", "shape": [3], "datatype": "INT64",
         "data": customers["support_calls"].tolist()},
        {"name": "plan", "shape": [3], "datatype": "BYTES", "data": customers["plan"].tolist()},
    ]  # fmt: skip
    probability = expected_probability(customers, walkthrough.WEIGHTS)
    with serving(home, "--config", str(DEPLOYMENT)) as server:
        for name, served_version in (("churn", "1"), ("churn-staging", "2")):
            r = httpx.post(f"{server.url}/v2/models/{name}/infer", json={"inputs": inputs})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model_version"] == served_version
            outputs = {out["name"]: out["data"] for out in body["outputs"]}
            np.testing.assert_allclose(outputs["churn_probability"], probability)
        # docs/pyfunc.md's curl line: TF-style records, and a value predict() refuses.
        record = {"tenure_months": 3, "monthly_spend": 80, "support_calls": 4, "plan": "basic"}
        r = httpx.post(f"{server.url}/v1/models/churn:predict", json={"instances": [record]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["predictions"] == 1
        gold = {**record, "plan": "gold"}
        r = httpx.post(f"{server.url}/v1/models/churn:predict", json={"instances": [gold]})
        assert r.status_code == 422, r.text
        assert "failed to predict: ValueError: unknown plan 'gold'" in r.json()["error"]
        production = httpx.get(f"{server.url}/v2/models/churn").json()
        staging = httpx.get(f"{server.url}/v2/models/churn-staging").json()
    assert "batching" in json.dumps(production), production
    assert "batching" not in json.dumps(staging), staging
