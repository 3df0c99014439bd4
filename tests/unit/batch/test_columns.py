"""Output column names: a classifier's probabilities by class, safe and deterministic."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modelport.batch.job import labelled_columns, output_table


@pytest.mark.parametrize(
    ("labels", "names"),
    [
        (["churn", "stay"], ["p_churn", "p_stay"]),
        ([0, 1, 2], ["p_0", "p_1", "p_2"]),
        ([0.0, 1.0, 2.5], ["p_0", "p_1", "p_2_5"]),
        ([True, False], ["p_True", "p_False"]),
        (["no churn", "≥50K", "a-b"], ["p_no_churn", "p__50K", "p_a_b"]),
        ([-1, 1], ["p__1", "p_1"]),
        (["a b", "a-b", "c"], ["p_0", "p_1", "p_2"]),  # alike once safe: all by position
        (["", "?"], ["p_0", "p_1"]),
        (["x", "1", 1], ["p_0", "p_1", "p_2"]),  # "1" and 1 alike: by position
    ],
)
def test_labelled_columns(labels: list[object], names: list[str]) -> None:
    assert labelled_columns("p", labels) == names
    assert labelled_columns("p", labels) == names  # the same every time


def test_output_table_names_columns_by_label_when_the_width_matches() -> None:
    table = pa.table({"id": [1, 2]})
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    names = {"probabilities": ["probabilities_churn", "probabilities_stay"]}
    out = output_table(table, np.array([0, 1]), {"probabilities": proba}, ["id"], names)
    assert out.column_names == ["id", "probabilities_churn", "probabilities_stay"]
    names = {"probabilities": ["probabilities_a"]}  # not this output's width: by position
    out = output_table(table, np.array([0, 1]), {"probabilities": proba}, ["id"], names)
    assert out.column_names == ["id", "probabilities_0", "probabilities_1"]
