"""The tune stage with the real tools on tiny data: DVC runs it, Keras Tuner searches. Each trial trains IRv2 for one
epoch on the test profile's tiny dataset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from pipeline import config
from tests import workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tuned(reproduced_workspace, tmp_path_factory) -> Path:
    """A workspace where `dvc repro` has run every stage, tune@irv2 among them."""
    return workspace.copy(reproduced_workspace, tmp_path_factory.mktemp("tune") / "ws")


def test_dvc_runs_the_tune_stage(tuned):
    params = config.load(tuned / "params.yaml")
    hparams = json.loads((tuned / "models/irv2/hparams.json").read_text())
    assert set(hparams) == set(params.tune.space)
    config.replace(params.train["irv2"], hparams, "hparams.json")  # what train --hparams will apply
    metrics = json.loads((tuned / "metrics/tune/irv2.json").read_text())
    assert metrics["trials"] == params.tune.max_trials and metrics["best_hparams"] == hparams
    rows = list(csv.DictReader((tuned / "plots/tune/irv2.csv").open()))
    assert len(rows) == params.tune.max_trials and 0 <= float(rows[0]["objective"]) <= 1
    # the search state is no output: a clone restored from the DVC remote has none, and the stage is in the run-cache
    assert not (tuned / ".tuner").exists()
    assert "tune@irv2" not in workspace.dvc(tuned, "status", "tune@irv2").stdout


def test_a_tune_param_reruns_tune_and_what_follows_only(tuned):
    original = (tuned / "params.yaml").read_text()
    raw = yaml.safe_load(original)
    raw["tune"]["space"]["dropout"]["high"] = 0.6
    workspace.write_params(tuned, raw)
    try:
        status = json.loads(workspace.dvc(tuned, "status", "--json").stdout)
        dry = workspace.dvc(tuned, "repro", "--dry", "tune@irv2").stdout
        dag = workspace.dvc(tuned, "dag", "--dot").stdout
    finally:
        (tuned / "params.yaml").write_text(original)
    assert status["tune@irv2"] == [{"changed deps": {"params.yaml": {"tune": "modified"}}}]
    assert "tune@irv2_unet" in status and not {"validate", "augment"} & set(status)
    assert "Stage 'validate' didn't change" in dry and "Stage 'augment' didn't change" in dry
    assert "Running stage 'tune@irv2'" in dry
    # a new hparams.json reruns that model's training and what follows it (dvc status cannot show that before tune
    # has written it)
    assert '"tune@irv2" -> "train@irv2";' in dag and '"train@irv2" -> "evaluate";' in dag
    assert '"tune@irv2" -> "train@irv2_unet";' not in dag
