"""The promotion gate (pipeline/release/gate.py) and the model registry (pipeline/release/registry.py) on a small
git + DVC repository whose one stage turns an input score into a "model" file and metrics/evaluate.json, so that many
promotions run in seconds. Real git, real GTO tags, real `dvc artifacts get` from a real DVC remote; only the
scorer is the test's: it reads the fetched model file and this run's Test split (split.txt), as the Keras scorer
reads a model and the Test images (that one runs in the DAG tests)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.release import gate, registry
from tests import workspace

pytestmark = pytest.mark.integration

STAGE = {
    "stages": {
        "score": {
            "cmd": "python score.py",
            "deps": ["score.py", "score.txt", "split.txt"],
            "outs": ["models/m/model.keras"],
            "metrics": [{"metrics/evaluate.json": {"cache": False}}],
        }
    },
    "artifacts": {"m": {"type": "model", "path": "models/m/model.keras", "desc": "a scored stand-in model"}},
}
# the model file holds its quality; its Test figure is that quality times the Test split's difficulty (split.txt)
SCRIPT = """import json, pathlib
quality = float(pathlib.Path("score.txt").read_text())
pathlib.Path("models/m").mkdir(parents=True, exist_ok=True)
pathlib.Path("models/m/model.keras").write_text(json.dumps({"quality": quality}))
split = float(pathlib.Path("split.txt").read_text())
pathlib.Path("metrics").mkdir(exist_ok=True)
figures = {"macro_f1": round(quality * split, 4), "accuracy": round(quality * split, 4), "test_images": 10}
pathlib.Path("metrics/evaluate.json").write_text(json.dumps({"m": figures}))
"""


def scorer(root: Path):
    split = float((root / "split.txt").read_text())

    def score(name: str, path: Path) -> dict:
        quality = json.loads(path.read_text())["quality"]
        return {"macro_f1": round(quality * split, 4), "accuracy": round(quality * split, 4), "test_images": 10}

    return score


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("promote")
    root = base / "repo"
    root.mkdir()
    (root / "dvc.yaml").write_text(yaml.safe_dump(STAGE, sort_keys=False))
    (root / "score.py").write_text(SCRIPT)
    (root / "split.txt").write_text("1.0")
    workspace.write_params(root, workspace.profile_params({"promote": {"gate": {"macro_f1": 0.25}}}))
    workspace.sh(root, "git", "init", "-q", "-b", "main")
    workspace.dvc(root, "init", "-q")
    workspace.dvc(root, "remote", "add", "-d", "local", str(base / "remote"))
    workspace.sh(root, "git", "add", "-A")
    workspace.sh(root, "git", "commit", "-qm", "pipeline")
    return root


@pytest.fixture
def repo(template, tmp_path) -> Path:
    shutil.copytree(template, tmp_path / "repo", symlinks=True)
    return tmp_path / "repo"


def params(root: Path, **promote_overrides) -> config.Params:
    return config.from_dict(yaml.safe_load((root / "params.yaml").read_text()), {"promote": promote_overrides})


def train(root: Path, quality: float, split: float | None = None) -> None:
    (root / "score.txt").write_text(str(quality))
    if split is not None:
        (root / "split.txt").write_text(str(split))
    workspace.dvc(root, "repro", "-q")


def run_gate(root: Path, p: config.Params, apply: bool = True) -> dict[str, gate.ModelDecision]:
    decisions = gate.decide(root, p, scorer(root))
    gate.write_reports(root, decisions, root / "metrics/promotion.json", root / "reports/promotion.md",
                          {"run_id": "test", "commit": "0" * 40, "data": "d"})  # fmt: skip
    if apply and gate.outcome(decisions) == "promote":
        gate.promote(root, decisions, p.promote, "{}", [root / "metrics/promotion.json"])
    return {d.name: d for d in decisions}


def prod(root: Path) -> str | None:
    found = registry.current(root, "m", "prod")
    return found.version if found else None


def test_a_first_model_below_the_floor_is_rejected(repo):
    train(repo, 0.2)
    (d,) = run_gate(repo, params(repo)).values()
    assert d.action == "reject" and d.champions == {}
    assert [(c.against, c.limit, c.passed) for c in d.checks] == [("floor", 0.25, False)]
    assert prod(repo) is None and registry.versions(repo, "m") == []


def test_a_first_model_above_the_floor_is_promoted_and_gto_lists_it_in_prod(repo):
    train(repo, 0.3)
    (d,) = run_gate(repo, params(repo)).values()
    assert (d.action, d.version) == ("promote", "v1.0.0") and "first version" in d.reason
    tags = workspace.sh(repo, "git", "tag", "--list").stdout.split()
    assert sorted(tags) == ["m#prod#1", "m@v1.0.0"]
    gto = str(Path(sys.executable).with_name("gto"))
    assert workspace.sh(repo, gto, "show", "m#prod", "--version").stdout.strip() == "v1.0.0"
    assert "v1.0.0" in workspace.sh(repo, gto, "show").stdout
    # the promotion commit carries the report and the lock; the model itself is in the DVC remote
    committed = workspace.sh(repo, "git", "show", "--name-only", "--format=%s", "m@v1.0.0^{commit}").stdout.split("\n")
    assert committed[0] == "Promote m@v1.0.0" and "dvc.lock" in committed and "metrics/promotion.json" in committed
    assert workspace.dvc(repo, "status", "--cloud", "--json").stdout.strip() in ("", "{}")


def test_small_drops_cannot_add_up(repo):
    p = params(repo, tolerance=0.02)
    train(repo, 0.50)
    assert run_gate(repo, p)["m"].action == "promote"
    outcomes = []
    for quality in (0.49, 0.48, 0.47):  # each 0.01 below the one before
        train(repo, quality)
        d = run_gate(repo, p)["m"]
        outcomes.append((quality, d.action, sorted(d.champions)))
    assert outcomes == [
        (0.49, "promote", ["v1.0.0"]),
        (0.48, "promote", ["v1.0.0", "v1.1.0"]),
        (0.47, "reject", ["v1.0.0", "v1.1.0", "v1.2.0"]),  # 0.03 below v1.0.0, the champion of the lineage
    ]
    assert prod(repo) == "v1.2.0"
    report = (repo / "reports/promotion.md").read_text()
    assert "## m: reject" in report and "champion m@v1.0.0" in report and "**FAIL**" in report


def test_nothing_new_is_a_skip(repo):
    train(repo, 0.4)
    run_gate(repo, params(repo))
    assert run_gate(repo, params(repo))["m"].action == "skip"


def test_champions_are_rescored_on_this_runs_test_split(repo):
    train(repo, 0.6, split=1.0)
    run_gate(repo, params(repo))
    stored = json.loads(workspace.sh(repo, "git", "show", "m@v1.0.0:metrics/evaluate.json").stdout)["m"]["macro_f1"]
    train(repo, 0.55, split=0.5)  # a harder Test split: every model scores half
    d = run_gate(repo, params(repo), apply=False)["m"]
    assert stored == 0.6 and d.champions["v1.0.0"]["macro_f1"] == 0.3  # re-scored, not the stored 0.6
    assert d.action == "reject"  # 0.55 x 0.5 = 0.275, more than 0.02 below the champion's re-scored 0.3
    summary = json.loads((repo / "metrics/promotion.json").read_text())
    assert summary["split"] == "test" and summary["models"]["m"]["champions"]["v1.0.0"]["macro_f1"] == 0.3
    assert "Test split" in (repo / "reports/promotion.md").read_text()


def test_roll_back_with_gto_then_the_gate_compares_against_the_rolled_back_version(repo):
    p = params(repo, tolerance=0.02)
    for quality in (0.50, 0.60, 0.70):
        train(repo, quality)
        assert run_gate(repo, p)["m"].action == "promote"
    assert prod(repo) == "v1.2.0"
    # the documented roll-back
    gto = str(Path(sys.executable).with_name("gto"))
    workspace.sh(repo, gto, "assign", "m", "--version", "v1.0.0", "--stage", "prod", "--force")
    assert prod(repo) == "v1.0.0"
    train(repo, 0.49)  # far below v1.2.0, within the tolerance of v1.0.0
    d = run_gate(repo, p)["m"]
    assert sorted(d.champions) == ["v1.0.0"] and d.action == "promote" and d.version == "v1.3.0"
    assert [v.version for v in registry.lineage(repo, "m", "prod")] == ["v1.3.0", "v1.0.0"]


def test_a_registry_reference_resolves_to_the_model_file(repo, tmp_path):
    train(repo, 0.3)
    run_gate(repo, params(repo))
    path = registry.resolve("m@prod", repo, tmp_path / "cache")
    assert json.loads(path.read_text()) == {"quality": 0.3}
    assert registry.resolve("m@v1.0.0", repo, tmp_path / "cache") == path
    with pytest.raises(registry.RegistryError, match="no version of m is in stage 'staging'"):
        registry.resolve("m@staging", repo, tmp_path / "cache")
    with pytest.raises(registry.RegistryError, match="not a registry reference"):
        registry.resolve("models/m/model.keras", repo, tmp_path / "cache")


def test_an_unreproduced_workspace_is_refused(repo):
    train(repo, 0.4)
    (repo / "score.txt").write_text("0.9")  # changed input, stage not rerun: dvc.lock no longer matches
    with pytest.raises(gate.GateFailed, match="not reproduced"):
        gate.decide(repo, params(repo), scorer(repo))


def test_an_unassigned_or_deregistered_version_is_no_champion(repo):
    """GTO's own ways of taking a version out: `gto deprecate m v1.1.0 prod` (tag m#prod!#n) unassigns it, and
    `gto deprecate m v1.1.0` (tag m@v1.1.0!) deregisters it; the registry reads both through GTO's API."""
    p = params(repo, tolerance=0.02)
    for quality in (0.50, 0.70):
        train(repo, quality)
        assert run_gate(repo, p)["m"].action == "promote"
    gto = str(Path(sys.executable).with_name("gto"))
    workspace.sh(repo, gto, "deprecate", "m", "v1.1.0", "prod")  # unassigned: prod falls back to v1.0.0
    assert prod(repo) == "v1.0.0"
    train(repo, 0.49)  # far below v1.1.0, within the tolerance of v1.0.0
    d = run_gate(repo, p, apply=False)["m"]
    assert sorted(d.champions) == ["v1.0.0"] and d.action == "promote" and d.version == "v1.2.0"
    workspace.sh(repo, gto, "deprecate", "m", "v1.0.0")  # deregistered: no version is in prod any more
    assert prod(repo) is None and [v.version for v in registry.versions(repo, "m")] == ["v1.1.0"]
    d = run_gate(repo, p, apply=False)["m"]
    assert d.champions == {} and d.action == "promote"
