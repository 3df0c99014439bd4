"""``ApiKeys``: the server's API keys, created, listed, revoked and checked against a token.

Keys live in the metadata store as a salted hash of their secret (a :class:`KeyStore`); the
token, shown once at creation, is the only copy of the secret. See
:mod:`modelport.registry._tokens` for the token format. Whether a key may do what is asked
is :meth:`ApiKey.allows`' business, not this module's.
"""

from __future__ import annotations

from modelport.errors import ModelNotFound, Unauthenticated
from modelport.ref import validate_name
from modelport.registry import _tokens
from modelport.registry._names import closest_name
from modelport.registry.entities import ApiKey, Page, key_scope
from modelport.registry.metadata_store import KeyStore, ModelStore


class ApiKeys:
    """API keys in a key store; ``models`` is read to refuse a key for an unknown model.

    >>> key, token = registry.keys.create_key("ci", "predict", model="churn")
    >>> registry.keys.authenticate(token).name
    'ci'
    """

    def __init__(self, store: KeyStore, models: ModelStore) -> None:
        self._store = store
        self._models = models

    def create_key(
        self, name: str, scope: str, model: str | None = None, rate_limit: float | None = None
    ) -> tuple[ApiKey, str]:
        """Create an API key; returns it with its token, which is shown this once only.

        ``scope`` is ``predict``, ``read`` or ``admin``; ``model`` restricts the key to one
        model; ``rate_limit`` caps the requests per second a server accepts from it (429
        beyond). Conflict if ``name`` is taken. Only a salted hash of the secret is stored.

        A ``model`` that is not registered is refused (ModelNotFound, with the closest name):
        a key for a misspelled model would open nothing and say nothing.
        """
        if model is not None:
            try:
                self._models.get_model(validate_name(model))
            except ModelNotFound:
                raise ModelNotFound(model, closest_name(self._models, model)) from None
        token, key_id, secret = _tokens.new_token()
        salt = _tokens.new_salt()
        key = self._store.create_key(
            name,
            key_id=key_id,
            salt=salt,
            secret_hash=_tokens.hash_secret(salt, secret),
            scope=key_scope(scope),
            model=model,
            rate_limit=rate_limit,
        )
        return key, token

    def list_keys(self, page_token: str | None = None, max_results: int = 100) -> Page[ApiKey]:
        """API keys in name order, revoked ones included; never their secrets."""
        return self._store.list_keys(page_token, max_results)

    def revoke_key(self, name: str) -> ApiKey:
        """Revoke a key for good (KeyNotFound for an unknown name)."""
        return self._store.revoke_key(name)

    def authenticate(self, token: str) -> ApiKey:
        """The live key a token belongs to; Unauthenticated if it is malformed, unknown,
        wrong or revoked (one message for all four, so a caller learns nothing)."""
        parsed = _tokens.parse_token(token)
        if parsed is None:
            raise Unauthenticated()
        key_id, secret = parsed
        stored = self._store.get_key(key_id)
        if stored is None or not _tokens.secret_matches(stored.salt, stored.secret_hash, secret):
            raise Unauthenticated()
        if stored.key.is_revoked:
            raise Unauthenticated()
        return stored.key
