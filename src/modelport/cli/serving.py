"""Running models: predict in this process, or serve them over HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from modelport._load import load as load_model
from modelport.cli._shared import out, state
from modelport.config import ServingSettings, settings_error
from modelport.records import outputs_to_json, read_input_file


def predict(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3, NAME@ALIAS or a path.")],
    input: Annotated[
        Path, typer.Option("--input", "-i", help="Rows as .json, .jsonl, .csv or .avro.")
    ],
    trust_unsafe: Annotated[
        bool,
        typer.Option(
            help="Load a folder or bundle as it is: its code (pyfunc) runs and its pickles "
            "skip the allow-list. Only for code you trust."
        ),
    ] = False,
) -> None:
    """Load REF in this process, predict on the rows in --input, print the outputs as JSON."""
    data = _read_avro(input) if input.suffix.lower() == ".avro" else read_input_file(input)
    model = load_model(ref, settings=state.settings, trust_unsafe=trust_unsafe)
    out.print(
        json.dumps(outputs_to_json(model.predict_outputs(data))), markup=False, highlight=False
    )


def _read_avro(path: Path) -> object:
    """An Avro file's rows as a DataFrame, typed as batch scoring reads them (needs the
    ``batch`` and ``avro`` extras)."""
    from modelport.batch.avro import read_table

    return read_table(path).to_pandas()


def serve(
    refs: Annotated[
        list[str] | None, typer.Argument(help="Models to serve: NAME, NAME/3, NAME@ALIAS, paths.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="deployment.yaml (models and settings).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Serve the one model under this name \\[default: its registered name, or the "
            "folder's name]."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind \\[default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port \\[default: 8000].")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes sharing the port.")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Rows per batched predict.")] = None,
    max_batch_delay_ms: Annotated[
        float | None, typer.Option(help="Longest wait for a batch to fill.")
    ] = None,
    batching: Annotated[bool | None, typer.Option(help="Adaptive batching on/off.")] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Where torch and ONNX models run: cpu, cuda or cuda:N \\[default: cpu]. "
            "On a GPU the batching wait defaults to 2 ms."
        ),
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth",
            help="Require API keys (Authorization: Bearer) even on loopback. "
            "Always on for other addresses unless --insecure-no-auth.",
        ),
    ] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option(help="Serve a non-loopback address WITHOUT API keys (warns).")
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate chain: serve HTTPS (with --tls-key).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
    require_signed: Annotated[
        Path | None,
        typer.Option(
            help="Ed25519 public key (see `modelport keygen`): refuse models not signed with it."
        ),
    ] = None,
    trust_unsafe: Annotated[
        bool | None,
        typer.Option(
            "--trust-unsafe",
            help="Load models given as paths (folders, bundles) as they are: their code runs "
            "and their pickles skip the allow-list. Registered versions follow their record.",
        ),
    ] = None,
    log_sample_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of requests logged (inputs, outputs, request id) for drift and live "
            "accuracy \\[default: 0, off].",
        ),
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option(help="One JSON line per request on stdout \\[default: on].")
    ] = None,
) -> None:
    """Serve models over HTTP: Open Inference Protocol (V2), TF-Serving-style and MLflow-style.

    A served NAME@ALIAS or NAME follows the registry: a new version is loaded and warmed
    beside the old one, then traffic switches with no failed request. An artifact folder
    is served with no registry entry (`modelport serve /mnt/models --name churn`); with no
    ref, a STORAGE_URI (KServe's) names the folder: a local path as it is, a remote URI
    as the storage initializer's /mnt/models.
    """
    from modelport.serving import load_deployment
    from modelport.serving import serve as run_server
    from modelport.serving.deployment import command_line_specs

    deployment = load_deployment(config) if config else None
    flags = {
        "host": host,
        "port": port,
        "workers": workers,
        "max_batch_size": max_batch_size,
        "max_batch_delay_ms": max_batch_delay_ms,
        "batching": batching,
        "device": device,
        "auth": auth,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "require_signed": require_signed,
        "trust_unsafe": trust_unsafe,
        "log_sample_rate": log_sample_rate,
        "access_log": access_log,
    }
    serving = {
        **(deployment.serving if deployment else {}),
        **{k: v for k, v in flags.items() if v is not None},
    }
    try:
        # exclude_unset: a setting nobody gave keeps its default *as a default* (a GPU model's
        # batching wait depends on whether one was chosen)
        given = state.settings.serving.model_dump(exclude_unset=True)
        merged = ServingSettings.model_validate({**given, **serving})
    except ValidationError as exc:
        raise settings_error(exc, "serving") from None
    settings = state.settings.model_copy(update={"serving": merged})
    storage_uri = None if config else os.environ.get("STORAGE_URI")
    named = command_line_specs(refs or [], name, storage_uri)
    specs = [*(deployment.models if deployment else []), *named]
    run_server(settings, specs, insecure_no_auth=insecure_no_auth)
