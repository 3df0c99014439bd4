"""One settings object: flags, then ``MODELPORT_*`` env vars, then ``.env``, then defaults.

Build a :class:`Settings` once at the edge (CLI, app factory, ``modelport.load``) and pass it
down; library code never reads ``os.environ`` itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path("~/.modelport").expanduser()


class Settings(BaseSettings):
    """Where the registry lives. Values given to the constructor (CLI flags) win over env vars."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPORT_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    home: Path = Field(default_factory=_default_home)
    """Folder holding the embedded registry (``registry.db``) and artifacts (``artifacts/``)."""

    registry_uri: str | None = None
    """Metadata store: ``sqlite:///path/registry.db`` or ``postgresql://user@host/db``.
    Default: ``sqlite:///{home}/registry.db``."""

    artifact_uri: str | None = None
    """Artifact store: a local folder (``file:///path`` or a plain path).
    Default: ``{home}/artifacts``."""

    cache_dir: Path | None = None
    """Where artifacts from remote stores are unpacked for loading. Default: ``{home}/cache``."""

    def resolved_registry_uri(self) -> str:
        """The metadata store URI with the embedded default filled in."""
        return self.registry_uri or f"sqlite:///{self.home / 'registry.db'}"

    def resolved_artifact_uri(self) -> str:
        """The artifact store URI with the embedded default filled in."""
        return self.artifact_uri or str(self.home / "artifacts")

    def resolved_cache_dir(self) -> Path:
        """The local cache folder for artifacts fetched from remote stores."""
        return self.cache_dir or self.home / "cache"
