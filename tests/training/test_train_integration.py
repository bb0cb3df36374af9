"""Integration tests of the train stage: the real `python -m pipeline train` killed with SIGKILL mid-epoch and rerun,
the model it writes reloaded and scored, and DVC rerunning only what a changed model's params feed.

Tiny data (3 training images per class, 4 after balancing), 75 px, tiny head, eager steps (tests/profile.yaml).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import config
from pipeline.data import duplicates
from pipeline.data import manifest as manifest_lib
from pipeline.stages import augment
from pipeline.training import callbacks, loop
from pipeline.training.metrics import classification_metrics
from tests import workspace

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 2
WAIT_S = 600


def _prepare(root: Path, raw: Path) -> config.Params:
    """A folder with the test profile's params (3 epochs of irv2) and the augment stage's output, built in-process."""
    # one step per epoch (the whole balanced train side in one batch) keeps each epoch to a few seconds
    overrides = {"train": {"irv2": {"epochs": EPOCHS, "batch_size": 24, "early_stopping_patience": 10}}}
    raw_params = workspace.profile_params(overrides)
    workspace.write_params(root, raw_params)
    params = config.from_dict(raw_params)
    frame = manifest_lib.build(
        raw, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )
    frame.to_csv(root / "manifest.csv", index=False)
    augment.run(params, root / "manifest.csv", raw, root / "balanced", root / "augment.json", root / "balance.csv")
    return params


def _train_command() -> list[str]:
    return [
        sys.executable, "-m", "pipeline", "--params", "params.yaml", "train", "--model", "irv2",
        "--data", "balanced", "--out", "models/irv2/model.keras", "--metrics", "metrics/irv2.json",
        "--live", "dvclive/irv2", "--state", "state",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    # the checkout's pipeline package, whatever the working folder
    return {**workspace.env(), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _state(root: Path) -> Path:
    """The training's resume folder: state/<model>/<key of its inputs>."""
    return next((root / "state" / "irv2").glob("*/"), root / "state" / "irv2" / "not-yet")


def _kill_during_second_epoch(root: Path) -> str:
    """Start a training, SIGKILL it once epoch 1 is recorded and epoch 2 has begun; return what it printed."""
    log = root / "first-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(_train_command(), cwd=root, env=_env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and proc.poll() is None:
                running = _read_json(_state(root) / "running.json")
                history = _read_json(_state(root) / callbacks.HISTORY) or []
                if running and running["epoch"] == 1 and [h["epoch"] for h in history] == [1]:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.02)
            else:
                raise AssertionError(f"training never reached epoch 2 (exit {proc.poll()}):\n{log.read_text()}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return log.read_text()


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_raw_master, tmp_path_factory):
    root = tmp_path_factory.mktemp("train-kill")
    params = _prepare(root, tiny_raw_master)
    first = _kill_during_second_epoch(root)
    state = _state(root)
    after_kill = {
        "history": _read_json(state / callbacks.HISTORY),
        "backup": _read_json(state / "scratch" / "backup" / "training_metadata.json"),
        "model_written": (root / "models/irv2/model.keras").exists(),
    }
    second = subprocess.run(
        _train_command(), cwd=root, env=_env(), capture_output=True, text=True, timeout=WAIT_S, check=False
    )
    return root, params, first, after_kill, second


def test_killed_training_resumes_from_last_finished_epoch(killed_and_resumed):
    root, _, first, after_kill, second = killed_and_resumed
    assert f"Epoch 1/{EPOCHS}" in first  # "Epoch 2" may not be printed yet: our callback runs before Keras' logger
    # the kill came mid-epoch 2: one epoch recorded and backed up, no model yet
    assert [h["epoch"] for h in after_kill["history"]] == [1]
    assert after_kill["backup"]["epoch"] == 1
    assert not after_kill["model_written"]

    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert f"Epoch 1/{EPOCHS}" not in output, "the rerun started over"
    assert f"Epoch 2/{EPOCHS}" in output and f"Epoch {EPOCHS}/{EPOCHS}" in output
    # neither of the warnings Keras gave on every training before their causes were fixed (issue 24, item 8)
    for cause in ("`shuffle=True` was passed", "Skipping variable loading for optimizer"):
        assert cause not in first and cause not in output, cause
    assert "train irv2: " in output  # the time is in the log, no longer in the committed metrics
    metrics = json.loads((root / "metrics/irv2.json").read_text())
    assert metrics["epochs_run"] == EPOCHS and "train_seconds" not in metrics
    assert (root / "models/irv2/model.keras").exists()
    assert not (root / "state" / "irv2").exists(), "a finished training leaves no resume state"
    # the dvclive curves carry on too: one row per epoch, none repeated
    curve = pd.read_csv(root / "dvclive/irv2/plots/metrics/val_macro_f1.tsv", sep="\t")
    assert curve["step"].tolist() == list(range(EPOCHS))


def test_trained_model_reloads_and_reproduces_its_validation_metrics(killed_and_resumed):
    root, params, *_ = killed_and_resumed
    cfg = params.train["irv2"]
    loaded = keras.models.load_model(root / "models/irv2/model.keras", safe_mode=True)
    _, val, labels = loop.datasets(params, cfg, root / "balanced")
    batches = [keras.ops.convert_to_numpy(loaded(images, training=False)["emotion"]) for images, *_ in val]
    probabilities = np.concatenate(batches)
    again = np.concatenate([keras.ops.convert_to_numpy(loaded(x, training=False)["emotion"]) for x, *_ in val])
    assert np.array_equal(probabilities, again), "validation predictions are not deterministic"
    metrics = json.loads((root / "metrics/irv2.json").read_text())
    assert classification_metrics(labels, probabilities, params.classes) == metrics["val"]


def _placeholder_outputs(root: Path) -> None:
    """Stand-ins for every stage's outputs, so `dvc commit` records a complete dvc.lock without running a stage."""
    code = (
        "import pathlib\n"
        "from dvc.repo import Repo\n"
        "for stage in Repo('.').index.stages:\n"
        "    for out in stage.outs:\n"
        "        p = pathlib.Path(out.fs_path)\n"
        "        if p.exists():\n"
        "            continue\n"
        "        p.parent.mkdir(parents=True, exist_ok=True)\n"
        "        if p.suffix:\n"
        "            p.write_text('{}' if p.suffix == '.json' else 'placeholder')\n"
        "        else:\n"
        "            p.mkdir()\n"
        "            (p / 'placeholder.tsv').write_text('step\\n0\\n')\n"
    )
    workspace.sh(root, sys.executable, "-c", code)


def _dry_run_stages(root: Path) -> set[str]:
    out = workspace.dvc(root, "repro", "--dry").stdout
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def test_changing_one_models_params_reruns_only_that_model(tmp_path):
    root = workspace.make(tmp_path / "ws")
    _placeholder_outputs(root)
    workspace.dvc(root, "commit", "--force", "--quiet")
    assert _dry_run_stages(root) == set(), "a fresh dvc.lock should leave nothing to run"

    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["irv2"]["head_units"] += 1
    workspace.write_params(root, raw)
    status = workspace.dvc(root, "status", "--json").stdout
    changed = set(json.loads(status))
    stages = _dry_run_stages(root)
    assert "train@irv2" in changed and "train@irv2" in stages
    assert not {"train@irv2_unet", "tune@irv2_unet", "validate", "augment"} & (changed | stages), stages
