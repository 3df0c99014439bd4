"""Registry commands: register, list, inspect, edit and delete versions; aliases; bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modelport.artifact import bundle, files
from modelport.cli._shared import all_pages, iso, key_values, open_registry, out, state
from modelport.errors import InvalidInput
from modelport.records import read_input_file
from modelport.ref import ModelRef
from modelport.registry.entities import ModelVersion


def register(
    path: Annotated[
        Path,
        typer.Argument(
            help="Artifact folder, .tar bundle, TensorFlow SavedModel folder, or model file "
            "(.pkl/.joblib, .onnx, XGBoost .json/.ubj, LightGBM .txt, CatBoost .cbm, "
            "Keras .keras/.h5, torch.export .pt2, TorchScript .pt)"
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
    metrics = {k: float(v) for k, v in key_values(metric, "metric").items()}
    input_example = read_input_file(example) if example else None
    with open_registry() as reg:
        version = reg.register(
            name,
            path,
            metrics=metrics,
            tags=key_values(tag, "tag"),
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


def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List registered models with their latest version and aliases."""
    with open_registry() as reg:
        items = all_pages(reg.list_models)
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


def versions(
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the versions of a model, newest first, with status, flavor and metrics."""
    with open_registry() as reg:
        items = all_pages(lambda token: reg.list_versions(name, page_token=token))
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


alias_app = typer.Typer(help="Point aliases (production, staging, ...) at versions.")


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    version: Annotated[int, typer.Argument(help="A ready version number.")],
) -> None:
    """Point ALIAS of NAME at VERSION (the previous target is kept in the history)."""
    with open_registry() as reg:
        reg.set_alias(name, alias, version)
    out.print(f"{name}@{alias} -> {version}")


@alias_app.command("delete")
def alias_delete(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to remove.")],
) -> None:
    """Remove ALIAS from NAME."""
    with open_registry() as reg:
        reg.delete_alias(name, alias)
    out.print(f"deleted {name}@{alias}")


@alias_app.command("history")
def alias_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every change of ALIAS, newest first: what it pointed at before and after."""
    with open_registry() as reg:
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


def info(ref: Annotated[str, typer.Argument(help="NAME, NAME/3, NAME@ALIAS or a path.")]) -> None:
    """Show a version's manifest: flavor, signature, metrics, lineage and files.

    For a registered version, "registry" says which version the ref resolved to (name@alias
    and name resolve to one), its status, the aliases pointing at it and, for a failed
    version, why it failed; "trusted_unsafe" says who trusted it and when (null: it loads
    through the safety checks).
    """
    parsed = ModelRef.parse(ref)
    with open_registry() as reg:
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
        "created_at": iso(version.created_at),
        "trusted_unsafe": (
            {"by": version.trusted_unsafe_by, "at": iso(version.trusted_unsafe_at)}
            if version.trusted_unsafe_by is not None
            else None
        ),
    }


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
    with open_registry() as reg:
        if parsed.version is not None:
            version = reg.delete_version(parsed.name, parsed.version)
            out.print(f"deleted {version.name}/{version.version}", markup=False)
            return
        count = len(all_pages(lambda token: reg.list_versions(parsed.name or "", page_token=token)))
        reg.delete_model(parsed.name, with_aliases=force)
    out.print(f"deleted model {parsed.name} ({count} versions)", markup=False)


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
    with open_registry() as reg:
        version = reg.update_version(
            parsed.name,
            parsed.version,
            tags=key_values(tag, "tag"),
            remove_tags=untag,
            description=description,
        )
    tags = " ".join(f"{k}={v}" for k, v in sorted(version.tags.items())) or "(no tags)"
    out.print(f"{version.name}/{version.version}: {tags}", markup=False, highlight=False)


def pack(
    ref: Annotated[str, typer.Argument(help="NAME/3, NAME@ALIAS or an artifact folder.")],
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="The .tar file to write.")],
) -> None:
    """Write a verified artifact into one .tar file for moving between machines."""
    with open_registry() as reg:
        source = reg.artifact_path(ref)
        bundle.pack(source, bundle_path)
    out.print(f"wrote {bundle_path}")


def unpack(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A .tar bundle.")],
    target: Annotated[Path, typer.Argument(help="New folder to create.")],
) -> None:
    """Extract a .tar bundle safely and verify its checksums; nothing in it is run.

    Refused: absolute paths, '..', links, devices, and sizes past the bundle limits
    (MODELPORT_BUNDLE__*), before anything is written.
    """
    bundle.unpack(bundle_path, target, state.settings.bundle)
    files.verify_artifact_files(target)
    out.print(f"unpacked to {target} (checksums verified; nothing loaded)", markup=False)


def cleanup(
    older_than: Annotated[
        str, typer.Option(help="How long a version may stay pending: 30m, 1h, 2d, ...")
    ] = "1h",
) -> None:
    """Mark versions left 'pending' by a crashed registration as failed; remove their files."""
    from modelport.monitoring.live import parse_window

    with open_registry() as reg:
        stale = reg.cleanup_stale(parse_window(older_than))
    out.print(f"marked {len(stale)} stale version(s) failed")
