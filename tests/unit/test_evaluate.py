"""The evaluate stage's pieces and its scoring library on known predictions: figures, confusion matrix, the Test-only
split, the report."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline import __main__ as cli
from pipeline import config
from pipeline.data import faces
from pipeline.data.images import read_rgb
from pipeline.evaluation import report as evaluation_report
from pipeline.evaluation import scoring
from pipeline.serving import ensemble, inference
from pipeline.stages import evaluate
from tests import workspace
from tests.unit import tiny_models

CLASSES = ["joy", "sadness", "fear"]
LABELS = np.array([0, 0, 0, 1, 1, 2])
PREDICTED = np.array([0, 0, 1, 1, 2, 0])


def one_hot_probabilities(predicted: np.ndarray, n: int, confidence: float = 0.7) -> np.ndarray:
    p = np.full((len(predicted), n), (1 - confidence) / (n - 1))
    p[np.arange(len(predicted)), predicted] = confidence
    return p


def test_confusion_counts_actual_by_row():
    matrix = evaluate.confusion(LABELS, PREDICTED, len(CLASSES))
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 0]]
    assert matrix.sum() == len(LABELS)


def test_confusion_keeps_a_class_nobody_predicted_or_has():
    matrix = evaluate.confusion(np.array([0, 0]), np.array([0, 1]), 4)
    assert matrix.shape == (4, 4)
    assert matrix[:, 3].sum() == matrix[3].sum() == 0


def test_confusion_rows_are_one_per_image_with_names():
    paths = [f"Test/x/{i}.jpg" for i in range(len(LABELS))]
    frame = evaluate.confusion_rows(paths, LABELS, PREDICTED, CLASSES)
    assert list(frame.columns) == ["actual", "predicted", "path"]
    assert len(frame) == len(LABELS)
    assert frame.iloc[2].tolist() == ["joy", "sadness", "Test/x/2.jpg"]
    assert frame.iloc[5].tolist() == ["fear", "joy", "Test/x/5.jpg"]


def test_score_on_known_predictions():
    figures = scoring.score(LABELS, one_hot_probabilities(PREDICTED, 3), CLASSES)
    assert figures["accuracy"] == pytest.approx(3 / 6, abs=1e-4)
    # recalls: joy 2/3, sadness 1/2, fear 0
    assert figures["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3, abs=1e-4)
    joy = figures["per_class"]["joy"]
    assert joy["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert joy["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert joy["support"] == 3
    f1 = [2 / 3, 0.5, 0.0]  # sadness: precision 1/2, recall 1/2
    assert figures["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-4)
    assert figures["weighted_f1"] == pytest.approx(np.average(f1, weights=[3, 2, 1]), abs=1e-4)
    # 3 right at p=0.7, 3 wrong at p=0.15
    assert figures["log_loss"] == pytest.approx(-(3 * np.log(0.7) + 3 * np.log(0.15)) / 6, abs=1e-4)
    assert figures["test_images"] == 6


def test_test_split_reads_only_usable_test_rows_as_training_saw_them(tiny_raw):
    manifest = pd.DataFrame(
        [
            {
                "path": p.relative_to(tiny_raw).as_posix(),
                "split": p.parts[-3].lower(),
                "label": p.parent.name.lower(),
                "error": None,
            }
            for p in sorted(tiny_raw.rglob("*.jpg"))
        ]
    )
    broken = manifest.index[manifest["split"] == "test"][0]
    manifest.loc[broken, "error"] = "zero-byte file"
    params = tiny_models.params()
    rows, images, missing = scoring.test_split(manifest, tiny_raw, params)
    assert set(rows["path"].str.split("/").str[0]) == {"Test"}
    assert len(rows) == 5 and manifest.loc[broken, "path"] not in set(rows["path"])
    assert images.shape == (5, 75, 75, 3) and images.dtype == np.uint8
    expected, _ = faces.prepare(read_rgb(tiny_raw / rows["path"][0]), 75, None)
    np.testing.assert_array_equal(images[0], expected)
    assert missing == 0


def test_gradcam_picks_the_same_first_images_per_class():
    rows = pd.DataFrame({"label": ["joy", "fear", "joy", "joy", "fear"]})
    assert evaluate.gradcam_picks(rows, ["joy", "sadness", "fear"], 2) == [0, 2, 1, 4]


STUDY = {"Study: InceptionResNetV2 (published)": {"accuracy": 0.6667, "macro_f1": 0.27, "per_class_f1": {"joy": 0.84}}}


@pytest.mark.parametrize("reference", [STUDY, {}], ids=["configured", "none"])
def test_report_sets_models_beside_the_published_reference(tmp_path, reference):
    params = config.from_dict(workspace.profile_params(), {"evaluate": {"reference": reference}})
    n = len(params.classes)
    labels = np.arange(n).repeat(2)
    results = {}
    for name, shift in (("irv2", 0), ("irv2_unet", 1)):
        predicted = (labels + shift * (labels % 2)) % n
        results[name] = scoring.score(labels, one_hot_probabilities(predicted, n), params.classes)
        results[name]["confusion"] = evaluate.confusion(labels, predicted, n)
    rows = pd.DataFrame(
        {"path": [f"Test/x/{i}.jpg" for i in range(len(labels))], "label": [params.classes[i] for i in labels]}
    )
    text = evaluation_report.markdown(
        params, rows, results, {"irv2 backbone": "block35_10_ac"}, tmp_path, tmp_path / "figures", "data/raw"
    )
    summary = [line for line in text.splitlines() if line.startswith("| ")]
    irv2 = next(line for line in summary if line.startswith("| **irv2** "))
    assert re.search(r"\|\s+1\.0000 \|", irv2)  # all right
    assert any(line.startswith("| **irv2_unet** ") for line in summary)
    assert f"{len(labels)} Test images of `data/raw`" in text and "synthetic" not in text
    published = [line for line in summary if "published" in line]
    if reference:  # the row and the note on what it is
        assert "0.6667" in published[0] and "0.2700" in published[0] and "0.8400" in published[0]
        assert "Rows in italics are published figures" in text
    else:
        assert not published and "italics" not in text
    assert "figures/gradcam.png" in text and "figures/confusion_irv2_unet.png" in text
    assert "`block35_10_ac`" in text


def test_confusion_png_is_an_image(tmp_path):
    path = tmp_path / "c.png"
    evaluate.confusion_png(path, np.array([[3, 1], [0, 2]]), ["joy", "fear"], "t")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100
    assert not list(Path(tmp_path).glob(".tmp-*"))


def test_test_split_crops_faces_when_training_did(tiny_raw):
    params = tiny_models.params()
    params = params.model_copy(update={"augment": params.augment.model_copy(update={"face_crop": True})})
    paths = sorted(p.relative_to(tiny_raw).as_posix() for p in (tiny_raw / "Test").rglob("*.jpg"))
    manifest = pd.DataFrame({"path": paths, "split": "test", "label": "joy", "error": None})
    rows, images, missing = scoring.test_split(manifest, tiny_raw, params)
    detector = faces.FaceDetector()
    views = [faces.prepare(read_rgb(tiny_raw / p), 75, detector, params.augment.face_margin) for p in rows["path"]]
    for image, (view, _) in zip(images, views, strict=True):
        np.testing.assert_array_equal(image, view)
    assert missing == sum(found is False for _, found in views)


def test_cli_takes_each_model_with_its_file(capsys):
    options = ("manifest", "raw", "metrics", "plots", "report", "figures", "headline")
    paths = [a for option in options for a in (f"--{option}", "x")]
    with pytest.raises(SystemExit):
        cli.run(tiny_models.params(), ["evaluate", "--models", "irv2", *paths])
    assert "give NAME=MODEL_FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.run(tiny_models.params(), ["evaluate", "--models", "resnet=r.keras", *paths])
    assert "unknown model(s) ['resnet']" in capsys.readouterr().err


def test_ensemble_is_the_mean_of_its_members():
    a = one_hot_probabilities(PREDICTED, 3, 0.7)
    b = one_hot_probabilities(LABELS, 3, 0.9)
    mean = ensemble.mean([a, b])
    np.testing.assert_allclose(mean, (a + b) / 2, atol=1e-6)
    np.testing.assert_allclose(mean.sum(axis=1), 1, atol=1e-6)


def test_flip_tta_is_the_mean_of_image_and_mirror():
    model = tiny_models.model("irv2")
    images = np.random.default_rng(3).integers(0, 256, (3, 75, 75, 3), dtype=np.uint8)
    mirrored = images[:, :, ::-1]
    expected = (inference.classify(model, images) + inference.classify(model, mirrored)) / 2
    np.testing.assert_allclose(inference.classify(model, images, 2, ["flip"]), expected, atol=1e-6)
    np.testing.assert_array_equal(inference.view(images, "flip")[:, :, 0], images[:, :, -1])


def test_report_names_the_ensemble_and_the_tta():
    params = tiny_models.params()
    params = params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"tta": ["flip"]})})
    notes = " ".join(evaluation_report.method_notes(params, {"irv2": {}, "irv2_unet": {}, "ensemble": {}}))
    assert "**ensemble**: the mean of the class probabilities of **irv2** and **irv2_unet**" in notes
    assert "Test-time augmentation (`evaluate.tta`: flip)" in notes
    assert evaluation_report.method_notes(tiny_models.params(), {"irv2": {}}) == []


@pytest.mark.slow
def test_evaluate_scores_the_ensemble_from_the_members_probabilities(tiny_raw, tmp_path, monkeypatch):
    """A third row, `ensemble`, in the metrics, the plots and the report, from the two models' probabilities (no
    third inference pass); with evaluate.tta every row sees each image and its mirror."""
    params = tiny_models.params()
    params = params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"tta": ["flip"]})})
    paths = sorted(p.relative_to(tiny_raw).as_posix() for p in tiny_raw.rglob("*.jpg"))
    manifest = pd.DataFrame(
        {"path": paths, "split": [p.split("/")[0].lower() for p in paths], "error": None}
        | {"label": [p.split("/")[1].lower() for p in paths]}
    )
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    # the tiny models stand in for the trained files (saving two full backbones would take long)
    monkeypatch.setattr(inference, "load_model", lambda path: tiny_models.model(Path(path).parent.name))
    passes = []
    probabilities = scoring.probabilities
    monkeypatch.setattr(scoring, "probabilities", lambda *a: passes.append(a) or probabilities(*a))
    args = argparse.Namespace(
        manifest=tmp_path / "manifest.csv",
        raw=tiny_raw,
        metrics=tmp_path / "metrics/evaluate.json",
        plots=tmp_path / "plots/confusion",
        report=tmp_path / "reports/evaluation.md",
        figures=tmp_path / "reports/figures",
        headline=tmp_path / "metrics/headline.json",
    )
    models = {name: Path(f"models/{name}/model.keras") for name in ("irv2", "irv2_unet")}
    metrics = evaluate.run(params, models, args)

    assert len(passes) == 2  # one per model: the ensemble reuses their probabilities
    assert list(metrics) == ["irv2", "irv2_unet", "ensemble"]
    assert json.loads(args.metrics.read_text()) == metrics
    headline = json.loads(args.headline.read_text())
    assert headline == {k: {n: round(m[k], 4) for n, m in metrics.items()} for k in ("macro_f1", "accuracy")}
    assert set(metrics["ensemble"]) == set(metrics["irv2"])
    rows, images, _ = scoring.test_split(manifest, tiny_raw, params)
    labels = scoring.labels(rows, params)
    batch = params.evaluate.batch_size
    each = {n: inference.classify(tiny_models.model(n), images, batch, ["flip"]) for n in models}
    expected = {
        "irv2": scoring.score(labels, each["irv2"], params.classes),
        "ensemble": scoring.score(labels, (each["irv2"] + each["irv2_unet"]) / 2, params.classes),
    }
    for name, figures in expected.items():
        for key in ("accuracy", "macro_f1", "log_loss"):
            assert metrics[name][key] == pytest.approx(figures[key], abs=2e-4), (name, key)
    plot = pd.read_csv(args.plots / "ensemble.csv")
    assert list(plot.columns) == ["actual", "predicted", "path"] and len(plot) == len(rows)
    report = args.report.read_text()
    assert any(line.startswith("| **ensemble** ") for line in report.splitlines())
    assert (args.figures / "confusion_ensemble.png").is_file()


def test_cli_needs_every_member_of_the_ensemble(capsys):
    options = ("manifest", "raw", "metrics", "plots", "report", "figures", "headline")
    paths = [a for option in options for a in (f"--{option}", "x")]
    with pytest.raises(SystemExit):
        cli.run(tiny_models.params(), ["evaluate", "--models", "irv2=a.keras", *paths])
    assert "the ensemble (params.yaml evaluate.ensemble) needs ['irv2_unet']" in capsys.readouterr().err
