"""The ``modelport`` command line: parses flags, calls the library, prints the result.

Every error modelport raises on purpose is printed as one line, ``error: <message>``, and the
process exits with that error's ``exit_code`` (2 bad input or name, 3 not found, 4 conflict,
5 unusable artifact, 6 store failure, 7 server unavailable, 1 anything else). ``drift`` exits
:data:`DRIFT_FOUND` when a feature drifts, a code no error uses, so that an alerting script
can tell drift from a misspelled model.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from modelport import packaging
from modelport._load import load as load_model
from modelport._load import registered_artifact
from modelport.artifact import bundle, signing
from modelport.config import ServingSettings, Settings, settings_error
from modelport.errors import InvalidInput, ModelportError
from modelport.records import outputs_to_json, read_input_file
from modelport.ref import ModelRef
from modelport.registry import Registry
from modelport.registry.entities import ModelVersion, Page

T = TypeVar("T")

app = typer.Typer(
    help="Package, version and run machine-learning models.\n\n"
    "Refs name a model everywhere: NAME (latest ready version), NAME/3, NAME@ALIAS, or a path "
    "to an artifact folder or .tar bundle. A path starts with ./, / or ~, ends in .tar, or has "
    "folders (out/churn): a plain NAME is always the registry's, whatever is in the current "
    "directory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
alias_app = typer.Typer(help="Point aliases (production, staging, ...) at versions.")
app.add_typer(alias_app, name="alias")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _State:
    settings: Settings = Settings.model_construct()
    debug: bool = False


state = _State()


def _print_version(value: bool) -> None:
    if value:
        out.print(f"modelport {_dist_version('modelport')}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    home: Annotated[
        Path | None, typer.Option(help="Registry home folder \\[env: MODELPORT_HOME]")
    ] = None,
    registry_uri: Annotated[
        str | None,
        typer.Option(help="sqlite:///... or postgresql://... \\[env: MODELPORT_REGISTRY_URI]"),
    ] = None,
    artifact_uri: Annotated[
        str | None, typer.Option(help="Artifact folder \\[env: MODELPORT_ARTIFACT_URI]")
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(
            help="Public key (PEM) you trust, repeatable: a folder or bundle signed by it may "
            "run its own code (pyfunc) and load its pickles as they are "
            "\\[env: MODELPORT_TRUSTED_KEYS, a JSON list]"
        ),
    ] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Read settings: flags first, then MODELPORT_* environment variables, then defaults."""
    given: dict[str, Any] = {
        "home": home,
        "registry_uri": registry_uri,
        "artifact_uri": artifact_uri,
        "trusted_keys": trusted_key or None,
    }
    state.settings = Settings(**{k: v for k, v in given.items() if v is not None})
    state.debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr)


@contextmanager
def _registry() -> Iterator[Registry]:
    registry = Registry(state.settings)
    try:
        yield registry
    finally:
        registry.close()


def _all(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    """Every item of a paged listing."""
    items: list[T] = []
    token: str | None = None
    while True:
        page = fetch(token)
        items.extend(page.items)
        if not page.next_page_token:
            return items
        token = page.next_page_token


def _kv(pairs: list[str], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{what} {pair!r} must look like key=value")
        result[key] = value
    return result


@app.command()
def register(
    path: Annotated[
        Path,
        typer.Argument(
            help="Artifact folder, .tar bundle, or model file "
            "(.pkl/.joblib, .onnx, XGBoost .json/.ubj, LightGBM .txt)"
        ),
    ],
    name: Annotated[str, typer.Option(help="Model name to register under.")],
    metric: Annotated[list[str], typer.Option(help="key=value, repeatable")] = [],  # noqa: B006
    tag: Annotated[list[str], typer.Option(help="key=value, repeatable")] = [],  # noqa: B006
    description: Annotated[str, typer.Option(help="Free text for this version.")] = "",
    example: Annotated[
        Path | None, typer.Option(help="Input example file (.csv/.json) for plain model files.")
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Also point this alias at the new version.")
    ] = None,
    trust_unsafe: Annotated[
        bool,
        typer.Option(
            help="Register a model that the safety checks refuse (a pickle naming a global "
            "outside the allow-list, pyfunc code from a folder or bundle), recording you as "
            "the one who trusts it. Loading it can run any code: use only for models from a "
            "known source."
        ),
    ] = False,
) -> None:
    """Register a new version of NAME from PATH and print its ref.

    A folder or bundle signed by a --trusted-key is trusted without --trust-unsafe; the
    version records the key.
    """
    metrics = {k: float(v) for k, v in _kv(metric, "metric").items()}
    input_example = read_input_file(example) if example else None
    with _registry() as reg:
        version = reg.register(
            name,
            path,
            metrics=metrics,
            tags=_kv(tag, "tag"),
            description=description,
            input_example=input_example,
            trust_unsafe=trust_unsafe,
        )
        if alias:
            reg.set_alias(name, alias, version.version)
    suffix = f" (alias {alias})" if alias else ""
    if version.trusted_unsafe_by is not None:
        suffix += f" (trusted by {version.trusted_unsafe_by}: loads as it is)"
    out.print(
        f"registered {version.name}/{version.version} flavor={version.flavor}{suffix}",
        markup=False,
    )


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List registered models with their latest version and aliases."""
    with _registry() as reg:
        items = _all(reg.list_models)
    if as_json:
        out.print_json(
            data=[
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                    "description": m.description,
                    "updated_at": m.updated_at.isoformat(),
                }
                for m in items
            ]
        )
        return
    table = Table("model", "latest", "aliases", "updated")
    for m in items:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(
            m.name, str(m.latest_version or "-"), aliases, m.updated_at.strftime("%Y-%m-%d %H:%M")
        )
    out.print(table)


@app.command()
def versions(
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the versions of a model, newest first, with status, flavor and metrics."""
    with _registry() as reg:
        items = _all(lambda token: reg.list_versions(name, page_token=token))
        aliases = reg.get_model(name).aliases
    by_version: dict[int, list[str]] = {}
    for alias, target in aliases.items():
        by_version.setdefault(target, []).append(alias)
    if as_json:
        out.print_json(
            data=[
                {
                    "version": v.version,
                    "status": v.status,
                    "flavor": v.flavor,
                    "metrics": v.metrics,
                    "aliases": sorted(by_version.get(v.version, [])),
                    "created_at": v.created_at.isoformat(),
                    "error": v.error,
                }
                for v in items
            ]
        )
        return
    table = Table("version", "status", "flavor", "aliases", "metrics", "created")
    failures = []
    for v in items:
        metrics = " ".join(f"{k}={val:g}" for k, val in sorted(v.metrics.items()))
        table.add_row(
            str(v.version),
            v.status,
            v.flavor or "-",
            ", ".join(sorted(by_version.get(v.version, []))),
            metrics,
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        )
        if v.error:
            failures.append(f"{v.version}: {v.error}")
    out.print(table)
    for line in failures:  # the reason in full, below the table, where it has room
        out.print(f"version {line}", markup=False, highlight=False)


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    version: Annotated[int, typer.Argument(help="A ready version number.")],
) -> None:
    """Point ALIAS of NAME at VERSION (the previous target is kept in the history)."""
    with _registry() as reg:
        reg.set_alias(name, alias, version)
    out.print(f"{name}@{alias} -> {version}")


@alias_app.command("delete")
def alias_delete(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to remove.")],
) -> None:
    """Remove ALIAS from NAME."""
    with _registry() as reg:
        reg.delete_alias(name, alias)
    out.print(f"deleted {name}@{alias}")


@alias_app.command("history")
def alias_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every change of ALIAS, newest first: what it pointed at before and after."""
    with _registry() as reg:
        changes = reg.alias_history(name, alias)
    if as_json:
        out.print_json(
            data=[
                {
                    "changed_at": c.changed_at.isoformat(),
                    "previous_version": c.previous_version,
                    "version": c.version,
                }
                for c in changes
            ]
        )
        return
    table = Table("changed", "from", "to")
    for c in changes:
        table.add_row(
            c.changed_at.strftime("%Y-%m-%d %H:%M:%S"),
            _opt(c.previous_version),
            _opt(c.version, "(deleted)"),
        )
    out.print(table)


def _opt(value: int | None, none: str = "-") -> str:
    return none if value is None else str(value)


@app.command()
def info(ref: Annotated[str, typer.Argument(help="NAME, NAME/3, NAME@ALIAS or a path.")]) -> None:
    """Show a version's manifest: flavor, signature, metrics, lineage and files.

    For a registered version, "registry" says which version the ref resolved to (name@alias
    and name resolve to one), its status, the aliases pointing at it and, for a failed
    version, why it failed; "trusted_unsafe" says who trusted it and when (null: it loads
    through the safety checks).
    """
    parsed = ModelRef.parse(ref)
    with _registry() as reg:
        if parsed.name is not None and parsed.version is not None:
            record = reg.get_version(parsed.name, parsed.version)
            if not record.is_ready:  # no artifact to read: the record says why
                out.print_json(data={"registry": _record(record, [])})
                return
        version = reg.resolve(parsed) if parsed.path is None else None
        # Read the manifest of the version just resolved, even if an alias moves meanwhile.
        manifest = reg.manifest(f"{version.name}/{version.version}" if version else parsed)
        aliases = reg.list_aliases(version.name) if version else {}
    data = manifest.to_dict()
    if version is not None:
        pointing = sorted(a for a, v in aliases.items() if v == version.version)
        data["registry"] = _record(version, pointing)
        data["trusted_unsafe"] = data["registry"]["trusted_unsafe"]
    out.print_json(data=data)


def _record(version: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    """What the registry knows of a version, beside its manifest."""
    return {
        "name": version.name,
        "version": version.version,
        "status": version.status,
        "error": version.error,
        "aliases": aliases,
        "source": version.source,
        "tags": version.tags,
        "description": version.description,
        "created_at": _iso(version.created_at),
        "trusted_unsafe": (
            {"by": version.trusted_unsafe_by, "at": _iso(version.trusted_unsafe_at)}
            if version.trusted_unsafe_by is not None
            else None
        ),
    }


@app.command()
def predict(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3, NAME@ALIAS or a path.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Rows as .json, .jsonl or .csv.")],
    trust_unsafe: Annotated[
        bool,
        typer.Option(
            help="Load a folder or bundle as it is: its code (pyfunc) runs and its pickles "
            "skip the allow-list. Only for code you trust."
        ),
    ] = False,
) -> None:
    """Load REF in this process, predict on the rows in --input, print the outputs as JSON."""
    data = read_input_file(input)
    model = load_model(ref, settings=state.settings, trust_unsafe=trust_unsafe)
    out.print(json.dumps(outputs_to_json(model.predict_outputs(data))))


@app.command()
def delete(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION (one version) or NAME (the model).")],
    force: Annotated[
        bool, typer.Option("--force", help="Delete a model even while aliases point at it.")
    ] = False,
) -> None:
    """Delete a version (NAME/3) or a whole model (NAME) with its files.

    A version is refused while an alias points at it. A model goes with every version,
    failed ones included; while it has aliases that needs --force.
    """
    parsed = ModelRef.parse(ref)
    if parsed.name is None or parsed.alias is not None:
        raise InvalidInput(f"name a version (churn/3) or a model (churn) to delete, not {ref!r}")
    with _registry() as reg:
        if parsed.version is not None:
            version = reg.delete_version(parsed.name, parsed.version)
            out.print(f"deleted {version.name}/{version.version}", markup=False)
            return
        count = len(_all(lambda token: reg.list_versions(parsed.name or "", page_token=token)))
        reg.delete_model(parsed.name, with_aliases=force)
    out.print(f"deleted model {parsed.name} ({count} versions)", markup=False)


@app.command()
def edit(
    ref: Annotated[str, typer.Argument(help="NAME/VERSION to edit.")],
    tag: Annotated[list[str], typer.Option(help="key=value to set, repeatable")] = [],  # noqa: B006
    untag: Annotated[list[str], typer.Option(help="A tag key to remove, repeatable")] = [],  # noqa: B006
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
) -> None:
    """Change a version's tags and description in the registry.

    The artifact is not touched: its manifest keeps the tags it was saved with.
    """
    parsed = ModelRef.parse(ref)
    if parsed.name is None or parsed.version is None:
        raise InvalidInput(f"name a version to edit, like churn/3, not {ref!r}")
    with _registry() as reg:
        version = reg.update_version(
            parsed.name,
            parsed.version,
            tags=_kv(tag, "tag"),
            remove_tags=untag,
            description=description,
        )
    tags = " ".join(f"{k}={v}" for k, v in sorted(version.tags.items())) or "(no tags)"
    out.print(f"{version.name}/{version.version}: {tags}", markup=False, highlight=False)


@app.command()
def pack(
    ref: Annotated[str, typer.Argument(help="NAME/3, NAME@ALIAS or an artifact folder.")],
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="The .tar file to write.")],
) -> None:
    """Write a verified artifact into one .tar file for moving between machines."""
    with _registry() as reg:
        source = reg.artifact_path(ref)
        bundle.pack(source, bundle_path)
    out.print(f"wrote {bundle_path}")


@app.command()
def unpack(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A .tar bundle.")],
    target: Annotated[Path, typer.Argument(help="New folder to create.")],
) -> None:
    """Extract a .tar bundle safely and verify its checksums; nothing in it is run.

    Refused: absolute paths, '..', links, devices, and sizes past the bundle limits
    (MODELPORT_BUNDLE__*), before anything is written.
    """
    bundle.unpack(bundle_path, target, state.settings.bundle)
    packaging.verify_artifact_files(target)
    out.print(f"unpacked to {target} (checksums verified; nothing loaded)", markup=False)


# -- artifact signing (Ed25519) ------------------------------------------------------------


@app.command()
def keygen(
    private: Annotated[
        Path,
        typer.Option(
            "--private", help="Private key file to create (PEM, mode 0600). Keep it secret."
        ),
    ],
    public: Annotated[
        Path,
        typer.Option(
            "--public", help="Public key file to create (PEM); give it to whoever verifies."
        ),
    ],
) -> None:
    """Create an Ed25519 key pair for signing artifacts. Never overwrites an existing file."""
    fingerprint = signing.generate_keypair(private, public)
    out.print(f"wrote private key {private} and public key {public}", markup=False)
    out.print(f"key fingerprint: {fingerprint}", markup=False)


@app.command()
def sign(
    ref: Annotated[
        str, typer.Argument(help="NAME/3, NAME@ALIAS, NAME (latest) or an artifact folder.")
    ],
    key: Annotated[
        Path, typer.Option("--key", help="Private key (PEM) made by 'modelport keygen'.")
    ],
) -> None:
    """Sign REF's modelport.json with an Ed25519 key, writing modelport.sig beside it.

    A registered version is signed in place, in the registry's artifact store, after its
    manifest is checked against the registry's record and every file against its checksum.
    To ship a signed bundle, sign the folder and then pack it: the bundle carries the
    signature. Signing again replaces the signature.
    """
    parsed = ModelRef.parse(ref)
    if parsed.path is not None and parsed.path.is_file():
        raise InvalidInput(f"{ref} is a file; sign the artifact folder, then pack it")
    with _registry() as reg:
        path, pinned = registered_artifact(reg, parsed)
        written = signing.sign_artifact(path, key, manifest_sha256=pinned)
    fingerprint = signing.fingerprint(signing.load_private_key(key).public_key())
    out.print(f"signed {ref} with key {fingerprint} (wrote {written})", markup=False)


@app.command()
def verify(
    ref: Annotated[
        str, typer.Argument(help="NAME/3, NAME@ALIAS, NAME, an artifact folder or a .tar bundle.")
    ],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="Trusted public key (PEM) to check against.")
    ],
) -> None:
    """Check that REF is signed by --public-key and unchanged since: exit 0 if so.

    Otherwise exit 5 and say why: not signed, signed by another key, manifest edited after
    signing, or which file changed (exit 2 for an unreadable key file). Nothing is loaded.
    """
    with _registry() as reg:
        path, pinned = registered_artifact(reg, ref)
        verified = signing.verify_artifact(path, public_key, manifest_sha256=pinned)
    files = len(verified.manifest.files)
    out.print(
        f"verified {ref}: signed by key {verified.key_fingerprint}, {files} files match",
        markup=False,
    )


@app.command()
def cleanup(
    older_than: Annotated[
        str, typer.Option(help="How long a version may stay pending: 30m, 1h, 2d, ...")
    ] = "1h",
) -> None:
    """Mark versions left 'pending' by a crashed registration as failed; remove their files."""
    from modelport.monitoring.live import parse_window

    with _registry() as reg:
        stale = reg.cleanup_stale(parse_window(older_than))
    out.print(f"marked {len(stale)} stale version(s) failed")


@app.command()
def serve(
    refs: Annotated[
        list[str] | None, typer.Argument(help="Models to serve: NAME, NAME/3, NAME@ALIAS, paths.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="deployment.yaml (models and settings).")
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
    beside the old one, then traffic switches with no failed request.
    """
    from modelport.serving import ModelSpec, load_deployment
    from modelport.serving import serve as run_server

    deployment = load_deployment(config) if config else None
    flags = {
        "host": host,
        "port": port,
        "workers": workers,
        "max_batch_size": max_batch_size,
        "max_batch_delay_ms": max_batch_delay_ms,
        "batching": batching,
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
        merged = ServingSettings.model_validate({**state.settings.serving.model_dump(), **serving})
    except ValidationError as exc:
        raise settings_error(exc, "serving") from None
    settings = state.settings.model_copy(update={"serving": merged})
    specs = [*(deployment.models if deployment else []), *(ModelSpec(ref=r) for r in refs or [])]
    run_server(settings, specs, insecure_no_auth=insecure_no_auth)


# -- monitoring ------------------------------------------------------------------------------

DRIFT_FOUND = 8
"""``modelport drift``'s exit code when a feature drifts: not one of the errors' codes."""


@app.command()
def drift(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3 or NAME@ALIAS.")],
    since: Annotated[str, typer.Option(help="Window of logged requests: 30m, 1h, 7d, ...")] = "1h",
    alpha: Annotated[float, typer.Option(help="A feature drifts when p < alpha ...")] = 0.01,
    psi: Annotated[float, typer.Option(help="... and PSI > this.")] = 0.1,
    min_samples: Annotated[int, typer.Option(help="Fewer logged rows: no verdict.")] = 100,
    served_name: Annotated[
        str | None, typer.Option(help="Name the model is served under, if renamed.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-feature drift of the logged inputs against the training data's profile.

    Compares the inputs the server logged in the window with the version's reference
    profile (PSI, with KS or chi-squared). Exit 8 when a feature drifts (0 when none does
    or there is no verdict yet; 3 is an unknown model, as everywhere).
    """
    from modelport.monitoring.drift import DriftThresholds
    from modelport.monitoring.live import drift_of, parse_window

    thresholds = DriftThresholds(alpha=alpha, psi=psi, min_samples=min_samples)
    with _registry() as reg:
        report = drift_of(reg, ref, parse_window(since), thresholds, served_name)
    if as_json:
        out.print_json(data=report)
    else:
        head = f"{report['model']} version {report['version']}: {report['n_live']} rows logged"
        out.print(f"{head} in the last {since}", markup=False)
        if "reason" in report:
            out.print(f"no verdict: {report['reason']}", markup=False)
        table = Table("feature", "kind", "test", "PSI", "p-value", "drifted")
        for f in report["features"]:
            table.add_row(
                f["feature"],
                f["kind"],
                f["test"],
                _num(f["psi"]),
                _num(f["p_value"]),
                "DRIFT" if f["drifted"] else "-",
            )
        if report["features"]:
            out.print(table)
    if report["drifted"]:
        raise typer.Exit(DRIFT_FOUND)


@app.command()
def feedback(
    name: Annotated[str, typer.Argument(help="The served model's name.")],
    labels: Annotated[Path, typer.Argument(help="CSV file with a request id and a label column.")],
    id_column: Annotated[str, typer.Option(help="Column holding the request ids.")] = "id",
    label_column: Annotated[str, typer.Option(help="Column holding the true labels.")] = "label",
) -> None:
    """Record true labels for logged requests, for live accuracy.

    A label is one value for a request of one row, or a JSON list with one value per row, in
    row order, for a request of several: "[2, 1, 1]". Labels of the wrong kind for what NAME
    predicts (text for a model of numbers, say), or whose count is not the request's rows,
    are refused; labels of ids never logged for NAME are unpaired. Neither is stored; the
    others are. Exit code: 0 all stored, 2 some refused, 3 none refused but some unpaired.
    """
    from modelport.monitoring.labels import store_feedback

    with _registry() as reg:
        report = store_feedback(reg, name, labels, id_column, label_column)
    refused, unpaired = report.refused, report.unpaired
    out.print(
        f"stored {report.stored} labels for {name}, refused {len(refused)}, unpaired "
        f"{len(unpaired)}",
        markup=False,
    )
    for reason in refused[:5]:
        err.print(f"error: refused {reason}", markup=False)
    if len(refused) > 5:
        err.print(f"error: refused {len(refused) - 5} more", markup=False)
    if unpaired:
        shown = ", ".join(unpaired[:10]) + (" ..." if len(unpaired) > 10 else "")
        err.print(f"error: {len(unpaired)} ids were never logged for {name}: {shown}", markup=False)
    if refused or unpaired:
        raise typer.Exit(2 if refused else 3)


@app.command("prune-log")
def prune_log(
    name: Annotated[str | None, typer.Argument(help="Model name \\[default: all].")] = None,
    older_than: Annotated[
        str, typer.Option(help="Keep this much of the log: 30d, 2w, 12h, ...")
    ] = "30d",
) -> None:
    """Delete logged predictions older than --older-than, and the labels posted for them.

    Drift and live quality read only recent windows, so older entries are dead weight in the
    registry database. Run it from cron, e.g. nightly with the default 30 days.
    """
    from modelport.monitoring.live import parse_window

    cutoff = datetime.now(UTC) - parse_window(older_than)
    with _registry() as reg:
        entries, labels = reg.store.prune_predictions(cutoff, name)
    scope = name or "all models"
    out.print(
        f"removed {entries} logged predictions and {labels} labels of {scope} older than "
        f"{older_than} (before {cutoff:%Y-%m-%d %H:%M} UTC)",
        markup=False,
    )


@app.command()
def quality(
    name: Annotated[str, typer.Argument(help="The served model's name.")],
    since: Annotated[str, typer.Option(help="Window: 30m, 1h, 7d, ...")] = "1d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Live accuracy, F1, AUC (classifiers) or MAE, RMSE (regressors) per version.

    Computed from logged predictions and the labels posted for them."""
    from modelport.monitoring.live import parse_window, quality_summary

    with _registry() as reg:
        report = quality_summary(reg.store, name, parse_window(since))
    if as_json:
        out.print_json(data=report)
        return
    if not report["n_labelled"]:
        out.print(f"no labelled predictions of {name} in the last {since}", markup=False)
        return
    columns = [k for k in next(iter(report["versions"].values())) if k != "n"]
    table = Table("version", "labelled", *columns)
    for version, scores in report["versions"].items():
        table.add_row(version, str(scores["n"]), *(_num(scores[c]) for c in columns))
    out.print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


# -- batch scoring ---------------------------------------------------------------------------


class _Engine(StrEnum):
    local = "local"
    ray = "ray"


@app.command()
def batch(
    ref: Annotated[str, typer.Argument(help="NAME, NAME/3, NAME@ALIAS or a path.")],
    source: Annotated[Path, typer.Argument(help="Input: .csv, .parquet, .jsonl, or a folder.")],
    sink: Annotated[Path, typer.Argument(help="Output folder of part files, e.g. scores.parquet.")],
    id_column: Annotated[
        list[str] | None, typer.Option(help="Column copied to the output (repeatable).")
    ] = None,
    keep: Annotated[
        list[str] | None, typer.Option(help="More input columns to copy (repeatable).")
    ] = None,
    probabilities: Annotated[
        bool, typer.Option(help="Add class probabilities (probabilities_0, ...).")
    ] = False,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk and part file.")] = 50_000,
    max_reject_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fail when more rows than this are rejected.")
    ] = 0.01,
    input_format: Annotated[
        str | None, typer.Option(help="csv, parquet or jsonl \\[default: from the name].")
    ] = None,
    output_format: Annotated[
        str | None, typer.Option(help="csv, parquet or jsonl \\[default: from the name].")
    ] = None,
    engine: Annotated[_Engine, typer.Option(help="local, or ray (Ray Data).")] = _Engine.local,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (auto, ray://...) \\[default: local].")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an output folder that holds another job.")
    ] = False,
    require_signed: Annotated[
        Path | None,
        typer.Option(
            help="Ed25519 public key (see `modelport keygen`): refuse a model not signed with it."
        ),
    ] = None,
    trust_unsafe: Annotated[
        bool,
        typer.Option(
            help="Load a folder or bundle REF as it is: its code (pyfunc) runs and its "
            "pickles skip the allow-list. Only for code you trust."
        ),
    ] = False,
) -> None:
    """Score a file of any size in chunks; bad rows go to SINK/_rejects with the reason.

    Run the same command again after an interruption: finished parts are kept and the
    result is the same, byte for byte. Exit 1 when more than --max-reject-fraction of the
    rows are rejected.
    """
    from modelport import batch as batching

    def run(on_progress: Callable[[batching.Progress], None] | None) -> batching.BatchResult:
        return batching.score(
            ref,
            source,
            sink,
            id_columns=id_column or [],
            keep=keep or [],
            probabilities=probabilities,
            chunk_rows=chunk_rows,
            max_reject_fraction=max_reject_fraction,
            input_format=input_format,
            output_format=output_format,
            engine="ray" if engine is _Engine.ray else "local",
            address=address,
            overwrite=overwrite,
            require_signed=require_signed,
            trust_unsafe=trust_unsafe,
            settings=state.settings,
            on_progress=on_progress,
        )

    result = _with_progress(run) if err.is_terminal else run(_progress_lines())
    line = (
        f"{result.status}: {result.rows} rows, {result.scored} scored, {result.rejected} "
        f"rejected, {result.parts} parts ({result.resumed_parts} already done) in "
        f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s) -> {result.sink}"
    )
    out.print(line, markup=False, highlight=False)
    if result.status != "succeeded":
        err.print(f"error: {result.error}", markup=False, highlight=False)
        raise typer.Exit(1)


def _with_progress(run: Callable[[Any], Any]) -> Any:
    """A rich progress bar: rows done, rows/s, time left (when the size is known)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.fields[rows]:,} rows"),
        BarColumn(),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("scoring", total=1.0, rows=0, rate=0.0)

        def update(p: Any) -> None:
            rate = p.rows / p.seconds if p.seconds > 0 else 0.0
            bar.update(task, completed=p.fraction or 0.0, rows=p.rows, rate=rate)

        return run(update)


def _progress_lines() -> Callable[[Any], None]:
    """Not a terminal: a plain line every 10 seconds."""
    last = [0.0]

    def update(p: Any) -> None:
        if p.seconds - last[0] >= 10.0:
            last[0] = p.seconds
            done = f", {p.fraction:.0%}" if p.fraction is not None else ""
            line = f"{p.rows:,} rows scored ({p.rejected:,} rejected{done}) in {p.seconds:.0f} s"
            err.print(line, markup=False, highlight=False)

    return update


@app.command()
def runs(
    name: Annotated[str | None, typer.Argument(help="Model name \\[default: all].")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Batch runs: which model version scored which input, rows, rejects, duration.

    A run is running, succeeded, failed, or abandoned: still marked running, but its
    process is gone (killed, or not heard from for a minute)."""
    with _registry() as reg:
        found = reg.store.list_runs(name, limit)
    if as_json:
        out.print_json(
            data=[
                {
                    "run_id": r.run_id,
                    "model": r.model,
                    "version": r.version,
                    "source": r.source,
                    "sink": r.sink,
                    "engine": r.engine,
                    "status": r.status,
                    "rows": r.rows,
                    "scored": r.scored,
                    "rejected": r.rejected,
                    "started_at": r.started_at.isoformat(),
                    "seconds": r.seconds,
                    "error": r.error,
                    "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
                    "host": r.host,
                    "pid": r.pid,
                }
                for r in found
            ]
        )
        return
    # Two lines a run, so that long paths never squeeze the figures at 80 columns.
    for r in found:
        ref = r.model if r.version is None else f"{r.model}/{r.version}"
        took = "" if r.seconds is None else f", {r.seconds:.1f} s"
        out.print(
            f"{r.started_at:%Y-%m-%d %H:%M} {ref} {r.status}: {r.rows:,} rows, "
            f"{r.rejected:,} rejected{took}, {r.engine}",
            markup=False,
            highlight=False,
        )
        out.print(f"  {r.source} -> {r.sink}", markup=False, highlight=False)
        if r.error:
            out.print(f"  error: {r.error}", markup=False, highlight=False)
        if r.status == "abandoned":
            heard = r.heartbeat_at or r.started_at
            where = f"process {r.pid} on {r.host}" if r.host else "its process"
            out.print(
                f"  not heard from since {heard:%Y-%m-%d %H:%M:%S}: {where} is gone; "
                "rerun the same command to resume from its finished parts",
                markup=False,
                highlight=False,
            )


# -- API keys for the server -----------------------------------------------------------------

keys_app = typer.Typer(help="Create, list and revoke the API keys the server accepts.")
app.add_typer(keys_app, name="keys")


class _KeyScope(StrEnum):
    predict = "predict"
    read = "read"
    admin = "admin"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A unique name for the key, e.g. ci.")],
    scope: Annotated[
        _KeyScope,
        typer.Option(help="predict: call models; read: read metadata; admin: everything."),
    ],
    model: Annotated[
        str | None, typer.Option(help="Allow this model only \\[default: every model].")
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            help="Requests per second each server process accepts from this key; "
            "beyond it, 429 with Retry-After \\[default: no limit]."
        ),
    ] = None,
) -> None:
    """Create an API key and print its token: it is shown this once and never stored."""
    with _registry() as reg:
        key, token = reg.create_key(name, scope.value, model=model, rate_limit=rate_limit)
    err.print(
        f"warning: store this token now, it will not be shown again "
        f"(key {key.name!r}, id {key.key_id}, scope {key.scope})",
        markup=False,
        highlight=False,
    )
    out.print(token, markup=False, highlight=False)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List API keys (name, key id, scope, model, rate limit, created, revoked); never secrets."""
    with _registry() as reg:
        keys = _all(reg.list_keys)
    if as_json:
        out.print_json(
            data=[
                {
                    "name": k.name,
                    "key_id": k.key_id,
                    "scope": k.scope,
                    "model": k.model,
                    "rate_limit": k.rate_limit,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": _iso(k.revoked_at),
                }
                for k in keys
            ]
        )
        return
    table = Table("name", "key id", "scope", "model", "rate limit", "created", "revoked")
    for k in keys:
        table.add_row(
            k.name,
            k.key_id,
            k.scope,
            k.model or "(all)",
            f"{k.rate_limit:g}/s" if k.rate_limit else "-",
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "-",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="Name of the key to revoke.")]) -> None:
    """Revoke the key NAME for good; servers stop accepting it within seconds."""
    with _registry() as reg:
        key = reg.revoke_key(name)
    out.print(f"revoked key {key.name!r} (id {key.key_id})", markup=False)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning ModelportError into one line and an exit code."""
    try:
        app(args=argv)
    except ModelportError as exc:
        if state.debug:
            raise
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
