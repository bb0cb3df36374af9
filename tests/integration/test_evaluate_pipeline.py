"""The evaluate stage with the real tools on tiny data: `dvc repro` runs the whole pipeline once in a temporary
workspace (test profile: one epoch per model), then the tests read its outputs, check `dvc plots show` and
`dvc metrics diff`, and that `predict` on the Test folder scores what `evaluate` scored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline import config
from pipeline.data.classes import normalise
from tests import workspace

pytestmark = pytest.mark.integration

MODELS = ("irv2", "irv2_unet")
ROWS = (*MODELS, "ensemble")  # evaluate.ensemble: the mean of both models' probabilities


@pytest.fixture(scope="module")
def repo(reproduced_workspace, tmp_path_factory) -> Path:
    """A workspace where `dvc repro` has run every stage, committed so that diffs compare against it."""
    return workspace.copy(reproduced_workspace, tmp_path_factory.mktemp("evaluate") / "ws")


def test_evaluate_scores_both_models_on_the_test_split_only(repo):
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    assert set(metrics) == set(ROWS)
    # the few numbers `dvc exp show` sets side by side: the same figures, rounded
    headline = json.loads((repo / "metrics/headline.json").read_text())
    assert headline == {k: {n: round(metrics[n][k], 4) for n in ROWS} for k in ("macro_f1", "accuracy")}
    tests = sum(1 for _ in (repo / "data/raw/Test").rglob("*.jpg"))
    for name in ROWS:
        m = metrics[name]
        assert m["test_images"] == tests
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1 and m["log_loss"] > 0
        assert sum(c["support"] for c in m["per_class"].values()) == tests
        confusion = pd.read_csv(repo / f"plots/confusion/{name}.csv")
        assert list(confusion.columns[:2]) == ["actual", "predicted"] and len(confusion) == tests
        assert (confusion["actual"] == confusion["predicted"]).mean() == pytest.approx(m["accuracy"], abs=1e-4)
        assert (repo / f"reports/figures/confusion_{name}.png").stat().st_size > 0
    report = (repo / "reports/evaluation.md").read_text()
    assert "**irv2**" in report and "**irv2_unet**" in report and "ensemble" in report
    # the report names its data; the study's published row only where evaluate.reference sets it (here: none)
    assert "Test images of `data/raw`" in report and "published" not in report and "synthetic" not in report
    assert "figures/gradcam.png" in report and (repo / "reports/figures/gradcam.png").stat().st_size > 0
    assert "evaluate" not in workspace.dvc(repo, "status", "evaluate").stdout


def test_dvc_plots_show_renders_the_confusion_matrices(repo):
    out = repo.parent / "plots-html"
    workspace.dvc(repo, "plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()
    for name in ROWS:
        assert f"plots/confusion/{name}.csv" in html
    assert "gradcam.png" in html
    shown = json.loads(workspace.dvc(repo, "plots", "show", "--json").stdout)["data"]
    confusion = [k for k in shown if k.startswith("plots/confusion")]
    assert len(confusion) == len(ROWS)
    assert all("actual" in json.dumps(shown[k]) and "predicted" in json.dumps(shown[k]) for k in confusion)


def test_predict_on_the_test_folder_scores_what_evaluate_scored(repo):
    params = config.load(repo / "params.yaml")
    out = repo.parent / "predictions.csv"
    workspace.sh(
        repo, sys.executable, "-m", "pipeline", "predict", "data/raw/Test", "--model", "irv2", "--out", str(out)
    )
    rows = pd.read_csv(out)
    files = sorted(str(p.relative_to(repo)) for p in (repo / "data/raw/Test").rglob("*.jpg"))
    assert sorted(rows["file"]) == files  # one row per image
    truth = rows["file"].map(lambda f: normalise(Path(f).parent.name, params.classes, params.class_aliases))
    accuracy = (rows["label"] == truth).mean()
    evaluated = json.loads((repo / "metrics/evaluate.json").read_text())["irv2"]["accuracy"]
    assert accuracy == pytest.approx(evaluated, abs=1e-4)
    # and image by image, the same label as evaluate's
    confusion = pd.read_csv(repo / "plots/confusion/irv2.csv")
    evaluated_labels = dict(zip("data/raw/" + confusion["path"], confusion["predicted"], strict=True))
    assert dict(zip(rows["file"], rows["label"], strict=True)) == evaluated_labels


def test_predict_takes_a_registry_reference(repo):
    """`--model irv2@prod` fetches the production model from the DVC remote (GTO tags of the first DAG run's
    promotion); in this clone of that promotion it is the workspace's own model, so every image gets the label
    evaluate gave it. (Export resolves `--model` with the same function, registry.locate.)"""
    out = repo.parent / "prod.csv"
    cmd = [sys.executable, "-m", "pipeline", "predict", "data/raw/Test", "--model", "irv2@prod", "--out", str(out)]
    workspace.sh(repo, *cmd)
    assert (repo / ".registry/irv2/v1.0.0/model.keras").is_file()
    rows = pd.read_csv(out)
    confusion = pd.read_csv(repo / "plots/confusion/irv2.csv")
    evaluated_labels = dict(zip("data/raw/" + confusion["path"], confusion["predicted"], strict=True))
    assert dict(zip(rows["file"], rows["label"], strict=True)) == evaluated_labels


def test_the_gate_rescores_a_model_as_evaluate_scored_it(repo):
    """A champion re-scored by the promotion gate (its Keras scorer, fed the model file fetched from the registry) gets
    exactly the figures the evaluate stage wrote for the same model: the same code on the same Test split. What makes
    storing evaluate's figures in the score cache at a promotion sound."""
    from pipeline.release import gate

    params = config.load(repo / "params.yaml")
    evaluated = json.loads((repo / "metrics/evaluate.json").read_text())["irv2_unet"]
    rescored = gate.keras_scorer(repo, params).score("irv2_unet", repo / "models/irv2_unet/model.keras")
    assert rescored == {k: v for k, v in evaluated.items() if k in rescored}
    assert {"accuracy", "macro_f1", "per_class", "log_loss", "test_images"} <= set(rescored)


def test_metrics_diff_shows_a_params_change(repo):
    """Runs last: it changes the workspace. A new learning rate for irv2 changes its weights, so its Test figures
    (more epochs would not do: with no better validation score, training keeps the first epoch's weights)."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["train"]["irv2"]["learning_rate"] *= 3
    workspace.write_params(repo, raw)
    dry = workspace.dvc(repo, "repro", "--dry").stdout
    assert "Running stage 'train@irv2'" in dry and "Running stage 'train@irv2_unet'" not in dry
    workspace.dvc(repo, "repro")
    diff = json.loads(workspace.dvc(repo, "metrics", "diff", "--json").stdout)
    changed = diff.get("metrics/evaluate.json", {})
    assert any(key.startswith("irv2.") for key in changed), diff
    assert "irv2.log_loss" in changed
    assert not any(key.startswith("irv2_unet.") for key in changed)  # its model did not change
    text = workspace.dvc(repo, "metrics", "diff").stdout
    assert "metrics/evaluate.json" in text and "irv2.log_loss" in text
