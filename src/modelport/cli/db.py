"""``modelport db``: the registry database's schema revision, and migrating it explicitly."""

from __future__ import annotations

from typing import Annotated

import typer

from modelport.cli._shared import out, state
from modelport.registry.sql.migrations import schema_state, upgrade_database

db_app = typer.Typer(
    help="The registry database's schema: show its revision, upgrade it.", no_args_is_help=True
)


@db_app.command("current")
def db_current(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the registry's schema revision and whether it needs `modelport db upgrade`.

    Also the revision this modelport needs, and whether it knows the database's at all."""
    found = schema_state(state.settings.resolved_registry_uri())
    if as_json:
        out.print_json(
            data={
                "current": found.current,
                "head": found.head,
                "known": found.known,
                "needs_upgrade": found.needs_upgrade,
            }
        )
        return
    out.print(f"current: {found.current or '(none)'}", markup=False, highlight=False)
    out.print(f"needed:  {found.head}", markup=False, highlight=False)
    if not found.known:
        verdict = "schema is newer than this modelport; upgrade modelport"
    elif found.needs_upgrade:
        verdict = "upgrade needed: run `modelport db upgrade`"
    else:
        verdict = "up to date"
    out.print(verdict, markup=False, highlight=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the registry database to the newest schema (does nothing when it is there)."""
    before, after = upgrade_database(state.settings.resolved_registry_uri())
    if before == after:
        out.print(f"already at {after}", markup=False, highlight=False)
    else:
        out.print(f"upgraded {before or '(empty)'} -> {after}", markup=False, highlight=False)
