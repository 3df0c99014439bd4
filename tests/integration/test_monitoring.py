"""Monitoring against a real server: metrics, request ids, prediction log, feedback, drift."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import modelport
from modelport.monitoring import prediction_log
from modelport.serving.app import create_app
from modelport.serving.deployment import ModelSpec

from ._asgi import started
from ._churn import NUMERIC, churn_frame, churn_home, sample, scrape, v2_body, wait_for, written
from ._cli import cli
from ._server import running_server, serving


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))  # for the commands run in process
    return churn_home(tmp_path)


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_metrics_count_every_request_exactly(home: Path, workers: int) -> None:
    frame, _ = churn_frame(12, seed=2)
    start = serving if workers == 1 else running_server
    with start(home, "churn", "--workers", str(workers)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(7):
                assert client.post(
                    "/v2/models/churn/infer", json=v2_body(frame[i : i + 1])
                ).is_success
            for _ in range(3):
                missing = v2_body(frame[:1])
                missing["inputs"].pop()
                assert client.post("/v2/models/churn/infer", json=missing).status_code == 400
            rows = frame[:1].to_dict(orient="records")
            for _ in range(2):
                r = client.post("/v1/models/churn:predict", json={"instances": rows})
                assert r.status_code == 200, r.text
            assert client.post("/v2/models/nope/infer", json=v2_body(frame[:1])).status_code == 404

        def counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            return scrape(server.url)

        latency = "modelport_request_duration_seconds_count"
        wait_for(lambda: sample(counted(), latency, model="churn", protocol="v2") >= 10)
        samples = counted()
        requests = "modelport_requests_total"
        assert sample(samples, requests, model="churn", version="1", protocol="v2", code="200") == 7
        assert sample(samples, requests, model="churn", version="1", protocol="v2", code="400") == 3
        assert (
            sample(samples, requests, model="churn", version="1", protocol="tfserving", code="200")
            == 2
        )
        # An unknown model gets no series of its own: random names cannot grow the metrics.
        assert sample(samples, requests, model="", version="", protocol="v2", code="404") == 1
        assert not any(dict(labels).get("model") == "nope" for _, labels in samples)
        latency = "modelport_request_duration_seconds_count"
        assert sample(samples, latency, model="churn", protocol="v2") == 10
        assert sample(samples, latency, model="churn", protocol="tfserving") == 2
        # Every valid request was one row through the batcher; the invalid ones never got there.
        assert sample(samples, "modelport_batch_size_sum", model="churn") == 9
        assert sample(samples, "modelport_model_load_seconds", model="churn", version="1") > 0
        assert sample(samples, "modelport_model_warmup_seconds", model="churn", version="1") > 0

        def memory() -> list[float]:
            rss = "modelport_process_resident_memory_bytes"
            return [v for (n, _), v in scrape(server.url).items() if n == rss]

        # A worker reports once its start-up is done; the other may still be loading.
        wait_for(lambda: len(memory()) == workers and all(v > 10e6 for v in memory()))
        assert len(memory()) == workers  # one per worker process (with a pid label when several)
        assert all(v > 10e6 for v in memory())


@pytest.mark.slow  # the access log: a real process's stdout
def test_request_ids_are_honoured_generated_and_logged(home: Path) -> None:
    frame, _ = churn_frame(1, seed=3)
    with running_server(home, "churn") as server, httpx.Client(base_url=server.url) as client:
        given = client.post(
            "/v2/models/churn/infer", json=v2_body(frame), headers={"X-Request-ID": "order-42"}
        )
        assert given.headers["x-request-id"] == "order-42"
        assert given.json()["id"] == "order-42"
        generated = client.post("/v2/models/churn/infer", json=v2_body(frame))
        assert len(generated.headers["x-request-id"]) == 32
        assert generated.json()["id"] == generated.headers["x-request-id"]
        from_body = client.post("/v2/models/churn/infer", json=v2_body(frame, "body-7"))
        assert from_body.headers["x-request-id"] == "body-7"
        hostile = client.post(
            "/v2/models/churn/infer", json=v2_body(frame), headers={"X-Request-ID": "a b\tc"}
        )
        assert hostile.headers["x-request-id"] != "a b\tc"  # not echoed into logs as given
        tf = client.post(
            "/v1/models/churn:predict",
            json={"instances": frame.to_dict(orient="records")},
            headers={"X-Request-ID": "tf-1"},
        )
        assert tf.headers["x-request-id"] == "tf-1"
        refused = client.post(
            "/v2/models/churn/infer", content=b"{", headers={"X-Request-ID": "bad-1"}
        )
        assert refused.status_code == 400
        assert refused.headers["x-request-id"] == "bad-1"
        time.sleep(0.3)
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["order-42"]["status"] == 200
    assert by_id["order-42"]["model"] == "churn"
    assert by_id["order-42"]["version"] == 1
    assert by_id["order-42"]["protocol"] == "v2"
    assert by_id["order-42"]["duration_ms"] > 0
    assert by_id["tf-1"]["protocol"] == "tfserving"
    assert by_id["bad-1"]["status"] == 400
    assert by_id[generated.headers["x-request-id"]]["path"] == "/v2/models/churn/infer"


def test_feedback_right_after_its_prediction_finds_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feedback route has the log write out what was queued before it: with the writer's
    timer at an hour, the one entry would otherwise stay queued until the server stops."""
    monkeypatch.setattr(prediction_log, "FLUSH_S", 3600.0)
    frame, _ = churn_frame(2, seed=8)
    app = create_app(modelport.Settings(home=home), [ModelSpec(ref="churn", log_sample_rate=1.0)])

    async def predict_then_label() -> httpx.Response:
        async with started(app) as client:
            r = await client.post(
                "/v2/models/churn/infer", json=v2_body(frame), headers={"X-Request-ID": "now-1"}
            )
            assert r.status_code == 200, r.text
            return await client.post(
                "/v2/models/churn/feedback", json={"id": "now-1", "label": [1, 0]}
            )

    answer = asyncio.run(predict_then_label())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model": "churn", "accepted": 1, "unknown_ids": []}


def test_live_quality_from_posted_labels_equals_offline(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, truth = churn_frame(80, seed=4)
    with (
        serving(home, "churn", "--log-sample-rate", "1", "--no-access-log") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        predictions, scores = [], []
        for i in range(80):
            r = client.post(
                "/v2/models/churn/infer",
                json=v2_body(frame[i : i + 1]),
                headers={"X-Request-ID": f"req-{i}"},
            )
            outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
            predictions.append(outputs["predictions"][0])
            scores.append(outputs["probabilities"][1])
        # One request of three rows: one log entry, labelled below by a list, one per row.
        batch, batch_truth = churn_frame(3, seed=5)
        r = client.post(
            "/v2/models/churn/infer", json=v2_body(batch), headers={"X-Request-ID": "batch-1"}
        )
        outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
        batch_predictions = outputs["predictions"]
        batch_scores = outputs["probabilities"][1::2]  # row-major (3, 2): each row's second
        wait_for(lambda: written(server.url, "churn") == 81)
        # 60 labels through the API (the batch form), with two ids never logged.
        items = [{"id": f"req-{i}", "label": int(truth[i])} for i in range(60)]
        items += [{"id": "nobody", "label": 1}, {"id": "req-999", "label": 0}]
        answer = client.post("/v2/models/churn/feedback", json={"labels": items})
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 60
        assert sorted(answer.json()["unknown_ids"]) == ["nobody", "req-999"]
        # One more, alone.
        single = client.post(
            "/v2/models/churn/feedback", json={"id": "req-60", "label": int(truth[60])}
        )
        assert single.json() == {"model": "churn", "accepted": 1, "unknown_ids": []}
        bad = client.post("/v2/models/churn/feedback", json={"id": "req-61"})
        assert bad.status_code == 400
        assert "label" in bad.json()["error"]
        # A label of the wrong kind, or megabytes of one, is refused and stores nothing.
        wrong = client.post("/v2/models/churn/feedback", json={"id": "req-61", "label": "yes"})
        assert wrong.status_code == 400
        assert "predicts numbers" in wrong.json()["error"]
        # So is a label whose count is not its request's rows (it used to be stored, and
        # then counted by quality as unpaired).
        for rid, label, said in (
            ("batch-1", [1, 0], "request 'batch-1' had 3 rows; the label has 2 values"),
            ("req-61", [1, 0], "request 'req-61' had one row; the label is a list of 2"),
        ):
            miscount = client.post("/v2/models/churn/feedback", json={"id": rid, "label": label})
            assert miscount.status_code == 400
            assert said in miscount.json()["error"]
        huge = client.post(
            "/v2/models/churn/feedback", json={"id": "req-61", "label": "x" * 4_000_000}
        )
        assert huge.status_code == 400
        assert "at most 1000 characters" in huge.json()["error"]
        assert client.post("/v2/models/ghost/feedback", json=items[:1]).status_code == 404

        # The other 19 labels and the three-row request's come from a CSV through the CLI,
        # with one unknown id and one label of the wrong kind (refused: exit 2).
        csv = home / "labels.csv"
        pd.DataFrame(
            {
                "id": [f"req-{i}" for i in range(61, 80)] + ["batch-1", "typo", "req-5"],
                "label": [*truth[61:80], json.dumps(batch_truth.tolist()), 0, "malignant"],
            }
        ).to_csv(csv, index=False)
        fed = cli(capsys, "feedback", "churn", str(csv))
        assert fed.code == 2
        assert "stored 20 labels for churn, refused 1, unpaired 1" in fed.out
        assert "request 'req-5' is text ('malignant')" in fed.err
        assert "never logged for churn: typo" in fed.err

        quality = client.get("/v2/models/churn/quality", params={"window": "1h"}).json()
        assert quality["task"] == "classification"
        assert quality["n_labelled"] == 83
        assert quality["unpaired"] == 0
        truth = np.concatenate([truth, batch_truth])
        predictions += batch_predictions
        scores += batch_scores
        live = quality["versions"]["1"]
        assert live["accuracy"] == pytest.approx(accuracy_score(truth, predictions))
        assert live["f1"] == pytest.approx(f1_score(truth, predictions))
        assert live["auc"] == pytest.approx(roc_auc_score(truth, scores))
        assert sum(point["n"] for point in quality["series"]) == 83
        gauges = scrape(server.url)
        assert sample(
            gauges, "modelport_live_quality", model="churn", version="1", metric="accuracy"
        ) == pytest.approx(live["accuracy"])
    offline = json.loads(cli(capsys, "quality", "churn", "--since", "1h", "--json").out)
    assert offline["versions"]["1"]["accuracy"] == pytest.approx(live["accuracy"])


def test_drift_flags_only_the_shifted_feature_numeric_and_categorical(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = home / "deployment.yaml"
    deployment.write_text(
        "models:\n"
        "  - {ref: churn, name: numeric, log_sample_rate: 1}\n"
        "  - {ref: churn, name: categorical, log_sample_rate: 1}\n"
    )
    frame, _ = churn_frame(600, seed=5)
    numeric = frame.assign(monthly_spend=frame["monthly_spend"] * 2.0)
    categorical = frame.assign(plan=np.where(frame["plan"] == "pro", "pro", "basic"))
    categorical.loc[: len(frame) // 2, "plan"] = "pro"
    with (
        serving(home, "--config", str(deployment), "--no-access-log") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        for name, data in (("numeric", numeric), ("categorical", categorical)):
            for start in range(0, len(data), 50):
                r = client.post(f"/v2/models/{name}/infer", json=v2_body(data[start : start + 50]))
                assert r.status_code == 200, r.text
        wait_for(lambda: written(server.url, "numeric", "categorical") == 24)
        shifted = client.get("/v2/models/numeric/drift", params={"window": "1h"}).json()
        assert shifted["enough_data"] is True
        assert shifted["n_live"] == 600
        assert shifted["drifted"] == ["monthly_spend"]
        first = shifted["features"][0]
        assert first["feature"] == "monthly_spend"
        assert first["test"] == "ks"
        assert len(first["bins"]) == len(first["reference"]) == len(first["live"])
        flipped = client.get("/v2/models/categorical/drift").json()
        assert flipped["drifted"] == ["plan"]
        assert flipped["features"][0]["test"] == "chi2"
        gauges = scrape(server.url)
        drift = "modelport_feature_drift"
        assert sample(gauges, drift, model="numeric", version="1", feature="monthly_spend") == 1
        assert sample(gauges, drift, model="numeric", version="1", feature="plan") == 0
        assert sample(gauges, drift, model="categorical", version="1", feature="plan") == 1
        assert client.get("/v2/models/numeric/drift", params={"window": "soon"}).status_code == 400
    found = cli(capsys, "drift", "churn", "--since", "1h", "--served-name", "numeric", "--json")
    assert found.code == 8, found.err  # 8: a feature drifts, for alerting scripts
    assert json.loads(found.out)["drifted"] == ["monthly_spend"]
    unknown = cli(capsys, "drift", "churm", "--since", "1h")
    assert unknown.code == 3  # not found: never mistaken for drift
    assert "model 'churm' not found" in unknown.err


def test_unshifted_traffic_flags_nothing(home: Path) -> None:
    frame, _ = churn_frame(400, seed=6)
    with (
        serving(home, "churn", "--log-sample-rate", "1") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        for start in range(0, 400, 100):
            client.post("/v2/models/churn/infer", json=v2_body(frame[start : start + 100]))
        wait_for(lambda: written(server.url, "churn") == 4)
        report = client.get("/v2/models/churn/drift").json()
    assert report["enough_data"] is True
    assert report["drifted"] == []
    assert {f["feature"] for f in report["features"]} == {*NUMERIC, "plan"}


def test_prediction_log_under_overload_counts_every_sampled_request(home: Path) -> None:
    """The database is locked while 300 requests arrive: the writer cannot write, its queue
    (2 entries) overflows, every request is still answered, and written + dropped = sampled."""
    frame, _ = churn_frame(1, seed=7)
    env = {"MODELPORT_SERVING__LOG_QUEUE": "2"}
    with serving(home, "churn", "--log-sample-rate", "1", env=env) as server:
        blocker = sqlite3.connect(home / "registry.db", timeout=30)
        blocker.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock
        try:
            with ThreadPoolExecutor(8) as pool:
                codes = list(
                    pool.map(
                        lambda i: (
                            httpx.post(
                                f"{server.url}/v2/models/churn/infer",
                                json=v2_body(frame),
                                timeout=30,
                            ).status_code
                        ),
                        range(300),
                    )
                )
        finally:
            blocker.rollback()
            blocker.close()
        assert codes == [200] * 300

        def settled() -> bool:
            s = scrape(server.url)
            done = sum(
                sample(s, f"modelport_prediction_log_{kind}_total", model="churn")
                for kind in ("written", "dropped")
            )
            return done == 300

        wait_for(settled, seconds=60)
        samples = scrape(server.url)
    sampled = sample(samples, "modelport_prediction_log_sampled_total", model="churn")
    stored = sample(samples, "modelport_prediction_log_written_total", model="churn")
    dropped = sample(samples, "modelport_prediction_log_dropped_total", model="churn")
    assert sampled == 300
    assert dropped > 0
    assert stored + dropped == sampled
    with sqlite3.connect(home / "registry.db") as db:
        rows = db.execute("SELECT COUNT(*) FROM prediction_log").fetchone()[0]
    assert rows == stored


def test_prune_log_keeps_the_recent_window(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Requests logged by a real server: the CLI keeps what is newer than --older-than."""
    frame, _ = churn_frame(5, seed=4)
    with serving(home, "churn", "--log-sample-rate", "1", "--no-access-log") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(5):
                assert client.post(
                    "/v2/models/churn/infer", json=v2_body(frame[i : i + 1])
                ).is_success
        wait_for(lambda: written(server.url, "churn") == 5)
    with sqlite3.connect(home / "registry.db") as db:  # age three of them by 40 days
        db.execute(
            "UPDATE prediction_log SET created_at = datetime(created_at, '-40 days') "
            "WHERE id IN (SELECT id FROM prediction_log ORDER BY id LIMIT 3)"
        )
    pruned = cli(capsys, "prune-log", "churn", "--older-than", "30d")
    assert pruned.code == 0, pruned.err
    assert "removed 3 logged predictions and 0 labels of churn" in pruned.out
    with sqlite3.connect(home / "registry.db") as db:
        assert db.execute("SELECT COUNT(*) FROM prediction_log").fetchone()[0] == 2
    refused = cli(capsys, "prune-log", "--older-than", "soon")
    assert refused.code == 2
    assert "not a duration" in refused.err


def test_feedback_bodies_are_read_with_the_inference_limits(home: Path) -> None:
    """The feedback route reads its body as the inference routes do: a declared or streamed
    body over 16 MiB is refused (413) before it is held, a compressed one too (415)."""
    frame, _ = churn_frame(1, seed=8)
    with (
        serving(home, "churn", "--log-sample-rate", "1", "--no-access-log") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        url = "/v2/models/churn/feedback"
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:  # says 17 MiB
            head = f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Length: {17 << 20}\r\n\r\n"
            sock.sendall(head.encode() + b"{}")
            assert sock.recv(64).startswith(b"HTTP/1.1 413 "), "refused before the body came"

        def chunks() -> Iterator[bytes]:
            for _ in range(17):
                yield b" " * (1 << 20)

        streamed = client.post(url, content=chunks())
        assert streamed.status_code == 413
        zipped = client.post(url, content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
        assert zipped.status_code == 415
        assert "gzip" in zipped.json()["error"]
        assert client.post("/v2/models/churn/infer", json=v2_body(frame)).status_code == 200
