"""``modelport feedback FILE.csv``: per-row labels of multi-row requests, labels of the wrong
kind refused, labels of requests never logged reported, and what live quality then sees."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import modelport
from modelport.registry import LoggedPrediction

from ._cli import cli

CLASSES = np.array(["bronze", "gold"])


@pytest.fixture
def models(tiny_data: tuple[np.ndarray, np.ndarray]) -> dict[str, LogisticRegression]:
    """``churn`` predicts 0/1 (with probabilities), ``tier`` predicts class names."""
    features, target = tiny_data
    return {
        "churn": LogisticRegression().fit(features, target),
        "tier": LogisticRegression().fit(features, CLASSES[target]),
    }


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models: dict[str, LogisticRegression]
) -> Path:
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        for name, model in models.items():
            registry.register(name, model, input_example=rows(2))
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))
    return tmp_path


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


def log_requests(
    home: Path, name: str, model: LogisticRegression, requests: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Log one request per id as the server does (one entry per request, its outputs named
    as in the signature); returns each request's outputs."""
    outputs = {
        rid: {
            "predictions": model.predict(inputs).tolist(),
            "probabilities": model.predict_proba(inputs).tolist(),
        }
        for rid, inputs in requests.items()
    }
    entries = [
        LoggedPrediction(
            model=name,
            version=1,
            request_id=rid,
            created_at=datetime.now(UTC),
            latency_ms=1.0,
            inputs={"input": requests[rid].tolist()},
            outputs=out,
        )
        for rid, out in outputs.items()
    ]
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.predictions.log_predictions(entries)
    return outputs


def stored_labels(home: Path, name: str) -> dict[str, Any]:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        logged = registry.predictions.logged_predictions(name, labelled_only=True)
    return {e.request_id: e.label for e in logged}


def write_csv(path: Path, labels: list[tuple[str, Any]]) -> Path:
    """An id,label CSV; a list label is written as JSON text, as a spreadsheet holds it
    (pandas quotes the cell, since it holds commas)."""
    cells = [json.dumps(v) if isinstance(v, list) else v for _, v in labels]
    pd.DataFrame({"id": [rid for rid, _ in labels], "label": cells}).to_csv(path, index=False)
    return path


def quality(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, Any]:
    result = cli(capsys, "quality", name, "--since", "1h", "--json")
    assert result.code == 0, result.err
    report: dict[str, Any] = json.loads(result.out)
    return report


def test_a_multi_row_request_is_labelled_row_by_row_from_a_csv(
    home: Path, models: dict[str, LogisticRegression], capsys: pytest.CaptureFixture[str]
) -> None:
    # 20 requests of three rows and one of a single row, as a client batching rows sends them.
    requests = {f"req-{i}": rows(3, seed=i) for i in range(20)} | {"single": rows(1, seed=99)}
    outputs = log_requests(home, "churn", models["churn"], requests)
    truth = {rid: (x[:, 1] > 0).astype(int).tolist() for rid, x in requests.items()}
    labels: list[tuple[str, Any]] = [(rid, truth[rid]) for rid in requests if rid != "single"]
    labels.append(("single", truth["single"][0]))  # one row: a plain value
    csv = write_csv(home / "labels.csv", labels)
    assert '"[' in csv.read_text()  # the cells are JSON lists, e.g. "[0, 1, 1]"

    result = cli(capsys, "feedback", "churn", str(csv))

    assert result.code == 0, result.err
    assert result.out.strip() == "stored 21 labels for churn, refused 0, unpaired 0"
    assert result.err == ""
    stored = stored_labels(home, "churn")
    assert stored["req-0"] == truth["req-0"]  # a list of three ints, not the text "[0, 1, 1]"
    assert stored["single"] == truth["single"][0]
    report = quality(capsys, "churn")
    assert report["n_labelled"] == 61
    assert report["unpaired"] == 0
    y_true = [v for rid in requests for v in truth[rid]]
    y_pred = [v for rid in requests for v in outputs[rid]["predictions"]]
    scores = [p[1] for rid in requests for p in outputs[rid]["probabilities"]]
    live = report["versions"]["1"]
    assert live["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert live["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert live["auc"] == pytest.approx(roc_auc_score(y_true, scores))


def test_wrong_labels_are_refused_and_unlogged_ids_reported_the_rest_stored(
    home: Path, models: dict[str, LogisticRegression], capsys: pytest.CaptureFixture[str]
) -> None:
    requests = {f"r{i}": rows(1, seed=i) for i in range(30)} | {"batch": rows(3, seed=50)}
    outputs = log_requests(home, "churn", models["churn"], requests)
    truth = {rid: int(x[0, 1] > 0) for rid, x in requests.items() if rid != "batch"}
    good = [(rid, truth[rid]) for rid in list(truth)[:24]]
    bad: list[tuple[str, Any]] = [
        ("r24", "malignant"),  # text on a 0/1 model: would silently change F1 and drop AUC
        ("r25", 0.5),  # a fraction on a model of class ids
        ("batch", [1, 0]),  # two labels for three rows
        ("r26", [1, 0]),  # two labels for one row
        ("batch", 1),  # one label for three rows
        ("r27", "[1, 0"),  # not JSON: never stored as the text "[1, 0"
        ("r28", ""),  # empty
    ]
    csv = write_csv(home / "labels.csv", [*good, *bad, ("typo", 1), ("r999", [0, 1])])

    result = cli(capsys, "feedback", "churn", str(csv))

    assert result.code == 2, result.err  # refused labels: bad input
    assert result.out.strip() == "stored 24 labels for churn, refused 7, unpaired 2"
    errors = result.err.splitlines()
    assert errors[0] == (
        "error: refused line 26: model 'churn' predicts numbers; the label of request 'r24' "
        "is text ('malignant')"
    )
    assert errors[1] == (
        "error: refused line 27: model 'churn' predicts whole numbers (int64); the label of "
        "request 'r25' is 0.5"
    )
    assert errors[2].startswith(
        "error: refused line 28: request 'batch' had 3 rows; the label has 2 values (a request "
        "of n rows takes a JSON list of n labels"
    )
    assert (
        errors[3] == "error: refused line 29: request 'r26' had one row; the label is a list of 2"
    )
    assert errors[4].startswith("error: refused line 30: request 'batch' had 3 rows; the label")
    assert errors[5] == "error: refused 2 more"
    assert errors[6] == "error: 2 ids were never logged for churn: typo, r999"
    # Only the good labels are stored, so live quality is what scikit-learn says of them.
    assert stored_labels(home, "churn") == dict(good)
    report = quality(capsys, "churn")
    assert report["n_labelled"] == 24
    y_true = [label for _, label in good]
    y_pred = [outputs[rid]["predictions"][0] for rid, _ in good]
    scores = [outputs[rid]["probabilities"][0][1] for rid, _ in good]
    live = report["versions"]["1"]
    assert live["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert live["auc"] == pytest.approx(roc_auc_score(y_true, scores))

    # The refusals in full, past the first five: the broken list and the empty cell.
    rest = write_csv(home / "rest.csv", bad[5:])
    result = cli(capsys, "feedback", "churn", str(rest))
    assert result.code == 2
    assert result.err.splitlines() == [
        "error: refused line 2, request 'r27': '[1, 0' is not a JSON list of labels, one per "
        'row, such as "[1, 0, 1]"',
        "error: refused line 3, request 'r28': the label is empty",
    ]
    assert "r27" not in stored_labels(home, "churn")

    # Unpaired alone: not found, 3; the labels that could be paired are stored.
    unpaired = write_csv(home / "unpaired.csv", [("batch", [0, 1, 1]), ("typo", 1)])
    result = cli(capsys, "feedback", "churn", str(unpaired))
    assert result.code == 3
    assert result.out.strip() == "stored 1 labels for churn, refused 0, unpaired 1"
    assert stored_labels(home, "churn")["batch"] == [0, 1, 1]


def test_a_model_of_class_names_takes_lists_of_names(
    home: Path, models: dict[str, LogisticRegression], capsys: pytest.CaptureFixture[str]
) -> None:
    log_requests(home, "tier", models["tier"], {"a": rows(2, seed=1), "b": rows(1, seed=2)})
    csv = home / "labels.csv"
    csv.write_text('id,label\na,"[""gold"", ""bronze""]"\nb,gold\n')
    result = cli(capsys, "feedback", "tier", str(csv))
    assert result.code == 0, result.err
    assert stored_labels(home, "tier") == {"a": ["gold", "bronze"], "b": "gold"}

    # Unquoted names are not JSON: refused, never stored as the text "[gold, bronze]".
    csv.write_text('id,label\na,"[gold, bronze]"\nb,1\n')
    result = cli(capsys, "feedback", "tier", str(csv))
    assert result.code == 2
    assert "line 2, request 'a': '[gold, bronze]' is not a JSON list of labels" in result.err
    assert "model 'tier' predicts text; the label of request 'b' is a number" not in result.err
    assert stored_labels(home, "tier") == {"a": ["gold", "bronze"], "b": "1"}  # read as text


def test_a_list_cell_left_unquoted_is_explained(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = home / "labels.csv"
    csv.write_text("id,label\na,[1, 0, 1]\n")
    result = cli(capsys, "feedback", "churn", str(csv))
    assert result.code == 2
    assert 'quote a list label: "[1, 0, 1]"' in result.err


def test_help_documents_list_labels_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, "feedback", "--help")
    text = " ".join(result.out.replace("│", " ").split())
    assert '"[2, 1, 1]"' in text
    assert "Exit code: 0 all stored, 2 some refused, 3 none refused but some unpaired" in text
