"""Reading model input from files and writing predictions as JSON, for the CLI and scripts.

Input files: ``.csv`` (a header row, one row per record), ``.json`` (a list of records, one
record, a dict of columns or named tensors, ``{"inputs": {...}}``, or a nested list for a single
tensor input) and ``.jsonl`` (one record per line).

A CSV file is text: it is read as a :class:`~modelport.artifact.signature.TextTable`, whose
cells the model's signature reads as its own dtypes (``007`` in a text column stays
``"007"``), by the same rule as every other input. JSON values keep their JSON types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import TextTable
from modelport.errors import InvalidInput

INPUT_SUFFIXES = (".csv", ".json", ".jsonl")


def read_input_file(path: str | Path) -> object:
    """Load a file of model input in a form ``LoadedModel.predict`` accepts (a CSV file: a
    :class:`~modelport.artifact.signature.TextTable`, read by the model's signature)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise InvalidInput(
            f"cannot read {file.name!r}: use one of {', '.join(INPUT_SUFFIXES)} files"
        )
    if not file.is_file():
        raise InvalidInput(f"input file {str(file)!r} does not exist")
    try:
        if suffix == ".csv":
            return TextTable.read_csv(file)
        text = file.read_text(encoding="utf-8")
        if suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise InvalidInput(f"cannot read {file.name!r}: {exc}") from None
    if isinstance(data, Mapping) and set(data) == {"inputs"}:
        return data["inputs"]
    return data


def outputs_to_json(outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Named output arrays as JSON-able lists (NaN and infinities become null)."""
    return {name: _plain(arr) for name, arr in outputs.items()}


def _plain(arr: np.ndarray) -> Any:
    if arr.dtype.kind == "f":
        clean = arr.astype(object)
        clean[~np.isfinite(arr)] = None
        return clean.tolist()
    return arr.tolist()
