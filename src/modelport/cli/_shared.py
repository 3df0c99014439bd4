"""What every command group shares: the consoles, the settings the global options built, and
the registry they open."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from rich.console import Console

from modelport.config import Settings
from modelport.errors import InvalidInput
from modelport.registry import Registry
from modelport.registry.entities import Page

T = TypeVar("T")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _State:
    settings: Settings = Settings.model_construct()
    debug: bool = False


state = _State()


@contextmanager
def open_registry() -> Iterator[Registry]:
    """The registry the global options name, closed when the command is done."""
    registry = Registry(state.settings)
    try:
        yield registry
    finally:
        registry.close()


def all_pages(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    """Every item of a paged listing."""
    items: list[T] = []
    token: str | None = None
    while True:
        page = fetch(token)
        items.extend(page.items)
        if not page.next_page_token:
            return items
        token = page.next_page_token


def key_values(pairs: list[str], what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{what} {pair!r} must look like key=value")
        result[key] = value
    return result


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
