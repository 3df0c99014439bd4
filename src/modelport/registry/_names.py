"""The registered model name nearest to a misspelled one, for "did you mean" messages."""

from __future__ import annotations

import difflib

from modelport.registry.metadata_store import ModelStore


def closest_name(models: ModelStore, name: str) -> str | None:
    """The registered model name nearest to ``name``, if any is close (case first)."""
    names = [m.name for m in models.list_models(None, 1000).items]
    by_case = {n.lower(): n for n in names}
    if name.lower() in by_case:
        return by_case[name.lower()]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None
