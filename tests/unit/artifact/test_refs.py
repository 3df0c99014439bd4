"""The one ref parser and the name rules that keep the store inside its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.errors import InvalidName, InvalidRef
from modelport.ref import ModelRef, validate_alias, validate_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", ModelRef(name="churn")),
        ("churn/3", ModelRef(name="churn", version=3)),
        ("churn@production", ModelRef(name="churn", alias="production")),
        ("./out/churn", ModelRef(path=Path("out/churn"))),
        ("/tmp/x.tar", ModelRef(path=Path("/tmp/x.tar"))),
        ("out/churn", ModelRef(path=Path("out/churn"))),
        ("churn.tar", ModelRef(path=Path("churn.tar"))),
        ("out/churn/3", ModelRef(path=Path("out/churn/3"))),
    ],
)
def test_parse(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


def test_files_in_the_current_directory_do_not_change_a_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With folders ``churn`` and ``churn/3`` here, ``churn`` and ``churn/3`` still name the
    registry's model; ``./churn`` names the folder."""
    (tmp_path / "churn" / "3").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert ModelRef.parse("churn") == ModelRef(name="churn")
    assert ModelRef.parse("churn/3") == ModelRef(name="churn", version=3)
    assert ModelRef.parse("./churn").is_path


def test_str_roundtrip() -> None:
    for text in ("churn", "churn/3", "churn@prod"):
        assert str(ModelRef.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("churn/0", "must be a positive integer"),
        ("churn@", "alias after '@' is empty"),
        ("  ", "empty"),
    ],
)
def test_bad_refs(text: str, reason: str) -> None:
    with pytest.raises(InvalidRef, match=reason):
        ModelRef.parse(text)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../etc", "path separators"),
        ("..", "must not contain '..'"),
        ("a..b", "must not contain '..'"),
        ("a%2Fb", "path separators or '%'"),
        ("a\\b", "path separators"),
        ("a\x00b", "NUL byte"),
        ("x" * 200, "longer than 128"),
        ("", "must not be empty"),
        (".hidden", "starting with a letter or digit"),
        ("sp ace", "use letters, digits"),
    ],
)
def test_unsafe_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason):
        validate_name(name)


def test_numeric_alias_is_refused() -> None:
    with pytest.raises(InvalidName, match="must not be a number"):
        validate_alias("3")
    assert validate_alias("prod-2") == "prod-2"


@pytest.mark.parametrize("text", ["x" * 300, "churn@" + "x" * 300, "a\x00b"])
def test_text_that_cannot_name_a_file_is_read_as_a_registry_ref(text: str) -> None:
    # a too-long or NUL-holding path makes os.stat raise; it must not escape as a traceback
    with pytest.raises(InvalidName, match="invalid"):
        ModelRef.parse(text)
