"""Edits on a converted ONNX graph, so that it takes and returns what the original did.

Converters name inputs and outputs their own way (``output_label``, ``variable``), return
classifier probabilities as a ZipMap (a list of dicts), regression results as ``[N, 1]`` and
everything in float32. These edits make the graph's interface the original's: one input per
column for a table, outputs named ``predictions``/``probabilities`` in the original's shape
and dtype. They rename tensors and append nodes; they never change what the converter
computed, except :func:`round_weights`, which is asked for by name.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.artifact.tensor_spec import TensorSpec
from modelport.errors import UnsupportedModel
from modelport.flavors._framework import import_framework

# Any below: onnx's protobuf classes are untyped.

# Signature dtype names -> ONNX TensorProto element types (fixed by the ONNX spec).
ELEM_TYPES = {
    "float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7,
    "str": 8, "bool": 9, "float16": 10, "float64": 11, "uint32": 12, "uint64": 13,
}  # fmt: skip
_FLOAT = 1
DEFAULT_OPSET = 13


def _onnx() -> Any:
    return import_framework("onnx", "onnx", "convert")


def tensor_names(graph: Any) -> set[str]:
    """Every tensor name the graph uses (inputs, outputs, initializers, node ends)."""
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    names.update(init.name for init in graph.initializer)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    names.discard("")
    return names


def fresh_name(graph: Any, base: str) -> str:
    """A tensor name the graph does not use yet, starting with ``base``."""
    taken = tensor_names(graph)
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def rename_tensor(graph: Any, old: str, new: str) -> None:
    """Rename the tensor ``old`` wherever the (top-level) graph mentions it."""
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if value.name == old:
            value.name = new


def free_names(graph: Any, names: Sequence[str]) -> dict[str, str]:
    """Rename the graph's own tensors that carry one of ``names``, so those names can be
    given to new inputs or outputs; returns ``{old: new}`` for what was renamed."""
    used = tensor_names(graph)
    renamed = {}
    for name in names:
        if name in used:
            renamed[name] = fresh_name(graph, f"{name}__graph")
            rename_tensor(graph, name, renamed[name])
    return renamed


def drop_zipmaps(model: Any) -> None:
    """Return the probabilities matrix a ZipMap node was fed instead of its list of dicts."""
    onnx = _onnx()
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    for i, output in enumerate(list(graph.output)):
        node = producers.get(output.name)
        if node is None or node.op_type != "ZipMap":
            continue
        graph.node.remove(node)
        matrix = onnx.helper.make_tensor_value_info(node.input[0], _FLOAT, [None, None])
        graph.output[i].CopyFrom(matrix)


def adapt_columns(model: Any, columns: Sequence[TensorSpec], features: str) -> None:
    """Replace the graph input ``features`` (``[N, k]`` float32) by one 1-D input per column,
    cast to float32 and stacked, so a table's clients send the columns they always sent."""
    onnx = _onnx()
    helper = onnx.helper
    graph = model.graph
    free_names(graph, [c.name for c in columns])
    shape = fresh_name(graph, "column_shape")
    nodes = [_constant(onnx, np.asarray([-1, 1], dtype=np.int64), shape)]
    stacked = []
    for column in columns:
        as_float = fresh_name(graph, f"{column.name}__float")
        as_col = fresh_name(graph, f"{column.name}__column")
        nodes.append(helper.make_node("Cast", [column.name], [as_float], to=_FLOAT))
        nodes.append(helper.make_node("Reshape", [as_float, shape], [as_col]))
        stacked.append(as_col)
        graph.value_info.append(helper.make_tensor_value_info(as_col, _FLOAT, [None, 1]))
    nodes.append(helper.make_node("Concat", stacked, [features], axis=1))
    _require_default_opset(model)
    old_inputs = [v for v in graph.input if v.name == features]
    for value in old_inputs:
        graph.input.remove(value)
    graph.input.extend(
        helper.make_tensor_value_info(c.name, ELEM_TYPES[c.dtype], [None]) for c in columns
    )
    for node in reversed(nodes):
        graph.node.insert(0, node)


def adapt_inputs(model: Any, specs: Sequence[TensorSpec]) -> None:
    """Declare each graph input with the original's dtype (float64, say) and cast it to the
    type the converter's graph takes, so clients send what they always sent."""
    onnx = _onnx()
    helper = onnx.helper
    graph = model.graph
    declared = {v.name: v for v in graph.input}
    for spec in specs:
        value = declared.get(spec.name)
        if value is None:
            raise UnsupportedModel(f"a converted graph without the input {spec.name!r}")
        inner_type = value.type.tensor_type.elem_type
        if inner_type == ELEM_TYPES[spec.dtype]:
            continue
        inner = fresh_name(graph, f"{spec.name}__cast")
        rename_tensor(graph, spec.name, inner)
        graph.input.remove(value)
        dims = [None, *spec.shape[1:]]
        graph.input.append(helper.make_tensor_value_info(spec.name, ELEM_TYPES[spec.dtype], dims))
        graph.node.insert(0, helper.make_node("Cast", [spec.name], [inner], to=inner_type))
        _require_default_opset(model)
    order = {spec.name: i for i, spec in enumerate(specs)}
    inputs = sorted((copy.copy(v) for v in graph.input), key=lambda v: order.get(v.name, -1))
    del graph.input[:]
    graph.input.extend(inputs)


def loosen_outputs(model: Any) -> None:
    """Forget the shapes converters declare for outputs (LightGBM's labels ``[1]``, CatBoost's
    ``[N]`` for ``[N, 1]``); :func:`name_outputs` declares the real ones."""
    for output in model.graph.output:
        if output.type.WhichOneof("value") == "tensor_type":
            output.type.tensor_type.ClearField("shape")


@dataclass(frozen=True)
class OutputPlan:
    """How one graph output becomes one of the original's outputs."""

    source: str
    """The graph output's name as the converter left it."""
    name: str
    """The original's output name (``predictions``, ``probabilities``)."""
    elem_type: int
    """The ONNX element type the output has in the end (the original's dtype)."""
    shape: Sequence[int | None]
    """The output's shape in the end, ``None`` for the batch axis."""
    flatten: bool = False
    """Reshape ``[N, 1]`` to ``[N]``, as the original returned it."""
    cast: bool = False
    """Cast to ``elem_type``."""
    classes: Sequence[Any] | None = None
    """Labels are ``classes[argmax(source)]``: ``source`` holds probabilities (a LightGBM
    booster knows class indices only)."""


def name_outputs(model: Any, plans: Sequence[OutputPlan]) -> None:
    """Make the graph's outputs exactly ``plans``' names, in their order."""
    onnx = _onnx()
    helper = onnx.helper
    graph = model.graph
    _require_default_opset(model)
    renamed = free_names(graph, [p.name for p in plans])  # a source may be renamed too
    nodes = []
    for plan in plans:
        tensor = renamed.get(plan.source, plan.source)
        if plan.classes is not None:
            index = fresh_name(graph, f"{plan.name}__index")
            table = fresh_name(graph, f"{plan.name}__classes")
            nodes.append(_constant(onnx, np.asarray(list(plan.classes)), table))
            nodes.append(helper.make_node("ArgMax", [tensor], [index], axis=1, keepdims=0))
            nodes.append(helper.make_node("Gather", [table, index], [plan.name], axis=0))
            continue
        if plan.flatten:
            flat_shape = fresh_name(graph, f"{plan.name}__shape")
            flat = fresh_name(graph, f"{plan.name}__flat")
            nodes.append(_constant(onnx, np.asarray([-1], dtype=np.int64), flat_shape))
            nodes.append(helper.make_node("Reshape", [tensor, flat_shape], [flat]))
            tensor = flat
        if plan.cast:
            nodes.append(helper.make_node("Cast", [tensor], [plan.name], to=plan.elem_type))
        else:
            nodes.append(helper.make_node("Identity", [tensor], [plan.name]))
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.extend(
        helper.make_tensor_value_info(p.name, p.elem_type, list(p.shape)) for p in plans
    )


def _require_default_opset(model: Any) -> None:
    """Reshape, Cast, ArgMax and Gather come from the default domain: a graph of
    ``ai.onnx.ml`` operators only (XGBoost's) gets it imported."""
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        model.opset_import.append(_onnx().helper.make_opsetid("", DEFAULT_OPSET))


def _constant(onnx: Any, values: np.ndarray, name: str) -> Any:
    """A Constant node (not an initializer: graphs of IR version 3, such as CatBoost's,
    must list every initializer as an input too)."""
    if values.dtype.kind in "USO":
        tensor = onnx.helper.make_tensor(
            name, ELEM_TYPES["str"], [len(values)], [str(v).encode() for v in values]
        )
    else:
        tensor = onnx.numpy_helper.from_array(values, name)
    return onnx.helper.make_node("Constant", [], [name], value=tensor)


def _elem_of(values: np.ndarray) -> int:
    if values.dtype.kind in "USO":
        return ELEM_TYPES["str"]
    return int(ELEM_TYPES.get(str(values.dtype), 0))


def elem_type_of(dtype: np.dtype[Any]) -> int | None:
    """The ONNX element type of a numpy dtype (strings: ``str``), or None if ONNX has none."""
    if dtype.kind in "USO":
        return ELEM_TYPES["str"]
    return ELEM_TYPES.get(str(dtype))


def round_weights(model: Any, dtype: str) -> int:
    """Round every float32/float64 weight (initializers and float attributes) to ``dtype``
    (``float16``) precision, keeping the graph's types: what a half-precision runtime would
    compute with. Returns how many weights were rounded."""
    onnx = _onnx()
    numpy_helper = onnx.numpy_helper
    target = np.dtype(dtype)
    count = 0
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype in (np.float32, np.float64):
            init.CopyFrom(numpy_helper.from_array(arr.astype(target).astype(arr.dtype), init.name))
            count += arr.size
    kinds = onnx.AttributeProto
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == kinds.FLOAT:
                attr.f = float(np.float32(attr.f).astype(target))
                count += 1
            elif attr.type == kinds.FLOATS:
                rounded = np.asarray(attr.floats, dtype=np.float32).astype(target)
                attr.floats[:] = rounded.astype(np.float32).tolist()
                count += len(attr.floats)
            elif attr.type == kinds.TENSOR:
                arr = numpy_helper.to_array(attr.t)
                if arr.dtype in (np.float32, np.float64):
                    attr.t.CopyFrom(numpy_helper.from_array(arr.astype(target).astype(arr.dtype)))
                    count += arr.size
    return count
