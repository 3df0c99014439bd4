"""MLflow scoring server ``/invocations`` bodies (the MLflow 2 protocol).

``text/csv``: a table with a header row, as ``pandas.DataFrame.to_csv(index=False)`` writes it.
Its cells are text, read as the signature's dtypes (as ``modelport predict`` reads a CSV file):
``007`` in a text column stays ``"007"``, ``2005.0`` in an integer column is 2005.

``application/json``: an object with exactly one of these keys (and optionally ``params``)::

    {"dataframe_split": {"columns": [...], "data": [[...], ...], "index": [...]}}
    {"dataframe_records": [{"col": value, ...}, ...]}
    {"instances": [...]}      TF Serving's row format
    {"inputs": ...}           TF Serving's columnar format

``params`` (inference parameters for models whose predict takes them) is accepted and ignored:
modelport predictors take no parameters. The response is ``{"predictions": ...}``: a list for
one output, an object of columns for several (MLflow's ``_get_jsonable_obj`` leaves a dict of
arrays as a dict). Errors are ``{"error_code": "BAD_REQUEST", "message": "..."}``. Requests
may hold ``NaN``/``Infinity``/``-Infinity`` tokens, as MLflow's ``json.dump`` writes them;
responses are always standard JSON, so NaN and the infinities are written as ``null``.

Messages follow ``mlflow/pyfunc/scoring_server/__init__.py``, without its long note on the
MLflow 1 protocol; a content type other than JSON or CSV (MLflow answers 415) raises
:class:`~modelport.errors.InvalidInput` whose message starts with "This predictor only
supports the following content types".
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import orjson

from modelport.artifact.signature import Signature, TextTable
from modelport.errors import InvalidInput
from modelport.protocol import tfserving

if TYPE_CHECKING:
    import pandas as pd

CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON]
# A fixed order, where MLflow prints a Python set (whose order changes between runs).
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{" + ", ".join(repr(f) for f in FORMATS) + "}"
)


def decode_request(body: bytes, content_type: str, signature: Signature) -> object:
    """Read an ``/invocations`` body into a DataFrame or arrays ``Signature.coerce`` takes."""
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    charset = params.partition("charset=")[2].split(";")[0].strip().strip('"').lower()
    if charset not in ("", "utf-8", "utf8"):
        raise InvalidInput("The scoring server only supports UTF-8")
    if mime == CONTENT_TYPE_CSV:
        return _read_csv(body)
    if mime != CONTENT_TYPE_JSON:
        raise InvalidInput(
            f"This predictor only supports the following content types: Types: {CONTENT_TYPES}."
            f" Got '{content_type}'."
        )
    doc = tfserving.loads(body)
    if isinstance(doc, list):
        raise InvalidInput(f"{REQUIRED_INPUT_FORMAT}. Received a list.")
    if not isinstance(doc, dict):
        raise InvalidInput(
            f"{REQUIRED_INPUT_FORMAT}. Received unexpected input type '{type(doc).__name__}'."
        )
    keys = [f for f in FORMATS if f in doc]
    if len(keys) != 1:
        raise InvalidInput(
            f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {list(doc)}."
        )
    value = doc[keys[0]]
    if keys[0] == "dataframe_split":
        return _split_frame(value)
    if keys[0] == "dataframe_records":
        return _records_frame(value)
    if b'"b64"' in body:
        value = tfserving.decode_b64(value)
    if keys[0] == "instances":
        value = tfserving.rows_to_columns(value, signature, strict=False)
        if isinstance(value, list) and signature.kind == "columns":
            return _rows_frame(value, signature.input_names)
    return value


def encode_response(outputs: Mapping[str, np.ndarray]) -> bytes:
    """Write ``{"predictions": ...}``: a list for one output, columns for several."""
    value: object = next(iter(outputs.values())) if len(outputs) == 1 else dict(outputs)
    return tfserving.dumps({"predictions": value})


def encode_error(message: str, error_code: str = "BAD_REQUEST", code: str = "internal") -> bytes:
    """MLflow's error body; ``error_code`` is a ``databricks_pb2`` name such as BAD_REQUEST,
    ``code`` modelport's own stable code."""
    return orjson.dumps({"error_code": error_code, "message": message, "code": code})


# pandas is imported by the three readers that build a DataFrame, when one first runs: the
# other formats, and the modules that import this one, need none.


def _split_frame(value: object) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise InvalidInput(
            "'dataframe_split' must be an object with a 'data' list of rows "
            "(and optionally 'columns' and 'index')"
        )
    try:
        return pd.DataFrame(value["data"], columns=value.get("columns"), index=value.get("index"))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"Failed to read 'dataframe_split' as a DataFrame. Error: '{exc}'"
        ) from None


def _rows_frame(rows: list[object], columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    # Bare rows for a table are positional; a DataFrame keeps each column's own types.
    try:
        return pd.DataFrame(rows, columns=columns)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"Failed to read 'instances' as rows of {columns}. Error: '{exc}'"
        ) from None


def _records_frame(value: object) -> pd.DataFrame:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise InvalidInput("'dataframe_records' must be a list of objects, one per row")
    import pandas as pd

    return pd.DataFrame(value)


def _read_csv(body: bytes) -> TextTable:
    # Cells stay text until the signature reads them (MLflow passes the schema's types).
    try:
        return TextTable.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise InvalidInput(
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid"
            " CSV-formatted Pandas DataFrame produced using the `pandas.DataFrame.to_csv()`"
            f" method. Error: '{exc}'"
        ) from None
