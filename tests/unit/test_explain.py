"""Grad-CAM on both architectures (tiny 75 px models): the maps it picks, their shapes and ranges, the grid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.evaluation import draw, explain
from pipeline.models import backbone
from pipeline.serving import inference
from tests.unit import tiny_models

MIN_SIZE = 7


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 75, 75, 3), dtype=np.uint8)


def width(layer) -> int:
    return layer.output.shape[1]


def test_block_outputs_hold_block_outputs_not_branches():
    model = tiny_models.model("irv2")
    layers = backbone.backbone_layers(model)
    outputs = [layer.name for layer in backbone.block_outputs(model)]
    # from the stem's first layer (the input before it is no feature map) to the backbone's last
    assert outputs[0] == layers[1].name and outputs[-1] == layers[-1].name == backbone.LAST_LAYER
    names = [layer.name for layer in layers]
    assert outputs == sorted(outputs, key=names.index)
    # InceptionResNetV2's residual block outputs are listed; their inner tower convolutions are not
    assert {"mixed_5b", "block35_1_ac", "mixed_6a", "block17_1_ac", "mixed_7a", "conv_7b_ac"} <= set(outputs)
    assert "block35_1_mixed" not in outputs and "block35_1_conv" not in outputs


@pytest.mark.parametrize("name", ["irv2", "irv2_unet"])
def test_targets_found_by_shape_and_name(name):
    model = tiny_models.model(name)
    targets = explain.targets(model, MIN_SIZE)
    encoder = targets[0]
    assert encoder.in_backbone and width(model.get_layer(encoder.layer)) >= MIN_SIZE
    assert encoder.layer == "block35_10_ac"  # at 75 px the last 7 px wide block output
    outputs = [layer.name for layer in backbone.block_outputs(model)]
    deeper = outputs[outputs.index(encoder.layer) + 1 :]
    assert all(width(model.get_layer(n)) < MIN_SIZE for n in deeper if len(model.get_layer(n).output.shape) == 4)
    if name == "irv2":
        assert [t.title for t in targets] == ["backbone"]
    else:
        assert [t.title for t in targets] == ["encoder", "decoder"]
        decoder = model.get_layer(targets[1].layer)
        assert targets[1].layer.startswith("decoder5_") and width(decoder) == 75
        assert not targets[1].in_backbone


def test_a_large_min_size_falls_back_to_no_map():
    with pytest.raises(ValueError, match="gradcam_min_map_size"):
        explain.targets(tiny_models.model("irv2"), 76)


def test_small_min_size_takes_the_last_conv_map():
    # at 299 px the last conv map is 8x8 and is the one Grad-CAM reads; at 75 px it is 1x1
    assert explain.targets(tiny_models.model("irv2"), 1)[0].layer == "conv_7b_ac"


@pytest.mark.parametrize("name", ["irv2", "irv2_unet"])
def test_heatmaps_shapes_ranges_and_probabilities(name, images):
    model = tiny_models.model(name)
    result = explain.GradCam(model, MIN_SIZE)(images)
    assert set(result.heatmaps) == {t.title for t in result.targets}
    for heat in result.heatmaps.values():
        assert heat.shape == (3, 75, 75) and heat.dtype == np.float32
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
        peaks = heat.max(axis=(1, 2))
        assert np.all((peaks == 1) | (peaks == 0))  # each map scaled to its own peak
    np.testing.assert_allclose(result.probabilities, inference.classify(model, images), atol=1e-5)
    np.testing.assert_array_equal(result.explained, result.probabilities.argmax(axis=1))


def test_heatmaps_for_given_classes(images):
    cam = explain.GradCam(tiny_models.model("irv2_unet"), MIN_SIZE)
    result = cam(images, classes=np.array([5, 0, 2]))
    assert result.explained.tolist() == [5, 0, 2]


def test_overlay_and_grid(images, tmp_path):
    heat = np.zeros((75, 75), np.float32)
    heat[:10, :10] = 1
    blended = draw.overlay(images[0], heat)
    assert blended.shape == images[0].shape and blended.dtype == np.uint8
    path = tmp_path / "grid.png"
    explain.grid(path, [[("a", images[0]), ("b", blended)], [("c", images[1])]], "title")
    grid = cv2.imread(str(path))
    assert grid is not None and grid.shape[0] > grid.shape[1] / 2
