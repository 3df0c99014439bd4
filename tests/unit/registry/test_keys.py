"""API keys on both backends: tokens are shown once, only a salted hash is stored, and a
malformed, unknown, wrong or revoked token never authenticates."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from modelport.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidName,
    KeyNotFound,
    Unauthenticated,
)
from modelport.registry import ApiKey, Registry, _tokens
from modelport.registry.sql._engine import parse_url


def _secret(token: str) -> str:
    parsed = _tokens.parse_token(token)
    assert parsed is not None
    return parsed[1]


def test_create_authenticate_revoke_round_trip(
    registry: Registry, tiny_model: object, tiny_data: tuple[np.ndarray, np.ndarray]
) -> None:
    registry.register("churn", tiny_model, input_example=tiny_data[0][:2])
    key, token = registry.keys.create_key("ci", "predict", model="churn")
    assert (key.name, key.scope, key.model, key.revoked_at) == ("ci", "predict", "churn", None)
    assert token == f"mp_{key.key_id}_{_secret(token)}"
    assert len(_secret(token)) == 64, "32 random bytes, hex"
    assert registry.keys.authenticate(token) == key
    revoked = registry.keys.revoke_key("ci")
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated, match="invalid or revoked API key"):
        registry.keys.authenticate(token)


def test_tokens_are_unique_and_keys_are_independent(registry: Registry) -> None:
    first, first_token = registry.keys.create_key("a", "read")
    second, second_token = registry.keys.create_key("b", "admin")
    assert first.key_id != second.key_id
    assert _secret(first_token) != _secret(second_token)
    registry.keys.revoke_key("a")
    assert registry.keys.authenticate(second_token).name == "b"


def test_a_wrong_secret_with_a_right_key_id_is_refused(registry: Registry) -> None:
    key, token = registry.keys.create_key("ci", "admin")
    secret = _secret(token)
    flipped = ("0" if secret[0] != "0" else "1") + secret[1:]
    with pytest.raises(Unauthenticated, match="invalid or revoked API key") as info:
        registry.keys.authenticate(f"mp_{key.key_id}_{flipped}")
    assert secret not in str(info.value)
    assert flipped not in str(info.value)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "mp_",
        "Bearer mp_0123456789abcdef_" + "0" * 64,
        "mp_0123456789abcdef_" + "0" * 63,
        "mp_0123456789abcdef_" + "0" * 65,
        "mp_0123456789ABCDEF_" + "0" * 64,
        "xx_0123456789abcdef_" + "0" * 64,
        "mp_0123456789abcdef_" + "0" * 64 + "\n",
    ],
)
def test_malformed_tokens_are_refused(registry: Registry, token: str) -> None:
    registry.keys.create_key("ci", "admin")
    with pytest.raises(Unauthenticated, match="invalid or revoked API key"):
        registry.keys.authenticate(token)


def test_an_unknown_key_id_is_refused(registry: Registry) -> None:
    _, token = registry.keys.create_key("ci", "admin")
    with pytest.raises(Unauthenticated, match="invalid or revoked API key"):
        registry.keys.authenticate(f"mp_{'f' * 16}_{_secret(token)}")


def test_the_database_row_holds_no_secret(registry: Registry, registry_uri: str) -> None:
    key, token = registry.keys.create_key("ci", "predict")
    secret = _secret(token)
    engine = create_engine(parse_url(registry_uri))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM api_keys")).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    values = [str(value) for value in rows[0]]
    assert key.key_id in values, "the row is the one just created"
    for value in values:
        assert secret not in value
        assert token not in value
    assert _tokens.hash_secret(rows[0].salt, secret) == rows[0].secret_hash


def test_duplicate_names_conflict(registry: Registry) -> None:
    registry.keys.create_key("ci", "read")
    with pytest.raises(Conflict, match="an API key named 'ci' already exists"):
        registry.keys.create_key("ci", "admin")


def test_revoking_an_unknown_key_is_not_found(registry: Registry) -> None:
    with pytest.raises(KeyNotFound, match="no API key named 'nope'"):
        registry.keys.revoke_key("nope")


def test_revoking_twice_keeps_the_first_time(registry: Registry) -> None:
    registry.keys.create_key("ci", "read")
    first = registry.keys.revoke_key("ci")
    assert registry.keys.revoke_key("ci").revoked_at == first.revoked_at


def test_bad_scope_and_names_are_refused(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="unknown API key scope 'write'"):
        registry.keys.create_key("ci", "write")
    with pytest.raises(InvalidName, match=r"invalid key name '\.\./x'"):
        registry.keys.create_key("../x", "read")
    with pytest.raises(InvalidName, match="invalid model name 'a/b'"):
        registry.keys.create_key("ci", "read", model="a/b")


def test_list_keys_pages_in_name_order_without_secrets(registry: Registry) -> None:
    tokens = [registry.keys.create_key(name, "read")[1] for name in ("c", "a", "b")]
    registry.keys.revoke_key("b")
    first = registry.keys.list_keys(max_results=2)
    assert [k.name for k in first] == ["a", "b"]
    assert first.next_page_token is not None
    rest = registry.keys.list_keys(first.next_page_token, max_results=2)
    assert [k.name for k in rest] == ["c"]
    assert rest.next_page_token is None
    assert [k.is_revoked for k in [*first, *rest]] == [False, True, False]
    listed = repr([*first, *rest])
    assert not any(_secret(token) in listed for token in tokens)


def _key(scope: str, model: str | None = None, *, revoked: bool = False) -> ApiKey:
    now = datetime.now(UTC)
    return ApiKey("k", "0" * 16, scope, model, now, now if revoked else None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key_scope", "key_model", "scope", "model", "allowed"),
    [
        # admin allows everything; read and predict allow only themselves
        ("admin", None, "admin", None, True),
        ("admin", None, "predict", "churn", True),
        ("admin", None, "read", "churn", True),
        ("read", None, "read", "churn", True),
        ("read", None, "read", None, True),
        ("read", None, "predict", "churn", False),
        ("read", None, "admin", None, False),
        ("predict", None, "predict", "churn", True),
        ("predict", None, "read", "churn", False),
        ("predict", None, "read", None, False),
        ("predict", None, "admin", "churn", False),
        # a key for one model: only that model; server-wide routes only to read
        ("predict", "churn", "predict", "churn", True),
        ("predict", "churn", "predict", "fraud", False),
        ("read", "churn", "read", "churn", True),
        ("read", "churn", "read", "fraud", False),
        ("read", "churn", "read", None, True),
        ("admin", "churn", "admin", "churn", True),
        ("admin", "churn", "predict", "churn", True),
        ("admin", "churn", "predict", "fraud", False),
        ("admin", "churn", "read", None, True),
        ("admin", "churn", "admin", None, False),
    ],
)
def test_allows(
    key_scope: str, key_model: str | None, scope: str, model: str | None, allowed: bool
) -> None:
    assert _key(key_scope, key_model).allows(scope, model) is allowed


def test_a_revoked_key_allows_nothing() -> None:
    key = _key("admin", revoked=True)
    assert not any(key.allows(scope, None) for scope in ("predict", "read", "admin"))


def test_an_unknown_scope_is_a_bug_not_a_denial() -> None:
    with pytest.raises(ValueError, match="unknown API key scope 'write'"):
        _key("admin").allows("write", None)


def test_errors_map_to_401_and_403() -> None:
    assert (Unauthenticated.status, Unauthenticated.code) == (401, "unauthenticated")
    assert (Forbidden.status, Forbidden.code) == (403, "forbidden")
    assert KeyNotFound.status == 404
    message = str(Forbidden("ci", "predict", "fraud"))
    assert message == "API key 'ci' has no 'predict' access to model 'fraud'"
    assert str(Forbidden("ci", "admin", None)).endswith("access to this server")
