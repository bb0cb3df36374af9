"""Classifying with an exported TFLite model through LiteRT (``ai_edge_litert``), without importing TensorFlow.

``predict --model-file exports/<model>/model.tflite`` takes this path: importing LiteRT takes well under a second,
TensorFlow and Keras about twelve on two CPU cores, and the export holds what predict would otherwise compute (the
backbone's preprocessing, the ensemble's mean, evaluate.tta's mirrored view), so the probabilities are the same
(tests/unit/test_export.py checks them against the Keras model). The JSON file that export writes beside the model
says which classes, input size and test-time augmentation it has; a model that does not match params.yaml is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.serving.errors import ModelError

SUFFIX = ".tflite"


def is_lite(path: Path | None) -> bool:
    return path is not None and path.suffix == SUFFIX


def metadata_file(path: Path) -> Path:
    """The JSON that export writes beside an exported model (either format): classes, input, members, TTA."""
    return path.with_name(path.name + ".json")


class LiteModel:
    """An exported model: uint8 RGB faces (N x size x size x 3) in, class probabilities (N x classes) out."""

    def __init__(self, path: Path, image_size: int, classes: list[str], tta: list[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir() or not self.path.is_file():
            raise ModelError(f"{path}: no exported TFLite model here (run `python -m pipeline export --format tflite`)")
        meta = self._metadata()
        self.name = str(meta.get("model", self.path.parent.name))
        size = int(meta["input"]["shape"][1])
        if size != image_size:
            raise ModelError(f"{path}: the model takes {size} px images, params.yaml image_size is {image_size}")
        if list(meta["classes"]) != list(classes):
            raise ModelError(f"{path}: the model's classes are {meta['classes']}, params.yaml lists {classes}")
        if list(meta.get("tta", [])) != list(tta):
            raise ModelError(
                f"{path}: exported with test-time augmentation {meta.get('tta', [])}, params.yaml evaluate.tta is "
                f"{list(tta)}; export it again so that predict gives what evaluate scores"
            )
        from ai_edge_litert.interpreter import Interpreter  # imported here: only this path needs it

        try:
            self._interpreter = Interpreter(model_path=str(self.path))
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: LiteRT cannot load it ({str(exc).strip().splitlines()[0]})") from None
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._interpreter.resize_tensor_input(self._input, [1, size, size, 3])
        self._interpreter.allocate_tensors()
        self.image_size, self.classes = size, list(classes)

    def _metadata(self) -> dict:
        meta = metadata_file(self.path)
        if not meta.is_file():
            raise ModelError(
                f"{self.path}: {meta.name} is missing beside it; export writes it (classes, input size, test-time "
                "augmentation), and predict needs it to know what the model's outputs mean"
            )
        try:
            data = json.loads(meta.read_text())
            int(data["input"]["shape"][1]), list(data["classes"])  # the keys predict reads, and their types
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"{meta}: not the metadata that export writes ({type(exc).__name__}: {exc})") from None
        return data

    def classify(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of uint8 RGB images at the model's input size, one image per call to the
        interpreter (its input shape is fixed once: resizing a tensor re-plans the whole graph)."""
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"expected images of shape (N, {size}, {size}, 3), got {images.shape}")
        out = np.zeros((len(images), len(self.classes)), np.float32)
        for i, image in enumerate(images):
            self._interpreter.set_tensor(self._input, image[None].astype(np.float32))
            self._interpreter.invoke()
            out[i] = self._interpreter.get_tensor(self._output)[0]
        return out
