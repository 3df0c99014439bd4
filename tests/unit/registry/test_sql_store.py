"""The metadata store suite, run on SQLite and PostgreSQL through the ``store`` fixture."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta

import pytest

from modelport.errors import (
    AliasNotFound,
    Conflict,
    InvalidInput,
    InvalidName,
    ModelNotFound,
    VersionInUse,
    VersionNotFound,
    VersionNotReady,
)
from modelport.registry.sql import SqlStore

MakeVersion = Callable[..., int]


def test_versions_are_numbered_from_one_and_never_reused(
    store: SqlStore, make_version: MakeVersion
) -> None:
    assert [make_version() for _ in range(3)] == [1, 2, 3]
    store.delete_version("churn", 3)
    store.delete_version("churn", 2)
    assert make_version() == 4
    assert [v.version for v in store.list_versions("churn").items] == [4, 1]


def test_each_model_counts_its_own_versions(make_version: MakeVersion) -> None:
    assert [make_version("a"), make_version("b"), make_version("a")] == [1, 1, 2]


def test_create_version_starts_pending_with_an_id_based_key(store: SqlStore) -> None:
    created = store.create_version(
        "churn", flavor="sklearn", source="here", metrics={"auc": 0.9}, tags={"team": "growth"}
    )
    assert created.status == "pending"
    assert not created.is_ready
    assert created.manifest_sha256 is None
    assert created.metrics == {"auc": 0.9}
    assert created.tags == {"team": "growth"}
    assert created.created_at.tzinfo == UTC
    assert created.artifact_key.startswith("models/")
    assert created.artifact_key.endswith("/v1")
    assert store.get_model("churn").latest_version is None


def test_ready_and_failed_transitions(store: SqlStore, make_version: MakeVersion) -> None:
    one, two = make_version(ready=False), make_version(ready=False)
    ready = store.mark_version_ready("churn", one, artifact_key="k1", manifest_sha256="a" * 64)
    assert (ready.status, ready.artifact_key, ready.manifest_sha256) == ("ready", "k1", "a" * 64)
    failed = store.mark_version_failed("churn", two, "disk full")
    assert (failed.status, failed.error) == ("failed", "disk full")
    with pytest.raises(Conflict, match="only a pending version can become ready"):
        store.mark_version_ready("churn", two, artifact_key="k2", manifest_sha256="b" * 64)
    with pytest.raises(Conflict, match="is ready and cannot fail"):
        store.mark_version_failed("churn", one, "late")
    assert store.get_version("churn", one).status == "ready"
    assert store.get_model("churn").latest_version == one


def test_latest_ready_version_skips_pending_and_failed(
    store: SqlStore, make_version: MakeVersion
) -> None:
    assert store.create_model("empty").latest_version is None
    assert store.latest_ready_version("empty") is None
    make_version()
    make_version(ready=False)
    latest = store.latest_ready_version("churn")
    assert latest is not None
    assert latest.version == 1


def test_missing_things_raise_not_found(store: SqlStore, make_version: MakeVersion) -> None:
    with pytest.raises(ModelNotFound, match="'nope' not found"):
        store.get_model("nope")
    with pytest.raises(ModelNotFound, match="'nope' not found"):
        store.list_versions("nope")
    make_version()
    with pytest.raises(VersionNotFound, match="has no version 7"):
        store.get_version("churn", 7)
    with pytest.raises(AliasNotFound, match="has no alias 'prod'"):
        store.get_alias("churn", "prod")
    with pytest.raises(AliasNotFound, match="has no alias 'prod'"):
        store.delete_alias("churn", "prod")


def test_models_can_be_created_updated_and_deleted(
    store: SqlStore, make_version: MakeVersion
) -> None:
    created = store.create_model("churn", description="first", tags={"team": "a"})
    assert (created.description, created.tags) == ("first", {"team": "a"})
    with pytest.raises(Conflict, match="already exists"):
        store.create_model("churn")
    updated = store.update_model("churn", tags={"team": "b"})
    assert (updated.description, updated.tags) == ("first", {"team": "b"})
    assert updated.updated_at >= created.updated_at
    make_version()
    store.set_alias("churn", "prod", 1)
    keys = store.delete_model("churn")
    assert len(keys) == 1
    with pytest.raises(ModelNotFound, match="not found"):
        store.get_model("churn")
    assert make_version() == 1, "a re-created model starts again"
    assert store.get_version("churn", 1).artifact_key != keys[0], "but never on old files"


def test_only_ready_versions_can_be_aliased(store: SqlStore, make_version: MakeVersion) -> None:
    pending = make_version(ready=False)
    with pytest.raises(VersionNotReady, match="is pending, not ready"):
        store.set_alias("churn", "prod", pending)
    store.mark_version_failed("churn", pending, "boom")
    with pytest.raises(VersionNotReady, match="is failed, not ready"):
        store.set_alias("churn", "prod", pending)
    with pytest.raises(VersionNotFound, match="has no version 9"):
        store.set_alias("churn", "prod", 9)


def test_alias_history_records_set_move_and_delete(
    store: SqlStore, make_version: MakeVersion
) -> None:
    one, two = make_version(), make_version()
    assert store.set_alias("churn", "prod", one).previous_version is None
    moved = store.set_alias("churn", "prod", two)
    assert (moved.version, moved.previous_version) == (two, one)
    assert store.get_alias("churn", "prod").version == two
    assert store.list_aliases("churn") == {"prod": two}
    assert store.get_model("churn").aliases == {"prod": two}
    deleted = store.delete_alias("churn", "prod")
    assert (deleted.version, deleted.previous_version) == (None, two)
    history = store.alias_history("churn", "prod")
    assert [(h.version, h.previous_version) for h in history] == [(None, 2), (2, 1), (1, None)]
    assert all(h.changed_at.tzinfo == UTC for h in history)
    assert store.list_aliases("churn") == {}
    assert store.alias_history("churn", "never") == []


def test_delete_version_is_refused_while_aliased(
    store: SqlStore, make_version: MakeVersion
) -> None:
    one = make_version()
    store.set_alias("churn", "prod", one)
    store.set_alias("churn", "canary", one)
    with pytest.raises(VersionInUse, match="alias 'canary', 'prod'"):
        store.delete_version("churn", one)
    store.delete_alias("churn", "prod")
    store.delete_alias("churn", "canary")
    key = store.delete_version("churn", one)
    assert key.endswith("/v1")
    with pytest.raises(VersionNotFound, match="has no version 1"):
        store.get_version("churn", one)


def test_list_versions_pages_newest_first(store: SqlStore, make_version: MakeVersion) -> None:
    for _ in range(5):
        make_version()
    seen: list[int] = []
    token: str | None = None
    while True:
        page = store.list_versions("churn", page_token=token, max_results=2)
        seen += [v.version for v in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert seen == [5, 4, 3, 2, 1]


def test_list_models_pages_in_name_order(store: SqlStore, make_version: MakeVersion) -> None:
    for name in ("c", "a", "d", "b"):
        make_version(name)
    first = store.list_models(max_results=3)
    assert [m.name for m in first.items] == ["a", "b", "c"]
    assert all(m.latest_version == 1 for m in first.items)
    assert first.next_page_token is not None
    second = store.list_models(page_token=first.next_page_token, max_results=3)
    assert [m.name for m in second.items] == ["d"]
    assert second.next_page_token is None


@pytest.mark.parametrize("token", ["!!!", "e30", "eyJrIjoxfQ"])  # junk, {}, {"k":1}
def test_tampered_page_tokens_are_refused(store: SqlStore, token: str) -> None:
    with pytest.raises(InvalidInput, match="invalid page token"):
        store.list_models(page_token=token)


def test_page_size_is_bounded(store: SqlStore) -> None:
    with pytest.raises(InvalidInput, match="max_results must be between"):
        store.list_models(max_results=0)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "path separators"),
        ("/abs", "path separators"),
        ("a%2Fb", "path separators"),
        ("a\x00b", "NUL byte"),
        ("x" * 200, "longer than 128"),
        ("a..b", r"must not contain '\.\.'"),
        ("", "must not be empty"),
    ],
)
def test_unsafe_model_names_are_refused(store: SqlStore, name: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason):
        store.create_version(name)
    with pytest.raises(InvalidName, match=reason):
        store.get_model(name)
    assert store.list_models().items == []


@pytest.mark.parametrize(("alias", "reason"), [("../p", "path separators"), ("12", "number")])
def test_unsafe_aliases_are_refused(
    store: SqlStore, make_version: MakeVersion, alias: str, reason: str
) -> None:
    make_version()
    with pytest.raises(InvalidName, match=reason):
        store.set_alias("churn", alias, 1)


def test_unsafe_tag_keys_are_refused(store: SqlStore) -> None:
    with pytest.raises(InvalidName, match="invalid tag key"):
        store.create_version("churn", tags={"../k": "v"})
    with pytest.raises(ModelNotFound, match="not found"):
        store.get_model("churn")


def test_find_stale_pending(store: SqlStore, make_version: MakeVersion) -> None:
    make_version()
    pending = make_version(ready=False)
    assert store.find_stale_pending(timedelta(hours=1)) == []
    stale = store.find_stale_pending(timedelta(0))
    assert [(v.name, v.version, v.status) for v in stale] == [("churn", pending, "pending")]


def test_update_version_edits_tags_and_description(
    store: SqlStore, make_version: MakeVersion
) -> None:
    version = make_version()
    updated = store.update_version("churn", version, tags={"owner": "risk", "q": "4"})
    assert updated.tags == {"owner": "risk", "q": "4"}
    updated = store.update_version("churn", version, remove_tags=["q"], description="Q4 retrain")
    assert (updated.tags, updated.description) == ({"owner": "risk"}, "Q4 retrain")
    assert store.get_version("churn", version).tags == {"owner": "risk"}
    with pytest.raises(InvalidName, match="invalid tag key"):
        store.update_version("churn", version, tags={"a/b": "x"})
    with pytest.raises(VersionNotFound, match="has no version 99"):
        store.update_version("churn", 99, description="x")
