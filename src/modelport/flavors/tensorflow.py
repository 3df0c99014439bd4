"""The TensorFlow flavor: SavedModel directories, called through a serving signature.

Files written: ``saved_model/``, TensorFlow's SavedModel format: ``saved_model.pb`` (a
protobuf holding the graph of every function and the object graph), ``variables/`` (a
checkpoint of the weights), ``assets/`` where the model has files (vocabularies, say) and
``fingerprint.pb``. The options record the folder (``dir``) and the signature to call
(``signature_name``, default ``serving_default``).

What is saved: a ``tf.Module`` (or any trackable TensorFlow object, such as one loaded by
``tf.saved_model.load``) with a serving signature: its ``signatures`` where it has them (a
loaded SavedModel), else its one ``tf.function`` with an ``input_signature`` (``__call__``
when there are several). A SavedModel directory a user has (``modelport register
saved_model_dir/``) is read by :func:`read_file` and saved again the same way.

Calling: named inputs are fed to the signature function by its input names, cast to its
dtypes; the outputs come back by the signature's output keys (sorted: ``output_0`` for a
function that returns one tensor), ``tf.string`` values as ``str``. The signature (input
names, dtypes and shapes, ``None`` as ``-1``) is the model's own, so no example is needed.

Safety: a SavedModel holds no Python (no pickle, no bytecode), and loading one imports
nothing the file names: objects are rebuilt as TensorFlow's own registered types. It is a
graph of TensorFlow ops, though, which run with this process's rights: loading runs some
(resource creators and initializers, such as a lookup table's; a TF1 model's restore and
init ops) and calling runs the rest. Most ops only compute; those in :data:`UNSAFE_OPS`
read or write files, call Python, reach the network or end the process. :func:`find_unsafe`
reads ``saved_model.pb`` as data (nothing is built or run) and names every such op in the
main graph and in every function of its library. The checkpoint ops of the SavedModel's own
saver (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints`` in what only the saver calls) are
expected and let through. Every save, load and read without trust refuses what the scan
finds (UntrustedArtifact) before TensorFlow reads the model; ``trust_unsafe=True`` skips it.
Not covered: a graph built to exhaust memory or CPU, ops from custom op libraries (loading
refuses an op this TensorFlow does not know), and bugs in TensorFlow's own kernels (its
security advisories list many, for malformed inputs: keep TensorFlow up to date).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import DTYPES, Signature, TensorSpec
from modelport.errors import FlavorError, UntrustedArtifact
from modelport.flavors import Options, Predictor, SavedFlavor
from modelport.flavors._framework import import_framework

NAME = "tensorflow"
FILE_SUFFIXES: tuple[str, ...] = ()  # a SavedModel is a directory (saved_model.pb inside)
DECLARES_INPUTS = True  # the serving signature is the signature; an example must fit it

SAVED_MODEL_FILE = "saved_model.pb"
_DIR = "saved_model"
DEFAULT_SIGNATURE = "serving_default"
# What a distribution of TensorFlow may be called; the first installed one is required.
_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tensorflow-intel", "tensorflow-macos")

_READS, _WRITES = "reads files", "writes files"
UNSAFE_OPS: dict[str, str] = {
    # the file system, through the op itself or a reader, a dataset or a table it builds
    **dict.fromkeys(
        ("ReadFile", "MatchingFiles", "ImmutableConst", "WholeFileReader", "WholeFileReaderV2",
         "TextLineReader", "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2",
         "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "LMDBReader",
         "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
         "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
         "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
         "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "LoadDataset",
         "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LoadAndRemapMatrix",
         "GenerateVocabRemapping", "Restore", "RestoreV2", "RestoreSlice"),
        _READS,
    ),
    **dict.fromkeys(
        ("WriteFile", "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints", "SaveDataset",
         "SaveDatasetV2", "SnapshotDataset", "SnapshotDatasetV2", "CacheDataset",
         "CacheDatasetV2", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
         "CreateSummaryFileWriter", "CreateSummaryDbWriter", "DebugIdentity", "DebugIdentityV2",
         "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary", "DebugNumericSummaryV2"),
        _WRITES,
    ),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), "calls Python"),
    **dict.fromkeys(
        ("DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3",
         "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2"),
        "reaches the network",
    ),
    "Abort": "ends the process",
}  # fmt: skip
"""Op type -> what it does that computing does not: found by :func:`find_unsafe`."""

# The ops a SavedModel's own saver runs, on its own variables/ folder: let through there.
_CHECKPOINT_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints"})
# Ops that are unsafe only with some attribute: (attribute, the values that are safe; its
# default, when a function's node leaves it out, is one of them).
_UNSAFE_UNLESS = {
    "PrintV2": ("output_stream", {"stderr", "stdout", "log(info)", "log(warning)", "log(error)"}),
    "DecodeProtoV2": ("descriptor_source", {"", "local://"}),
    "EncodeProto": ("descriptor_source", {"", "local://"}),
}
_UNSAFE_WITH_ATTRIBUTE = {"PrintV2": _WRITES, "DecodeProtoV2": _READS, "EncodeProto": _READS}


def _tf() -> Any:  # Any: tensorflow is untyped
    return import_framework("tensorflow", "tensorflow-cpu", "tensorflow")


def handles(model: object) -> bool:
    """True for TensorFlow objects (tf.Module and friends), without importing tensorflow."""
    return any(
        c.__module__ == "tensorflow" or c.__module__.startswith(("tensorflow.", "keras.src"))
        for c in type(model).__mro__
    ) and not any(c.__module__.startswith("keras") for c in type(model).__mro__)


def is_saved_model_dir(path: Path) -> bool:
    """True for a directory holding a SavedModel (``saved_model.pb`` at its top)."""
    return path.is_dir() and (path / SAVED_MODEL_FILE).is_file()


def save(model: object, path: Path, options: Options, *, trust_unsafe: bool = False) -> SavedFlavor:
    """Write ``saved_model/`` with ``tf.saved_model.save``, the serving signature under the
    name ``signature_name``; refuse a graph with unsafe ops unless ``trust_unsafe``."""
    tf = _tf()
    name = _signature_name(options)
    function = _serving_function(model, name)
    folder = path / _DIR
    try:
        tf.saved_model.save(model, str(folder), signatures={name: function})
    except (ValueError, TypeError, AssertionError) as exc:  # what TF raises for what it cannot
        raise FlavorError(
            f"TensorFlow cannot save this {type(model).__name__}: {_first_line(exc)}"
        ) from None
    if not trust_unsafe:
        _refuse_unsafe(folder, "save")
    return SavedFlavor(
        framework="tensorflow",
        framework_version=str(tf.__version__),
        options={"dir": _DIR, "signature_name": name},
        requirements=[_requirement(str(tf.__version__))],
    )


def _signature_name(options: Options) -> str:
    name = options.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str) or not name:
        raise FlavorError(f"invalid tensorflow signature_name {name!r}")
    return name


def _requirement(version: str) -> str:
    """``tensorflow-cpu==2.21.0``: the distribution installed here, else ``tensorflow``."""
    for distribution in _DISTRIBUTIONS:
        try:
            importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return f"{distribution}=={version}"
    return f"tensorflow=={version}"


def _serving_function(model: object, name: str) -> Any:  # Any: a tf ConcreteFunction
    """The function to serve: the model's signature ``name`` if it has signatures (a loaded
    SavedModel), else its one ``tf.function`` with an input signature (``__call__`` first)."""
    signatures = getattr(model, "signatures", None)
    if isinstance(signatures, Mapping) and signatures:
        if name not in signatures:
            raise FlavorError(
                f"the model has no signature {name!r}; it has: {', '.join(sorted(signatures))}"
            )
        return signatures[name]
    functions = dict(_signature_functions(model))
    if not functions:
        raise FlavorError(
            f"this {type(model).__name__} has no serving signature: give it one tf.function "
            "with an input_signature (its __call__, say)"
        )
    if len(functions) > 1 and "__call__" not in functions:
        raise FlavorError(
            f"this {type(model).__name__} has several tf.functions with an input_signature "
            f"({', '.join(sorted(functions))}): which one serves? Make it __call__"
        )
    chosen = functions.get("__call__") or next(iter(functions.values()))
    return chosen.get_concrete_function()


def _signature_functions(model: object) -> Iterator[tuple[str, Any]]:  # Any: a tf.function
    """``(attribute, tf.function)`` for each of the object's public tf.functions (and
    ``__call__``) that has an input signature, found without calling anything else on it."""
    tf = _tf()
    seen: set[str] = set()
    scopes = [*(vars(c) for c in type(model).__mro__), getattr(model, "__dict__", {})]
    for scope in scopes:
        for attribute, value in list(scope.items()):
            if attribute in seen or (attribute.startswith("_") and attribute != "__call__"):
                continue
            if isinstance(value, tf.types.experimental.PolymorphicFunction):
                seen.add(attribute)
                if value.input_signature is not None:
                    yield attribute, getattr(model, attribute)


def load(
    path: Path,
    options: Options,
    signature: Signature,
    *,
    trust_unsafe: bool = False,
    device: str = "cpu",
) -> Predictor:
    """Load the SavedModel on ``device`` (``cpu``; ``cuda`` or ``cuda:N`` where this
    TensorFlow sees a GPU) and call its signature ``signature_name``, after refusing a graph
    with unsafe ops unless ``trust_unsafe``."""
    folder = path / str(options.get("dir", _DIR))
    if folder.parent != path:
        raise FlavorError(f"invalid tensorflow flavor options: {dict(options)!r}")
    name = _signature_name(options)
    tf = _tf()
    placement = _placement(device, tf)
    if not trust_unsafe:
        _refuse_unsafe(folder, "load")
    with tf.device(placement):
        loaded = _load(folder, tf)
    functions = getattr(loaded, "signatures", {})
    if name not in functions:
        known = ", ".join(sorted(functions)) or "none"
        raise FlavorError(f"the SavedModel has no signature {name!r} (signatures: {known})")
    return TensorFlowPredictor(loaded, functions[name], placement)


def _placement(device: str, tf: Any) -> str:
    """``device`` as a TensorFlow device name; a GPU only where this TensorFlow sees one."""
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", device)
    if match is None:
        raise FlavorError(f"unknown tensorflow device {device!r}; use cpu, cuda or cuda:N")
    if device == "cpu":
        return "/CPU:0"
    index = int(match.group(1) or 0)
    gpus = tf.config.list_physical_devices("GPU")
    if index >= len(gpus):
        raise FlavorError(
            f"device {device!r} is not available: TensorFlow {tf.__version__} sees "
            f"{len(gpus)} GPU(s)"
        )
    return f"/GPU:{index}"


def _load(folder: Path, tf: Any) -> Any:  # Any: the loaded trackable object
    try:
        return tf.saved_model.load(str(folder))
    except Exception as exc:  # TF raises OSError, ValueError, its own errors... for bad files
        raise FlavorError(f"cannot read SavedModel {folder.name!r}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_file(path: Path, *, trust_unsafe: bool = False) -> object:
    """Load a SavedModel directory a user has (its ``saved_model.pb`` is scanned first and a
    graph with unsafe ops refused, unless ``trust_unsafe``)."""
    if not is_saved_model_dir(path):
        raise FlavorError(f"{path.name!r} is not a SavedModel directory (no {SAVED_MODEL_FILE})")
    tf = _tf()
    if not trust_unsafe:
        _refuse_unsafe(path, "load")
    return _load(path, tf)


def infer_signature(model: object) -> Signature | None:
    """Named tensors from the serving signature's inputs (their names, dtypes and shapes, an
    unknown dimension as ``-1``); None when it has none, or one that is not plain tensors."""
    try:
        function = _serving_function(model, DEFAULT_SIGNATURE)
    except FlavorError:
        return None
    return _signature_of(function)


def _signature_of(function: Any) -> Signature | None:  # Any: a tf ConcreteFunction
    tf = _tf()
    args, kwargs = function.structured_input_signature
    named = [(spec.name, spec) for spec in tf.nest.flatten(args)]
    named += [(key, kwargs[key]) for key in sorted(kwargs)]
    specs = []
    for name, spec in named:
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank in (None, 0):
            return None  # ragged, sparse, unknown rank or scalar: not a batch of tensors
        dtype = "str" if spec.dtype == tf.string else str(spec.dtype.name)
        if dtype not in DTYPES:
            return None
        specs.append(
            TensorSpec(str(name), dtype, tuple(-1 if d is None else int(d) for d in spec.shape))
        )
    return Signature("tensors", tuple(specs)) if specs else None


def find_unsafe(path: Path, options: Options) -> list[tuple[str, str]]:
    """``(file, reason)`` for each op in ``saved_model.pb`` that reads or writes files,
    calls Python, reaches the network or ends the process (see :data:`UNSAFE_OPS`); the
    protobuf is read as data, nothing is built or run."""
    folder = path / str(options.get("dir", _DIR))
    if folder.parent != path:
        raise FlavorError(f"invalid tensorflow flavor options: {dict(options)!r}")
    file = f"{folder.name}/{SAVED_MODEL_FILE}"
    return [(file, reason) for reason in unsafe_ops(folder)]


def _refuse_unsafe(folder: Path, action: str) -> None:
    found = unsafe_ops(folder)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UntrustedArtifact(
            f"refusing to {action} SavedModel {folder.name!r}: {found[0]}{more}"
        )


def unsafe_ops(folder: Path) -> list[str]:
    """Why each unsafe op in the SavedModel at ``folder`` is, one line per op."""
    saved = _read_proto(folder / SAVED_MODEL_FILE)
    found: dict[str, None] = {}  # ordered and without repeats
    for meta in saved.meta_graphs:
        saver_nodes, saver_functions = _saver_parts(meta)
        for node in meta.graph_def.node:
            reason = _unsafe(node, node.name in saver_nodes)
            if reason:
                found[f"op {node.name!r} ({node.op}) in the main graph {reason}"] = None
        for function in meta.graph_def.library.function:
            ours = function.signature.name in saver_functions
            for node in function.node_def:
                reason = _unsafe(node, ours)
                if reason:
                    where = f"function {function.signature.name!r}"
                    found[f"op {node.name!r} ({node.op}) in {where} {reason}"] = None
    return list(found)


def _read_proto(file: Path) -> Any:  # Any: a SavedModel protobuf message
    saved_model_pb2 = import_framework(
        "tensorflow.core.protobuf.saved_model_pb2", "tensorflow-cpu", "tensorflow"
    )
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(file.read_bytes())
    except Exception as exc:  # OSError, or protobuf's DecodeError
        raise FlavorError(f"cannot read {file.name!r}: {_first_line(exc)}") from None
    return saved


def _unsafe(node: Any, saver: bool) -> str | None:  # Any: a NodeDef
    if saver and node.op in _CHECKPOINT_OPS:
        return None
    if node.op in _UNSAFE_UNLESS:
        attribute, safe = _UNSAFE_UNLESS[node.op]
        if attribute not in node.attr:  # stripped from a function: the default, which is safe
            return None
        value = node.attr[attribute].s.decode("utf-8", "replace")
        return None if value in safe else f"{_UNSAFE_WITH_ATTRIBUTE[node.op]} ({value!r})"
    return UNSAFE_OPS.get(node.op)


def _saver_parts(meta: Any) -> tuple[set[str], set[str]]:  # Any: a MetaGraphDef
    """The main-graph nodes and library functions that only the checkpoint saver runs (on
    the model's own variables/ folder, whose path the loader feeds it): its checkpoint ops
    are let through there, and only there."""
    nodes = {node.name: node for node in meta.graph_def.node}
    saver = meta.saver_def
    saver_roots = {_node_name(saver.save_tensor_name), _node_name(saver.restore_op_name)} - {""}
    other_roots = {
        _node_name(info.name)
        for signature in meta.signature_def.values()
        for info in (*signature.inputs.values(), *signature.outputs.values())
    }
    for collection in meta.collection_def.values():
        other_roots.update(_node_name(name) for name in collection.node_list.value)
    other_nodes = _ancestors(nodes, other_roots - saver_roots)
    saver_nodes = _ancestors(nodes, saver_roots) - other_nodes
    calls = {f.signature.name: set(_called(f.node_def)) for f in meta.graph_def.library.function}
    saver_functions = _reachable(calls, _called(nodes[n] for n in saver_nodes))
    other_functions = _reachable(
        calls,
        [
            *_called(node for name, node in nodes.items() if name not in saver_nodes),
            *meta.object_graph_def.concrete_functions.keys(),
        ],
    )
    return saver_nodes, saver_functions - other_functions


def _node_name(tensor: str) -> str:
    """``"save/Const:0"`` and ``"^init"`` -> the node's name."""
    return tensor.lstrip("^").partition(":")[0]


def _ancestors(nodes: Mapping[str, Any], roots: Iterable[str]) -> set[str]:
    """Every main-graph node that ``roots`` depend on (inputs and control inputs), and them."""
    seen: set[str] = set()
    stack = [name for name in roots if name in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(n for n in map(_node_name, nodes[name].input) if n in nodes)
    return seen


def _called(nodes: Iterable[Any]) -> Iterator[str]:  # Any: NodeDefs
    """The library functions that ``nodes`` call (``f`` of a call, branches, loop bodies)."""
    for node in nodes:
        for value in node.attr.values():
            if value.HasField("func"):
                yield value.func.name
            yield from (func.name for func in value.list.func)


def _reachable(calls: Mapping[str, set[str]], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(calls.get(name, ()))
    return seen


class TensorFlowPredictor:
    """Calls a SavedModel's signature function by input name; ``model`` is the loaded
    object (kept here too: its variables live as long as it does)."""

    def __init__(self, model: Any, function: Any, device: str) -> None:  # Any: TF objects
        self.model = model
        self.function = function
        self.device = device
        self._tf = _tf()
        _, kwargs = function.structured_input_signature
        self.inputs = [(name, spec.dtype, spec.shape.rank) for name, spec in kwargs.items()]

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Every output of the signature, by key (a signature computes them all at once)."""
        tf = self._tf
        feed = {}
        with tf.device(self.device):
            for name, dtype, rank in self.inputs:
                if name not in inputs:
                    raise FlavorError(f"the SavedModel's signature needs input {name!r}")
                feed[name] = _tensor(np.asarray(inputs[name]), dtype, rank, tf)
            result = self.function(**feed)
        return {str(key): _to_array(result[key]) for key in sorted(result)}


def _tensor(arr: np.ndarray, dtype: Any, rank: int | None, tf: Any) -> Any:  # Any: TF types
    if rank == 2 and arr.ndim == 1:  # a table column fed to an [N, 1] input
        arr = arr.reshape(-1, 1)
    if dtype == tf.string:
        return tf.constant(arr.astype(object))
    wanted = np.dtype(dtype.as_numpy_dtype)
    return tf.constant(arr if arr.dtype == wanted else arr.astype(wanted))


def _to_array(tensor: Any) -> np.ndarray:  # Any: a tf.Tensor
    """The tensor as numpy; ``tf.string`` (bytes) as an object array of ``str``."""
    arr = np.asarray(tensor.numpy())
    if arr.dtype != object:
        return arr
    text = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in arr.ravel()]
    return np.asarray(text, dtype=object).reshape(arr.shape)
