"""The public surface: ``__all__`` is exactly what ``modelport`` exposes, and errors are stable."""

from __future__ import annotations

import inspect
import re

import pytest

import modelport
from modelport import errors


def test_all_matches_exposed_members() -> None:
    exposed = {
        name
        for name in dir(modelport)  # the names imported on first use included
        if not name.startswith("_")
        and not (inspect.ismodule(getattr(modelport, name)) and name != "errors")
        and name != "annotations"
    }
    assert set(modelport.__all__) == exposed


def test_names_imported_on_first_use_are_the_real_ones() -> None:
    from modelport.packaging import LoadedModel
    from modelport.registry import Registry

    assert modelport.Registry is Registry
    assert modelport.LoadedModel is LoadedModel
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        modelport.Nope  # noqa: B018


def _error_classes() -> list[type[errors.ModelportError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.ModelportError)
    ]


def test_every_error_has_a_unique_code_and_is_drawn_in_the_tree() -> None:
    classes = _error_classes()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "codes must be unique"
    doc = errors.__doc__ or ""
    for cls in classes:
        line = re.search(rf"\b{cls.__name__}\s+(\w+)\s+(\d+)", doc)
        assert line is not None, f"{cls.__name__} missing from the tree in errors.py"
        assert (line.group(1), int(line.group(2))) == (cls.code, cls.status)
        assert 400 <= cls.status < 600
        assert cls.exit_code != 0


def test_messages_say_what_and_which() -> None:
    assert str(errors.VersionNotFound("churn", 3)) == "model 'churn' has no version 3"
    assert errors.VersionInUse("churn", 3, ["production"]).status == 409
    assert errors.MissingDependency("xgboost", "xgboost").message.endswith(
        "pip install 'modelport[xgboost]'"
    )


def test_every_error_code_maps_back_to_its_class() -> None:
    """What crosses the wire is the code and the message; ``from_code`` rebuilds the class."""
    from modelport import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type)]
    modelport_errors = [c for c in classes if issubclass(c, errors.ModelportError)]
    codes = [c.code for c in modelport_errors]
    assert len(codes) == len(set(codes)), "codes are unique"
    for cls in modelport_errors:
        rebuilt = errors.from_code(cls.code, "the message")
        assert type(rebuilt) is cls
        assert rebuilt.message == "the message"
    assert type(errors.from_code("from_a_newer_server", "m")) is errors.ModelportError
