"""Fixtures for the wire codecs: signatures of the shapes each protocol distinguishes."""

from __future__ import annotations

import pytest

from modelport.artifact.signature import Signature, TensorSpec


@pytest.fixture
def single() -> Signature:
    """One tensor input ``x`` of rows of two floats."""
    return Signature("tensors", (TensorSpec("x", "float32", (-1, 2)),))


@pytest.fixture
def multi() -> Signature:
    """Two named tensor inputs: ``a`` (rows of two floats) and ``b`` (one string per row)."""
    return Signature("tensors", (TensorSpec("a", "float32", (-1, 2)), TensorSpec("b", "str")))


@pytest.fixture
def table() -> Signature:
    """A table with a numeric and a string column."""
    return Signature("columns", (TensorSpec("age", "int64"), TensorSpec("city", "str")))
