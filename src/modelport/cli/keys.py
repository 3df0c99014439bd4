"""API keys for the server: create, list, revoke."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from modelport.cli._shared import all_pages, err, iso, open_registry, out

keys_app = typer.Typer(help="Create, list and revoke the API keys the server accepts.")


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
    with open_registry() as reg:
        key, token = reg.keys.create_key(name, scope.value, model=model, rate_limit=rate_limit)
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
    with open_registry() as reg:
        keys = all_pages(reg.keys.list_keys)
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
                    "revoked_at": iso(k.revoked_at),
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
    with open_registry() as reg:
        key = reg.keys.revoke_key(name)
    out.print(f"revoked key {key.name!r} (id {key.key_id})", markup=False)
