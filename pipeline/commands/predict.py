"""`python -m pipeline predict PATH... --model NAME`: emotions of the faces in image files, folders and videos.

Each face becomes a row: file, frame (videos), face index and box, label, confidence and every class's probability.
What the model is shown follows its training (``--faces auto``): a model trained on face crops
(augment.face_crop: true) gets every face the Haar cascade finds, cropped as in training, and a picture in which it
finds none (such as a photo that is already a tight face crop) is classified whole, as the augment and evaluate
stages treat such a picture, its row saying ``no face found: whole image used``; a model trained on whole pictures
gets the whole picture, resized, exactly as the evaluate stage shows it the Test split. ``--faces whole`` always
classifies the whole picture; ``--faces detect`` only the faces found: a picture without one gets a row with status
``no_face`` and no label.
A file that cannot be read gets a row with status ``error`` and the reason; the run goes on with the other files.
So does a file refused unopened: a symbolic link that leads out of the folder it was found in (for a file argument,
out of the link's own folder; a folder argument is followed and nothing in it may lead out of it), or a picture
against validate's rule (validate.min_width, min_height, max_aspect; a blank picture: fully transparent or one
colour). A URL is refused before any work (download it first); so are an --out or --annotate that would write over
an input or the model file.
``--model ensemble`` loads the models of params.yaml evaluate.ensemble and gives each face the mean of their
probabilities; with evaluate.tta, every model also sees each face's mirror, exactly as evaluate scores the Test split.
``--model-file exports/<model>/model.tflite`` (what ``export --format tflite`` writes) classifies with LiteRT and never
imports TensorFlow or Keras: the same probabilities, the first answer seconds sooner (no Grad-CAM on that path).
The classifier loop is pipeline/serving/predict.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import atomic
from pipeline.config import OptionError, Params, UsageError
from pipeline.data import media
from pipeline.release import registry
from pipeline.serving import arguments, ensemble, lite, predict

if TYPE_CHECKING:  # Keras (with TensorFlow) is imported only when a Keras model is loaded: seconds of start-up
    import keras

ENSEMBLE_HELP = "the mean of the probabilities of params.yaml evaluate.ensemble's models, as evaluate scores it"
FAILED = 3  # the exit status of a run in which an input failed
EPILOG = f"""exit status:
  0  every input was classified (a picture without a face, in --faces detect, counts: no face is its answer)
  1  nothing was classified: params, the model or an option cannot be used (one line says which), or a URL
  2  the command line does not parse or its options do not fit together
  {FAILED}  the rows were written, but at least one input failed: a row of status error (unreadable, not a picture,
     a link out of its folder, a picture against validate's rule, over the pixel cap, a video without a frame);
     the summary line on standard error counts the inputs classified and failed"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("paths", nargs="+", help="local image files, folders (searched recursively), videos")
    parser.add_argument("--model", required=True, help=f"{registry.MODEL_HELP}; or {ensemble.NAME}: {ENSEMBLE_HELP}")
    parser.add_argument("--model-file", type=Path, help=registry.MODEL_FILE_HELP)
    parser.add_argument(
        "--faces",
        choices=["auto", "detect", "whole"],
        default="auto",
        help="auto (default): as the model was trained (augment.face_crop: every face found, the whole picture "
        "where none is); detect: only the faces the Haar cascade finds; whole: the whole picture, one row per image "
        "or frame",
    )
    parser.add_argument("--format", choices=["csv", "json"], default="csv")
    parser.add_argument("--out", type=Path, help="write the rows here (default: standard output)")
    parser.add_argument("--every", type=int, help="classify every Nth video frame (default: predict.video_frame_step)")
    parser.add_argument(
        "--annotate", type=Path, help="write a copy of each picture with boxes and labels here, as <its file name>.png"
    )
    parser.add_argument(
        "--gradcam", action="store_true", help="also write Grad-CAM overlays of each face (needs --annotate)"
    )


def model_files(args: argparse.Namespace, params: Params) -> list[Path]:
    """The file(s) of the model(s) that --model and --model-file name (a registry reference is fetched)."""
    if lite.is_lite(args.model_file):
        return [args.model_file]
    return ensemble.locate(args.model, args.model_file, params)[1]


def load(args: argparse.Namespace, params: Params, files: list[Path]) -> list[keras.Model] | lite.LiteModel:
    """The model(s) in ``files``: an exported TFLite file through LiteRT, else Keras models."""
    if lite.is_lite(args.model_file):
        if args.gradcam:
            raise OptionError(f"--gradcam needs the Keras model's layers; {args.model_file} is a TFLite export")
        model = lite.LiteModel(args.model_file, params.image_size, params.classes, params.evaluate.tta)
        wanted = args.model.partition("@")[0]
        if model.name != wanted:
            raise OptionError(f"--model {args.model}: {args.model_file} is the export of {model.name}, not {wanted}")
        return model
    from pipeline.serving import inference

    return [inference.load_model(f) for f in files]


def refuse(args: argparse.Namespace) -> None:
    """Options that do not fit together, found before any work (each would otherwise fail only once every picture has
    been classified, or read as a traceback)."""
    if args.gradcam and args.annotate is None:
        raise UsageError("--gradcam writes its overlays into the --annotate folder: give one")
    if args.every is not None and args.every < 1:
        raise UsageError("--every must be 1 or more")
    if args.out is not None and args.out.is_dir():
        raise OptionError(f"--out {args.out}: is a folder; give the path of the file to write the rows to")
    if args.annotate is not None and args.annotate.exists() and not args.annotate.is_dir():
        raise OptionError(
            f"--annotate {args.annotate}: is a file; give a folder (created if missing) for the annotated copies"
        )
    if args.gradcam and args.model == ensemble.NAME:
        raise OptionError(f"--gradcam explains one model's evidence; --model {ensemble.NAME} averages several")


def main(params: Params, args: argparse.Namespace) -> None:
    refuse(args)
    paths = arguments.local_paths(args.paths)
    s = predict.settings(params, args.faces, args.every)
    files = model_files(args, params)
    found = list(media.find(paths, s.image_extensions))
    arguments.refuse_overwrites(found, args.out, args.annotate, files, [p for p in paths if p.is_dir()])
    gradcam = params.evaluate.gradcam_min_map_size if args.gradcam else None
    rows = list(predict.run(load(args, params, files), paths, s, args.annotate, gradcam))
    text = predict.render(rows, args.format, s.classes)
    if args.out:
        atomic.write_text(args.out, text)
    else:
        sys.stdout.write(text)
    counts = {status: sum(r["status"] == status for r in rows) for status in ("ok", "no_face", "error", "skipped")}
    whole = sum(r["message"] == predict.WHOLE_FALLBACK for r in rows)
    classified, failed = predict.outcome(rows)
    print(
        f"predict {args.model} ({s.faces}): {counts['ok']} faces classified ({whole} of them whole pictures without "
        f"a face found), {counts['no_face']} pictures without a face, {counts['error']} errors, "
        f"{counts['skipped']} files skipped; inputs: {classified} classified, {failed} failed",
        file=sys.stderr,
    )
    if failed:
        raise SystemExit(FAILED)
