"""Model tests: both architectures build at any input size >= 75, classify into the six classes, and get their
backbone weights from ImageNet, a local file or nowhere, with a clear error when they cannot be had.

Tiny settings throughout (tests/profile.yaml: small heads and decoder, ``weights: null``); the backbone itself is
always the full InceptionResNetV2, so building one costs a few seconds and nothing here trains.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from pipeline.evaluation import explain
from pipeline.models import backbone, build
from pipeline.training import loop

SIZES = [75, 96, 131, 160, 299]  # the smallest, odd ones, and the study's
HEAD = re.compile(r"^(pool|head_|emotion$|decoder\d+_|reconstruction$)")  # the layers both builders add to the backbone


def _images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Preprocessed-range inputs ([-1, 1]), as the tf.data pipeline feeds the models."""
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype(np.float32)


def _assert_softmax(probabilities, count: int, classes: int) -> None:
    p = keras.ops.convert_to_numpy(probabilities)
    assert p.shape == (count, classes)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_unet_builds_at_any_size_and_reconstructs_at_input_size(tiny_params, size):
    cfg = tiny_params.train["irv2_unet"]
    model = build(cfg, size, len(tiny_params.classes))
    assert model.output["reconstruction"].shape[1:] == (size, size, 3)
    assert model.output["emotion"].shape[1:] == (len(tiny_params.classes),)
    # the decoder really runs at this size (shapes above are symbolic); 299 only builds, to keep the test cheap
    if size < 299:
        out = model(_images(2, size), training=False)
        assert out["reconstruction"].shape == (2, size, size, 3)
        _assert_softmax(out["emotion"], 2, len(tiny_params.classes))


@pytest.mark.parametrize("size", [75, 131, 299])
def test_skip_layers_are_found_by_output_stride(size):
    base = backbone.inception_resnet_v2(size, None)
    names = backbone.skip_layers(base, count=4)
    sizes = [backbone.spatial_size(base.get_layer(n)) for n in names]
    bottleneck = base.output.shape[1]
    # stride 2, 4, 8, 16: each level about half the one before (valid convolutions shave a pixel or two)
    for level, got in enumerate(sizes, start=1):
        assert 0.6 * size / 2**level <= got <= size / 2**level, (names, sizes)
    for finer, coarser in zip(sizes, [*sizes[1:], bottleneck], strict=True):
        assert 1.5 <= finer / coarser <= 3, (names, sizes, bottleneck)
    # each skip is the deepest layer of its level: nothing after it in the graph still has its resolution
    order = [layer.name for layer in base.layers]
    for name, got in zip(names, sizes, strict=True):
        later = base.layers[order.index(name) + 1 :]
        assert all((backbone.spatial_size(layer) or 0) < got for layer in later), name
    with pytest.raises(ValueError, match="stride levels"):
        backbone.skip_layers(base, count=5)


def test_irv2_builds_with_softmax_over_the_classes(tiny_params):
    cfg = tiny_params.train["irv2"]
    model = build(cfg, 75, len(tiny_params.classes))
    assert model.name == "irv2"
    assert list(model.output) == ["emotion"]
    assert model.get_layer("emotion").activation is keras.activations.softmax
    assert model.get_layer("head_dense").units == cfg.head_units
    _assert_softmax(model(_images(3, 75), training=False)["emotion"], 3, len(tiny_params.classes))


@pytest.mark.parametrize(("name", "size", "gradcam"), [("irv2", 299, "conv_7b_ac"), ("irv2_unet", 75, "block35_10_ac")])
def test_backbone_is_in_the_models_own_graph_and_found_by_name(tiny_params, name, size, gradcam):
    model = build(tiny_params.train[name], size, len(tiny_params.classes))
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "a nested model"
    layers = backbone.backbone_layers(model)
    standalone = backbone.inception_resnet_v2(size, None)
    assert [type(x) for x in layers] == [type(x) for x in standalone.layers]
    assert all(HEAD.match(x.name) for x in model.layers[len(layers) :])
    # Grad-CAM's backbone map at params.yaml's gradcam_min_map_size (7): the last block output that wide
    assert explain.targets(model, 7)[0].layer == gradcam

    # the fine-tuning phases of the training loop: a frozen backbone, then its top layers less BatchNorm
    loop.set_trainable(model, 0)
    assert not any(x.trainable for x in layers) and all(x.trainable for x in model.layers[len(layers) :])
    loop.set_trainable(model, 10)
    top = {id(x) for x in layers[-10:] if not isinstance(x, keras.layers.BatchNormalization)}
    assert top and {id(x) for x in layers if x.trainable} == top
    loop.set_trainable(model, None)
    assert all(x.trainable for x in model.layers)


def test_unet_rejects_a_decoder_of_the_wrong_depth(tiny_params):
    cfg = tiny_params.train["irv2_unet"]
    cfg = cfg.model_copy(update={"unet": cfg.unet.model_copy(update={"decoder_filters": [8, 8, 8]})})
    with pytest.raises(ValueError, match="decoder_filters needs 5 entries"):
        build(cfg, 75, len(tiny_params.classes))


_OFFLINE_BUILD = """
from pipeline.models import backbone
try:
    backbone.inception_resnet_v2(75, backbone.IMAGENET)
except backbone.WeightsError as exc:
    print(exc)
"""


def test_imagenet_weights_without_network_raise_weights_error(tmp_path):
    """In a child process with an empty Keras cache (KERAS_HOME, read when Keras is imported) and every download
    sent to a proxy on a closed loopback port, so it fails at once, as offline, and never reaches the real network."""
    closed = "http://127.0.0.1:9"
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "http_proxy": closed, "https_proxy": closed}
    env |= {"HTTP_PROXY": closed, "HTTPS_PROXY": closed, "no_proxy": "", "NO_PROXY": ""}
    done = subprocess.run([sys.executable, "-c", _OFFLINE_BUILD], env=env, capture_output=True, text=True, timeout=300)
    message = done.stdout
    assert "could not download the ImageNet weights" in message, done.stdout + done.stderr[-3000:]
    assert backbone.NOTOP_FILE in message and "null" in message
    assert not (tmp_path / "models" / backbone.NOTOP_FILE).exists(), "a failed download left a partial file"


def test_missing_local_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(backbone.WeightsError, match=f"weights file {missing} not found"):
        backbone.inception_resnet_v2(75, str(missing))


def _save_legacy_h5(model: keras.Model, path) -> None:
    """A legacy HDF5 file (Keras 2's format, which Keras' own ImageNet files use), through the public saving API:
    `model.save` of a path ending in .h5 writes it, and a `.h5` given as weights is read by that legacy loader."""
    model.save(path)


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5"])
def test_local_weights_file_is_loaded(tmp_path, suffix):
    source = backbone.inception_resnet_v2(75, None)
    kernel = source.get_layer("conv_7b").kernel
    kernel.assign(kernel + 0.5)  # a value no initialiser gives: equal weights below can only come from the file
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".weights.h5":
        source.save_weights(path)
    else:
        _save_legacy_h5(source, path)
    loaded = backbone.inception_resnet_v2(75, str(path))
    expected, got = source.get_weights(), loaded.get_weights()
    assert len(expected) == len(got)
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
