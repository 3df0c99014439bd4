"""The tensorflow flavor: SavedModel folders called through their serving signature; a graph
with ops that reach files or Python loads only when trusted.

TensorFlow (about 1.5 GB) is in no extra that [dev] installs, so CI skips this module; run
it in a venv made with ``pip install -e '.[dev,tensorflow]'`` (see README, "Formats")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pytest

import modelport
from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, UntrustedArtifact
from modelport.flavors import get_flavor
from modelport.flavors import tensorflow as flavor

from ._helpers import canonical, round_trip

tf: Any = pytest.importorskip(  # Any: tensorflow is untyped
    "tensorflow", reason="TensorFlow is not installed: pip install -e '.[dev,tensorflow]'"
)

_F = TypeVar("_F", bound=Callable[..., Any])


def traced(*specs: Any) -> Callable[[_F], _F]:
    """``tf.function`` with this input signature, typed so that mypy keeps the method's own
    type (tf is untyped)."""
    return cast("Callable[[_F], _F]", tf.function(input_signature=list(specs)))


SAVED_PB = "saved_model/saved_model.pb"


class Dense(tf.Module):  # type: ignore[misc]  # tf.Module is Any to mypy
    """One dense layer and a softmax, its weights as variables; served by ``__call__``."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))
        self.b = tf.Variable(np.array([0.1, -0.2, 0.3], dtype=np.float32))

    @traced(tf.TensorSpec([None, 4], tf.float32, name="x"))
    def __call__(self, x: Any) -> Any:
        return tf.nn.softmax(tf.matmul(x, self.w) + self.b)


class Words(tf.Module):  # type: ignore[misc]
    """Two named inputs (text and integers), three named outputs; a lookup table resource."""

    def __init__(self) -> None:
        super().__init__()
        keys, ids = tf.constant(["cat", "dog"]), tf.constant([1, 2], dtype=tf.int64)
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), -1)

    @traced(
        tf.TensorSpec([None], tf.string, name="word"),
        tf.TensorSpec([None, 3], tf.int32, name="counts"),
    )
    def serve(self, word: Any, counts: Any) -> Any:
        return {
            "id": self.table.lookup(word),
            "upper": tf.strings.upper(word),
            "total": tf.reduce_sum(counts, axis=1),
        }


def _rows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def test_module_round_trip(tmp_path: Path) -> None:
    module = Dense()
    signature = flavor.infer_signature(module)
    assert signature == Signature("tensors", (TensorSpec("x", "float32", (-1, 4)),))
    predictor = round_trip(flavor, module, tmp_path, {}, signature)
    assert (tmp_path / "flavor-0" / SAVED_PB).is_file()
    assert (tmp_path / "flavor-0" / "saved_model" / "variables").is_dir()
    rows = _rows(6)
    out = predictor.predict(canonical(signature, rows))
    assert list(out) == ["output_0"]
    np.testing.assert_allclose(out["output_0"], module(rows).numpy(), rtol=1e-6)
    assert "serving_default" in predictor.model.signatures  # type: ignore[attr-defined]


def test_saved_options_and_requirements(tmp_path: Path) -> None:
    saved = flavor.save(Dense(), tmp_path, {})
    assert saved.options == {"dir": "saved_model", "signature_name": "serving_default"}
    assert saved.framework == "tensorflow"
    assert saved.framework_version == tf.__version__
    [requirement] = saved.requirements
    assert requirement.endswith(f"=={tf.__version__}")
    assert requirement.startswith("tensorflow")


def test_named_text_and_integer_inputs_and_outputs(tmp_path: Path) -> None:
    module = Words()
    signature = flavor.infer_signature(module)
    assert signature == Signature(
        "tensors",
        (TensorSpec("word", "str", (-1,)), TensorSpec("counts", "int32", (-1, 3))),
    )
    predictor = round_trip(flavor, module, tmp_path, {}, signature)
    data = {"word": ["dog", "cow", "cat"], "counts": [[1, 2, 3], [0, 0, 1], [5, 5, 5]]}
    out = predictor.predict(canonical(signature, data))
    assert list(out) == ["id", "total", "upper"]  # the signature's output keys, sorted
    np.testing.assert_array_equal(out["id"], [2, -1, 1])
    np.testing.assert_array_equal(out["total"], [6, 1, 15])
    assert out["upper"].dtype == object
    assert out["upper"].tolist() == ["DOG", "COW", "CAT"]  # str, not bytes


def test_signature_name_option_names_the_saved_signature(tmp_path: Path) -> None:
    module = Dense()
    signature = flavor.infer_signature(module)
    assert signature is not None
    folder = tmp_path / "art"
    folder.mkdir()
    saved = flavor.save(module, folder, {"signature_name": "predict"})
    assert saved.options["signature_name"] == "predict"
    assert list(tf.saved_model.load(str(folder / "saved_model")).signatures) == ["predict"]
    rows = _rows(3)
    out = flavor.load(folder, saved.options, signature).predict({"x": rows})
    np.testing.assert_allclose(out["output_0"], module(rows).numpy(), rtol=1e-6)
    with pytest.raises(
        FlavorError, match=r"has no signature 'serving_default' \(signatures: predict\)"
    ):
        flavor.load(folder, {"dir": "saved_model"}, signature)


def test_a_module_without_a_serving_signature_is_refused(tmp_path: Path) -> None:
    module = tf.Module()
    module.v = tf.Variable(1.0)
    assert flavor.infer_signature(module) is None
    with pytest.raises(FlavorError, match="has no serving signature"):
        flavor.save(module, tmp_path, {})


def test_read_file_of_a_users_saved_model_folder(tmp_path: Path) -> None:
    module = Dense()
    user_dir = tmp_path / "exported"
    tf.saved_model.save(module, str(user_dir))  # TensorFlow picks __call__ as the signature
    assert flavor.is_saved_model_dir(user_dir)
    model = flavor.read_file(user_dir)
    assert flavor.handles(model)
    signature = flavor.infer_signature(model)  # from the loaded signature, no example
    assert signature == Signature("tensors", (TensorSpec("x", "float32", (-1, 4)),))
    rows = _rows(5)
    out = round_trip(flavor, model, tmp_path, {}, signature).predict(canonical(signature, rows))
    np.testing.assert_allclose(out["output_0"], module(rows).numpy(), rtol=1e-6)


def test_read_file_of_a_folder_that_is_no_saved_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlavorError, match=r"'empty' is not a SavedModel directory"):
        flavor.read_file(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "saved_model.pb").write_bytes(b"\xff\x00not a protobuf")
    with pytest.raises(FlavorError, match=r"cannot read 'saved_model\.pb'"):
        flavor.read_file(tmp_path / "junk")


def test_save_without_an_example_takes_the_models_own_signature(tmp_path: Path) -> None:
    module = Dense()
    manifest = modelport.save(module, tmp_path / "dense")
    assert manifest.flavor == "tensorflow"
    assert manifest.signature.inputs == (TensorSpec("x", "float32", (-1, 4)),)
    loaded = modelport.load(tmp_path / "dense")
    rows = _rows(4)
    np.testing.assert_allclose(loaded.predict(rows), module(rows).numpy(), rtol=1e-6)
    assert get_flavor("tensorflow") is flavor


def test_save_with_an_example_learns_the_outputs(tmp_path: Path) -> None:
    manifest = modelport.save(Dense(), tmp_path / "dense", input_example=_rows(3))
    assert manifest.signature.inputs == (TensorSpec("x", "float32", (-1, 4)),)
    assert manifest.signature.outputs == (TensorSpec("output_0", "float32", (-1, 3)),)


def test_a_clean_model_has_nothing_unsafe_though_its_saver_has_checkpoint_ops(
    tmp_path: Path,
) -> None:
    saved = flavor.save(Dense(), tmp_path, {})
    assert flavor.find_unsafe(tmp_path, saved.options) == []
    ops = {
        node.op
        for function in flavor._read_proto(tmp_path / SAVED_PB)
        .meta_graphs[0]
        .graph_def.library.function
        for node in function.node_def
    }
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= ops  # the saver's own, let through


def test_the_savers_functions_are_let_through_only_while_only_the_saver_calls_them(
    tmp_path: Path,
) -> None:
    """A crafted graph whose serving call runs the saver's restore function (RestoreV2 on a
    path the caller gives) is refused: the function is no longer the saver's alone."""
    flavor.save(Dense(), tmp_path, {})
    file = tmp_path / SAVED_PB
    saved = flavor._read_proto(file)
    graph = saved.meta_graphs[0].graph_def
    nodes = {node.name: node for node in graph.node}
    restore = nodes[saved.meta_graphs[0].saver_def.restore_op_name].attr["f"].func.name
    serving = nodes[
        saved.meta_graphs[0].signature_def["serving_default"].outputs["output_0"].name.split(":")[0]
    ]
    serving.attr["f"].func.name = restore
    file.write_bytes(saved.SerializeToString())
    found = flavor.unsafe_ops(tmp_path / "saved_model")
    assert any(f"(RestoreV2) in function {restore!r} reads files" in reason for reason in found)


def test_a_tf1_saved_model_folder(tmp_path: Path) -> None:
    """A TF1 SavedModel (a session's graph, its saver in the main graph) reads, saves again
    and serves; the TF1 saver's checkpoint ops are its own and let through."""
    user_dir = tmp_path / "tf1"
    weights = np.arange(8, dtype=np.float32).reshape(4, 2)
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.matmul(x, tf.compat.v1.get_variable("w", initializer=weights))
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(user_dir))
            serving = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map={"serving_default": serving}
            )
            builder.save()
    main_ops = {
        node.op
        for node in flavor._read_proto(user_dir / "saved_model.pb").meta_graphs[0].graph_def.node
    }
    assert {"SaveV2", "RestoreV2"} <= main_ops
    assert flavor.unsafe_ops(user_dir) == []
    model = flavor.read_file(user_dir)
    signature = flavor.infer_signature(model)
    assert signature == Signature("tensors", (TensorSpec("x", "float32", (-1, 4)),))
    rows = _rows(3)
    out = round_trip(flavor, model, tmp_path, {}, signature).predict(canonical(signature, rows))
    np.testing.assert_allclose(out["y"], rows @ weights, rtol=1e-6)


class WritesFile(tf.Module):  # type: ignore[misc]
    """Writes its input to a file each call: a graph op, no Python."""

    def __init__(self, target: Path) -> None:
        super().__init__()
        self.target = str(target)

    @traced(tf.TensorSpec([None], tf.string, name="text"))
    def __call__(self, text: Any) -> Any:
        tf.io.write_file(self.target, tf.strings.reduce_join(text))
        return tf.strings.length(text)


def test_an_op_that_writes_files_is_refused_unless_trusted(tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    module = WritesFile(target)
    folder = tmp_path / "art"
    folder.mkdir()
    with pytest.raises(
        UntrustedArtifact, match=r"refusing to save SavedModel.*\(WriteFile\).*writes files"
    ):
        flavor.save(module, folder, {})
    saved = flavor.save(module, folder, {}, trust_unsafe=True)
    found = flavor.find_unsafe(folder, saved.options)
    assert found
    assert {file for file, _ in found} == {SAVED_PB}
    assert all("(WriteFile)" in reason and "writes files" in reason for _, reason in found)
    signature = flavor.infer_signature(module)
    assert signature is not None
    with pytest.raises(UntrustedArtifact, match=r"refusing to load SavedModel.*WriteFile"):
        flavor.load(folder, saved.options, signature)
    assert not target.exists()  # nothing of the graph ran
    trusted = flavor.load(folder, saved.options, signature, trust_unsafe=True)
    out = trusted.predict({"text": np.array(["ab", "cde"], dtype=object)})
    np.testing.assert_array_equal(out["output_0"], [2, 3])
    assert target.read_text() == "abcde"  # the op the scan named is real


def test_a_users_folder_that_reads_files_is_refused_before_it_is_loaded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")

    class ReadsFile(tf.Module):  # type: ignore[misc]
        @traced(tf.TensorSpec([None], tf.float32, name="x"))
        def __call__(self, x: Any) -> Any:
            return {"y": x * 2, "leak": tf.io.read_file(str(secret))}

    user_dir = tmp_path / "exported"
    tf.saved_model.save(ReadsFile(), str(user_dir))
    with pytest.raises(UntrustedArtifact, match=r"\(ReadFile\) in function .* reads files"):
        flavor.read_file(user_dir)
    model: Any = flavor.read_file(user_dir, trust_unsafe=True)
    assert model.signatures["serving_default"](x=tf.constant([1.0]))["leak"].numpy() == b"s3cret"


def test_a_checkpoint_op_outside_the_saver_is_refused(tmp_path: Path) -> None:
    """RestoreV2 is let through only where the SavedModel's own saver calls it: in a
    serving function it would read any checkpoint on disk."""

    class Restores(tf.Module):  # type: ignore[misc]
        @traced(tf.TensorSpec([None], tf.float32, name="x"))
        def __call__(self, x: Any) -> Any:
            [stolen] = tf.raw_ops.RestoreV2(
                prefix="/elsewhere/ckpt", tensor_names=["w"], shape_and_slices=[""],
                dtypes=[tf.float32],
            )  # fmt: skip
            return x + stolen

    with pytest.raises(UntrustedArtifact, match=r"\(RestoreV2\) in function '__inference___call__"):
        flavor.save(Restores(), tmp_path, {})


@pytest.mark.parametrize("to_file", [False, True])
def test_print_is_refused_only_to_a_file(to_file: bool, tmp_path: Path) -> None:
    log = f"file://{tmp_path / 'out.log'}"

    class Prints(tf.Module):  # type: ignore[misc]
        @traced(tf.TensorSpec([None], tf.float32, name="x"))
        def __call__(self, x: Any) -> Any:
            if to_file:
                tf.print(x, output_stream=log)
            else:
                tf.print(x)  # to stderr
            return x

    saved = flavor.save(Prints(), tmp_path, {}, trust_unsafe=True)
    found = flavor.find_unsafe(tmp_path, saved.options)
    if to_file:
        assert found
        assert all("(PrintV2)" in reason and repr(log) in reason for _, reason in found)
    else:
        assert found == []


def test_a_gpu_is_refused_where_tensorflow_sees_none(tmp_path: Path) -> None:
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this TensorFlow sees a GPU")
    saved = flavor.save(Dense(), tmp_path, {})
    signature = flavor.infer_signature(Dense())
    assert signature is not None
    with pytest.raises(
        FlavorError, match=r"device 'cuda:0' is not available: TensorFlow .* sees 0 GPU"
    ):
        flavor.load(tmp_path, saved.options, signature, device="cuda:0")
    with pytest.raises(FlavorError, match="unknown tensorflow device 'tpu'"):
        flavor.load(tmp_path, saved.options, signature, device="tpu")


def test_handles() -> None:
    assert flavor.handles(Dense())
    assert flavor.handles(tf.Module())
    assert not flavor.handles(np.zeros(2))
    assert not flavor.handles({"w": 1})


def test_invalid_options_are_refused(tmp_path: Path) -> None:
    signature = Signature("tensors", (TensorSpec("x", "float32", (-1, 4)),))
    with pytest.raises(FlavorError, match="invalid tensorflow flavor options"):
        flavor.load(tmp_path, {"dir": "../elsewhere"}, signature)
    with pytest.raises(FlavorError, match="invalid tensorflow signature_name"):
        flavor.save(Dense(), tmp_path, {"signature_name": 3})
