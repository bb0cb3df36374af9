"""A saved model is a plain Keras file: it reloads in safe mode with no custom objects and predicts bit for bit
what the model that wrote it predicted (a later stage scores exactly the model that training validated), and the same
model saved twice is the same file."""

from __future__ import annotations

import json
import time
import zipfile

import keras
import numpy as np

from pipeline.data import tfdata
from pipeline.models import build, saving
from pipeline.models.backbone import backbone_layers
from pipeline.training import loop


def _class_names(node) -> set[str]:
    if isinstance(node, dict):
        own = {node["class_name"]} if isinstance(node.get("class_name"), str) else set()
        return own.union(*(_class_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_class_names(v) for v in node))
    return set()


def test_saved_model_reloads_in_safe_mode_and_predicts_identically(tiny_params, tmp_path):
    # the U-Net: the richer of the two graphs (transposed convolutions, pads, crops, two outputs); the IRv2 file that
    # training writes is reloaded and scored in tests/training/test_train_integration.py
    name = "irv2_unet"
    cfg = tiny_params.train[name]
    size, classes = tiny_params.image_size, len(tiny_params.classes)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    model = build(cfg, size, classes)
    loop.compile_model(model, cfg, cfg.learning_rate)  # compiled (losses, metrics), as training leaves it
    inputs = next(iter(tfdata.image_arrays(images).batch(8)))
    model(inputs, training=True)  # moves the BatchNorm statistics off their initial values, as training would
    norm = next(x for x in backbone_layers(model) if isinstance(x, keras.layers.BatchNormalization))
    assert np.any(keras.ops.convert_to_numpy(norm.moving_mean) != 0)

    path = tmp_path / name / "model.keras"
    saving.save(loop.without_optimizer(model), path)  # as train.py writes it
    with zipfile.ZipFile(path) as archive:
        saved = _class_names(json.loads(archive.read("config.json")))
        assert "date_saved" not in json.loads(archive.read("metadata.json"))
        assert {m.date_time for m in archive.infolist()} == {saving.EPOCH}
    # the same model saved again later is the same file, byte for byte: DVC gives an identical rerun the same hash
    time.sleep(2.1)  # past the zip format's 2-second resolution, and the second of Keras's date_saved
    again = tmp_path / "again" / "model.keras"
    saving.save(loop.without_optimizer(model), again)
    assert again.read_bytes() == path.read_bytes()
    assert "Lambda" not in saved and not any(n.startswith("pipeline") for n in saved), saved
    loaded = keras.models.load_model(path, safe_mode=True)

    before, after = model(inputs, training=False), loaded(inputs, training=False)
    assert set(before) == set(after)
    for output in before:
        expected, got = keras.ops.convert_to_numpy(before[output]), keras.ops.convert_to_numpy(after[output])
        assert np.array_equal(expected, got), f"{output}: max difference {np.abs(expected - got).max()}"
