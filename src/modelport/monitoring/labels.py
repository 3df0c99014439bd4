"""True labels: what a label must be, and labels from a CSV file (``modelport feedback``).

The rules (:func:`parse_feedback`, :func:`label_shape_problem`, :func:`label_kind_problem`,
:func:`count_problem`) serve both the server's feedback route and the CSV reader.

Each line labels one logged request: one value for a request of one row, or a JSON list of
values, one per row in row order, for a request of several (``"[2, 1, 1]"``). A cell that
starts with ``[`` is always read as such a list, never as a text label. Labels are read as
the kind of value the model's latest ready version predicts: text for a model of text
outputs, numbers (and true/false) otherwise.

What cannot be paired with a logged prediction is not stored, since live quality would drop
it without a word, and is reported instead:

- **refused**: a cell that is empty or not a label, a label of the wrong kind for the model's
  output (see :func:`label_kind_problem`), or one whose count of
  values is not the number of rows of the request it labels;
- **unpaired**: a request id never logged for the model.

The other labels are stored (a request labelled again has its label replaced).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.artifact.signature import STRING_DTYPE
from modelport.errors import InvalidInput, NotFound
from modelport.registry import Registry

_MAX_ID_CHARS = 128
MAX_LABELS = 100_000
MAX_LABEL_ROWS = 10_000
"""Most values in one label (a request of that many rows)."""
MAX_LABEL_CHARS = 1_000
"""Longest text label: a class name, not a document."""
_LIST_EXAMPLE = '"[1, 0, 1]"'


@dataclass(frozen=True, slots=True)
class LabelLine:
    """One label read from the file: its line number (the header is line 1)."""

    line: int
    request_id: str
    label: Any  # Any: a JSON value, one label or a list of them


@dataclass(slots=True)
class FeedbackReport:
    """What became of the labels of one file."""

    stored: int = 0
    """Requests labelled."""
    refused: list[str] = field(default_factory=list)
    """Why each refused label was refused, in file order, each starting with its line."""
    unpaired: list[str] = field(default_factory=list)
    """Request ids never logged for the model, in file order."""


def store_feedback(
    registry: Registry, name: str, path: Path, id_column: str = "id", label_column: str = "label"
) -> FeedbackReport:
    """Read labels from a CSV file, check each against what model ``name`` predicts and the
    rows of the request it labels, and store those that pass."""
    try:
        outputs = registry.manifest(name).signature.outputs
    except NotFound:
        outputs = ()
    dtype = outputs[0].dtype if outputs else None
    lines, refused = read_labels(path, id_column, label_column, as_text=dtype == STRING_DTYPE)
    if dtype is not None:
        kind = dtype
        lines = _keep(
            lines, refused, lambda x: label_kind_problem(name, x.request_id, x.label, kind)
        )
    rows = registry.predictions.count_logged_rows(name, [x.request_id for x in lines])
    report = FeedbackReport()
    report.unpaired = list(dict.fromkeys(x.request_id for x in lines if x.request_id not in rows))
    lines = _keep(
        [x for x in lines if x.request_id in rows],
        refused,
        lambda x: count_problem(x.request_id, x.label, rows[x.request_id]),
    )
    unknown = registry.predictions.add_feedback(name, [(x.request_id, x.label) for x in lines])
    report.unpaired += [rid for rid in unknown if rid not in report.unpaired]  # pruned since
    report.stored = len({x.request_id for x in lines} - set(unknown))
    report.refused = [reason for _, reason in sorted(refused, key=lambda r: r[0])]
    return report


def read_labels(
    path: Path, id_column: str = "id", label_column: str = "label", *, as_text: bool = False
) -> tuple[list[LabelLine], list[tuple[int, str]]]:
    """The labels of a CSV file with an id and a label column (read as text with
    ``as_text``, for a model that predicts text such as class names "0", "1"), and the
    (line, reason) of each line that holds no label."""
    lines: list[LabelLine] = []
    refused: list[tuple[int, str]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, [])
            missing = [c for c in (id_column, label_column) if c not in header]
            if missing:
                found = ", ".join(header)
                raise InvalidInput(f"{str(path)!r} has no column {missing[0]!r} (columns: {found})")
            at_id, at_label = header.index(id_column), header.index(label_column)
            for record in reader:
                if not record:
                    continue  # a blank line
                line = reader.line_num
                rid = record[at_id].strip() if at_id < len(record) else ""
                try:
                    if len(record) != len(header):
                        raise InvalidInput(
                            f"{len(record)} fields where the header has {len(header)} (quote a "
                            f"list label: {_LIST_EXAMPLE})"
                        )
                    if not 0 < len(rid) <= _MAX_ID_CHARS:
                        raise InvalidInput(
                            f"the request id must be 1 to {_MAX_ID_CHARS} characters"
                        )
                    label = _label(record[at_label], as_text)
                except InvalidInput as exc:
                    refused.append((line, f"line {line}, request {rid[:40]!r}: {exc.message}"))
                else:
                    lines.append(LabelLine(line, rid, label))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"cannot read labels from {str(path)!r}: {exc}") from None
    return lines, refused


def _label(cell: str, as_text: bool) -> Any:  # Any: a JSON value
    """One cell as a label: a JSON list of per-row labels, or one value."""
    text = cell.strip()
    if not text:
        raise InvalidInput("the label is empty")
    label: Any
    if text.startswith("["):
        try:
            label = json.loads(text)
        except ValueError:
            label = None
        if not isinstance(label, list):
            raise InvalidInput(
                f"{text[:40]!r} is not a JSON list of labels, one per row, such as {_LIST_EXAMPLE}"
            )
        if as_text:  # class names that look like numbers, written without quotes
            label = [
                str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in label
            ]
    else:
        label = text if as_text else _scalar(text)
    problem = label_shape_problem(label)
    if problem is not None:
        raise InvalidInput(problem)
    return label


def _scalar(text: str) -> Any:  # Any: bool, int, float, or the text itself
    """A number or true/false written as text; other text stays text (and is refused by the
    kind check when the model predicts numbers)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def count_problem(request_id: str, label: object, rows: int) -> str | None:
    """Why ``label`` cannot label a logged request of ``rows`` rows (None when it can): a
    request of n rows takes a list of n labels, one of one row a single label."""
    values = len(label) if isinstance(label, list) else 1
    if values == rows:
        return None
    if rows == 1:
        return f"request {request_id!r} had one row; the label is a list of {values}"
    return (
        f"request {request_id!r} had {rows} rows; the label has {values} value"
        f"{'s' if values != 1 else ''} (a request of n rows takes a JSON list of n labels, one "
        f"per row in row order, such as {_LIST_EXAMPLE})"
    )


def _keep(
    lines: list[LabelLine],
    refused: list[tuple[int, str]],
    problem_of: Callable[[LabelLine], str | None],
) -> list[LabelLine]:
    """The lines without a problem; the others' reasons go to ``refused``."""
    kept: list[LabelLine] = []
    for x in lines:
        problem = problem_of(x)
        if problem is None:
            kept.append(x)
        else:
            refused.append((x.line, f"line {x.line}: {problem}"))
    return kept


def parse_feedback(doc: object) -> list[tuple[str, Any]]:
    """``{"id": ..., "label": ...}``, ``{"labels": [...]}`` or a list of such objects."""
    items: object = doc
    if isinstance(doc, dict):
        items = doc.get("labels", [doc])
    if not isinstance(items, list) or not items:
        raise InvalidInput('feedback must be {"id": ..., "label": ...} or a non-empty list')
    if len(items) > MAX_LABELS:
        raise InvalidInput(f"at most {MAX_LABELS} labels per request, got {len(items)}")
    pairs: list[tuple[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            raise InvalidInput(f"feedback item {index} needs 'id' and 'label'")
        rid, label = item["id"], item["label"]
        if not isinstance(rid, str) or not 0 < len(rid) <= 128:
            raise InvalidInput(f"feedback item {index}: 'id' must be a request id string")
        pairs.append((rid, _checked_label(label, index)))
    return pairs


def _checked_label(label: object, index: int) -> object:
    problem = label_shape_problem(label)
    if problem is not None:
        raise InvalidInput(f"feedback item {index}: {problem}")
    return label


def label_shape_problem(label: object) -> str | None:
    """Why ``label`` is not a label (None when it is): a label is one value (number, bool or
    short text) or a flat list of them, one per row of the request it labels."""
    values = label if isinstance(label, list) else [label]
    if isinstance(label, list) and not 0 < len(label) <= MAX_LABEL_ROWS:
        return f"a list label holds 1 to {MAX_LABEL_ROWS} values, one per row"
    for value in values:
        if isinstance(value, str):
            if len(value) > MAX_LABEL_CHARS:
                return f"a text label is at most {MAX_LABEL_CHARS} characters"
        elif not isinstance(value, int | float) or value != value:  # bool is an int; NaN out
            return "'label' must be a number, true/false or text, or a list of them"
    return None


def check_label_kinds(name: str, pairs: Sequence[tuple[str, Any]], output_dtype: str) -> None:
    """Refuse labels of the wrong kind for the model's predictions (see
    :func:`label_kind_problem`): stored, they would count as misses and silently skew live
    accuracy."""
    for rid, label in pairs:
        problem = label_kind_problem(name, rid, label, output_dtype)
        if problem is not None:
            raise InvalidInput(problem)


def label_kind_problem(name: str, rid: str, label: object, output_dtype: str) -> str | None:
    """Why ``label`` cannot be compared with what model ``name`` predicts, an output of
    ``output_dtype`` (None when it can): text for a model that predicts numbers, numbers for
    one that predicts text, a fraction for one that predicts whole numbers (class ids), a
    number other than 0 and 1 for one that predicts true/false."""
    text = output_dtype == STRING_DTYPE
    whole = output_dtype.startswith(("int", "uint"))
    for value in label if isinstance(label, list) else [label]:
        if isinstance(value, str) != text:
            kind, other = ("text", "a number") if text else ("numbers", "text")
            return (
                f"model {name!r} predicts {kind}; the label of request {rid!r} is {other} "
                f"({str(value)[:40]!r})"
            )
        if output_dtype == "bool" and value not in (0, 1):
            return f"model {name!r} predicts true/false; the label of request {rid!r} is {value!r}"
        if whole and isinstance(value, float) and not value.is_integer():
            return (
                f"model {name!r} predicts whole numbers ({output_dtype}); the label of request "
                f"{rid!r} is {value!r}"
            )
    return None
