"""Batch scoring through the CLI and the API: chunks, formats, rejects, resume, run records.

The commands run in this process, but for the two that need a process of their own: its peak
memory is measured, or it is killed mid-job."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelport
from modelport import batch
from modelport.errors import InvalidInput

from ._churn import NUMERIC, churn_frame
from ._cli import cli, console_command, console_env


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``churn`` (columns: three numbers and a plan; unknown plans are an error) and
    ``wide`` (one float32 tensor of 20 features); MODELPORT_HOME for the commands."""
    x, y = churn_frame(2000, seed=1)
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["plan"])]
    )
    churn = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(x, y)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 20)).astype(np.float32)
    wide = LogisticRegression().fit(features, features[:, 0] + features[:, 1] > 0)
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        registry.register("churn", churn, input_example=x[:5])
        registry.register("wide", wide, input_example=features[:5])
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))
    return tmp_path


def settings(home: Path) -> modelport.Settings:
    return modelport.Settings(home=home)


def customers(n: int, seed: int) -> pd.DataFrame:
    frame, _ = churn_frame(n, seed)
    return frame.assign(customer_id=np.arange(n) + 1_000_000)[["customer_id", *frame.columns]]


def wide_frame(n: int, seed: int = 1) -> pd.DataFrame:
    data = np.random.default_rng(seed).normal(size=(n, 20)).astype(np.float32)
    frame = pd.DataFrame(data, columns=[f"f{i}" for i in range(20)])
    frame.insert(0, "row_id", np.arange(n))
    return frame


def expected(home: Path, ref: str, features: object) -> np.ndarray:
    return modelport.load(ref, settings=settings(home)).predict(features)


def read_output(sink: Path) -> pd.DataFrame:
    parts = sorted(p for p in sink.iterdir() if p.is_file() and p.name[0] not in "_.")
    if parts[0].suffix == ".csv":
        return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    if parts[0].suffix == ".jsonl":
        return pd.concat([pd.read_json(p, lines=True) for p in parts], ignore_index=True)
    return pd.read_parquet(sink)


def test_many_chunks_give_in_process_predictions_row_for_row(home: Path, tmp_path: Path) -> None:
    frame = customers(25_000, seed=2)
    source = tmp_path / "customers.parquet"
    frame.to_parquet(source, row_group_size=7_000)  # row groups that do not align with chunks
    result = batch.score(
        "churn",
        source,
        tmp_path / "scores.parquet",
        id_columns=["customer_id"],
        probabilities=True,
        chunk_rows=3_000,
        settings=settings(home),
    )
    assert (result.status, result.rows, result.scored, result.rejected) == (
        "succeeded",
        25_000,
        25_000,
        0,
    )
    assert result.parts == 9
    out = read_output(tmp_path / "scores.parquet")
    assert list(out.columns) == ["customer_id", "predictions", "probabilities_0", "probabilities_1"]
    assert out["customer_id"].tolist() == frame["customer_id"].tolist()  # same order
    features = frame.drop(columns="customer_id")
    np.testing.assert_array_equal(out["predictions"], expected(home, "churn", features))
    proba = modelport.load("churn", settings=settings(home)).predict_outputs(features)
    np.testing.assert_allclose(out["probabilities_1"], proba["probabilities"][:, 1])


@pytest.mark.slow  # a fresh process's peak memory
def test_memory_is_bounded_by_the_chunk_not_the_file(home: Path, tmp_path: Path) -> None:
    """300 k and 1.5 M rows of 20 float32 features, scored in 10,000-row chunks: five times
    the rows (92 MB more as an array) leave the job's peak memory where it was."""

    def write(path: Path, blocks: int) -> None:
        writer = None
        for i in range(blocks):
            table = pa.Table.from_pandas(wide_frame(100_000, seed=i + 10), preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()

    def peak_mb(source: Path, sink: Path) -> float:
        """Peak RSS of ``modelport batch`` alone (a fresh parent, so no other child counts)."""
        probe = (
            "import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
        )
        command = console_command("batch", "wide", str(source), str(sink), "--chunk-rows", "10000")
        done = subprocess.run(
            [sys.executable, "-c", probe, *command, "--id-column", "row_id"],
            capture_output=True,
            text=True,
            env=console_env(home),
            timeout=600,
            check=True,
        )
        return float(done.stdout.strip())

    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    write(small, 3)
    write(large, 15)
    base = peak_mb(small, tmp_path / "small-out.parquet")
    peak = peak_mb(large, tmp_path / "large-out.parquet")
    assert len(read_output(tmp_path / "large-out.parquet")) == 1_500_000
    extra_mb = 1_200_000 * 20 * 4 / 2**20
    assert peak - base < extra_mb / 3, (base, peak)


@pytest.mark.parametrize(
    ("source_name", "sink_name"),
    [("in.csv", "out.jsonl"), ("in.jsonl", "out.csv"), ("in.parquet", "out.parquet")],
)
def test_formats_in_and_out(home: Path, tmp_path: Path, source_name: str, sink_name: str) -> None:
    frame = customers(5_000, seed=3)
    source = tmp_path / source_name
    if source.suffix == ".csv":
        frame.to_csv(source, index=False)
    elif source.suffix == ".jsonl":
        frame.to_json(source, orient="records", lines=True)
    else:
        source.mkdir()  # a partitioned dataset: a folder of part files
        for i in range(3):
            frame.iloc[i * 2000 : (i + 1) * 2000].to_parquet(source / f"part-{i}.parquet")
    result = batch.score(
        "churn",
        source,
        tmp_path / sink_name,
        id_columns=["customer_id"],
        keep=["plan"],
        chunk_rows=1_200,
        settings=settings(home),
    )
    assert result.status == "succeeded"
    out = read_output(tmp_path / sink_name)
    assert out["customer_id"].tolist() == frame["customer_id"].tolist()
    assert out["plan"].tolist() == frame["plan"].tolist()
    np.testing.assert_array_equal(
        out["predictions"], expected(home, "churn", frame.drop(columns="customer_id"))
    )


def test_bad_rows_go_to_rejects_with_their_reasons(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = customers(3_000, seed=4).astype({"monthly_spend": object, "plan": object})
    frame.loc[10, "monthly_spend"] = "lots"  # text in a number column
    frame.loc[1500, "plan"] = None  # an empty category
    frame.loc[2222, "support_calls"] = np.nan  # NaN: LogisticRegression cannot take it
    frame.loc[2999, "plan"] = "platinum"  # a plan the encoder never saw
    source = tmp_path / "customers.csv"
    frame.to_csv(source, index=False)
    sink = tmp_path / "scores.parquet"
    done = cli(capsys, "batch", "churn", str(source), str(sink), "--id-column", "customer_id",
               "--chunk-rows", "1000")  # fmt: skip
    assert done.code == 0, done.err
    assert "4 rejected" in done.out
    rejects = [
        json.loads(line)
        for part in sorted((sink / "_rejects").glob("part-*.jsonl"))
        for line in part.read_text().splitlines()
    ]
    reasons = {r["row"]: r["reason"] for r in rejects}
    assert sorted(reasons) == [10, 1500, 2222, 2999]
    assert "'lots' is not a number" in reasons[10]
    assert "plan" in reasons[1500]
    assert "missing value" in reasons[2222]
    assert "model error" in reasons[2999]
    assert "platinum" in reasons[2999]
    assert {r["values"]["customer_id"] for r in rejects} == {
        1_000_010,
        1_001_500,
        1_002_222,
        1_002_999,
    }
    out = read_output(sink)
    good = frame.drop(index=[10, 1500, 2222, 2999])
    assert out["customer_id"].tolist() == good["customer_id"].tolist()
    features = good.drop(columns="customer_id").astype({"monthly_spend": float})
    np.testing.assert_array_equal(out["predictions"], expected(home, "churn", features))

    strict = cli(capsys, "batch", "churn", str(source), str(tmp_path / "strict.parquet"),
                 "--max-reject-fraction", "0.001")  # fmt: skip
    assert strict.code == 1
    assert "4 of 3000 rows (0.1%) were rejected" in strict.err
    assert not (tmp_path / "strict.parquet" / "_SUCCESS").exists()


@pytest.mark.slow  # a real process, killed
def test_a_killed_job_resumes_to_the_same_bytes(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "wide.parquet"
    wide_frame(400_000).to_parquet(source)
    clean, resumed = tmp_path / "clean.parquet", tmp_path / "resumed.parquet"
    args = ["--id-column", "row_id", "--chunk-rows", "2000"]
    assert cli(capsys, "batch", "wide", str(source), str(clean), *args).code == 0

    # A real process, so that it can be killed mid-job (SIGKILL: no cleanup runs).
    job = subprocess.Popen(
        console_command("batch", "wide", str(source), str(resumed), *args),
        env=console_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(resumed.glob("part-*"))) < 20:
        if job.poll() is not None:
            pytest.fail(f"the job ended before it could be killed: {job.communicate()[1]}")
        if time.monotonic() > deadline:
            job.kill()
            job.communicate()
            pytest.fail("the job wrote no 20 parts in 120 s")
        time.sleep(0.02)
    with modelport.Registry(settings(home)) as registry:
        alive = registry.runs.list_runs("wide", limit=1)[0]
    job.send_signal(signal.SIGKILL)
    job.communicate()
    written = len(list(resumed.glob("part-*")))
    assert 20 <= written < 200, written  # killed midway
    assert (alive.status, alive.pid, alive.sink) == ("running", job.pid, str(resumed))
    # It could not record its end: the registry sees its process is gone.
    runs = cli(capsys, "runs", "wide", "--json")
    assert [r["status"] for r in json.loads(runs.out)] == ["abandoned", "succeeded"]
    shown = cli(capsys, "runs", "wide").out
    assert "wide/1 abandoned" in shown
    assert f"process {job.pid} on " in shown
    assert "is gone" in shown
    again = cli(capsys, "batch", "wide", str(source), str(resumed), *args)
    assert again.code == 0, again.err
    assert "already done" in again.out
    runs = cli(capsys, "runs", "wide", "--json")
    assert [r["status"] for r in json.loads(runs.out)] == ["succeeded", "abandoned", "succeeded"]
    files = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(resumed) for p in resumed.rglob("*") if p.is_file())
    for name in files:
        assert (clean / name).read_bytes() == (resumed / name).read_bytes(), name
    assert len(read_output(resumed)) == 400_000


def test_another_job_into_the_same_folder_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "customers.parquet"
    customers(100, seed=5).to_parquet(source)
    sink = tmp_path / "scores.parquet"
    assert cli(capsys, "batch", "churn", str(source), str(sink)).code == 0
    other = cli(capsys, "batch", "churn", str(source), str(sink), "--chunk-rows", "10")
    assert other.code != 0
    assert "holds another job's output" in other.err
    assert cli(capsys, "batch", "churn", str(source), str(sink), "--chunk-rows", "10",
               "--overwrite").code == 0  # fmt: skip
    missing = cli(capsys, "batch", "churn", str(source), str(tmp_path / "x.parquet"),
                  "--id-column", "nope")  # fmt: skip
    assert missing.code != 0
    assert "no column 'nope'" in missing.err


def test_runs_are_recorded(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "customers.csv"
    customers(500, seed=6).to_csv(source, index=False)
    assert cli(capsys, "batch", "churn", str(source), str(tmp_path / "a.parquet")).code == 0
    listed = cli(capsys, "runs", "churn", "--json")
    assert listed.code == 0, listed.err
    [run] = json.loads(listed.out)
    assert (run["model"], run["version"], run["status"]) == ("churn", 1, "succeeded")
    assert (run["rows"], run["scored"], run["rejected"]) == (500, 500, 0)
    assert run["source"] == str(source)
    assert run["seconds"] > 0


@pytest.mark.slow  # a Ray cluster
@pytest.mark.parametrize("source_name", ["customers.parquet", "customers.csv"])
def test_the_ray_engine_gives_the_local_engines_output(
    home: Path, tmp_path: Path, source_name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """The CSV job starts and stops Ray itself; the Parquet jobs run on one the caller
    started, which the engine must leave running (and whose workers the jobs share)."""
    with contextlib.ExitStack() as stack:
        _ray_job_matches_local(home, tmp_path, source_name, capfd, stack)


@contextlib.contextmanager
def _ray_of_our_own() -> Iterator[None]:
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield
        assert ray.is_initialized(), "the engine shut down a Ray it did not start"
    finally:
        ray.shutdown()


def _ray_job_matches_local(
    home: Path,
    tmp_path: Path,
    source_name: str,
    capfd: pytest.CaptureFixture[str],
    stack: contextlib.ExitStack,
) -> None:
    frame = customers(6_000, seed=7).astype({"monthly_spend": object})
    frame.loc[123, "monthly_spend"] = "lots"  # one bad row, rejected by both engines
    source = tmp_path / source_name
    if source.suffix == ".csv":
        frame.to_csv(source, index=False)
    else:  # row groups that chunks straddle: tasks start inside a group
        frame.astype({"monthly_spend": str}).to_parquet(source, row_group_size=1_500)

    heard: list[batch.Progress] = []

    def run(sink: Path, engine: Literal["local", "ray"]) -> batch.BatchResult:
        heard.clear()
        return batch.score(
            "churn",
            source,
            sink,
            id_columns=["customer_id"],
            probabilities=True,
            chunk_rows=1_000,
            engine=engine,
            settings=settings(home),
            on_progress=heard.append,
        )

    local = run(tmp_path / "local.parquet", "local")
    capfd.readouterr()
    if source.suffix == ".parquet":  # three jobs: on a Ray the caller started, which stays
        stack.enter_context(_ray_of_our_own())
    on_ray = run(tmp_path / "ray.parquet", "ray")
    # A job that went well says nothing alarming: Ray's C++ core logged an error-level line
    # ("[... E pid tid] core_worker.cc ...") for each actor it could restart.
    said = capfd.readouterr().err
    assert not re.search(r",\d+ E \d+ \d+\]", said), said
    if source.suffix == ".parquet":  # a progress report per chunk, as the local engine gives
        assert [(p.rows, p.fraction) for p in heard] == [(n * 1_000, n / 6) for n in range(1, 7)]
    assert (on_ray.status, on_ray.rows, on_ray.rejected) == ("succeeded", 6_000, 1)
    assert (local.rows, local.rejected) == (6_000, 1)
    listed = cli(capfd, "runs", "churn", "--json")
    assert {r["engine"] for r in json.loads(listed.out)} == {"local", "ray"}

    if source.suffix == ".parquet":
        # Each actor reads and writes the local engine's chunks: the same files, byte for byte,
        # rejects with their row numbers included.
        assert sink_files(tmp_path / "ray.parquet") == sink_files(tmp_path / "local.parquet")
        [reject] = read_rejects(tmp_path / "ray.parquet")
        assert (reject["row"], reject["values"]["customer_id"]) == (123, 1_000_123)
        # As if killed before parts 2 and 5 were in: the rerun scores only those two.
        for name in ("part-00002.parquet", "_stats/part-00005.json"):
            (tmp_path / "ray.parquet" / name).unlink()
        again = run(tmp_path / "ray.parquet", "ray")
        assert (again.status, again.resumed_parts, again.rows) == ("succeeded", 4, 6_000)
        assert sink_files(tmp_path / "ray.parquet") == sink_files(tmp_path / "local.parquet")
        return

    # Ray names its part files itself, so compare the rows, not the file order.
    def rows(sink: Path) -> pd.DataFrame:
        return read_output(sink).sort_values("customer_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(rows(tmp_path / "ray.parquet"), rows(tmp_path / "local.parquet"))
    [reject] = [
        json.loads(line)
        for f in (tmp_path / "ray.parquet" / "_rejects").glob("ray-*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert reject["values"]["customer_id"] == 1_000_123
    assert "'lots' is not a number" in reject["reason"]


def read_rejects(sink: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for part in sorted((sink / "_rejects").glob("*.jsonl"))
        for line in part.read_text().splitlines()
    ]


def sink_files(sink: Path) -> dict[str, bytes]:
    """Every file of an output folder, by its path in the folder."""
    return {
        str(f.relative_to(sink)): f.read_bytes() for f in sorted(sink.rglob("*")) if f.is_file()
    }


def test_probability_columns_are_named_by_class(tmp_path: Path) -> None:
    """A classifier that records its labels gets ``probabilities_churn``, ... (they were
    ``probabilities_0``, ...); the same job run again writes the same names."""
    x, y = churn_frame(600, seed=8)
    labels = np.array(["stay", "churn"], dtype=object)[y]
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["plan"])]
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(x, labels)
    with modelport.Registry(settings(tmp_path)) as registry:
        registry.register("labelled", model, input_example=x[:5])
    source = tmp_path / "in.csv"
    customers(300, seed=9).to_csv(source, index=False)
    for sink in (tmp_path / "a.parquet", tmp_path / "b.csv"):
        result = batch.score(
            "labelled",
            source,
            sink,
            id_columns=["customer_id"],
            probabilities=True,
            settings=settings(tmp_path),
        )
        assert result.status == "succeeded"
        out = read_output(sink)
        assert list(out.columns) == [
            "customer_id",
            "predictions",
            "probabilities_churn",
            "probabilities_stay",
        ]
        proba = model.predict_proba(customers(300, seed=9).drop(columns="customer_id"))
        np.testing.assert_allclose(out["probabilities_churn"], proba[:, 0])
    # A kept input column may not take an output's name (it was silently overwritten).
    customers(10, seed=9).assign(predictions=1).to_csv(tmp_path / "clash.csv", index=False)
    with pytest.raises(InvalidInput, match="two columns named 'predictions'"):
        batch.score(
            "labelled",
            tmp_path / "clash.csv",
            tmp_path / "c.parquet",
            keep=["predictions"],
            settings=settings(tmp_path),
        )


def test_require_signed_refuses_unsigned_and_tampered_models(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelport._load import registered_artifact
    from modelport.artifact import signing
    from modelport.errors import ArtifactCorrupted, ArtifactUnsigned

    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub"
    signing.generate_keypair(private, public)
    with modelport.Registry(settings(home)) as registry:
        folder, pin = registered_artifact(registry, "wide")
        signing.sign_artifact(folder, private, manifest_sha256=pin)
    source = tmp_path / "wide.parquet"
    wide_frame(300).to_parquet(source)
    signed = batch.score(
        "wide",
        source,
        tmp_path / "signed.parquet",
        id_columns=["row_id"],
        require_signed=public,
        settings=settings(home),
    )
    assert (signed.status, signed.scored) == ("succeeded", 300)

    churn = tmp_path / "customers.csv"
    customers(50, seed=8).to_csv(churn, index=False)
    with pytest.raises(ArtifactUnsigned, match="not signed"):
        batch.score(
            "churn",
            churn,
            tmp_path / "unsigned.parquet",
            require_signed=public,
            settings=settings(home),
        )
    r = cli(
        capsys,
        "batch",
        "churn",
        str(churn),
        str(tmp_path / "cli.parquet"),
        "--require-signed",
        str(public),
    )
    assert r.code != 0
    assert "not signed" in r.err, r.err
    assert not (tmp_path / "cli.parquet").exists()

    model_file = folder / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit after signing
    model_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorrupted, match=r"model\.skops"):
        batch.score(
            "wide",
            source,
            tmp_path / "tampered.parquet",
            id_columns=["row_id"],
            require_signed=public,
            settings=settings(home),
        )
    with modelport.Registry(settings(home)) as registry:
        runs = registry.runs.list_runs()
    assert [(run.model, run.status) for run in runs] == [("wide", "succeeded")]  # none refused


def test_the_run_record_names_the_version_that_scored_while_the_alias_moves(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    features = np.random.default_rng(0).normal(size=(2000, 20)).astype(np.float32)
    flipped = LogisticRegression().fit(features, features[:, 0] + features[:, 1] <= 0)
    with modelport.Registry(settings(home)) as registry:
        registry.register("wide", flipped, input_example=features[:5])  # version 2
        registry.set_alias("wide", "production", 1)
    resolve = modelport.Registry.resolve

    def resolve_then_move(self: modelport.Registry, ref: Any) -> Any:
        found = resolve(self, ref)
        self.set_alias("wide", "production", 2)  # the alias moves right after each lookup
        return found

    monkeypatch.setattr(modelport.Registry, "resolve", resolve_then_move)
    frame = wide_frame(400)
    source = tmp_path / "wide.parquet"
    frame.to_parquet(source)
    result = batch.score(
        "wide@production",
        source,
        tmp_path / "scores.parquet",
        id_columns=["row_id"],
        settings=settings(home),
    )
    monkeypatch.undo()

    features_only = frame.drop(columns="row_id").to_numpy()
    scored = read_output(tmp_path / "scores.parquet")["predictions"].to_numpy()
    v1, v2 = (expected(home, f"wide/{v}", features_only) for v in (1, 2))
    assert not np.array_equal(v1, v2)
    np.testing.assert_array_equal(scored, v1)  # version 1 scored ...
    with modelport.Registry(settings(home)) as registry:
        assert registry.list_aliases("wide") == {"production": 2}  # ... while the alias moved
        [run] = registry.runs.list_runs("wide")
    assert (result.version, run.version) == (1, 1)  # and the record says so
