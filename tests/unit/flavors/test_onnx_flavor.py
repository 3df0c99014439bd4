"""The onnx flavor: graphs run by onnxruntime; ZipMap outputs become 2-D arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError
from modelport.flavors import onnx as flavor

from ._helpers import canonical, round_trip


@pytest.fixture
def logistic(arrays: dict[str, np.ndarray]) -> LogisticRegression:
    labels = np.array(["no", "yes"], dtype=object)[arrays["y_binary"]]
    return LogisticRegression().fit(arrays["x_train"].astype(np.float32), labels)


def _convert(model: LogisticRegression, options: dict[str, Any] | None = None) -> Any:
    """skl2onnx's ModelProto; Any: onnx is untyped."""
    sample = np.zeros((1, 4), dtype=np.float32)
    return to_onnx(model, sample, options=options, target_opset=17)


@pytest.mark.parametrize("zipmap", [True, False])
def test_logistic_regression_round_trip(
    zipmap: bool, logistic: LogisticRegression, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    proto = _convert(logistic, None if zipmap else {"zipmap": False})
    signature = flavor.infer_signature(proto)
    assert signature == Signature("tensors", (TensorSpec("X", "float32", (-1, 4)),))
    predictor = round_trip(flavor, proto, tmp_path, {}, signature)
    # float64 from the caller is cast to the graph's float32 by the signature.
    out = predictor.predict(canonical(signature, arrays["x_test"]))
    label, proba = ["output_label", "output_probability"] if zipmap else ["label", "probabilities"]
    assert list(out) == [label, proba]  # ONNX output names are kept
    assert out[label].dtype == object
    np.testing.assert_array_equal(out[label], logistic.predict(arrays["x_test"]))
    probabilities = out[proba]
    assert probabilities.shape == (len(arrays["x_test"]), 2)
    expected = logistic.predict_proba(arrays["x_test"].astype(np.float32))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)


def test_saved_options_and_requirements(logistic: LogisticRegression, tmp_path: Path) -> None:
    saved = flavor.save(_convert(logistic), tmp_path, {})
    assert saved.options["file"] == "model.onnx"
    assert saved.options["opsets"]["ai.onnx"] == 17
    assert saved.requirements[0].startswith("onnxruntime==")


def test_bytes_are_accepted(
    logistic: LogisticRegression, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    data = _convert(logistic).SerializeToString()
    assert flavor.handles(data)
    signature = flavor.infer_signature(data)
    assert signature is not None
    out = round_trip(flavor, data, tmp_path, {}, signature).predict(
        canonical(signature, arrays["x_test"])
    )
    np.testing.assert_array_equal(out["output_label"], logistic.predict(arrays["x_test"]))


def test_read_file_round_trip(
    logistic: LogisticRegression, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    assert flavor.FILE_SUFFIXES == (".onnx",)
    onnx.save_model(_convert(logistic), tmp_path / "user.onnx")
    model = flavor.read_file(tmp_path / "user.onnx")
    assert flavor.handles(model)
    signature = flavor.infer_signature(model)
    assert signature is not None
    out = round_trip(flavor, model, tmp_path, {}, signature).predict(
        canonical(signature, arrays["x_test"])
    )
    np.testing.assert_array_equal(out["output_label"], logistic.predict(arrays["x_test"]))


def _two_input_graph() -> Any:
    """``sum = a + b`` over int64 tensors with a symbolic batch dimension."""
    a = helper.make_tensor_value_info("a", TensorProto.INT64, ["batch", 3])
    b = helper.make_tensor_value_info("b", TensorProto.INT64, [None, 3])
    out = helper.make_tensor_value_info("sum", TensorProto.INT64, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "add", [a, b], [out])
    # IR version 10: what onnxruntime reads, whatever the installed onnx writes by default.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_named_inputs_and_symbolic_dims(tmp_path: Path) -> None:
    proto = _two_input_graph()
    signature = flavor.infer_signature(proto)
    assert signature == Signature(
        "tensors", (TensorSpec("a", "int64", (-1, 3)), TensorSpec("b", "int64", (-1, 3)))
    )
    predictor = round_trip(flavor, proto, tmp_path, {}, signature)
    a = np.arange(6, dtype=np.int32).reshape(2, 3)  # cast to int64 by the predictor
    out = predictor.predict({"a": a, "b": np.ones((2, 3), dtype=np.int64)})
    np.testing.assert_array_equal(out["sum"], a + 1)


def test_handles() -> None:
    assert flavor.handles(_two_input_graph())
    assert not flavor.handles(b"not onnx at all")
    assert not flavor.handles(b"")
    assert not flavor.handles(np.zeros(2))


def test_invalid_graph_is_refused_at_save(tmp_path: Path) -> None:
    proto = _two_input_graph()
    proto.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(FlavorError, match="the ONNX model is invalid"):
        flavor.save(proto, tmp_path, {})


def test_graph_onnxruntime_cannot_run_is_refused_at_save(tmp_path: Path) -> None:
    proto = _two_input_graph()
    # onnx's checker accepts ops of unknown domains; onnxruntime has no kernel for them.
    proto.graph.node[0].domain = "com.example"
    proto.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(FlavorError, match=r"onnxruntime .* cannot load 'model\.onnx'"):
        flavor.save(proto, tmp_path, {})


def test_read_file_of_garbage_is_a_flavor_error(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(FlavorError, match=r"cannot read ONNX model 'junk\.onnx'"):
        flavor.read_file(tmp_path / "junk.onnx")


def test_a_bare_array_example_feeds_the_single_graph_input(
    logistic: LogisticRegression, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """skl2onnx names its input ``X``; an example array (inferred as ``input``) maps onto it."""
    import modelport

    x = arrays["x_train"].astype(np.float32)
    manifest = modelport.save(_convert(logistic), tmp_path / "m", input_example=x[:5])
    assert manifest.signature.input_names == ["X"]
    loaded = modelport.load(str(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(x[:3]), logistic.predict(x[:3]))


def test_the_graph_declaration_is_the_signature_and_the_example_must_fit_it(
    logistic: LogisticRegression, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The model's own signature: a float64 example of a float32 graph is read as the graph
    declares it, and an example of the wrong width is refused at save, naming the input."""
    import modelport
    from modelport.errors import InvalidInput

    x64 = arrays["x_train"]  # float64, as numpy users pass by default
    manifest = modelport.save(_convert(logistic), tmp_path / "m", input_example=x64[:5])
    assert manifest.signature.inputs == (TensorSpec("X", "float32", (-1, 4)),)
    with pytest.raises(InvalidInput, match=r"inputs the model declares.*expected shape \[-1, 4\]"):
        modelport.save(_convert(logistic), tmp_path / "narrow", input_example=x64[:5, :3])
    assert not (tmp_path / "narrow").exists()


def test_a_graph_saved_without_an_example_gets_its_declared_signature(
    logistic: LogisticRegression, arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    import modelport

    manifest = modelport.save(_convert(logistic), tmp_path / "m")
    assert manifest.signature.inputs == (TensorSpec("X", "float32", (-1, 4)),)
    loaded = modelport.load(str(tmp_path / "m"))
    x = arrays["x_test"]
    np.testing.assert_array_equal(loaded.predict(x), logistic.predict(x.astype(np.float32)))
