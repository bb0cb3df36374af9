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
from pipeline.release import gate, policy, registry, scores, tools, verdicts
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


def scorer(root: Path, cache: scores.Cache | None = None, loaded: list | None = None) -> gate.Scorer:
    """The test's scorer: the fetched model's quality times this run's Test split (split.txt), its only input;
    ``loaded`` collects the model files it read."""
    split = float((root / "split.txt").read_text())

    def score(name: str, path: Path) -> dict:
        if loaded is not None:
            loaded.append(path)
        quality = json.loads(path.read_text())["quality"]
        return {"macro_f1": round(quality * split, 4), "accuracy": round(quality * split, 4), "test_images": 10}

    return gate.Scorer(score, {"split": split}, cache)


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


# --- the policy, refs on origin, failures that are no verdict, stored verdicts, lineages ------------------------------


def with_origin(root: Path) -> Path:
    """A bare `origin` holding the repository's main, as the DAG's workspaces have one."""
    origin = root.parent / "origin.git"
    workspace.sh(root.parent, "git", "init", "-q", "--bare", "-b", "main", origin.name)
    workspace.sh(root, "git", "remote", "add", "origin", str(origin))
    workspace.sh(root, "git", "push", "-q", "origin", "main")
    return origin


def commit_params(root: Path, message: str, **changes) -> None:
    raw = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        section = raw
        for part in parents:
            section = section[part]
        section[key] = value
    workspace.write_params(root, raw)
    workspace.sh(root, "git", "commit", "-qam", message)


def test_a_commit_that_loosens_the_gate_is_judged_by_the_branchs_policy(repo):
    with_origin(repo)  # main: floor 0.25
    commit_params(repo, "Lower the floor", promote__gate={"macro_f1": 0.0}, promote__tolerance=0.5)
    train(repo, 0.2)
    rule = policy.from_ref(repo, "origin/main")
    assert rule.config.gate == {"macro_f1": 0.25} and rule.config.tolerance == 0.02
    main = workspace.sh(repo, "git", "rev-parse", "origin/main").stdout.strip()
    assert rule.source == f"params.yaml at origin/main (commit {main[:12]})"
    assert gate.decide(repo, params(repo), scorer(repo))[0].action == "promote"  # its own rule would let it through
    (d,) = gate.decide(repo, params(repo), scorer(repo), rule)
    assert d.action == "reject" and [(c.against, c.limit) for c in d.checks] == [("floor", 0.25)]
    gate.write_reports(repo, [d], repo / "metrics/promotion.json", repo / "reports/promotion.md",
                       gate.run_record(repo, "test", rule))  # fmt: skip
    assert f"Gate policy (stage, floors, tolerances): {rule.source}." in (repo / "reports/promotion.md").read_text()
    for wrong in ("origin/--upload-pack=touch x", "--output=x", "no-such-branch"):  # never passed to git as an option
        with pytest.raises(config.ConfigError, match="gate policy's ref"):
            policy.from_ref(repo, wrong)
    # a policy change reviewed onto the branch is the branch's policy from then on, read when the gate runs
    workspace.sh(repo, "git", "push", "-q", "origin", "HEAD:main")
    assert policy.from_ref(repo, "origin/main").config.gate == {"macro_f1": 0.0}


def test_a_push_that_loses_a_race_is_transient_not_a_rejection(repo, tmp_path):
    """Two promotions at once: the other one pushed v1.0.0 first. The atomic push of this one is refused as a
    whole, which is a transient fault (exit 75, retried), and the retry decides again on what origin holds."""
    origin = with_origin(repo)
    other = tmp_path / "other"
    workspace.sh(tmp_path, "git", "clone", "-q", str(origin), other.name)
    train(other, 0.4)
    first = gate.decide(other, params(other), scorer(other))
    gate.promote(other, first, params(other).promote, "{}", [], push="origin")
    train(repo, 0.3)
    decisions = gate.decide(repo, params(repo), scorer(repo))
    assert decisions[0].version == "v1.0.0"  # it did not see the other's tag
    with pytest.raises(tools.Unreachable, match=r"\(fetch first\)|\(already exists\)"):
        gate.promote(repo, decisions, params(repo).promote, "{}", [], push="origin")
    with pytest.raises(gate.Transient) as raised:  # as the command reports it
        cli_judge_raising(tools.Unreachable(["git", "push"], 1, "! [rejected] main -> main (fetch first)"))
    assert raised.value.exit_code == gate.TRANSIENT == 75
    assert workspace.sh(origin, "git", "tag", "--list").stdout.split() == ["m#prod#1", "m@v1.0.0"]  # the other's


def cli_judge_raising(error: Exception) -> None:
    """`pipeline promote`'s main with its judgement failing as given."""
    import argparse

    from pipeline.commands import promote as command

    original = command.judge
    command.judge = lambda *args: (_ for _ in ()).throw(error)
    try:
        command.main(params(Path(workspace.REPO)), argparse.Namespace())
    finally:
        command.judge = original


def test_an_unreachable_dvc_remote_is_transient_not_a_rejection(repo, monkeypatch):
    """The champion cannot be fetched for re-scoring: no verdict can be given, so none is; the command exits 75."""
    train(repo, 0.5)
    run_gate(repo, params(repo))
    workspace.dvc(repo, "remote", "add", "--local", "-f", "local", "s3://bucket/store")
    workspace.dvc(repo, "remote", "modify", "--local", "local", "endpointurl", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "none")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "none")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries would only make the test slower
    train(repo, 0.6)
    champion = tools.output_hash(repo, "models/m/model.keras", "m@v1.0.0")
    (repo / ".dvc/cache/files/md5" / champion[:2] / champion[2:]).unlink()  # in the DVC remote only, as on a worker
    with pytest.raises(tools.Unreachable, match="Could not connect to the endpoint URL"):
        gate.decide(repo, params(repo), scorer(repo))


def test_every_verdict_is_stored_on_origin_and_outlives_the_workspace(repo, tmp_path):
    origin = with_origin(repo)
    train(repo, 0.2)
    run_gate(repo, params(repo))  # rejected: below the floor
    reports = [repo / "reports/promotion.md", repo / "metrics/promotion.json"]
    run_id = "manual__2026-12-05T10:00:00.123456+00:00"
    stored = verdicts.store(repo, "origin", run_id, "check", reports)
    assert stored == "refs/verdicts/manual__2026-12-05T10_00_00.123456+00_00/check"
    shutil.rmtree(repo)
    clone = tmp_path / "later"
    workspace.sh(tmp_path, "git", "clone", "-q", str(origin), clone.name)
    assert "## m: reject" in verdicts.read(clone, "origin", run_id, "check")
    summary = json.loads(verdicts.read(clone, "origin", run_id, "check", "promotion.json"))
    assert summary["decision"] == "reject"
    # kept apart from what clones and the registry read: no branch, no tag
    assert workspace.sh(clone, "git", "show-ref").stdout.count("verdicts") == 0


def test_a_changed_input_contract_stops_the_gate_until_a_new_lineage_is_decided(repo):
    p = params(repo, tolerance=0.02)
    train(repo, 0.5)
    assert run_gate(repo, p)["m"].action == "promote"
    commit_params(repo, "Larger input", image_size=96)
    train(repo, 0.3)  # far below v1.0.0, which can no longer be scored anyway
    (d,) = gate.decide(repo, p, scorer(repo))
    assert d.action == "reject" and d.champions == {}
    assert (
        "the input contract changed since m@v1.0.0 (image_size: 75 -> 96)" in d.reason and "--new-lineage" in d.reason
    )
    (d,) = gate.decide(repo, p, scorer(repo), new_lineage=True)
    assert (d.action, d.version, d.new_lineage, d.champions) == ("promote", "v2.0.0", True, {})
    assert [(c.against, c.passed) for c in d.checks] == [("floor", True)]
    message = gate.promotion_message({"run_id": "t"}, p.promote, [d], policy.contract(repo))
    gate.promote(repo, [d], p.promote, message, [])
    tag = workspace.sh(repo, "git", "tag", "--list", "--format=%(contents)", "m@v2.0.0").stdout
    recorded = json.loads(tag.split("\n\n", 1)[1])  # after the subject line
    assert recorded["new_lineage"] == ["m"] and recorded["contract"]["image_size"] == 96
    # the new lineage's champions are its own versions only
    train(repo, 0.29)
    d = run_gate(repo, p)["m"]
    assert sorted(d.champions) == ["v2.0.0"] and (d.action, d.version) == ("promote", "v2.1.0")
    # asking for a new lineage where the contract did not change judges against the champions as usual
    train(repo, 0.1)
    (d,) = gate.decide(repo, p, scorer(repo), new_lineage=True)
    assert d.action == "reject" and not d.new_lineage and sorted(d.champions) == ["v2.0.0", "v2.1.0"]


def test_an_unchanged_champion_is_rescored_from_the_cache_without_loading_its_model(repo, tmp_path):
    """Figures cached on origin by (the champion's model hash, the scorer's inputs): the second gate against the same
    champion on the same Test split reads them; a changed Test split is another key, scored anew."""
    origin = with_origin(repo)
    cache = scores.Cache(repo, "origin")
    train(repo, 0.5)
    run_gate(repo, params(repo))
    loaded: list[Path] = []
    train(repo, 0.51)
    (d,) = gate.decide(repo, params(repo), scorer(repo, cache, loaded))
    assert len(loaded) == 1 and d.champions["v1.0.0"]["macro_f1"] == 0.5  # scored once, then cached
    (key,) = workspace.sh(origin, "git", "for-each-ref", "--format=%(refname)", "refs/scores").stdout.split()
    train(repo, 0.52)
    clone = tmp_path / "elsewhere"  # another workspace, as the next task would have
    workspace.sh(tmp_path, "git", "clone", "-q", str(origin), clone.name)
    (d,) = gate.decide(repo, params(repo), scorer(repo, scores.Cache(clone, "origin"), loaded))
    assert len(loaded) == 1 and d.champions["v1.0.0"]["macro_f1"] == 0.5  # from the cache: no model fetched or read
    train(repo, 0.52, split=0.5)  # another Test split: another key
    (d,) = gate.decide(repo, params(repo), scorer(repo, cache, loaded))
    assert len(loaded) == 2 and d.champions["v1.0.0"]["macro_f1"] == 0.25
    refs = workspace.sh(origin, "git", "for-each-ref", "--format=%(refname)", "refs/scores").stdout.split()
    assert key in refs and len(refs) == 2


def test_a_promotion_caches_its_models_figures_so_the_next_gate_loads_no_model(repo):
    """The promoted model's figures, as evaluate scored them, are what a re-score of the new version would give (same
    model, Test split, code): the promotion stores them under that key, and the next gate reads them."""
    with_origin(repo)
    cache = scores.Cache(repo, "origin")
    train(repo, 0.5)
    p, promoting = params(repo), scorer(repo, cache)
    (d,) = gate.decide(repo, p, promoting)
    gate.promote(repo, [d], p.promote, "{}", [], "origin")
    (key,) = scores.remember(cache, repo, {d.name: d.challenger}, promoting.inputs)
    assert cache.get(key) == d.challenger
    loaded: list[Path] = []
    train(repo, 0.51)
    (after,) = gate.decide(repo, p, scorer(repo, cache, loaded))
    assert loaded == [] and after.champions == {"v1.0.0": d.challenger}
