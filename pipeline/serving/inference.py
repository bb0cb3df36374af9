"""Loading a trained model and classifying images: the one path that evaluate, predict, export and benchmarks share.

Images go in as 8-bit RGB at the model's size, exactly as ``faces.prepare`` makes them for training (the augment
stage writes those arrays as PNGs, and tf.data applies the backbone's preprocessing); probabilities come out.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from pipeline.data import tfdata
from pipeline.serving.errors import ModelError

__all__ = ["ModelError", "check", "classify", "emotion", "input_size", "load_model", "view"]


EAGER_MAX = 8  # up to this many images, classify runs the model eagerly (see classify)
SAVED_BY_TRAIN = "give a model saved by the train stage (models/<name>/model.keras)"


def _not_a_model_file(path: Path) -> str | None:
    """Why ``path`` cannot be a Keras model file, from its bytes alone (Keras itself calls a file it cannot open
    "not found", and a .keras zip without its config a KeyError)."""
    if path.stat().st_size == 0:
        return "a zero-byte file"
    if path.suffix == ".h5":
        return None  # the legacy format: Keras and h5py say what is wrong with it
    if path.suffix != ".keras":
        return f"its name ends in {path.suffix or 'no extension'}, not .keras"
    if not zipfile.is_zipfile(path):
        return "not a zip archive, which a .keras file is"
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                return "a zip archive without config.json"
    except zipfile.BadZipFile as exc:
        return f"a damaged zip archive: {exc}"
    return None


def load_model(path: str | Path) -> keras.Model:
    """A model saved by the train stage, without its optimizer state (inference needs none), in Keras's safe mode:
    a model that would run Python code as it loads is refused, never trusted."""
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path}: a folder, not a Keras model file; {SAVED_BY_TRAIN}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model here (run `dvc repro train` or give --model-file)")
    problem = _not_a_model_file(path)
    if problem:
        raise ModelError(f"{path}: not a Keras model file ({problem}); {SAVED_BY_TRAIN}")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # Keras has no error type of its own for a safe-mode refusal; its message is the one mark of it
        if "safe_mode" in reason:
            raise ModelError(
                f"{path}: Keras safe mode refused to load it: it holds Python code (such as a Lambda layer's "
                f"function) that loading would run, and a model file may carry arbitrary code; {SAVED_BY_TRAIN}"
            ) from None
        raise ModelError(f"{path}: Keras cannot load it ({reason}); {SAVED_BY_TRAIN}") from None
    _check_shape(model, path)
    return model


def _check_shape(model: keras.Model, path: Path) -> None:
    """Refuse a loadable model that is not an emotion classifier: predict, evaluate and export all read its
    ``emotion`` output and feed it RGB images."""
    if not any(layer.name == "emotion" for layer in model.layers):
        outputs = ", ".join(model.output_names)
        raise ModelError(
            f"{path}: the model has no `emotion` output layer (its outputs: {outputs}), so it is not an emotion "
            f"classifier of this pipeline; {SAVED_BY_TRAIN}"
        )
    shape = tuple(model.inputs[0].shape)
    if len(model.inputs) != 1 or len(shape) != 4 or shape[3] != 3:
        raise ModelError(f"{path}: the model takes inputs of shape {shape}, not RGB images (N, size, size, 3)")


def input_size(model: keras.Model) -> int:
    return int(model.inputs[0].shape[1])


def check(model: keras.Model, image_size: int, classes: list[str]) -> None:
    """Refuse a model trained for another image size or class list than params.yaml describes."""
    if input_size(model) != image_size:
        raise ModelError(f"the model takes {input_size(model)} px images, params.yaml image_size is {image_size}")
    outputs = int(model.get_layer("emotion").output.shape[-1])
    if outputs != len(classes):
        raise ModelError(f"the model has {outputs} classes, params.yaml lists {len(classes)}: {classes}")


def emotion(outputs) -> np.ndarray:
    """The class probabilities of a model's outputs: the U-Net also returns its reconstruction."""
    if isinstance(outputs, dict):
        outputs = outputs["emotion"]
    return np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)


def view(images: np.ndarray, name: str) -> np.ndarray:
    """A test-time augmented view of images (N x size x size x 3): ``flip`` mirrors each left to right, a view that
    training showed the models too (augment.horizontal_flip) and that keeps a face's emotion."""
    if name == "flip":
        return images[:, :, ::-1]
    raise ValueError(f"unknown test-time augmentation {name!r}")


def classify(model: keras.Model, images: np.ndarray, batch_size: int = 32, tta: Sequence[str] = ()) -> np.ndarray:
    """Class probabilities (N x classes) of uint8 RGB images (N x size x size x 3) at the model's input size; with
    ``tta`` (params evaluate.tta), the mean of the probabilities of each image and of its views."""
    probabilities = [_classify(model, images, batch_size)]  # checks the shape before any view is made
    probabilities += [_classify(model, view(images, name), batch_size) for name in tta]
    return np.mean(probabilities, axis=0, dtype=np.float32)


def _classify(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    size = input_size(model)
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"expected images of shape (N, {size}, {size}, 3), got {images.shape}")
    if not len(images):
        return np.zeros((0, int(model.get_layer("emotion").output.shape[-1])), np.float32)
    if len(images) <= EAGER_MAX:
        # a few images (predict on one photo): tracing the network's graph takes seconds on a CPU, several times
        # longer than one eager pass; the graph pays off only over many batches
        return emotion(model(tfdata.preprocess(images), training=False))
    out = []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        # one batch shape for every call: each new shape would trace the whole network again (seconds on a CPU)
        padded = np.concatenate([batch, np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)])
        out.append(emotion(model.predict_on_batch(tfdata.preprocess(padded)))[: len(batch)])
    return np.concatenate(out)
