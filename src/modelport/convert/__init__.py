"""Converting a registered version to ONNX: a new version of the same model, checked first.

:func:`convert` loads the version through the registry (the safe load path), converts its
native model with the converter for its flavor (:mod:`modelport.convert._converters`),
gives the graph the original's interface (:mod:`modelport.convert._graph`: same input
names, outputs named and shaped like the original's), runs both on the check rows
(:mod:`modelport.convert._check`) and registers the graph only if they agree. The new
version records its parent, the converter and the measured differences in its lineage.

>>> result = convert(registry, "churn/3", rtol=1e-4, atol=1e-5)
>>> result.version.version, result.max_abs_diff
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelport.artifact.signature import Signature
from modelport.convert import _graph
from modelport.convert._check import CheckRows, check_rows, compare
from modelport.convert._converters import FEATURES, Converted, to_onnx
from modelport.errors import FlavorError, InvalidInput, InvalidRef
from modelport.flavors import get_flavor
from modelport.flavors._framework import import_framework
from modelport.packaging import LoadedModel
from modelport.packaging import save as save_artifact
from modelport.ref import ModelRef
from modelport.registry import Registry
from modelport.registry.entities import ModelVersion

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "SYNTHETIC_ROWS", "Conversion", "convert"]

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5
"""Defaults suited to float32 graphs checked against float32/float64 originals."""
SYNTHETIC_ROWS = 256
"""Rows drawn from the reference profile, when the version has one."""
EXAMPLE_ROWS = 5
"""Rows kept as the new version's input example when the original had none."""

Weights = Literal["float16"]


@dataclass(frozen=True)
class Conversion:
    """A registered conversion and what its check measured."""

    version: ModelVersion
    """The new version (the ONNX graph)."""
    parent: str
    """The version converted, ``name/3``."""
    converter: str
    rows_checked: int
    rows: dict[str, int]
    """Rows checked per source: ``example``, ``data``, ``profile`` (synthetic)."""
    max_abs_diff: float
    max_rel_diff: float
    rtol: float
    atol: float


def convert(
    registry: Registry,
    ref: str | ModelRef,
    *,
    to: str = "onnx",
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    data: object = None,
    weights: Weights | None = None,
    synthetic_rows: int = SYNTHETIC_ROWS,
    seed: int = 0,
) -> Conversion:
    """Convert the registered version ``ref`` to ONNX and register it as a new version.

    ``data``: more rows to check on (anything ``LoadedModel.predict`` takes). ``weights``:
    ``"float16"`` rounds every weight to half precision first (what a float16 runtime would
    compute with); the check then says whether the model survives it. Raises InvalidInput
    for a flavor with no converter or no rows to check on, UnsupportedModel for a model its
    converter refuses, and FlavorError, naming the worst row, when the graph's outputs
    differ beyond ``rtol``/``atol``: then nothing is registered.
    """
    if to != "onnx":
        raise InvalidInput(f"cannot convert to {to!r}: modelport converts to onnx")
    if not (rtol >= 0 and atol >= 0):
        raise InvalidInput(f"tolerances must be >= 0 (rtol={rtol}, atol={atol})")
    if weights not in (None, "float16"):
        raise InvalidInput(f"unknown weights precision {weights!r}; use float16")
    loaded = registry.load(ref)
    if loaded.version is None:
        raise InvalidRef(str(ref), "convert takes a registered version (NAME, NAME/3, NAME@ALIAS)")
    parent = f"{loaded.name}/{loaded.version}"
    rows = check_rows(loaded, data, synthetic_rows, seed)
    converted = to_onnx(loaded, _head(rows.inputs, 2))
    expected = _original_outputs(loaded, rows)
    with tempfile.TemporaryDirectory(prefix="modelport-convert-") as tmp:
        graph = _interface(converted, loaded.signature, expected, rows, Path(tmp))
        if weights is not None:
            _graph.round_weights(graph, weights)
        got = _run(graph, loaded.signature, rows.inputs, Path(tmp) / "final")
        diffs = compare(expected, got, rtol, atol)
        _run(graph, loaded.signature, _head(rows.inputs), Path(tmp) / "one")
        lineage: dict[str, Any] = {
            "parent": parent,
            "conversion": "onnx",
            "converter": converted.converter,
            "max_abs_diff": diffs.max_abs_diff,
            "max_rel_diff": diffs.max_rel_diff,
            "rtol": rtol,
            "atol": atol,
            "rows_checked": rows.count,
            "rows": dict(rows.sources),
        }
        if weights is not None:
            lineage["weights"] = weights
        folder = Path(tmp) / "artifact" / loaded.name
        tags = {"converted_from": parent, "converter": converted.converter.split()[0]}
        description = f"ONNX conversion of {parent} by {converted.converter}"
        manifest = save_artifact(
            graph,
            folder,
            name=loaded.name,
            input_example=_example(loaded, rows),
            flavor="onnx",
            tags=tags,
            description=description,
            lineage=lineage,
        )
        new, old = manifest.signature, loaded.signature
        if (new.kind, new.inputs) != (old.kind, old.inputs):
            raise FlavorError(
                f"the converted graph takes {new.kind} {new.to_dict()['inputs']}, not the "
                f"original's {old.kind} {old.to_dict()['inputs']}"
            )
        version = registry.register(
            loaded.name,
            folder,
            tags=tags,
            description=description,
            source=f"modelport convert {parent} --to onnx",
        )
    return Conversion(
        version=version,
        parent=parent,
        converter=converted.converter,
        rows_checked=rows.count,
        rows=dict(rows.sources),
        max_abs_diff=diffs.max_abs_diff,
        max_rel_diff=diffs.max_rel_diff,
        rtol=rtol,
        atol=atol,
    )


def _original_outputs(loaded: LoadedModel, rows: CheckRows) -> dict[str, np.ndarray]:
    try:
        return loaded.predict_arrays(rows.inputs)
    except Exception as exc:  # the original itself refuses the check rows
        raise InvalidInput(
            f"{loaded.name!r} cannot predict the rows to check on: {exc}".splitlines()[0]
        ) from None


def _interface(
    converted: Converted,
    signature: Signature,
    expected: Mapping[str, np.ndarray],
    rows: CheckRows,
    tmp: Path,
) -> Any:  # Any: onnx.ModelProto
    """The converted graph with the original's inputs and outputs."""
    graph = converted.model
    if signature.kind == "columns":
        _graph.adapt_columns(graph, signature.inputs, FEATURES)
    else:
        _graph.adapt_inputs(graph, signature.inputs)
    _graph.drop_zipmaps(graph)
    _graph.loosen_outputs(graph)
    raw_names = [o.name for o in graph.graph.output]
    names = list(expected)
    if len(raw_names) < len(names):
        raise FlavorError(
            f"the converted graph returns {len(raw_names)} outputs ({', '.join(raw_names)}); "
            f"the original returns {', '.join(names)}"
        )
    trial = _run(graph, signature, _head(rows.inputs, 2), tmp / "trial")
    plans = []
    # Graph outputs map onto the original's by position; extra ones (scores) are dropped.
    for name, source in zip(names, raw_names, strict=False):
        want, have = expected[name], trial[source]
        final = _graph.elem_type_of(want.dtype)
        shape = [None, *want.shape[1:]]
        if name == "predictions" and converted.label_classes is not None and len(raw_names) > 1:
            classes = converted.label_classes
            plans.append(_graph.OutputPlan(raw_names[1], name, final or 0, shape, classes=classes))
            continue
        flatten = want.ndim == 1 and have.ndim == 2 and have.shape[1] == 1
        cast = want.dtype != have.dtype and "O" not in (want.dtype.kind, have.dtype.kind)
        kept = _graph.elem_type_of(have.dtype)
        elem = final if cast and final is not None else kept
        if elem is None:
            raise FlavorError(f"the converted graph's output {source!r} has no ONNX type")
        plans.append(_graph.OutputPlan(source, name, elem, shape, flatten, cast and elem == final))
    _graph.name_outputs(graph, plans)
    return graph


def _run(
    graph: Any, signature: Signature, inputs: Mapping[str, np.ndarray], folder: Path
) -> dict[str, np.ndarray]:
    """Run the graph through the onnx flavor's predictor, as a registered version runs."""
    onnx = import_framework("onnx", "onnx", "convert")
    folder.mkdir(parents=True)
    onnx.save_model(graph, str(folder / "model.onnx"))
    predictor = get_flavor("onnx").load(folder, {"file": "model.onnx"}, signature)
    try:
        return predictor.predict(inputs)
    except FlavorError:
        raise
    except Exception as exc:  # onnxruntime's untyped errors
        raise FlavorError(f"the converted graph does not run: {exc}".splitlines()[0]) from None


def _head(inputs: Mapping[str, np.ndarray], n: int = 1) -> dict[str, np.ndarray]:
    """The first ``n`` rows of canonical inputs."""
    return {name: arr[:n] for name, arr in inputs.items()}


def _example(loaded: LoadedModel, rows: CheckRows) -> object:
    """The original's example (or the first check rows), in the form that gives the new
    version the original's signature: a table for columns, named arrays for tensors."""
    example = loaded.input_example() or _head(rows.inputs, EXAMPLE_ROWS)
    if loaded.signature.kind == "columns":
        import pandas as pd

        return pd.DataFrame(example)
    return example
