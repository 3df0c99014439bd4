"""Batch scoring with s3:// sources and sinks, against moto's S3 server (a real process on
a free port, see tests/s3server.py), through the CLI as a user runs it.

The S3 output is compared byte for byte with the local engine's output for the same job, and
a job killed mid-run with SIGKILL is resumed and compared with an uninterrupted one."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelport
from modelport import batch
from modelport.errors import InvalidInput
from tests.s3server import CREDENTIALS, S3Server

from ._churn import NUMERIC, churn_frame
from ._cli import cli, console_command, console_env


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``churn`` (three numbers and a plan; an unknown plan is a model error) and ``wide``
    (20 float32 features); MODELPORT_HOME for the commands."""
    x, y = churn_frame(500, seed=1)
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["plan"])]
    )
    churn = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(x, y)
    features = np.random.default_rng(0).normal(size=(500, 20)).astype(np.float32)
    wide = LogisticRegression().fit(features, features[:, 0] + features[:, 1] > 0)
    with modelport.Registry(modelport.Settings(home=tmp_path / "home")) as registry:
        registry.register("churn", churn, input_example=x[:5])
        registry.register("wide", wide, input_example=features[:5])
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder S3 sources are staged in (to check that nothing is left)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def customers(n: int, seed: int) -> pd.DataFrame:
    frame, _ = churn_frame(n, seed)
    frame = frame.assign(customer_id=np.arange(n) + 1_000_000)[["customer_id", *frame.columns]]
    frame.loc[7, "plan"] = "platinum"  # a plan the encoder never saw: one reject
    return frame


def wide_frame(n: int) -> pd.DataFrame:
    data = np.random.default_rng(1).normal(size=(n, 20)).astype(np.float32)
    frame = pd.DataFrame(data, columns=[f"f{i}" for i in range(20)])
    frame.insert(0, "row_id", np.arange(n))
    return frame


def write(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, row_group_size=700)


def bucket_of(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def upload(server: S3Server, path: Path, uri: str) -> None:
    """A file to one object, or a folder's files to objects under ``uri/``."""
    bucket, key = bucket_of(uri)
    s3: Any = server.client()
    for file in sorted(path.iterdir()) if path.is_dir() else [path]:
        name = f"{key}/{file.name}" if path.is_dir() else key
        s3.put_object(Bucket=bucket, Key=name, Body=file.read_bytes())


def objects(server: S3Server, uri: str) -> dict[str, bytes]:
    """Every object under the prefix ``uri``: name relative to it -> bytes."""
    bucket, key = bucket_of(uri)
    s3: Any = server.client()
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key}/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"][len(key) + 1 :]] = body
    return found


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def part_names(server: S3Server, uri: str) -> list[str]:
    bucket, key = bucket_of(uri)
    s3: Any = server.client()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{key}/part-")
    return [item["Key"] for item in listed.get("Contents", [])]


def assert_same_output(local: dict[str, bytes], remote: dict[str, bytes]) -> None:
    """Byte-identical parts, rejects and stats; the summary differs only in the source."""
    assert sorted(local) == sorted(remote)
    assert any(name.startswith("part-") for name in local)
    for name in local:
        if name not in ("_SUCCESS", "_job.json"):
            assert local[name] == remote[name], name
    summary, other = json.loads(local["_SUCCESS"]), json.loads(remote["_SUCCESS"])
    assert {**summary, "source": None} == {**other, "source": None}


@pytest.mark.parametrize(
    ("source_name", "sink_name"),
    [("in.csv", "out.csv"), ("in.parquet", "out.parquet"), ("in.jsonl", "out.jsonl")],
)
def test_s3_to_s3_gives_the_local_engines_bytes(
    home: Path,
    tmp_path: Path,
    s3_uri: str,
    s3_server: S3Server,
    staging: Path,
    capsys: pytest.CaptureFixture[str],
    source_name: str,
    sink_name: str,
) -> None:
    frame = customers(3_000, seed=2)
    source = tmp_path / source_name
    if source.suffix == ".parquet":  # a folder dataset: a prefix of objects
        source.mkdir()
        for i in range(3):
            write(frame.iloc[i * 1000 : (i + 1) * 1000], source / f"part-{i}.parquet")
        (source / "_SUCCESS").write_text("")  # skipped, as in a local folder
        upload(s3_server, source, f"{s3_uri}/customers")
        remote_source = f"{s3_uri}/customers/"
    else:
        write(frame, source)
        upload(s3_server, source, f"{s3_uri}/{source_name}")
        remote_source = f"{s3_uri}/{source_name}"
    args = ["--id-column", "customer_id", "--keep", "plan", "--chunk-rows", "700"]
    local = cli(capsys, "batch", "churn", str(source), str(tmp_path / sink_name), *args)
    assert local.code == 0, local.err
    sink = f"{s3_uri}/{sink_name}"
    done = cli(capsys, "batch", "churn", remote_source, sink, *args)
    assert done.code == 0, done.err
    assert "3000 rows, 2999 scored, 1 rejected, 5 parts (0 already done)" in done.out
    assert sink in done.out
    remote = objects(s3_server, sink)
    assert_same_output(files(tmp_path / sink_name), remote)
    assert json.loads(remote["_SUCCESS"])["source"] == remote_source
    rejects = remote["_rejects/part-00000.jsonl"].splitlines()
    assert [json.loads(line)["row"] for line in rejects] == [7]
    assert list(staging.iterdir()) == [], "the staged source and parts are deleted"

    again = cli(capsys, "batch", "churn", remote_source, sink, *args)
    assert again.code == 0, again.err
    assert "(5 already done)" in again.out
    assert objects(s3_server, sink) == remote
    runs = json.loads(cli(capsys, "runs", "churn", "--json").out)
    assert [(r["source"], r["sink"], r["status"]) for r in runs[:2]] == [
        (remote_source, sink, "succeeded")
    ] * 2


def test_a_local_source_to_s3_and_s3_to_a_local_sink(
    home: Path,
    tmp_path: Path,
    s3_uri: str,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.csv"
    write(customers(1_500, seed=3), source)
    args = ["--id-column", "customer_id", "--chunk-rows", "500"]
    assert cli(capsys, "batch", "churn", str(source), str(tmp_path / "local.csv"), *args).code == 0
    expected = files(tmp_path / "local.csv")

    # A sink named without a suffix gets the input's format.
    up = cli(capsys, "batch", "churn", str(source), f"{s3_uri}/scores/", *args)
    assert up.code == 0, up.err
    remote = objects(s3_server, f"{s3_uri}/scores")
    assert_same_output(expected, remote)
    assert remote["_SUCCESS"] == expected["_SUCCESS"]  # the same source, the same summary

    upload(s3_server, source, f"{s3_uri}/in.csv")
    down = cli(capsys, "batch", "churn", f"{s3_uri}/in.csv", str(tmp_path / "down.csv"), *args)
    assert down.code == 0, down.err
    assert_same_output(expected, files(tmp_path / "down.csv"))


def test_another_job_into_the_same_prefix_is_refused(
    home: Path, tmp_path: Path, s3_uri: str, s3_server: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.parquet"
    write(customers(300, seed=4), source)
    sink = f"{s3_uri}/scores.parquet"
    assert cli(capsys, "batch", "churn", str(source), sink).code == 0
    other = cli(capsys, "batch", "churn", str(source), sink, "--chunk-rows", "100")
    assert other.code == 2
    assert f"output '{sink}' holds another job's output" in other.err
    again = cli(capsys, "batch", "churn", str(source), sink, "--chunk-rows", "100", "--overwrite")
    assert again.code == 0, again.err
    assert sorted(n for n in objects(s3_server, sink) if n.startswith("part-")) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]


def test_a_missing_bucket_or_object_is_named_and_nothing_is_written(
    home: Path,
    tmp_path: Path,
    s3_uri: str,
    s3_server: S3Server,
    staging: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.csv"
    write(customers(200, seed=5), source)
    sink = f"{s3_uri}/scores.csv"

    missing = cli(capsys, "batch", "churn", "s3://no-such-bucket-mp/in.csv", sink)
    assert missing.code == 2
    assert f"bucket 'no-such-bucket-mp' does not exist at {s3_server.endpoint}" in missing.err
    no_sink = cli(capsys, "batch", "churn", str(source), "s3://no-such-bucket-mp/out.csv")
    assert no_sink.code == 2
    assert "bucket 'no-such-bucket-mp' does not exist" in no_sink.err
    no_object = cli(capsys, "batch", "churn", f"{s3_uri}/nothing-here.csv", sink)
    assert no_object.code == 2
    assert f"no such object or prefix: '{s3_uri}/nothing-here.csv'" in no_object.err
    assert objects(s3_server, sink) == {}
    assert list(staging.iterdir()) == []
    for done in (missing, no_sink, no_object):
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in done.err + done.out
    assert json.loads(cli(capsys, "runs", "--json").out) == []  # refused before it began


def test_an_unreachable_endpoint_is_named(
    home: Path, tmp_path: Path, s3_uri: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = tmp_path / "in.csv"
    write(customers(200, seed=6), source)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    done = cli(capsys, "batch", "churn", str(source), f"{s3_uri}/scores.csv")
    assert done.code == 6
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in done.err
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in done.err


def test_the_ray_engine_refuses_s3(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="local engine"):
        batch.score("churn", "s3://bucket/in.csv", tmp_path / "out.csv", engine="ray")


@pytest.mark.slow  # a real process, killed
def test_a_killed_s3_job_resumes_to_the_same_bytes(
    home: Path,
    tmp_path: Path,
    s3_uri: str,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "wide.parquet"
    wide_frame(60_000).to_parquet(source)
    upload(s3_server, source, f"{s3_uri}/wide.parquet")
    remote_source = f"{s3_uri}/wide.parquet"
    clean, resumed = f"{s3_uri}/clean.parquet", f"{s3_uri}/resumed.parquet"
    args = ["--id-column", "row_id", "--chunk-rows", "400"]  # 150 parts
    assert cli(capsys, "batch", "wide", remote_source, clean, *args).code == 0

    # A real process, so that it can be killed mid-job (SIGKILL: no cleanup runs).
    job = subprocess.Popen(
        console_command("batch", "wide", remote_source, resumed, *args),
        env=console_env(home),  # with the test's AWS variables
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(part_names(s3_server, resumed)) < 10:
        if job.poll() is not None:
            pytest.fail(f"the job ended before it could be killed: {job.communicate()[1]}")
        if time.monotonic() > deadline:
            job.kill()
            job.communicate()
            pytest.fail("the job wrote no 10 parts in 120 s")
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.communicate()
    written = len(part_names(s3_server, resumed))
    assert 10 <= written < 150, written  # killed midway
    assert "_SUCCESS" not in objects(s3_server, resumed)

    again = cli(capsys, "batch", "wide", remote_source, resumed, *args)
    assert again.code == 0, again.err
    assert f"({written} already done)" in again.out
    assert objects(s3_server, resumed) == objects(s3_server, clean)
