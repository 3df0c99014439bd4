"""How many rows each logged request had: what a label for it must match.

A request of n rows is one entry of the prediction log, and the label posted for it is a
list of n labels (one value for a single row). Feedback checks a label's length against
this before storing it, so a label that could never be paired is refused where it is posted
rather than dropped later by live quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from modelport.registry.sql._base import StoreBase
from modelport.registry.sql._schema import PredictionRow

_CHUNK = 500  # ids per IN (...) clause


class LoggedRowsMixin(StoreBase):
    """The row counts of logged requests, for :class:`~modelport.registry.sql.store.SqlStore`."""

    def count_logged_rows(self, model: str, request_ids: Sequence[str]) -> dict[str, int]:
        """The rows of each of ``request_ids`` logged for ``model`` (of its newest entry when
        an id was logged twice); ids never logged are left out."""
        ids = list(dict.fromkeys(request_ids))
        rows: dict[str, int] = {}
        with self._session() as s:
            for start in range(0, len(ids), _CHUNK):
                query = (
                    select(PredictionRow.request_id, PredictionRow.outputs)
                    .where(
                        PredictionRow.model == model,
                        PredictionRow.request_id.in_(ids[start : start + _CHUNK]),
                    )
                    .order_by(PredictionRow.created_at, PredictionRow.id)
                )
                for rid, outputs in s.execute(query):
                    rows[rid] = _rows(outputs)  # oldest first: the newest entry stays
        return rows


def _rows(outputs: Any) -> int:  # Any: the decoded JSON object of a log entry's outputs
    """The batch axis's length: every output has it; a scalar output is one row."""
    first = next(iter(outputs.values()), None) if isinstance(outputs, dict) else None
    return len(first) if isinstance(first, list) else 1
