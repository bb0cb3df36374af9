"""`python -m pipeline export --model NAME --format savedmodel|tflite`: a trained model for serving elsewhere.

The exported model is self-contained: it takes RGB pixel values in [0, 255] (float32, N x size x size x 3, the face
already cropped and resized as ``predict`` does) and returns the class probabilities only; the backbone's
preprocessing is folded in and the U-Net's reconstruction output left out. ``--model ensemble`` exports one model
of the members of evaluate.ensemble on one shared input, returning the mean of their probabilities; evaluate.tta
(the mirrored view) is folded in too, so the export gives what evaluate and predict compute. A JSON file beside it
names the classes in output order, the input size, the members and the test-time augmentation.
The export itself is pipeline/serving/export.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import atomic
from pipeline.config import Params
from pipeline.release import registry
from pipeline.serving import ensemble, export, inference, lite


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--model", required=True, help=f"{registry.MODEL_HELP}; or {ensemble.NAME} (evaluate.ensemble)")
    parser.add_argument("--model-file", type=Path, help=registry.MODEL_FILE_HELP)
    parser.add_argument("--format", choices=["savedmodel", "tflite"], required=True)
    parser.add_argument("--out", type=Path, help="default: exports/<model>/savedmodel or exports/<model>/model.tflite")


def main(params: Params, args: argparse.Namespace) -> None:
    name, model_files = ensemble.locate(args.model, args.model_file, params)
    default = Path("exports") / name / ("savedmodel" if args.format == "savedmodel" else "model.tflite")
    out = args.out or default
    models = [inference.load_model(f) for f in model_files]
    for model in models:
        inference.check(model, params.image_size, params.classes)
    (export.savedmodel if args.format == "savedmodel" else export.tflite)(models, out, params.evaluate.tta)
    atomic.write_json(lite.metadata_file(out), export.metadata(params, name, args.format))
    print(f"export {args.model}: {args.format} written to {out}")
