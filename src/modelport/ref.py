"""Model refs and name rules: the one parser used by the API, the CLI and (later) the server.

A ref is one of ``name`` (the latest ready version), ``name/3`` (a version), ``name@alias``
or a filesystem path to an artifact directory or ``.tar`` bundle. Which one a text is never
depends on the files in the current directory (a folder ``./churn`` must not turn the model
``churn`` into a path): a path starts with ``/``, ``./``, ``../`` or ``~``, ends in ``.tar``,
or has a ``/`` not followed by a version number (``out/churn``); anything else is a registry
ref. Names, aliases and tag keys
are restricted so that they can never act as paths: letters, digits, ``_``, ``-`` and ``.``,
starting with a letter or digit, at most 128 characters, and never ``..``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from modelport.errors import InvalidName, InvalidRef

MAX_NAME_LENGTH = 128
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def validate_name(value: str, kind: str = "model name") -> str:
    """Return ``value`` if it is a safe name, else raise :class:`InvalidName` saying why."""
    if not isinstance(value, str) or not value:
        raise InvalidName(kind, str(value), "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidName(kind, value[:40] + "...", f"longer than {MAX_NAME_LENGTH} characters")
    if "\x00" in value:
        raise InvalidName(kind, value, "contains a NUL byte")
    if "/" in value or "\\" in value or "%" in value:
        raise InvalidName(kind, value, "must not contain path separators or '%'")
    if ".." in value:
        raise InvalidName(kind, value, "must not contain '..'")
    if not _NAME_RE.fullmatch(value):
        raise InvalidName(
            kind,
            value,
            "use letters, digits, '_', '-' and '.', starting with a letter or digit",
        )
    return value


def validate_alias(value: str) -> str:
    """Aliases follow the name rules and may not be all digits (that would read as a version)."""
    validate_name(value, "alias")
    if value.isdigit():
        raise InvalidName("alias", value, "must not be a number (it would read as a version)")
    return value


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed ref: exactly one of ``version``/``alias`` may be set, or ``path`` alone."""

    name: str | None = None
    version: int | None = None
    alias: str | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, ref: str | Path | ModelRef) -> ModelRef:
        """Parse ``name``, ``name/3``, ``name@alias`` or a path (``./x``, ``/x``, ``~/x``,
        ``x.tar``, ``out/x``), by its text alone.

        >>> ModelRef.parse("churn@production")
        ModelRef(name='churn', version=None, alias='production', path=None)
        """
        if isinstance(ref, ModelRef):
            return ref
        if isinstance(ref, Path):
            return cls(path=ref)
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidRef(str(ref), "empty")
        text = ref.strip()
        if _looks_like_path(text):
            return cls(path=Path(text).expanduser())
        if "@" in text:
            name, _, alias = text.partition("@")
            if not alias:
                raise InvalidRef(text, "alias after '@' is empty")
            return cls(name=validate_name(name), alias=validate_alias(alias))
        if "/" in text:
            name, _, version = text.partition("/")
            if not version.isdigit() or int(version) < 1:
                raise InvalidRef(text, f"version {version!r} must be a positive integer")
            return cls(name=validate_name(name), version=int(version))
        return cls(name=validate_name(text))

    @property
    def is_path(self) -> bool:
        """True when the ref points at a file or folder rather than the registry."""
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return str(self.name)


_VERSIONED = re.compile(r"[^/@\\]+/\d+")


def _looks_like_path(text: str) -> bool:
    """A path by its text: an explicit start, a bundle suffix, or folders (``out/churn``);
    ``churn/3`` is a version, whatever is on disk."""
    if text.startswith(("/", "./", "../", "~", ".\\", "\\")):
        return True
    if text.lower().endswith(".tar"):
        return True
    return ("/" in text or "\\" in text) and "@" not in text and not _VERSIONED.fullmatch(text)
