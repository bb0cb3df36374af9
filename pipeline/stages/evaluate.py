"""Stage `evaluate`: every trained model on the Test split only, each image seen exactly as training saw it.

Test images go through the same ``faces.prepare`` as the training images did in the augment stage (face crop or not,
margin, image size) and the same backbone preprocessing. Per model: the figures of ``classification_metrics`` plus
the log loss (it moves with any change of the weights, where accuracy on a small split often does not) and the
confusion matrix, as a `dvc plots` CSV and a PNG; the same for the ensemble (evaluate.ensemble), the mean of its
members' probabilities. With evaluate.tta every model sees each image and its mirror too. Grad-CAM heat maps of
a few images per class, and a report that sets the models side by side with the study's published figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from pipeline import atomic
from pipeline.config import Params, UsageError
from pipeline.evaluation import draw, explain, scoring, uncertainty
from pipeline.evaluation import report as evaluation_report
from pipeline.serving import ensemble, inference


def confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, actual class by row and predicted class by column."""
    return confusion_matrix(labels, predicted, labels=list(range(num_classes)))


def confusion_rows(paths: list[str], labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per image, as DVC's confusion template reads it (actual, predicted), and which image it is."""
    return pd.DataFrame(
        {"actual": [classes[i] for i in labels], "predicted": [classes[i] for i in predicted], "path": paths}
    )


def confusion_png(path: Path, matrix: np.ndarray, classes: list[str], title: str) -> None:
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues", vmin=0)
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=9)
    dark = matrix.max() / 2 if matrix.max() else 1
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color="white" if count > dark else "black")
    with atomic.target(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def gradcam_picks(rows: pd.DataFrame, classes: list[str], per_class: int) -> list[int]:
    """The first ``per_class`` Test images of each class (by path): the same images for every model."""
    return [i for label in classes for i in rows.index[rows["label"] == label][:per_class]]


def gradcam_panels(model: keras.Model, name: str, images: np.ndarray, params: Params) -> tuple[list[list], dict]:
    """Per image, one titled overlay per explained map; and which layer each map is."""
    result = explain.GradCam(model, params.evaluate.gradcam_min_map_size)(images)
    panels = [
        [
            (
                f"{name} {t.title}: {params.classes[result.explained[i]]} {result.probabilities[i].max():.2f}",
                draw.overlay(image, result.heatmaps[t.title][i]),
            )
            for t in result.targets
        ]
        for i, image in enumerate(images)
    ]
    return panels, {f"{name} {t.title}": t.layer for t in result.targets}


def score_probabilities(
    probabilities: np.ndarray, name: str, rows: pd.DataFrame, params: Params, plots: Path, figures: Path
) -> dict:
    """One row's figures from its probabilities of the prepared Test images; writes its confusion matrix (CSV for
    DVC, and PNG)."""
    labels = scoring.labels(rows, params)
    result = scoring.score(labels, probabilities, params.classes)
    predicted = probabilities.argmax(axis=1)
    groups = uncertainty.subjects(rows["path"], params.augment.group_regex)
    result["ci95"] = uncertainty.interval(labels, predicted, params.seed, groups)
    with atomic.target(plots / f"{name}.csv") as tmp:
        confusion_rows(list(rows["path"]), labels, predicted, params.classes).to_csv(tmp, index=False)
    result["confusion"] = confusion(labels, predicted, len(params.classes))
    confusion_png(figures / f"confusion_{name}.png", result["confusion"], params.classes, f"{name}: Test split")
    return result


# the figures `dvc exp show` compares recipes by: Test macro F1 and accuracy of each row (evaluate.json has the rest)
HEADLINE = ("macro_f1", "accuracy")


def headline(metrics: dict) -> dict:
    """A few numbers of ``metrics``, for a table of experiments that fits a screen: figure, then row (the columns
    `macro_f1.irv2`, ...; evaluate.json's own are `irv2.macro_f1`, ..., so DVC need not prefix them by file)."""
    return {key: {name: round(row[key], 4) for name, row in metrics.items()} for key in HEADLINE}


def run(params: Params, models: dict[str, Path], args: argparse.Namespace) -> dict:
    """Score ``models`` (name -> model file), and the ensemble of params' evaluate.ensemble, on the Test split;
    write the stage's outputs named in ``args``."""
    rows, images, faces_missing = scoring.test_split(pd.read_csv(args.manifest), args.raw, params)
    picks = gradcam_picks(rows, params.classes, params.evaluate.gradcam_per_class)
    grid_rows = [[(f"{Path(rows['path'][i]).name} ({rows['label'][i]})", images[i])] for i in picks]
    results, layers, probabilities = {}, {}, {}
    for name, model_file in models.items():  # one full InceptionResNetV2 in memory at a time
        model = inference.load_model(model_file)
        probabilities[name] = scoring.probabilities(model, images, params)
        results[name] = score_probabilities(probabilities[name], name, rows, params, args.plots, args.figures)
        panels, model_layers = gradcam_panels(model, name, images[picks], params)
        for grid_row, extra in zip(grid_rows, panels, strict=True):
            grid_row.extend(extra)
        layers.update(model_layers)
        del model
    if params.evaluate.ensemble:  # from the members' probabilities above: no model is run again
        mean = ensemble.mean([probabilities[m] for m in params.evaluate.ensemble])
        results[ensemble.NAME] = score_probabilities(mean, ensemble.NAME, rows, params, args.plots, args.figures)
    if params.augment.face_crop:
        for result in results.values():
            result["faces_missing"] = faces_missing  # these were classified whole, as in training
    explain.grid(args.figures / "gradcam.png", grid_rows, "Grad-CAM on Test images: the predicted class's evidence")
    metrics = {n: {k: v for k, v in r.items() if k != "confusion"} for n, r in results.items()}
    atomic.write_json(args.metrics, metrics)
    atomic.write_json(args.headline, headline(metrics))
    report = evaluation_report.markdown(
        params, rows, results, layers, args.report.parent, args.figures, args.raw.as_posix()
    )
    atomic.write_text(args.report, report)
    return metrics


def _model(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"{spec!r}: give NAME=MODEL_FILE, as dvc.yaml does")
    return name, Path(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--models", nargs="+", type=_model, required=True, metavar="NAME=MODEL_FILE")
    for option in ("--manifest", "--raw", "--metrics", "--report", "--figures"):
        parser.add_argument(option, type=Path, required=True)
    parser.add_argument("--headline", type=Path, required=True, help="Test macro F1 and accuracy per row (JSON)")
    parser.add_argument("--plots", type=Path, required=True, help="one <model>.csv per model")


def main(params: Params, args: argparse.Namespace) -> None:
    models = dict(args.models)
    unknown = sorted(set(models) - set(params.train))
    if unknown:
        raise UsageError(f"unknown model(s) {unknown}: params.yaml trains {sorted(params.train)}")
    absent = [m for m in params.evaluate.ensemble if m not in models]
    if absent:
        raise UsageError(f"the ensemble (params.yaml evaluate.ensemble) needs {absent}: give each with --models")
    outputs = {o: getattr(args, o[2:]) for o in ("--metrics", "--report", "--figures", "--headline", "--plots")}
    atomic.keep_apart(
        outputs, {"--manifest": args.manifest, "--raw": args.raw} | {f"--models {n}=": f for n, f in models.items()}
    )
    for name, m in run(params, models, args).items():
        print(
            f"evaluate {name}: Test accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f} "
            f"({m['test_images']} images)"
        )
