"""The train stage saves its model without the optimizer's state: a third of the file, the same predictions."""

from __future__ import annotations

import io
import zipfile

import h5py
import keras
import numpy as np

from pipeline.serving import inference
from pipeline.training import loop
from tests.unit import tiny_models


def test_a_compiled_model_saves_without_its_optimizer_and_predicts_the_same(tmp_path):
    params = tiny_models.params()
    cfg = params.train["irv2"]
    model = keras.models.clone_model(tiny_models.model("irv2"))  # the shared tiny model stays uncompiled
    loop.compile_model(model, cfg, cfg.learning_rate)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, params.image_size, params.image_size, 3)).astype(np.float32)
    model.train_on_batch(x, {"emotion": np.eye(len(params.classes), dtype=np.float32)[[0, 1]]})  # Adam has state

    path = tmp_path / "model.keras"
    loop.without_optimizer(model).save(path)  # as pipeline/stages/train.py saves it
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
        assert "optimizer" not in weights, list(weights)
    loaded = inference.load_model(path)
    assert loaded.name == model.name and [w.name for w in loaded.layers] == [w.name for w in model.layers]
    expected = keras.ops.convert_to_numpy(model(x, training=False)["emotion"])
    assert np.array_equal(expected, keras.ops.convert_to_numpy(loaded(x, training=False)["emotion"]))
