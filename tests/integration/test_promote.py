"""The promotion gate (pipeline/promote.py) on a small git + DVC repository whose one stage turns an input score
into a metrics file: no previous tag promotes, nothing new skips, a drop within the tolerance promotes, a larger
drop is rejected, an unreproduced workspace is refused. Real git, real `dvc metrics diff`; no model training."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import promote
from pipeline.config import PromoteConfig
from tests import workspace

pytestmark = pytest.mark.integration

GATE = PromoteConfig(gate={"metrics/score.json": "val.macro_f1"}, tolerance=0.02, tag_prefix="model-")
STAGE = {
    "stages": {
        "score": {
            "cmd": "python score.py",
            "deps": ["score.py", "score.txt"],
            "outs": ["model.bin"],
            "metrics": [{"metrics/score.json": {"cache": False}}],
        }
    }
}
SCRIPT = """import json, pathlib
score = float(pathlib.Path("score.txt").read_text())
pathlib.Path("model.bin").write_text(f"weights for {score}")
pathlib.Path("metrics").mkdir(exist_ok=True)
pathlib.Path("metrics/score.json").write_text(json.dumps({"val": {"macro_f1": score, "loss": 1 - score}}))
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("promote")
    root = base / "repo"
    root.mkdir()
    (root / "dvc.yaml").write_text(yaml.safe_dump(STAGE))
    (root / "score.py").write_text(SCRIPT)
    workspace.write_params(root, workspace.profile_params({"promote": {"gate": GATE.gate}}))
    workspace.sh(root, "git", "init", "-q", "-b", "main")
    workspace.dvc(root, "init", "-q")
    # relative (DVC keeps it so in .dvc/config): a copy of repo/ beside its own remote/ is a repository of its own
    workspace.dvc(root, "remote", "add", "-d", "local", "../remote")
    workspace.sh(root, "git", "add", "-A")
    workspace.sh(root, "git", "commit", "-qm", "pipeline")
    train(root, 0.5)  # trained, not committed: that is the promotion's job
    return root


@pytest.fixture
def repo(template, tmp_path) -> Path:
    shutil.copytree(template, tmp_path / "repo", symlinks=True)
    return tmp_path / "repo"


def train(root: Path, score: float) -> None:
    """New data (score.txt, tracked by DVC like data/raw) and a `dvc repro` over it."""
    (root / "score.txt").write_text(str(score))
    workspace.dvc(root, "add", "-q", "score.txt")
    workspace.dvc(root, "repro", "-q")


def cli(root: Path, action: str) -> subprocess.CompletedProcess:
    return workspace.sh(root, sys.executable, "-m", "pipeline", "promote", action, check=False)


def tags(root: Path) -> list[str]:
    return workspace.sh(root, "git", "tag", "--list").stdout.split()


def test_promotion_gate_over_successive_trainings(repo):
    decision = promote.decide(repo, GATE)
    assert (decision.action, decision.tag) == ("promote", "model-1")  # nothing promoted yet
    promote.promote(repo, decision, repo / "reports" / "promotion.json")
    assert tags(repo) == ["model-1"]
    committed = workspace.sh(repo, "git", "show", "--name-only", "--format=", "model-1").stdout.split()
    assert {"dvc.lock", "metrics/score.json", "score.txt.dvc", ".gitignore"} <= set(committed)
    assert "model.bin" not in committed  # in DVC's cache and remote, not in git
    assert workspace.dvc(repo, "status", "--cloud", "--json").stdout.strip() in ("", "{}")  # pushed
    assert (repo.parent / "remote").is_dir()
    assert workspace.sh(repo, "git", "status", "--porcelain").stdout == ""

    assert promote.decide(repo, GATE).action == "skip"

    train(repo, 0.49)  # within the tolerance of 0.02
    decision = promote.decide(repo, GATE)
    assert (decision.action, decision.baseline, decision.tag) == ("promote", "model-1", "model-2")
    assert decision.checks[0].old == 0.5 and decision.checks[0].new == 0.49
    promote.promote(repo, decision, repo / "reports" / "promotion.json")

    train(repo, 0.4)
    decision = promote.decide(repo, GATE)
    assert (decision.action, decision.baseline) == ("reject", "model-2")
    assert not decision.checks[0].passed and "dropped 0.0900" in decision.checks[0].note
    assert tags(repo) == ["model-1", "model-2"]


def test_cli_exit_codes_and_report(repo):
    done = cli(repo, "apply")
    assert done.returncode == 0 and "promoted as model-1" in done.stdout, done.stderr
    done = cli(repo, "check")
    assert done.returncode == promote.NOTHING_NEW, done.stderr  # Airflow's skip code
    train(repo, 0.1)
    done = cli(repo, "check")
    assert done.returncode == 1 and "worse than model-1" in done.stderr
    assert json.loads((repo / "reports" / "promotion.json").read_text())["action"] == "reject"
    done = cli(repo, "apply")
    assert done.returncode == 1 and tags(repo) == ["model-1"]


def test_a_metric_missing_from_the_workspace_is_a_rejection(repo):
    promote.promote(repo, promote.decide(repo, GATE), repo / "reports" / "promotion.json")
    train(repo, 0.7)
    gate = PromoteConfig(gate={"metrics/score.json": "val.accuracy"}, tolerance=0.02, tag_prefix="model-")
    decision = promote.decide(repo, gate)
    assert decision.action == "reject" and decision.checks[0].note == "missing from the workspace"


def test_an_unreproduced_workspace_is_refused(repo):
    (repo / "score.txt").write_text("0.9")  # changed input, stage not rerun: dvc.lock no longer matches
    with pytest.raises(promote.GateFailed, match="not reproduced"):
        promote.decide(repo, GATE)


def test_tags_are_numbered_not_dated(repo):
    for tag in ("model-2", "model-10", "model-x", "other-3"):
        workspace.sh(repo, "git", "tag", tag)
    found = promote.promoted_tags(repo, "model-")
    assert found == ["model-2", "model-10"]
    assert promote.next_tag(found, "model-") == "model-11"
