"""The PyTorch flavor: ``torch.export`` programs by default, TorchScript as an option.

Files written: ``model.pt2`` (default: a ``torch.export`` program saved with
``torch.export.save``, its batch axis, dim 0 of every input, exported as dynamic) or
``model.pt`` (``{"format": "torchscript"}``: ``torch.jit.script``, else ``torch.jit.trace``
on the input example). The options record the format and ``inputs``: the signature's input
names in the order ``forward`` takes them, with the dtype the program was exported with (a
float64 column feeds a float32 module cast to float32, as the ONNX flavor casts).

Outputs: one tensor is ``predictions``; a dict keeps its keys; a tuple or list becomes
``output_0``, ``output_1``, ... A bare ``state_dict`` is refused: it is weights without the
code that uses them (save the module, or wrap it in a pyfunc model, see docs/pyfunc.md).

What loads without running code (read from torch's own loaders, torch 2.13):

- ``.pt2``: ``torch.export.load`` is not safe on its own. It unpickles with
  ``weights_only=False`` every weight or constant that the archive's config marks
  ``use_pickle`` and every "opaque" constant (``pickle.loads``); it retries the sample
  inputs with ``weights_only=False`` when the safe unpickler refuses them; it evaluates the
  graph's shape expressions with ``sympy.sympify`` (``eval``); ``.module()`` compiles the
  program's ``guards_code`` into Python run on every call; and an archive with AOTInductor
  files holds compiled native code. (A graph node's target is looked up as any attribute
  reachable from the ``torch`` module, ``torch.os.system`` say; torch's verifier then
  refuses what is not an operator.) So before torch reads a file, this flavor checks it
  without running anything (:func:`find_unsafe`): the expected layout only, no pickled
  payload, sample inputs that load with ``weights_only=True``, only
  ``torch.ops``/``operator``/``math`` node targets, shape expressions and guards of plain
  arithmetic. ``torch.export.save`` of an ordinary module passes; what does not pass loads
  only with ``trust_unsafe``.
- ``.pt`` (TorchScript): ``torch.jit.load`` runs no Python pickle code (its C++ unpickler
  builds TorchScript types only), but the archive is a program in the TorchScript language,
  run when loaded (``__setstate__``) and on every call, and PyTorch's security policy says
  to treat it as code. It is saved and loaded only with ``trust_unsafe`` (and torch 2.13
  deprecates ``torch.jit``: each call warns).
- ``.pt`` from ``torch.save`` (a state_dict or a pickled module): only inspected with
  ``torch.load(weights_only=True)`` to say what it is, then refused.
"""

from __future__ import annotations

import inspect
import re
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.artifact.signature import DTYPES, Signature, TensorSpec
from modelport.errors import FlavorError, UnsafeArtifact, UnsupportedModel, summarize
from modelport.flavors import Options, SavedFlavor
from modelport.flavors._framework import from_package, import_framework
from modelport.flavors._torch_archive import call_targets, scan_program

NAME = "torch"
FILE_SUFFIXES = (".pt2", ".pt")
DECLARES_INPUTS = True  # an ExportedProgram does; a plain module says nothing (None)

_FILES = {"pt2": "model.pt2", "torchscript": "model.pt"}
_STATE_DICT = (
    "a PyTorch state_dict (weights without the code that uses them): save the nn.Module "
    "itself, or wrap building and calling it in a pyfunc model (see docs/pyfunc.md)"
)
_TRUST_HINT = "trust_unsafe=True (--trust-unsafe) saves it if you trust where it came from"
_SCRIPT = "TorchScript is a program that runs when loaded"


def handles(model: object) -> bool:
    """True for torch modules and exported programs, decided from the class hierarchy's module
    names (a user's ``nn.Module`` subclass lives in the user's module) without importing torch;
    and for a state_dict, so that saving one gets this flavor's explanation."""
    return any(
        c.__module__ == "torch" or c.__module__.startswith("torch.") for c in type(model).__mro__
    ) or _is_state_dict(model)


def _is_state_dict(model: object) -> bool:
    """A non-empty mapping whose values are all torch tensors (by class module, no import)."""
    return (
        isinstance(model, Mapping)
        and len(model) > 0
        and all(from_package(value, "torch") for value in model.values())
    )


def _torch() -> Any:  # Any: the torch module, imported lazily
    return import_framework("torch", "torch", "torch")


def save(
    model: object,
    path: Path,
    options: Options,
    *,
    input_example: Mapping[str, np.ndarray] | None = None,
    trust_unsafe: bool = False,
) -> SavedFlavor:
    """Export ``model`` (or save an ExportedProgram as it is) to ``model.pt2``, or script it
    to ``model.pt`` with ``{"format": "torchscript"}`` (TorchScript is code: trust_unsafe)."""
    if _is_state_dict(model):
        raise UnsupportedModel(_STATE_DICT)
    torch = _torch()
    scripted = isinstance(model, torch.jit.ScriptModule)
    fmt = str(options.get("format", "torchscript" if scripted else "pt2"))
    if fmt not in _FILES:
        raise FlavorError(f"unknown torch format {fmt!r}; use one of: {', '.join(_FILES)}")
    file = path / _FILES[fmt]
    if fmt == "pt2":
        program = _program(model, input_example, torch)
        torch.export.save(program, str(file))
        inputs = _named_as_fed(_program_inputs(program), model, input_example)
        if not trust_unsafe:
            _check_saved(scan_program(file))
    else:
        if not trust_unsafe:
            raise FlavorError(f"{_SCRIPT}; {_TRUST_HINT}")
        script = _script(model, input_example, torch)
        torch.jit.save(script, str(file))
        inputs = _example_inputs(model, input_example)
    version = str(torch.__version__)
    return SavedFlavor(
        framework="torch",
        framework_version=version,  # the exact build, e.g. 2.13.0+cpu
        options={"file": file.name, "format": fmt, "inputs": inputs},
        # PEP 440: ==2.13.0 matches a local build (2.13.0+cpu, +cu128) of the same release.
        requirements=[f"torch=={version.partition('+')[0]}"],
    )


def _named_as_fed(
    inputs: list[dict[str, Any]], model: object, example: Mapping[str, np.ndarray] | None
) -> list[dict[str, Any]]:
    """The program's inputs under the names the signature gives them: a module exported on
    an example takes the example's names (in ``forward``'s order), positionally."""
    if example is None or {i["name"] for i in inputs} == set(example):
        return inputs
    names = _forward_order(model, list(example))
    if len(names) != len(inputs):
        raise FlavorError(f"the program takes {len(inputs)} inputs; the example has {len(names)}")
    return [{**spec, "name": name} for spec, name in zip(inputs, names, strict=True)]


def _check_saved(found: list[str]) -> None:
    """Fail at save time, not when the model is served, if the safe load would refuse it."""
    if found:
        raise FlavorError(
            f"this program cannot be loaded safely: {found[0]}; trust_unsafe=True skips "
            "this check for a model you trust (see docs/security.md)"
        )


def _program(model: object, example: Mapping[str, np.ndarray] | None, torch: Any) -> Any:
    """The ExportedProgram to save: the model itself, or ``model`` exported on the example
    with a dynamic batch axis. Any: torch.export.ExportedProgram."""
    if isinstance(model, torch.export.ExportedProgram):
        return model
    if isinstance(model, torch.jit.ScriptModule):
        raise FlavorError('a TorchScript module saves only as {"format": "torchscript"}')
    if not isinstance(model, torch.nn.Module):
        raise FlavorError(f"the torch flavor cannot save a {type(model).__qualname__}")
    if example is None:
        raise FlavorError(
            "exporting a torch module needs an example of its input: pass input_example= "
            "(or save a torch.export.ExportedProgram)"
        )
    names = _forward_order(model, list(example))
    args = tuple(_example_tensor(example[n], model, torch) for n in names)
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} if a.ndim else None for a in args)
    was_training = model.training
    model.eval()  # export what is served: dropout off, batch norm on running statistics
    try:
        return torch.export.export(model, args, dynamic_shapes=dynamic)
    except Exception as exc:  # torch's export errors are many, and paragraphs long
        raise FlavorError(
            f"torch.export cannot export this module: {type(exc).__name__}: {summarize(exc)}; "
            'flavor_options={"format": "torchscript"} saves it as TorchScript instead'
        ) from None
    finally:
        model.train(was_training)


def _example_tensor(arr: np.ndarray, model: Any, torch: Any) -> Any:  # Any: torch types
    """The example as a tensor of the module's float dtype (float64 data, float32 weights),
    two rows at least: a batch of one would be specialized to the constant 1."""
    tensor = torch.from_numpy(np.ascontiguousarray(arr))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    if tensor.ndim and tensor.shape[0] == 1:
        tensor = torch.cat([tensor, tensor])
    return tensor


def _forward_order(model: object, names: list[str]) -> list[str]:
    """The example's names in ``forward``'s parameter order when they are its parameters'
    names, else as given (fed positionally)."""
    try:
        params = list(inspect.signature(model.forward).parameters)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return names
    return [p for p in params if p in names] if set(names) <= set(params) else names


def _example_inputs(
    model: object, example: Mapping[str, np.ndarray] | None
) -> list[dict[str, str | None]]:
    """The ``inputs`` option for a TorchScript module: forward's order, and the dtype it is
    fed (the module's float dtype for float data, as when exporting)."""
    if example is None:
        return []
    torch = _torch()
    names = _forward_order(model, list(example))
    return [
        {
            "name": n,
            "dtype": str(_example_tensor(example[n], model, torch).dtype).removeprefix("torch."),
        }
        for n in names
    ]


def _script(model: object, example: Mapping[str, np.ndarray] | None, torch: Any) -> Any:
    """``model`` as a ScriptModule: as it is, scripted, or traced on the example."""
    if isinstance(model, torch.jit.ScriptModule):
        return model
    if not isinstance(model, torch.nn.Module):
        raise FlavorError(f"cannot save a {type(model).__qualname__} as TorchScript")
    was_training = model.training
    model.eval()
    try:
        return torch.jit.script(model)
    except Exception as exc:  # TorchScript's compiler errors: try tracing instead
        if example is None:
            raise FlavorError(
                f"torch.jit.script failed ({summarize(exc)}); pass input_example= to trace it"
            ) from None
        args = tuple(
            _example_tensor(example[n], model, torch) for n in _forward_order(model, list(example))
        )
        try:
            return torch.jit.trace(model, args)
        except Exception as trace_exc:  # torch's tracer errors
            raise FlavorError(
                f"cannot save this module as TorchScript: {summarize(trace_exc)}"
            ) from None
    finally:
        model.train(was_training)


def load(
    path: Path,
    options: Options,
    signature: Signature,
    *,
    device: str = "cpu",
    trust_unsafe: bool = False,
) -> TorchPredictor:
    """Load the program (checked first, see the module docstring) or TorchScript module
    onto ``device`` ("cpu", "cuda", "cuda:N")."""
    torch = _torch()
    fmt = str(options.get("format", "pt2"))
    file = path / str(options.get("file", _FILES.get(fmt, "")))
    if fmt not in _FILES or file.parent != path:
        raise FlavorError(f"invalid torch flavor options: {dict(options)!r}")
    target = _device(device, torch)
    program = None
    if fmt == "pt2":
        program = _read_program(file, torch, trust_unsafe)
        module = program.module().to(target)
    else:
        if not trust_unsafe:
            raise UnsafeArtifact(file.name, _SCRIPT)
        module = torch.jit.load(str(file), map_location=target).eval()
    inputs = options.get("inputs") or []
    return TorchPredictor(module, program, signature, inputs, target)


def _device(device: str, torch: Any) -> Any:  # Any: torch.device
    """``device`` as a torch.device; CUDA only where this torch has a GPU to use."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise FlavorError(f"unknown torch device {device!r}; use cpu, cuda or cuda:N")
    target = torch.device(device)
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise FlavorError(
                f"device {device!r} is not available: torch {torch.__version__} sees no CUDA GPU"
            )
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise FlavorError(
                f"device {device!r} is not available: {torch.cuda.device_count()} GPU(s)"
            )
    return target


def read_file(path: Path, *, trust_unsafe: bool = False) -> object:
    """Read a ``.pt2`` program, or a ``.pt`` TorchScript module (trusted only); a ``.pt``
    from ``torch.save`` (a state_dict, a pickled module) is refused, unpickled only by
    ``torch.load(weights_only=True)`` to say which it is."""
    torch = _torch()
    if path.suffix.lower() == ".pt2":
        return _read_program(path, torch, trust_unsafe)
    if _is_torchscript(path):
        if not trust_unsafe:
            raise UnsafeArtifact(path.name, _SCRIPT)
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # torch's C++ reader errors
            raise FlavorError(f"cannot read TorchScript {path.name!r}: {summarize(exc)}") from None
    try:
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # refused by the safe unpickler: a pickled module or other object
        raise UnsupportedModel(
            f"{path.name!r}, a pickle from torch.save that loads only by running its code "
            "(a whole module?): save the module with torch.export.save (.pt2), or wrap it "
            "in a pyfunc model (see docs/pyfunc.md)"
        ) from None
    if _is_state_dict(content):
        raise UnsupportedModel(f"{path.name!r}, {_STATE_DICT}")
    raise UnsupportedModel(f"{path.name!r}: torch.save of a {type(content).__qualname__}")


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive has compiled code (``code/``) and ``constants.pkl``; a
    ``torch.save`` archive has neither."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _read_program(file: Path, torch: Any, trust_unsafe: bool) -> Any:  # Any: ExportedProgram
    if not trust_unsafe:
        found = scan_program(file)
        if found:
            raise UnsafeArtifact(file.name, found[0])
    try:
        program = torch.export.load(str(file))
    except Exception as exc:  # torch's deserializer errors
        raise FlavorError(f"cannot read torch program {file.name!r}: {summarize(exc)}") from None
    odd = [] if trust_unsafe else call_targets(program, torch)
    if odd:  # the scan read the same graph, so this is a second line of defence only
        raise UnsafeArtifact(file.name, f"the graph calls {odd[0]!r}")
    return program


def infer_signature(model: object) -> Signature | None:
    """An ExportedProgram's user inputs: names, dtypes, shapes (dynamic dims are ``-1``);
    None for a module, which says nothing until it is exported on an example. A state_dict
    is refused here too: asking for an example would send its owner the wrong way."""
    if _is_state_dict(model):
        raise UnsupportedModel(_STATE_DICT)
    if not from_package(model, "torch"):
        return None
    torch = _torch()
    if not isinstance(model, torch.export.ExportedProgram):
        return None
    specs = []
    for spec in _program_inputs(model):
        if spec["dtype"] not in DTYPES or spec["shape"] is None:
            return None
        specs.append(TensorSpec(spec["name"], spec["dtype"], tuple(spec["shape"])))
    return Signature("tensors", tuple(specs)) if specs else None


def _program_inputs(program: Any) -> list[dict[str, Any]]:  # Any: torch.export.ExportedProgram
    """The user inputs of ``program`` in call order: name, dtype, shape (-1: dynamic)."""
    torch = _torch()
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    inputs: list[dict[str, Any]] = []
    for name in program.graph_signature.user_inputs:
        value = placeholders[name].meta.get("val") if name in placeholders else None
        if not isinstance(value, torch.Tensor):
            inputs.append({"name": str(name), "dtype": None, "shape": None})
            continue
        shape = [d if isinstance(d, int) else -1 for d in value.shape]
        dtype = str(value.dtype).removeprefix("torch.")
        inputs.append({"name": str(name), "dtype": dtype, "shape": shape})
    return inputs


class TorchPredictor:
    """Feeds named arrays to the module as positional tensors, in inference mode."""

    def __init__(
        self,
        model: Any,  # Any: torch.nn.Module, a GraphModule or a ScriptModule
        program: Any,  # Any: torch.export.ExportedProgram, or None for TorchScript
        signature: Signature,
        inputs: Collection[Mapping[str, Any]],
        device: Any,  # Any: torch.device
    ) -> None:
        self.model = model
        """The native module (a converter to ONNX reads it)."""
        self.program = program
        """The ExportedProgram it came from, or None for TorchScript."""
        self.device = device
        recorded = [(str(i["name"]), i.get("dtype")) for i in inputs]
        if {name for name, _ in recorded} == set(signature.input_names):
            self.inputs = recorded
        else:  # names the module does not know: fed in signature order
            self.inputs = [(name, None) for name in signature.input_names]

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Collection[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Every output (they come from one call): ``predictions``, dict keys or
        ``output_<i>``."""
        torch = _torch()
        with torch.inference_mode():
            args = [self._tensor(inputs[name], dtype, torch) for name, dtype in self.inputs]
            result = self.model(*args)
        if isinstance(result, Mapping):
            return {str(k): _to_numpy(v) for k, v in result.items()}
        if isinstance(result, tuple | list):
            return {f"output_{i}": _to_numpy(v) for i, v in enumerate(result)}
        return {"predictions": _to_numpy(result)}

    def _tensor(self, arr: np.ndarray, dtype: str | None, torch: Any) -> Any:
        """``arr`` on the device, cast to the dtype the module was exported with (bfloat16
        included, which numpy lacks)."""
        data = np.asarray(arr)
        if data.dtype == object:
            raise FlavorError("a torch model takes numeric tensors, not strings")
        tensor = torch.from_numpy(np.ascontiguousarray(data))
        wanted = getattr(torch, dtype, None) if dtype and dtype.isalnum() else None
        if isinstance(wanted, torch.dtype) and tensor.dtype != wanted:
            tensor = tensor.to(wanted)
        return tensor.to(self.device)


def _to_numpy(value: object) -> np.ndarray:
    """A tensor as a numpy array on the host (bfloat16, which numpy lacks, as float32)."""
    detach = getattr(value, "detach", None)
    if detach is None:
        return np.asarray(value)
    tensor = detach().cpu()
    if str(tensor.dtype) == "torch.bfloat16":
        tensor = tensor.float()
    return np.asarray(tensor.numpy())


def find_unsafe(path: Path, options: Options) -> list[tuple[str, str]]:
    """``(file, reason)`` for a program file the safe load refuses, or TorchScript (code);
    read as zip entries and JSON, nothing unpickled but by ``weights_only=True``."""
    fmt = str(options.get("format", "pt2"))
    file = path / str(options.get("file", _FILES.get(fmt, "")))
    if fmt not in _FILES or file.parent != path:
        raise FlavorError(f"invalid torch flavor options: {dict(options)!r}")
    if fmt == "torchscript":
        return [(file.name, _SCRIPT)]
    return [(file.name, reason) for reason in scan_program(file)]
