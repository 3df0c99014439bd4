"""The torch flavor: torch.export programs with a dynamic batch, TorchScript when trusted,
state_dicts refused, and .pt2 archives checked before torch's loader runs anything."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import pickle
import re
import subprocess
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import modelport
from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, SignatureError, UnsafeArtifact, UnsupportedModel
from modelport.flavors import flavor_for_model
from modelport.flavors import torch as flavor

from ._helpers import canonical

# torch 2.13 deprecates every torch.jit call; TorchScript stays an option, so its tests see it.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


class Mlp(nn.Module):
    def __init__(self, features: int = 6) -> None:
        super().__init__()
        self.hidden = nn.Linear(features, 8)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.out(self.drop(torch.relu(self.hidden(x))))
        return y


class TwoInputs(nn.Module):
    """``forward(features, extra)``: two named inputs of different widths."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(2, 3)

    def forward(self, features: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.a(features) - self.b(extra)
        return y


class Heads(nn.Module):
    """A dict of outputs and a tuple of outputs, by ``kind``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> Any:
        logits = self.lin(x)
        if self.kind == "dict":
            return {"logits": logits, "probs": torch.softmax(logits, dim=-1)}
        return logits, logits.argmax(dim=-1)


def _mlp() -> Mlp:
    torch.manual_seed(0)
    return Mlp().eval()


def _rows(n: int, width: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32)


def _own(module: nn.Module, *arrays: np.ndarray) -> Any:
    with torch.no_grad():
        return module(*(torch.from_numpy(a) for a in arrays))


def _round_trip(
    model: object,
    path: Path,
    example: dict[str, np.ndarray] | None,
    options: dict[str, Any] | None = None,
    **flags: Any,
) -> flavor.TorchPredictor:
    """save -> JSON options -> load, as packaging does (with the canonical example)."""
    saved = flavor.save(model, path, options or {}, input_example=example, **flags)
    recorded = json.loads(json.dumps(saved.options))
    signature = flavor.infer_signature(model) or Signature(
        "tensors",
        tuple(TensorSpec(n, "float32", (-1, a.shape[1])) for n, a in (example or {}).items()),
    )
    return flavor.load(path, recorded, signature, **flags)


def test_export_round_trip_takes_any_batch_size(tmp_path: Path) -> None:
    module = _mlp()
    predictor = _round_trip(module, tmp_path, {"input": _rows(1)})  # one row: still dynamic
    assert (tmp_path / "model.pt2").is_file()
    assert isinstance(predictor.program, torch.export.ExportedProgram)
    assert isinstance(predictor.model, nn.Module)
    for n in (1, 5, 64):
        rows = _rows(n, seed=n)
        out = predictor.predict({"input": rows})
        assert list(out) == ["predictions"]
        assert out["predictions"].dtype == np.float32
        assert out["predictions"].shape == (n, 2)
        torch.testing.assert_close(torch.from_numpy(out["predictions"]), _own(module, rows))


def test_saving_exports_in_eval_mode_and_leaves_the_training_mode_alone(tmp_path: Path) -> None:
    module = _mlp().train()  # dropout on: its own output changes from call to call
    predictor = _round_trip(module, tmp_path, {"input": _rows(4)})
    assert module.training
    rows = _rows(20, seed=3)
    first, second = (predictor.predict({"input": rows})["predictions"] for _ in range(2))
    np.testing.assert_array_equal(first, second)
    torch.testing.assert_close(torch.from_numpy(first), _own(module.eval(), rows))


def test_saved_options_and_requirements(tmp_path: Path) -> None:
    saved = flavor.save(_mlp(), tmp_path, {}, input_example={"input": _rows(3)})
    assert saved.options == {
        "file": "model.pt2",
        "format": "pt2",
        "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 6]}],
    }
    assert saved.framework_version == torch.__version__
    assert saved.requirements == [f"torch=={torch.__version__.partition('+')[0]}"]


def test_two_inputs_are_fed_by_name_whatever_the_example_order(tmp_path: Path) -> None:
    torch.manual_seed(1)
    module = TwoInputs().eval()
    features, extra = _rows(5, 4, seed=1), _rows(5, 2, seed=2)
    example = {"extra": extra, "features": features}  # not forward's order
    predictor = _round_trip(module, tmp_path, example)
    assert [i for i, _ in predictor.inputs] == ["features", "extra"]
    out = predictor.predict({"extra": extra, "features": features})["predictions"]
    torch.testing.assert_close(torch.from_numpy(out), _own(module, features, extra))


def test_an_exported_program_saves_without_an_example_and_has_a_signature(
    tmp_path: Path,
) -> None:
    torch.manual_seed(2)
    module = TwoInputs().eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        module,
        (torch.randn(3, 4), torch.randn(3, 2)),
        dynamic_shapes={"features": {0: batch}, "extra": {0: batch}},
    )
    manifest = modelport.save(program, tmp_path / "m")
    assert manifest.signature.inputs == (
        TensorSpec("features", "float32", (-1, 4)),
        TensorSpec("extra", "float32", (-1, 2)),
    )
    loaded = modelport.load(tmp_path / "m")
    features, extra = _rows(7, 4), _rows(7, 2, seed=5)
    got = loaded.predict({"features": features, "extra": extra})
    torch.testing.assert_close(torch.from_numpy(got), _own(module, features, extra))


def test_a_float64_example_feeds_a_float32_module(tmp_path: Path) -> None:
    module = _mlp()
    rows = _rows(5).astype(np.float64)
    modelport.save(module, tmp_path / "m", input_example=rows)
    loaded = modelport.load(tmp_path / "m")
    assert loaded.signature.inputs == (TensorSpec("input", "float64", (-1, 6)),)
    got = loaded.predict(rows)
    assert got.dtype == np.float32
    torch.testing.assert_close(torch.from_numpy(got), _own(module, rows.astype(np.float32)))


def test_a_bfloat16_module_takes_float32_and_answers_float32(tmp_path: Path) -> None:
    module = _mlp().to(torch.bfloat16)
    modelport.save(module, tmp_path / "m", input_example=_rows(3))
    loaded = modelport.load(tmp_path / "m")
    assert loaded.signature.outputs[0].dtype == "float32"
    rows = _rows(6, seed=7)
    with torch.no_grad():
        own = module(torch.from_numpy(rows).to(torch.bfloat16)).float()
    torch.testing.assert_close(torch.from_numpy(loaded.predict(rows)), own)


@pytest.mark.parametrize(
    ("kind", "names"), [("dict", ["logits", "probs"]), ("tuple", ["output_0", "output_1"])]
)
def test_dict_outputs_keep_their_keys_and_tuples_are_numbered(
    kind: str, names: list[str], tmp_path: Path
) -> None:
    torch.manual_seed(3)
    module = Heads(kind).eval()
    modelport.save(module, tmp_path / "m", input_example=_rows(4, 4))
    loaded = modelport.load(tmp_path / "m")
    assert [s.name for s in loaded.signature.outputs] == names
    rows = _rows(9, 4, seed=9)
    out = loaded.predict_outputs(rows)
    own = _own(module, rows)
    expected = list(own.values()) if kind == "dict" else list(own)
    for name, want in zip(names, expected, strict=True):
        np.testing.assert_array_equal(out[name], want.numpy())
    assert out[names[-1]].dtype == (np.float32 if kind == "dict" else np.int64)


def test_torchscript_round_trip_is_trusted_only(tmp_path: Path) -> None:
    module = _mlp()
    example = {"input": _rows(3)}
    with pytest.raises(FlavorError, match="TorchScript is a program that runs when loaded"):
        flavor.save(module, tmp_path, {"format": "torchscript"}, input_example=example)
    predictor = _round_trip(module, tmp_path, example, {"format": "torchscript"}, trust_unsafe=True)
    assert (tmp_path / "model.pt").is_file()
    assert isinstance(predictor.model, torch.jit.ScriptModule)
    assert predictor.program is None
    rows = _rows(11, seed=4)
    got = predictor.predict({"input": rows})["predictions"]
    torch.testing.assert_close(torch.from_numpy(got), _own(module, rows))
    signature = Signature("tensors", (TensorSpec("input", "float32", (-1, 6)),))
    with pytest.raises(UnsafeArtifact, match=r"'model\.pt': TorchScript is a program"):
        flavor.load(tmp_path, {"format": "torchscript", "file": "model.pt"}, signature)
    assert flavor.find_unsafe(tmp_path, {"format": "torchscript", "file": "model.pt"}) == [
        ("model.pt", "TorchScript is a program that runs when loaded")
    ]


class Listed(nn.Module):
    """Layers in a plain list: torch.jit.script refuses it, torch.jit.trace records it."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(6, 4), nn.Linear(4, 2)
        self.chain = [self.first, self.second]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.chain:
            x = layer(x)
        return x


def test_torchscript_traces_what_it_cannot_script(tmp_path: Path) -> None:
    torch.manual_seed(4)
    module = Listed().eval()
    with pytest.raises(FlavorError, match=r"torch\.jit\.script failed .*pass input_example="):
        flavor.save(module, tmp_path, {"format": "torchscript"}, trust_unsafe=True)
    example = {"input": _rows(3)}
    predictor = _round_trip(module, tmp_path, example, {"format": "torchscript"}, trust_unsafe=True)
    rows = _rows(8, seed=8)
    got = predictor.predict({"input": rows})["predictions"]
    torch.testing.assert_close(torch.from_numpy(got), _own(module, rows))


def test_a_module_without_an_example_cannot_be_exported(tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="pass input_example="):
        modelport.save(_mlp(), tmp_path / "m")
    with pytest.raises(FlavorError, match="needs an example of its input: pass input_example="):
        flavor.save(_mlp(), tmp_path, {})


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="unknown torch format 'onnx'; use one of: pt2, torch"):
        flavor.save(_mlp(), tmp_path, {"format": "onnx"}, input_example={"input": _rows(2)})


def _state_dict() -> dict[str, Any]:
    return _mlp().state_dict()


def test_a_state_dict_is_refused_with_the_pyfunc_pointer(tmp_path: Path) -> None:
    state = _state_dict()
    assert isinstance(state, OrderedDict)
    assert flavor_for_model(state).NAME == "torch"
    with pytest.raises(UnsupportedModel, match=r"a PyTorch state_dict .*docs/pyfunc\.md"):
        modelport.save(state, tmp_path / "m", input_example=_rows(2))
    with pytest.raises(UnsupportedModel, match=r"state_dict .*docs/pyfunc\.md"):
        modelport.save(dict(state), tmp_path / "m2")
    assert not (tmp_path / "m").exists()


def test_read_file_of_a_program_and_of_torchscript(tmp_path: Path) -> None:
    module = _mlp()
    program = torch.export.export(module, (torch.randn(2, 6),))
    torch.export.save(program, tmp_path / "user.pt2")
    read = flavor.read_file(tmp_path / "user.pt2")
    assert isinstance(read, torch.export.ExportedProgram)
    torch.jit.save(torch.jit.script(module), tmp_path / "user.pt")
    with pytest.raises(UnsafeArtifact, match=r"'user\.pt': TorchScript is a program that runs"):
        flavor.read_file(tmp_path / "user.pt")
    script = flavor.read_file(tmp_path / "user.pt", trust_unsafe=True)
    assert isinstance(script, torch.jit.ScriptModule)
    rows = torch.from_numpy(_rows(3))
    with torch.no_grad():
        torch.testing.assert_close(script(rows), module(rows))


class _Marker:
    """A pickle that touches a file when unpickled: it must never be."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_read_file_refuses_torch_save_files_without_unpickling_them(tmp_path: Path) -> None:
    torch.save(_state_dict(), tmp_path / "weights.pt")
    with pytest.raises(UnsupportedModel, match=r"'weights\.pt', a PyTorch state_dict .*pyfunc"):
        flavor.read_file(tmp_path / "weights.pt")
    marker = tmp_path / "ran"
    torch.save({"model": _Marker(marker)}, tmp_path / "whole.pt")
    with pytest.raises(UnsupportedModel, match=r"'whole\.pt', a pickle from torch\.save"):
        flavor.read_file(tmp_path / "whole.pt")
    assert not marker.exists()


def test_registering_a_state_dict_file_gives_the_pointer(tmp_path: Path) -> None:
    torch.save(_state_dict(), tmp_path / "sd.pt")
    with (
        modelport.Registry(modelport.Settings(home=tmp_path / "home")) as registry,
        pytest.raises(UnsupportedModel, match=r"no flavor can handle 'sd\.pt', a PyTorch state"),
    ):
        registry.register("sd", tmp_path / "sd.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_is_refused_clearly_without_a_gpu(tmp_path: Path) -> None:
    saved = flavor.save(_mlp(), tmp_path, {}, input_example={"input": _rows(2)})
    signature = Signature("tensors", (TensorSpec("input", "float32", (-1, 6)),))
    for device in ("cuda", "cuda:1"):
        with pytest.raises(FlavorError, match=rf"device '{device}' is not available: torch .*"):
            flavor.load(tmp_path, saved.options, signature, device=device)
    with pytest.raises(FlavorError, match="unknown torch device 'tpu'; use cpu, cuda or cuda:N"):
        flavor.load(tmp_path, saved.options, signature, device="tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_program_runs_on_the_gpu(tmp_path: Path) -> None:
    module = _mlp()
    modelport.save(module, tmp_path / "m", input_example=_rows(3))
    loaded = modelport.load(tmp_path / "m", device="cuda")
    rows = _rows(33, seed=6)
    got = loaded.predict(rows)
    assert isinstance(got, np.ndarray)
    torch.testing.assert_close(torch.from_numpy(got), _own(module, rows), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_through_modelport_load_names_the_device(tmp_path: Path) -> None:
    modelport.save(_mlp(), tmp_path / "m", input_example=_rows(3))
    with pytest.raises(FlavorError, match="device 'cuda:0' is not available"):
        modelport.load(tmp_path / "m", device="cuda:0")


@pytest.mark.slow  # a fresh interpreter
def test_detecting_flavors_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from modelport.flavors import torch as flavor\n"
        "assert not flavor.handles(object()) and not flavor.handles({'w': [1.0]})\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_wrong_shape_or_dtype_gets_the_signature_message(tmp_path: Path) -> None:
    modelport.save(_mlp(), tmp_path / "m", input_example=_rows(3))
    loaded = modelport.load(tmp_path / "m")
    with pytest.raises(
        SignatureError, match=r"input 'input': expected shape \[-1, 6\], got \[3, 5\]"
    ):
        loaded.predict(_rows(3, 5))
    with pytest.raises(SignatureError, match="input 'input'"):
        loaded.predict(np.array([["a"] * 6]))


def test_handles_decides_without_other_flavors() -> None:
    module = _mlp()
    assert flavor.handles(module)
    assert flavor.handles(torch.jit.script(module))
    assert flavor.handles(_state_dict())
    assert not flavor.handles({})
    assert not flavor.handles({"a": np.zeros(2)})
    assert not flavor.handles(np.zeros(2))
    assert flavor.infer_signature(module) is None


def test_infer_signature_of_a_program_with_a_fixed_batch(tmp_path: Path) -> None:
    program = torch.export.export(_mlp(), (torch.randn(5, 6),))
    signature = flavor.infer_signature(program)
    assert signature == Signature("tensors", (TensorSpec("x", "float32", (5, 6)),))
    predictor = flavor.load(
        tmp_path,
        flavor.save(program, tmp_path, {}).options,
        signature,
    )
    assert predictor.predict(canonical(signature, _rows(5)))["predictions"].shape == (5, 2)


# --- .pt2 archives that would run code when torch reads them --------------------------------


def _program_file(tmp_path: Path) -> Path:
    batch = torch.export.Dim("batch")
    program = torch.export.export(_mlp(), (torch.randn(2, 6),), dynamic_shapes=({0: batch},))
    file = tmp_path / "clean" / "model.pt2"
    file.parent.mkdir()
    torch.export.save(program, file)
    return file


def _rewrite(source: Path, target: Path, edit: Callable[[str, bytes], bytes]) -> None:
    target.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            new.writestr(name, edit(name, old.read(name)))


def _pickled_weight(marker: Path) -> Callable[[str, bytes], bytes]:
    def edit(name: str, data: bytes) -> bytes:
        if name.endswith("data/weights/model_weights_config.json"):
            config = json.loads(data)
            config["config"]["hidden.weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("data/weights/weight_0"):
            buffer = io.BytesIO()
            pickle.dump(_Marker(marker), buffer)
            return buffer.getvalue()
        return data

    return edit


def _pickled_sample_inputs(marker: Path) -> Callable[[str, bytes], bytes]:
    def edit(name: str, data: bytes) -> bytes:
        if "/data/sample_inputs/" not in name:
            return data
        buffer = io.BytesIO()
        torch.save(((_Marker(marker),), {}), buffer)
        return buffer.getvalue()

    return edit


def _evaluated_expression(marker: Path) -> Callable[[str, bytes], bytes]:
    code = f"__import__('pathlib').Path({str(marker)!r}).touch() or Symbol('s"

    def edit(name: str, data: bytes) -> bytes:
        return data.replace(b"Symbol('s", code.encode()) if "/models/" in name else data

    return edit


def _graph_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], bytes]:
    def edit(name: str, data: bytes) -> bytes:
        if "/models/" not in name:
            return data
        program = json.loads(data)
        change(program)
        return json.dumps(program).encode()

    return edit


def _call_os(program: dict[str, Any]) -> None:
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"


def _guard(marker: Path) -> Callable[[str, bytes], bytes]:
    def change(program: dict[str, Any]) -> None:
        program["guards_code"] = [f"__import__('pathlib').Path({str(marker)!r}).touch() is None"]

    return _graph_edit(change)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            "pickled_weight",
            r"'hidden\.weight' in data/weights/model_weights_config\.json is pickled",
        ),
        ("sample_inputs", r"data/sample_inputs/model\.pt holds more than tensors"),
        ("expression", r"models/model\.json has the shape expression \"__import__"),
        ("call", r"models/model\.json calls 'torch\.os\.system'"),
        ("guard", r"models/model\.json has the guard \"__import__"),
    ],
)
def test_a_crafted_program_is_refused_before_torch_reads_it(
    edit: str, reason: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    edits = {
        "pickled_weight": _pickled_weight(marker),
        "sample_inputs": _pickled_sample_inputs(marker),
        "expression": _evaluated_expression(marker),
        "call": _graph_edit(_call_os),
        "guard": _guard(marker),
    }
    crafted = tmp_path / "crafted" / "model.pt2"
    _rewrite(_program_file(tmp_path), crafted, edits[edit])
    found = flavor.find_unsafe(crafted.parent, {})
    assert found
    assert re.search(reason, found[0][1]), found
    with pytest.raises(UnsafeArtifact, match=reason):
        flavor.read_file(crafted)
    signature = Signature("tensors", (TensorSpec("x", "float32", (-1, 6)),))
    with pytest.raises(UnsafeArtifact, match=reason):
        flavor.load(crafted.parent, {"format": "pt2", "file": "model.pt2"}, signature)
    assert not marker.exists()


@pytest.mark.parametrize("edit", ["pickled_weight", "sample_inputs", "expression", "guard"])
def test_control_trusted_crafted_programs_do_run_their_code(edit: str, tmp_path: Path) -> None:
    """What the check stops is real: torch runs the payload, loading (a pickled weight, a
    shape expression) or predicting (a guard)."""
    marker = tmp_path / "ran"
    crafted = tmp_path / "crafted" / "model.pt2"
    make = {
        "pickled_weight": _pickled_weight,
        "sample_inputs": _pickled_sample_inputs,
        "expression": _evaluated_expression,
    }
    _rewrite(_program_file(tmp_path), crafted, make.get(edit, _guard)(marker))
    options = {"format": "pt2", "file": "model.pt2"}
    signature = Signature("tensors", (TensorSpec("x", "float32", (-1, 6)),))
    with contextlib.suppress(FlavorError):  # the payload ran; what is left is no program
        predictor = flavor.load(crafted.parent, options, signature, trust_unsafe=True)
        predictor.predict({"x": _rows(2)})
    assert marker.exists()


def test_a_clean_export_passes_the_check(tmp_path: Path) -> None:
    file = _program_file(tmp_path)
    assert flavor.find_unsafe(file.parent, {}) == []
    assert isinstance(flavor.read_file(file), torch.export.ExportedProgram)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("model/data/aotinductor/model/model.so", r"unexpected file 'model/data/aotinductor/"),
        ("version", r"not one torch\.export folder"),
        ("model/models/model.json", r"two files of one name"),
    ],
)
def test_an_archive_of_another_layout_is_refused(extra: str, reason: str, tmp_path: Path) -> None:
    """Compiled code, the old format (read by Python's zipfile, unpickling its weights) and
    a name twice (which copy does torch read?) are refused before torch opens the file."""
    crafted = tmp_path / "crafted" / "model.pt2"
    _rewrite(_program_file(tmp_path), crafted, lambda _, data: data)
    with (
        pytest.warns(UserWarning, match="Duplicate name")
        if "models/" in extra
        else contextlib.nullcontext(),
        zipfile.ZipFile(crafted, "a") as archive,
    ):
        archive.writestr(extra, b"{}")
    with pytest.raises(UnsafeArtifact, match=reason):
        flavor.read_file(crafted)
