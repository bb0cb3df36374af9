"""The tune stage with the real tools on tiny data: DVC runs it, and Keras Tuner distributes it (a chief and two
workers over gRPC on this machine). Each trial trains IRv2 for one epoch on the test profile's tiny dataset."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.stages import tune
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_search_with_a_chief_and_two_workers(tuned, tmp_path):
    raw = yaml.safe_load((tuned / "params.yaml").read_text())
    raw["tune"]["max_trials"] = 2  # one trial for each worker
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    port = str(_free_port())

    def start(tuner_id: str) -> subprocess.Popen:
        out = tmp_path / tuner_id
        cmd = [sys.executable, "-m", "pipeline", "--params", str(params_file), "tune", "--model", "irv2"]
        cmd += ["--data", "data/balanced", "--dir", str(tmp_path / "tuner"), "--hparams", str(out / "hparams.json")]
        cmd += ["--metrics", str(out / "metrics.json"), "--plot", str(out / "plot.csv")]
        env = {**workspace.env(), "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1"}
        env["KERASTUNER_ORACLE_PORT"] = port
        log = (tmp_path / f"{tuner_id}.log").open("w")
        return subprocess.Popen(cmd, cwd=tuned, env=env, stdout=log, stderr=subprocess.STDOUT)

    procs = {name: start(name) for name in ("chief", "worker0", "worker1")}
    try:
        codes = {name: p.wait(timeout=600) for name, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in procs}
    assert codes == dict.fromkeys(procs, 0), "\n\n".join(f"--- {n}\n{log[-3000:]}" for n, log in logs.items())

    # only the chief reports; the trials were run by the workers, one each
    assert not (tmp_path / "worker0").exists() and not (tmp_path / "worker1").exists()
    metrics = json.loads((tmp_path / "chief/metrics.json").read_text())
    assert metrics["trials"] == 2
    rows = list(csv.DictReader((tmp_path / "chief/plot.csv").open()))
    assert sorted(r["tuner_id"] for r in rows) == ["worker0", "worker1"]
    config.replace(config.from_dict(raw).train["irv2"], json.loads((tmp_path / "chief/hparams.json").read_text()), "")
    assert "serving the search" in logs["chief"]
    key = tune.search_key(config.from_dict(raw), "irv2", tuned / "data/balanced/index.csv")
    assert os.listdir(tmp_path / "tuner") == [key]  # one search folder, named by its key
