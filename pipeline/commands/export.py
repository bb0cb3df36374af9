"""`python -m pipeline export --model NAME --format savedmodel|tflite|backbone`: a trained model for serving elsewhere,
or its backbone's weights to start another training from.

The exported model is self-contained: it takes RGB pixel values in [0, 255] (float32, N x size x size x 3, the face
already cropped and resized as ``predict`` does) and returns the class probabilities only; the backbone's
preprocessing is folded in and the U-Net's reconstruction output left out. ``--model ensemble`` exports one model
of the members of evaluate.ensemble on one shared input, returning the mean of their probabilities; evaluate.tta
(the mirrored view) is folded in too, so the export gives what evaluate and predict compute. A JSON file beside it
names the classes in output order, the input size, the members and the test-time augmentation.
``--format backbone`` writes the weights of the model's InceptionResNetV2 alone (exports/<model>/backbone.weights.h5),
the file a training reads as ``train.<model>.weights``: pretrain on a large set of faces, then start a small set's
training of either architecture, at any image size, from what the large one learned.
The export itself is pipeline/serving/export.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import atomic
from pipeline.config import OptionError, Params, UsageError
from pipeline.release import registry
from pipeline.serving import ensemble, export, inference, lite

BACKBONE = "backbone"
WEIGHTS_SUFFIX = ".weights.h5"  # Keras chooses the weights-only format by it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--model", required=True, help=f"{registry.MODEL_HELP}; or {ensemble.NAME} (evaluate.ensemble)")
    parser.add_argument("--model-file", type=Path, help=registry.MODEL_FILE_HELP)
    parser.add_argument("--format", choices=["savedmodel", "tflite", BACKBONE], required=True)
    parser.add_argument(
        "--out",
        type=Path,
        help="default: exports/<model>/savedmodel, exports/<model>/model.tflite or exports/<model>/backbone.weights.h5",
    )


def main(params: Params, args: argparse.Namespace) -> None:
    name, model_files = ensemble.locate(args.model, args.model_file, params)
    if args.format == BACKBONE:
        backbone(params, name, model_files, args.out)
        return
    default = Path("exports") / name / ("savedmodel" if args.format == "savedmodel" else "model.tflite")
    out = args.out or default
    refuse_overwrites(out, args.format, model_files, lite.metadata_file(out))
    models = [inference.load_model(f) for f in model_files]
    for model in models:
        inference.check(model, params.image_size, params.classes)
    (export.savedmodel if args.format == "savedmodel" else export.tflite)(models, out, params.evaluate.tta)
    atomic.write_json(lite.metadata_file(out), export.metadata(params, name, args.format))
    print(f"export {args.model}: {args.format} written to {out}")


def backbone(params: Params, name: str, model_files: list[Path], out: Path | None) -> None:
    if name == ensemble.NAME:
        raise UsageError(f"--format {BACKBONE} exports one model's backbone: name a model, not {ensemble.NAME}")
    out = out or Path("exports") / name / f"{BACKBONE}{WEIGHTS_SUFFIX}"
    if not out.name.endswith(WEIGHTS_SUFFIX):
        raise UsageError(f"--out {out}: a backbone's weights file must end with {WEIGHTS_SUFFIX}")
    refuse_overwrites(out, BACKBONE, model_files)
    model = inference.load_model(model_files[0])
    inference.check(model, params.image_size, params.classes)
    export.backbone_weights(model, out)
    print(f"export {name}: its InceptionResNetV2 weights written to {out} (train.<model>.weights: {out})")


SUFFIXES = {"tflite": ".tflite", BACKBONE: WEIGHTS_SUFFIX}  # what an earlier export of a file form is called


def refuse_overwrites(out: Path, form: str, model_files: list[Path], metadata: Path | None = None) -> None:
    """OptionError before any work when writing ``out`` (or its ``metadata`` file) would replace a model file it
    reads, or a file or folder that no earlier export of this form wrote: a SavedModel replaces its folder whole."""
    outputs = {"--out": out} | ({"its metadata file": metadata} if metadata is not None else {})
    for model_file in model_files:
        atomic.keep_apart(outputs, {"the model file": model_file})
    if metadata is not None and metadata.exists() and not out.exists():
        raise OptionError(
            f"--out {out}: {metadata}, which export writes beside it, exists without an export; give another --out"
        )
    if not out.exists():
        return
    if form == "savedmodel":
        if out.is_dir() and (not any(out.iterdir()) or (out / "saved_model.pb").is_file()):
            return  # empty, or an earlier export: replaced as asked
        raise OptionError(
            f"--out {out}: exists and is not a SavedModel; the export replaces its --out whole, so give a new folder "
            f"or an earlier export's"
        )
    if out.is_dir():
        raise OptionError(f"--out {out}: is a folder; give the file name of the {form} export")
    if not out.name.endswith(SUFFIXES[form]):
        raise OptionError(
            f"--out {out}: exists and is not a {form} export (a {SUFFIXES[form]} file); give a new file or an "
            f"earlier export's"
        )
