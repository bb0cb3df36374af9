"""`python -m pipeline export --model NAME --format savedmodel|tflite`: a trained model for serving elsewhere.

The exported model is self-contained: it takes RGB pixel values in [0, 255] (float32, N x size x size x 3, the face
already cropped and resized as ``predict`` does) and returns the class probabilities only; the backbone's
preprocessing is folded in and the U-Net's reconstruction output left out. A JSON file beside it names the classes
in output order and the input size.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from pipeline import atomic
from pipeline.config import Params
from pipeline.release import registry
from pipeline.serving import inference


def serving_model(model: keras.Model) -> keras.Model:
    size = inference.input_size(model)
    pixels = keras.Input((size, size, 3), dtype="float32", name="pixels")
    # InceptionResNetV2's preprocess_input ("tf" mode) is exactly x / 127.5 - 1
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(pixels)
    outputs = model(scaled)
    probabilities = outputs["emotion"] if isinstance(outputs, dict) else outputs
    return keras.Model(pixels, probabilities, name=f"{model.name}_serving")


def savedmodel(model: keras.Model, out: Path) -> None:
    with atomic.directory(out) as tmp:
        serving_model(model).export(str(tmp), format="tf_saved_model", verbose=False)


def tflite(model: keras.Model, out: Path) -> None:
    # via a SavedModel: the converter's supported route for Keras 3 models
    work = Path(tempfile.mkdtemp(prefix="export-"))
    try:
        serving_model(model).export(str(work / "savedmodel"), format="tf_saved_model", verbose=False)
        tflite_from_savedmodel(work / "savedmodel", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tflite_from_savedmodel(saved: Path, out: Path) -> None:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    atomic.write_bytes(out, converter.convert())


def metadata(params: Params, name: str, fmt: str) -> dict:
    return {
        "model": name,
        "format": fmt,
        "classes": params.classes,
        "input": {
            "shape": [None, params.image_size, params.image_size, 3],
            "dtype": "float32",
            "range": [0, 255],
            "color": "RGB",
        },
        "face_crop": params.augment.face_crop,
        "face_margin": params.augment.face_margin,
    }


def main(params: Params, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline export", description=__doc__)
    parser.add_argument("--model", required=True, help=registry.MODEL_HELP)
    parser.add_argument("--model-file", type=Path, help=registry.MODEL_FILE_HELP)
    parser.add_argument("--format", choices=["savedmodel", "tflite"], required=True)
    parser.add_argument("--out", type=Path, help="default: exports/<model>/savedmodel or exports/<model>/model.tflite")
    args = parser.parse_args(argv)
    name, model_file = registry.locate(args.model, args.model_file, sorted(params.train))
    default = Path("exports") / name / ("savedmodel" if args.format == "savedmodel" else "model.tflite")
    out = args.out or default
    model = inference.load_model(model_file)
    inference.check(model, params.image_size, params.classes)
    (savedmodel if args.format == "savedmodel" else tflite)(model, out)
    atomic.write_json(out.with_name(out.name + ".json"), metadata(params, name, args.format))
    print(f"export {args.model}: {args.format} written to {out}")
