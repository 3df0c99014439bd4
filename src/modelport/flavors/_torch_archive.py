"""Checking a ``torch.export`` archive (``.pt2``) without running anything, before torch reads it.

``torch.export.load`` can run code from the file (see :mod:`modelport.flavors.torch`):
pickled weights and constants, ``sympy.sympify`` of shape expressions, ``guards_code`` run
on every call. :func:`scan_program` says why a file could do that (empty: it could not),
reading its entries with torch's own zip reader and as JSON; nothing is unpickled but by
``torch.load(weights_only=True)``. :func:`call_targets` lists graph node targets outside
``torch.ops``, ``operator`` and ``math`` of a program already loaded.
"""

from __future__ import annotations

import ast
import io
import json
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from modelport.errors import summarize
from modelport.flavors._framework import import_framework


def _torch() -> Any:  # Any: the torch module, imported lazily
    return import_framework("torch", "torch", "torch")


_LAYOUT = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/[\w.]+|models/\w+\.json"
    r"|data/weights/[\w.]+|data/constants/[\w.]+|data/sample_inputs/\w+\.pt|extra/[\w.\-]+)"
)
_TARGET = re.compile(
    r"torch\.ops\.(?!_)\w+\.(?!__)\w+(\.(?!__)\w+)?|_operator\.(?!_)\w+|math\.(?!_)\w+"
)
_SYMBOL = re.compile(r"[a-z]+\d+")
_SYMPY_CLASS = re.compile(r"[A-Z][A-Za-z]+")  # Symbol, Integer, Eq, Max, FloorDiv, ...
_STRING_READERS = {"S", "Poly", "sympify", "parse_expr"}  # they would eval a string argument


def scan_program(file: Path) -> list[str]:
    """Why torch.export.load could run code from ``file`` (empty: it would not). The entries
    are read with torch's own zip reader, so what is checked is what torch would load."""
    torch = _torch()
    try:
        with zipfile.ZipFile(file) as archive:  # the reader of torch's fallback, old format
            names = archive.namelist()
        found = _scan_layout(names)
        if found:
            return found
        reader = torch._C.PyTorchFileReader(str(file))
        records = sorted(reader.get_all_records())
        if set(records) != {n.partition("/")[2] for n in names}:
            return ["torch and Python's zipfile read different files from the archive"]
        for name in records:
            found.extend(_scan_entry(name, reader.get_record(name)))
        return list(dict.fromkeys(found))
    except Exception as exc:  # any malformed archive (zip, JSON, config shape) is refused
        return [f"not a readable torch.export archive ({type(exc).__name__}: {summarize(exc)})"]


def _scan_layout(names: list[str]) -> list[str]:
    if not names:
        return ["an empty archive"]
    if len(names) != len(set(names)):
        return ["the archive holds two files of one name"]
    roots = {n.partition("/")[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        return ["the archive is not one torch.export folder (an old format, or more)"]
    odd = [n for n in names if not _LAYOUT.fullmatch(n.partition("/")[2])]
    return [f"unexpected file {odd[0]!r} (compiled code or an old format)"] if odd else []


def _scan_entry(name: str, data: bytes) -> list[str]:
    if name.endswith("_config.json") and name.startswith(("data/weights/", "data/constants/")):
        config = json.loads(data).get("config", {})
        return [
            f"{fqn!r} in {name} is pickled"
            for fqn, meta in config.items()
            if meta.get("use_pickle")
            or not str(meta.get("path_name", "")).startswith(("weight_", "tensor_"))
        ]
    if name.startswith("data/sample_inputs/"):
        torch = _torch()
        try:
            torch.load(io.BytesIO(data), weights_only=True)
        except Exception:  # refused by the safe unpickler: torch would retry the unsafe one
            return [f"{name} holds more than tensors"]
        return []
    if name.startswith("models/"):
        return _scan_graph(name, json.loads(data))
    return []


def _scan_graph(name: str, program: object) -> list[str]:
    found = []
    for key, value in _strings(program):
        if key == "target" and not _TARGET.fullmatch(value):
            found.append(f"{name} calls {value!r}")
        elif key == "expr_str" and not _plain_expression(value):
            found.append(f"{name} has the shape expression {value[:80]!r}")
    if isinstance(program, Mapping):
        for guard in program.get("guards_code") or []:
            if not _plain_guard(str(guard)):
                found.append(f"{name} has the guard {str(guard)[:80]!r}")
        for symbol in program.get("range_constraints") or {}:
            if not _SYMBOL.fullmatch(str(symbol)):
                found.append(f"{name} constrains {str(symbol)[:80]!r}")
    return found


def _strings(value: object, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, string) pair in a JSON document, at any depth."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)


def _plain_expression(text: str) -> bool:
    """A shape expression sympify may eval: symbols, numbers, arithmetic, comparisons and
    sympy/torch classes (``Symbol('s0', integer=True)``); a string only as a Symbol's name,
    since many sympy classes would eval a string argument."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    names = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Symbol"
        and node.args
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                return False
        elif isinstance(node, ast.Name):
            if node.id in _STRING_READERS or not (
                _SYMBOL.fullmatch(node.id) or _SYMPY_CLASS.fullmatch(node.id)
            ):
                return False
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str | bytes) and id(node) not in names:
                return False
        elif isinstance(node, ast.Pow) or not isinstance(node, _EXPRESSION_NODES):
            return False  # ``**``: 10**10**10 would hang the loader (torch writes PowByNatural)
    return True


_EXPRESSION_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Load, ast.keyword,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip


def _plain_guard(text: str) -> bool:
    """A guard ``.module()`` would exec: comparisons of input sizes (``L['x'].size()[1]``)
    with numbers, nothing else."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Attribute) and node.func.attr in ("size", "stride")):
                return False
            if node.args or node.keywords:
                return False
        elif isinstance(node, ast.Attribute):
            if node.attr not in ("size", "stride"):
                return False
        elif isinstance(node, ast.Name):
            if node.id != "L":
                return False
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | str):
                return False
        elif not isinstance(node, (*_EXPRESSION_NODES, ast.Subscript)):
            return False
    return True


def call_targets(program: Any, torch: Any) -> list[str]:  # Any: torch types
    """The loaded graph's call targets that are neither torch operators nor ``operator`` or
    ``math`` functions (what a crafted archive could name): a second check after the scan."""
    import math
    import operator

    plain = {id(f) for f in (*vars(operator).values(), *vars(math).values()) if callable(f)}
    operators = (torch._ops.OpOverload, torch._ops.HigherOrderOperator)
    return [
        str(node.target)
        for module in program.graph_module.modules()
        for node in getattr(getattr(module, "graph", None), "nodes", [])
        if node.op == "call_function"
        and not isinstance(node.target, operators)
        and id(node.target) not in plain
    ]
