"""The keras flavor: ``.keras`` and ``.h5`` files on the torch backend, in safe mode; a layer
that carries Python code loads only when trusted."""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

# Keras reads its backend once, at first import: this module's models run on torch, as
# modelport loads them.
os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
import torch

import modelport
from modelport.artifact.signature import Signature, TensorSpec
from modelport.errors import FlavorError, SignatureError, UntrustedArtifact
from modelport.flavors import keras as flavor

from ._helpers import canonical, round_trip

assert keras.backend.backend() == "torch", "Keras was imported with another backend first"

# Keras's torch backend reads weights with np.array(tensor) when it fits or saves; numpy 2
# warns about torch's __array__ (the flavor silences it around its own save).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

FORMATS = [("keras", "model.keras"), ("h5", "model.h5")]


def _trained(model: keras.Model, x: Any, y: Any) -> keras.Model:
    """One epoch on the 64 rows, so the weights are not just their initial values."""
    keras.utils.set_random_seed(0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return model


def _data(rows: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    return x, (x[:, :1] * 2 - x[:, 1:2]).astype(np.float32)


@pytest.fixture
def regressor() -> keras.Model:
    """A functional model with one named input."""
    keras.utils.set_random_seed(0)
    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(features)
    x, y = _data()
    return _trained(keras.Model(features, keras.layers.Dense(1, name="score")(hidden)), x, y)


@pytest.fixture
def two_inputs() -> keras.Model:
    """Two named inputs (a float and an int one) and two named outputs."""
    keras.utils.set_random_seed(0)
    numbers = keras.Input((4,), name="numbers")
    flags = keras.Input((2,), name="flags", dtype="int32")
    hidden = keras.layers.Dense(6, activation="relu")(numbers)
    embedded = keras.layers.Flatten()(keras.layers.Embedding(2, 3)(flags))
    joined = keras.layers.Concatenate()([hidden, embedded])
    score = keras.layers.Dense(1, name="score")(joined)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(joined)
    return keras.Model({"numbers": numbers, "flags": flags}, [score, probs])


def _two_input_batch(rows: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "numbers": rng.normal(size=(rows, 4)).astype(np.float32),
        "flags": rng.integers(0, 2, size=(rows, 2)).astype(np.int32),
    }


def _lambda_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), name="inp")
    scaled = keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="scale")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(scaled))


def _own(model: keras.Model, x: Any) -> np.ndarray:
    """What Keras itself predicts."""
    with torch.no_grad():
        return np.asarray(model(x, training=False).detach().numpy())


@pytest.mark.parametrize(("fmt", "file"), FORMATS)
def test_round_trip_predicts_as_keras_does(
    fmt: str, file: str, regressor: keras.Model, tmp_path: Path
) -> None:
    signature = flavor.infer_signature(regressor)
    assert signature == Signature("tensors", (TensorSpec("features", "float32", (-1, 4)),))
    predictor = round_trip(flavor, regressor, tmp_path, {"format": fmt}, signature)
    assert (tmp_path / "flavor-0" / file).is_file()
    assert isinstance(predictor.model, keras.Model)  # type: ignore[attr-defined]
    x, _ = _data(7)
    out = predictor.predict(canonical(signature, x.astype(np.float64)))
    assert list(out) == ["predictions"]
    assert out["predictions"].shape == (7, 1)
    np.testing.assert_allclose(out["predictions"], _own(regressor, x), rtol=1e-6)


@pytest.mark.parametrize(("fmt", "file"), FORMATS)
def test_saved_options_and_requirements(
    fmt: str, file: str, regressor: keras.Model, tmp_path: Path
) -> None:
    saved = flavor.save(regressor, tmp_path, {"format": fmt})
    assert saved.options == {
        "file": file,
        "format": fmt,
        "backend": "torch",
        "saved_backend": "torch",
    }
    torch_version = torch.__version__.partition("+")[0]
    h5py = [f"h5py=={__import__('h5py').__version__}"] if fmt == "h5" else []
    assert saved.requirements == [f"keras=={keras.__version__}", *h5py, f"torch=={torch_version}"]


def test_signature_comes_from_the_model_when_saved_without_example(
    regressor: keras.Model, tmp_path: Path
) -> None:
    manifest = modelport.save(regressor, tmp_path / "m")
    assert manifest.signature.inputs == (TensorSpec("features", "float32", (-1, 4)),)
    x, _ = _data(3)
    np.testing.assert_allclose(modelport.load(tmp_path / "m").predict(x), _own(regressor, x))


def test_a_sequential_model_built_by_a_call_takes_any_batch_size(tmp_path: Path) -> None:
    """Keras records the first call's batch size (here 2) and names the input itself
    (``keras_tensor_N``, numbered per process): the signature has a batch axis and ``input``."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    model(np.ones((2, 4), dtype=np.float32))
    manifest = modelport.save(model, tmp_path / "m")
    assert manifest.signature.inputs == (TensorSpec("input", "float32", (-1, 4)),)
    x, _ = _data(5)
    np.testing.assert_allclose(modelport.load(tmp_path / "m").predict(x), _own(model, x))


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_multi_input_model_keeps_input_and_output_names(
    fmt: str, two_inputs: keras.Model, tmp_path: Path
) -> None:
    signature = flavor.infer_signature(two_inputs)
    assert signature is not None
    assert set(signature.inputs) == {
        TensorSpec("numbers", "float32", (-1, 4)),
        TensorSpec("flags", "int32", (-1, 2)),
    }
    batch = _two_input_batch()
    manifest = modelport.save(
        two_inputs, tmp_path / "m", input_example=batch, flavor_options={"format": fmt}
    )
    assert [s.name for s in manifest.signature.outputs] == ["score", "probs"]
    out = modelport.load(tmp_path / "m").predict_outputs(batch)
    want = two_inputs(batch, training=False)
    np.testing.assert_allclose(out["score"], want[0].detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["probs"], want[1].detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize(("fmt", "file"), FORMATS)
def test_a_lambda_layer_is_refused_unless_trusted(fmt: str, file: str, tmp_path: Path) -> None:
    model = _lambda_model()
    x = np.ones((2, 3), dtype=np.float32)
    refusal = rf"refusing to save '{file}': Lambda layer 'scale' holds Python bytecode"
    with pytest.raises(UntrustedArtifact, match=refusal):
        modelport.save(model, tmp_path / "m", input_example=x, flavor_options={"format": fmt})
    modelport.save(
        model, tmp_path / "m", input_example=x, flavor_options={"format": fmt}, trust_unsafe=True
    )
    folder = tmp_path / "m"
    options = json.loads((folder / "modelport.json").read_text())["flavor_options"]
    assert flavor.find_unsafe(folder, options) == [
        (file, "Lambda layer 'scale' holds Python bytecode, which runs when it is loaded")
    ]
    with pytest.raises(
        UntrustedArtifact, match=rf"refusing to load '{file}': Lambda layer 'scale'"
    ):
        modelport.load(folder)
    got = modelport.load(folder, trust_unsafe=True).predict(x)
    np.testing.assert_allclose(got, _own(model, x), rtol=1e-6)


@pytest.mark.parametrize(("fmt", "file"), FORMATS)
def test_find_unsafe_finds_nothing_in_a_plain_model(
    fmt: str, file: str, regressor: keras.Model, tmp_path: Path
) -> None:
    saved = flavor.save(regressor, tmp_path, {"format": fmt})
    assert (tmp_path / file).is_file()
    assert flavor.find_unsafe(tmp_path, saved.options) == []


def test_a_pickled_torch_module_is_found(tmp_path: Path) -> None:
    """Code outside a Lambda layer: a TorchModuleWrapper's config is a pickled torch module,
    which ``torch.load`` would unpickle."""
    inputs = keras.Input((3,), name="inp")
    wrapper = keras.layers.TorchModuleWrapper(
        torch.nn.Linear(3, 2), output_shape=(None, 2), name="wrapped"
    )
    flavor.save(keras.Model(inputs, wrapper(inputs)), tmp_path, {}, trust_unsafe=True)
    reason = "layer 'wrapped' (TorchModuleWrapper) holds a pickled torch module"
    assert flavor.find_unsafe(tmp_path, {"file": "model.keras"}) == [("model.keras", reason)]
    with pytest.raises(
        UntrustedArtifact, match=re.escape(f"refusing to load 'model.keras': {reason}")
    ):
        flavor.load(tmp_path, {"file": "model.keras"}, Signature("tensors", ()))


def test_code_in_crafted_and_old_configs_is_recognised() -> None:
    """Keras 2 wrote a Lambda's function as base64 bytecode with ``function_type``, Keras 3
    any other lambda as ``__lambda__``; crafted configs name other modules or Keras's own
    non-modeling functions. The scan reads configs as data, so such a file is caught even
    where this Keras cannot load it."""
    legacy = {
        "class_name": "Sequential",
        "config": {
            "name": "seq",
            "layers": [
                {"class_name": "Dense", "config": {"name": "d", "units": 2}},
                {
                    "class_name": "Lambda",
                    "config": {"name": "old", "function": ["4wEAAA==", None, None]},
                },
                {
                    "class_name": "Custom",
                    "config": {"name": "c", "output_shape_type": "lambda", "output_shape": "x"},
                },
                {
                    "class_name": "Scaler",
                    "config": {"name": "s", "fn": {"class_name": "__lambda__", "config": {}}},
                },
                {"module": "os", "class_name": "system", "config": {"name": "shell"}},
                {
                    "module": "keras.layers",
                    "class_name": "Activation",
                    "config": {
                        "name": "off",
                        "activation": {
                            "module": "keras.config",
                            "class_name": "function",
                            "config": "enable_unsafe_deserialization",
                        },
                    },
                },
            ],
        },
    }
    legacy["config"]["layers"][1]["config"]["function_type"] = "lambda"  # type: ignore[index]
    assert flavor.code_in_config(legacy) == [
        "Lambda layer 'old' holds Python bytecode, which runs when it is loaded",
        "layer 'c' (Custom) holds Python bytecode, which runs when it is loaded",
        "layer 's' (Scaler) holds Python bytecode, which runs when it is loaded",
        "layer 'shell' (system) names the Python module 'os'",
        "layer 'off' (Activation) calls keras.config.enable_unsafe_deserialization, which is "
        "not a modeling function",
    ]
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"class_name": "Wrapper", "config": {"name": "w", "layer": deep}}
    assert flavor.code_in_config(deep) == ["the model config is nested too deeply to check"]


def test_registered_custom_objects_are_not_code_in_the_file(tmp_path: Path) -> None:
    """A registered custom activation and layer come from this process's code, by name:
    only the Lambda layer (which runs a function by name) is reported."""

    @keras.saving.register_keras_serializable(package="mp_test")  # type: ignore[untyped-decorator]
    def twice(t: Any) -> Any:
        return t * 2.0

    @keras.saving.register_keras_serializable(package="mp_test")
    class Boost(keras.layers.Layer):  # type: ignore[misc]
        def call(self, x: Any) -> Any:
            return x + 1.0

    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(2, activation=twice, name="dense")(inputs)
    hidden = keras.layers.Lambda(twice, name="doubled")(hidden)
    flavor.save(keras.Model(inputs, Boost(name="boost")(hidden)), tmp_path, {}, trust_unsafe=True)
    assert flavor.find_unsafe(tmp_path, {"file": "model.keras"}) == [
        ("model.keras", "Lambda layer 'doubled' runs Python code (mp_test>twice)")
    ]


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".hdf5"])
def test_read_file(suffix: str, regressor: keras.Model, tmp_path: Path) -> None:
    assert suffix in flavor.FILE_SUFFIXES
    regressor.save(tmp_path / f"user{suffix}")
    model = flavor.read_file(tmp_path / f"user{suffix}")
    assert isinstance(model, keras.Model)
    x, _ = _data(4)
    np.testing.assert_allclose(_own(model, x), _own(regressor, x), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_read_file_refuses_a_lambda_unless_trusted(suffix: str, tmp_path: Path) -> None:
    model = _lambda_model()
    model.save(tmp_path / f"user{suffix}")
    with pytest.raises(UntrustedArtifact, match=rf"refusing to load 'user\{suffix}': Lambda"):
        flavor.read_file(tmp_path / f"user{suffix}")
    trusted = flavor.read_file(tmp_path / f"user{suffix}", trust_unsafe=True)
    x = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_allclose(_own(trusted, x), _own(model, x), rtol=1e-6)


def test_read_file_of_weights_only_or_garbage_is_a_flavor_error(
    regressor: keras.Model, tmp_path: Path
) -> None:
    regressor.save_weights(tmp_path / "only.weights.h5")
    (tmp_path / "only.weights.h5").rename(tmp_path / "only.h5")
    with pytest.raises(FlavorError, match=r"'only\.h5' holds no model config"):
        flavor.read_file(tmp_path / "only.h5")
    (tmp_path / "junk.keras").write_bytes(b"junk")
    with pytest.raises(FlavorError, match=r"cannot read the Keras model config in 'junk\.keras'"):
        flavor.read_file(tmp_path / "junk.keras")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(FlavorError, match=r"config in 'empty\.keras'.*config\.json"):
        flavor.read_file(tmp_path / "empty.keras")


def test_another_backend_than_the_running_one_is_refused(
    regressor: keras.Model, tmp_path: Path
) -> None:
    """Keras cannot switch backends once imported: asking for jax in this torch process says
    so, instead of running the model on a backend it was not set to use."""
    saved = flavor.save(regressor, tmp_path, {"backend": "jax"})
    assert (saved.options["backend"], saved.options["saved_backend"]) == ("jax", "torch")
    signature = flavor.infer_signature(regressor)
    assert signature is not None
    with pytest.raises(
        FlavorError,
        match=r"Keras runs the 'torch' backend in this process, but this model is to load on "
        r"'jax': Keras reads KERAS_BACKEND once",
    ):
        flavor.load(tmp_path, saved.options, signature)
    with pytest.raises(FlavorError, match="unknown Keras backend 'theano'"):
        flavor.save(regressor, tmp_path, {"backend": "theano"})


def test_wrong_shape_and_dtype_get_the_signatures_message(
    regressor: keras.Model, tmp_path: Path
) -> None:
    x, _ = _data(5)
    modelport.save(regressor, tmp_path / "m", input_example=x)
    loaded = modelport.load(tmp_path / "m")
    with pytest.raises(
        SignatureError, match=r"input 'features': expected shape \[-1, 4\], got \[2, 3\]"
    ):
        loaded.predict(x[:2, :3])
    with pytest.raises(SignatureError, match="input 'features': expected float32, got str"):
        loaded.predict([["a", "b", "c", "d"]])


def test_handles_and_what_it_cannot_save(regressor: keras.Model, tmp_path: Path) -> None:
    assert flavor.handles(regressor)
    assert not flavor.handles(torch.nn.Linear(2, 2))
    assert not flavor.handles(np.zeros(2))
    with pytest.raises(FlavorError, match="unknown Keras format 'tf'"):
        flavor.save(regressor, tmp_path, {"format": "tf"})
    with pytest.raises(FlavorError, match="saves models, not a Dense"):
        flavor.save(keras.layers.Dense(2), tmp_path, {})
