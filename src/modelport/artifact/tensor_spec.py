"""One named input or output of a signature (:class:`TensorSpec`), and the dtypes it may have.

A dtype is one of :data:`NUMERIC_DTYPES` (numpy's names) or :data:`STRING_DTYPE` (``str``:
text, held as an object array of ``str``). Both :mod:`modelport.artifact.signature` and the
casting rules (:mod:`modelport.artifact.casting`) build on this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

NUMERIC_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
)  # fmt: skip
STRING_DTYPE = "str"
DTYPES = (*NUMERIC_DTYPES, STRING_DTYPE)
_NUMPY_DTYPES = {name: np.dtype(name) for name in NUMERIC_DTYPES}


def np_dtype(name: str) -> np.dtype[Any]:
    """numpy's dtype for a signature dtype name (parsing the name costs more than the lookup)."""
    return _NUMPY_DTYPES.get(name) or np.dtype(name)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named input or output: dtype from :data:`DTYPES`, shape with ``-1`` for any size.

    ``categories``: for a categorical column (pandas ``category`` dtype in the example), the
    values it may take, in the category order the model was trained with; None otherwise.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = (-1,)
    categories: tuple[Any, ...] | None = None  # Any: str, int or float values

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.categories is not None:
            data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        categories = data.get("categories")
        return cls(
            str(data["name"]),
            str(data["dtype"]),
            tuple(int(d) for d in data["shape"]),
            None if categories is None else tuple(categories),
        )
