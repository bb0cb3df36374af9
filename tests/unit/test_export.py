"""Exported models (SavedModel, TFLite) give the Keras model's probabilities from raw pixels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pipeline.commands import export
from pipeline.serving import ensemble, inference
from tests.unit import tiny_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (4, 75, 75, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tiny IRv2 exported once (tracing the whole network for export takes a while on a CPU)."""
    out = tmp_path_factory.mktemp("export") / "savedmodel"
    export.savedmodel(tiny_models.model("irv2"), out)
    return out


def test_serving_model_folds_in_preprocessing_and_returns_probabilities_only(pixels):
    model = tiny_models.model("irv2_unet")  # the U-Net's reconstruction output is left out
    served = export.serving_model(model)(pixels.astype(np.float32), training=False)
    np.testing.assert_allclose(np.asarray(served), inference.classify(model, pixels), atol=1e-5)


def test_savedmodel_matches_keras(saved, pixels):
    loaded = tf.saved_model.load(str(saved))
    served = loaded.serve(tf.constant(pixels, tf.float32))
    np.testing.assert_allclose(served.numpy(), inference.classify(tiny_models.model("irv2"), pixels), atol=1e-5)


def run_tflite(path, pixels: np.ndarray) -> np.ndarray:
    """The exported TFLite model's output on ``pixels``, through TensorFlow's own interpreter."""
    interpreter = tf.lite.Interpreter(model_path=str(path))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, pixels.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


# TF 2.21 still ships tf.lite (deprecated for the separate LiteRT package, which is not a dependency here)
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_matches_keras(saved, pixels, tmp_path):
    out = tmp_path / "model.tflite"
    export.tflite_from_savedmodel(saved, out)
    got = run_tflite(out, pixels)
    np.testing.assert_allclose(got, inference.classify(tiny_models.model("irv2"), pixels), atol=1e-4)
    assert not list(tmp_path.glob(".tmp-*"))


def test_metadata_names_classes_and_input():
    params = tiny_models.params()
    meta = export.metadata(params, "irv2", "tflite")
    assert meta["classes"] == params.classes
    assert meta["input"]["shape"] == [None, 75, 75, 3] and meta["input"]["range"] == [0, 255]


@pytest.fixture(scope="module")
def members():
    return [tiny_models.model("irv2"), tiny_models.model("irv2_unet")]


@pytest.fixture(scope="module")
def saved_ensemble(tmp_path_factory, members):
    """The ensemble of both tiny models, with the flip test-time augmentation, exported once."""
    out = tmp_path_factory.mktemp("export") / "ensemble"
    export.savedmodel(members, out, ["flip"])
    return out


def test_ensemble_serving_model_is_the_mean_of_both_models_on_one_input(members, pixels):
    served = export.serving_model(members, ["flip"])
    assert len(served.inputs) == 1
    expected = ensemble.classify(members, pixels, 32, ["flip"])
    np.testing.assert_allclose(np.asarray(served(pixels.astype(np.float32), training=False)), expected, atol=1e-5)


# the TFLite file is converted from this SavedModel by the code test_tflite_matches_keras covers
def test_ensemble_savedmodel_matches_python(saved_ensemble, members, pixels):
    loaded = tf.saved_model.load(str(saved_ensemble))  # held: its variables go with it
    served = loaded.serve(tf.constant(pixels, tf.float32))
    np.testing.assert_allclose(served.numpy(), ensemble.classify(members, pixels, 32, ["flip"]), atol=1e-5)


def test_ensemble_metadata_names_its_members_and_tta():
    params = tiny_models.params()
    meta = export.metadata(params, "ensemble", "savedmodel")
    assert meta["members"] == params.evaluate.ensemble == ["irv2", "irv2_unet"]
    assert meta["tta"] == params.evaluate.tta
    assert export.metadata(params, "irv2", "tflite")["members"] == ["irv2"]
