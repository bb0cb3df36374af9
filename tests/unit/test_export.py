"""Exported models (SavedModel, TFLite) give the Keras model's probabilities from raw pixels."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest
import tensorflow as tf

from pipeline.commands import predict as predict_command
from pipeline.config import OptionError
from pipeline.serving import ensemble, export, inference, lite, predict
from pipeline.serving.errors import ModelError
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


@pytest.fixture(scope="module")
def exported_tflite(saved, tmp_path_factory):
    """The tiny IRv2 as `export --format tflite` writes it: the model file and its metadata beside it."""
    out = tmp_path_factory.mktemp("tflite") / "model.tflite"
    export.tflite_from_savedmodel(saved, out)
    lite.metadata_file(out).write_text(json.dumps(export.metadata(tiny_models.params(), "irv2", "tflite")))
    return out


def lite_model(path):
    params = tiny_models.params()
    return lite.LiteModel(path, params.image_size, params.classes, params.evaluate.tta)


def test_tflite_through_litert_matches_keras(exported_tflite, pixels):
    got = lite_model(exported_tflite).classify(pixels)
    np.testing.assert_allclose(got, inference.classify(tiny_models.model("irv2"), pixels), atol=1e-4)
    assert not list(exported_tflite.parent.glob(".tmp-*"))


def test_predict_with_the_tflite_export_gives_the_keras_rows(exported_tflite, tmp_path):
    params = tiny_models.params()
    for i, rgb in enumerate(np.random.default_rng(2).integers(0, 256, (3, 90, 90, 3), dtype=np.uint8)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rgb)
    s = predict.settings(params, "whole", None)
    keras_rows = list(predict.run(tiny_models.model("irv2"), [tmp_path], s))
    lite_rows = list(predict.run(lite_model(exported_tflite), [tmp_path], s))
    assert [r["label"] for r in lite_rows] == [r["label"] for r in keras_rows] and len(lite_rows) == 3
    for a, b in zip(lite_rows, keras_rows, strict=True):
        assert all(abs(a[f"p_{c}"] - b[f"p_{c}"]) <= 2e-4 for c in params.classes)
    with pytest.raises(ValueError, match="Grad-CAM needs the Keras model"):
        list(predict.run(lite_model(exported_tflite), [tmp_path], s, gradcam_min_size=2))


def test_a_tflite_export_that_does_not_fit_the_params_is_refused(exported_tflite, tmp_path):
    params = tiny_models.params()
    with pytest.raises(ModelError, match="the model's classes are"):
        lite.LiteModel(exported_tflite, params.image_size, params.classes[::-1], params.evaluate.tta)
    with pytest.raises(ModelError, match="export it again"):
        lite.LiteModel(exported_tflite, params.image_size, params.classes, ["flip"])
    alone = tmp_path / "model.tflite"
    alone.write_bytes(exported_tflite.read_bytes())
    with pytest.raises(ModelError, match="model.tflite.json is missing beside it"):
        lite_model(alone)
    lite.metadata_file(alone).write_text(lite.metadata_file(exported_tflite).read_text())
    alone.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="LiteRT cannot load it"):
        lite_model(alone)
    args = argparse.Namespace(model="irv2_unet", model_file=exported_tflite, gradcam=False)
    with pytest.raises(OptionError, match="is the export of irv2, not irv2_unet"):
        predict_command.load(args, params, predict_command.model_files(args, params))


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


@pytest.mark.parametrize("name", ["irv2", "irv2_unet"])
def test_backbone_weights_load_into_a_fresh_inception_resnet_v2_at_any_size(name, tmp_path):
    """`export --format backbone`: the file that train.<model>.weights reads gives a new InceptionResNetV2 (of this
    size or another) exactly the trained model's backbone weights, BatchNormalization statistics included."""
    from pipeline.models.backbone import backbone_layers, inception_resnet_v2

    model = tiny_models.model(name)
    out = tmp_path / "backbone.weights.h5"
    export.backbone_weights(model, out)
    trained = [w for layer in backbone_layers(model) for w in layer.get_weights()]
    for size in (75, 107):
        fresh = inception_resnet_v2(size, str(out))
        loaded = [w for layer in fresh.layers for w in layer.get_weights()]
        assert len(loaded) == len(trained) > 400
        for a, b in zip(loaded, trained, strict=True):
            np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone.weights.h5"]  # no temporary file left


def test_a_backbone_export_names_one_model_and_a_weights_file(tmp_path):
    from pipeline.commands import export as export_command
    from pipeline.config import UsageError

    params = tiny_models.params()
    with pytest.raises(UsageError, match=r"--format backbone exports one model's backbone: name a model, not ensemble"):
        export_command.backbone(params, ensemble.NAME, [], None)
    with pytest.raises(UsageError, match=r"must end with \.weights\.h5"):
        export_command.backbone(params, "irv2", [tmp_path / "model.keras"], tmp_path / "backbone.h5")
