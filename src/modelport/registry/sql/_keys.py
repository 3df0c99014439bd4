"""API keys, the part of the SQL store that the server's authentication reads.

A row holds what verifies a token (a random salt and HMAC-SHA256 of the secret), never the
secret itself; making and checking tokens is :mod:`modelport.registry._tokens`' business.
Names are unique, and so are key ids, which are the lookup key for every request.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from modelport.errors import Conflict, KeyNotFound
from modelport.ref import validate_name
from modelport.registry import _paging
from modelport.registry.entities import (
    ApiKey,
    KeyScope,
    Page,
    StoredKey,
    check_rate_limit,
    key_scope,
)
from modelport.registry.sql._base import StoreBase
from modelport.registry.sql._schema import ApiKeyRow, utcnow


class KeyMixin(StoreBase):
    """API key methods of :class:`~modelport.registry.sql.store.SqlStore`."""

    def create_key(
        self,
        name: str,
        *,
        key_id: str,
        salt: str,
        secret_hash: str,
        scope: KeyScope,
        model: str | None = None,
        rate_limit: float | None = None,
    ) -> ApiKey:
        """Store a new key; Conflict if ``name`` (or, by a 2^-64 chance, ``key_id``) is taken."""
        validate_name(name, "key name")
        if model is not None:
            validate_name(model)
        scope = key_scope(scope)
        check_rate_limit(rate_limit)
        with self._session(write=True) as s:
            insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
            # ON CONFLICT DO NOTHING: a concurrent create of the same name answers Conflict
            # on PostgreSQL too, instead of an IntegrityError surfacing as a store failure.
            created = s.execute(
                insert(ApiKeyRow)
                .values(
                    name=name,
                    key_id=key_id,
                    salt=salt,
                    secret_hash=secret_hash,
                    scope=scope,
                    model=model,
                    rate_limit=rate_limit,
                    created_at=utcnow(),
                    revoked_at=None,
                )
                .on_conflict_do_nothing()
                .returning(ApiKeyRow.id)
            ).first()
            if created is None:
                raise Conflict(f"an API key named {name!r} already exists")
            return _to_key(s.get_one(ApiKeyRow, created[0]))

    def get_key(self, key_id: str) -> StoredKey | None:
        """The key with this public id and what verifies its secret, or None if none has it."""
        with self._session() as s:
            row = s.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).one_or_none()
            if row is None:
                return None
            return StoredKey(_to_key(row), salt=row.salt, secret_hash=row.secret_hash)

    def list_keys(
        self, page_token: str | None = None, max_results: int = _paging.DEFAULT_MAX_RESULTS
    ) -> Page[ApiKey]:
        """Keys in name order, revoked ones included, one page at a time."""
        limit = _paging.check_max_results(max_results)
        after = _paging.decode_token(page_token, str)
        query = select(ApiKeyRow).order_by(ApiKeyRow.name).limit(limit + 1)
        if after is not None:
            query = query.where(ApiKeyRow.name > after)
        with self._session() as s:
            rows = list(s.scalars(query))
        items = [_to_key(row) for row in rows[:limit]]
        token = _paging.encode_token(items[-1].name) if len(rows) > limit else None
        return Page(items, token)

    def revoke_key(self, name: str) -> ApiKey:
        """Revoke the key named ``name`` for good; revoking it again keeps the first time."""
        validate_name(name, "key name")
        with self._session(write=True) as s:
            row = self._key_row(s, name)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                s.flush()
            return _to_key(row)

    def _key_row(self, s: Session, name: str) -> ApiKeyRow:
        row = s.scalars(
            select(ApiKeyRow).where(ApiKeyRow.name == name).with_for_update()
        ).one_or_none()
        if row is None:
            raise KeyNotFound(name)
        return row


def _to_key(row: ApiKeyRow) -> ApiKey:
    scope: KeyScope
    if row.scope == "admin":
        scope = "admin"
    elif row.scope == "read":
        scope = "read"
    else:
        scope = "predict"  # the narrowest, should a row ever hold something else
    return ApiKey(
        name=row.name,
        key_id=row.key_id,
        scope=scope,
        model=row.model,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        rate_limit=row.rate_limit,
    )
