"""`python -m pipeline repro --jobs N` (what `make run` runs) with the real DVC: stages that do not read each other's
outputs run at the same time, the others in the order of the graph, DVC records every one as `dvc repro` does, and a
failing stage stops the run with its name while nothing that reads it starts."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pipeline.commands import repro
from tests import workspace

pytestmark = pytest.mark.integration

# A stage writes its output after an optional rendezvous: it leaves a mark, then waits (up to WAIT_S) for its partner's.
# Two partners can only both succeed if they run at the same time; run one after the other, the first one fails.
STAGE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    name, partner, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Path("marks").mkdir(exist_ok=True)
    Path("marks", name).touch()
    deadline = time.monotonic() + WAIT_S
    while partner != "-" and not Path("marks", partner).exists():
        if time.monotonic() > deadline:
            sys.exit(f"{name}: {partner} never started while {name} ran")
        time.sleep(0.05)
    if code:
        sys.exit(code)
    inputs = "".join(Path(d).read_text() for d in sys.argv[4:])
    Path("out").mkdir(exist_ok=True)
    Path("out", name).write_text(f"{name}({inputs})")
    """
)


def _pipeline(root: Path, right_exit: int = 0, wait_s: float = 60) -> Path:
    """base -> left, right (partners: they must overlap) -> join."""

    def stage(name: str, partner: str, deps: list[str], code: int = 0) -> dict:
        return {
            "cmd": f"python stage.py {name} {partner} {code} {' '.join(deps)}",
            "deps": ["stage.py", *deps],
            "outs": [f"out/{name}"],
        }

    stages = {
        "base": stage("base", "-", []),
        "left": stage("left", "right", ["out/base"]),
        "right": stage("right", "left", ["out/base"], right_exit),
        "join": stage("join", "-", ["out/left", "out/right"]),
    }
    root.mkdir()
    (root / "stage.py").write_text(STAGE.replace("WAIT_S", str(wait_s)))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (root / ".gitignore").write_text("/marks/\n")
    workspace.sh(root, "git", "init", "-q", "-b", "main")
    workspace.dvc(root, "init", "-q")
    workspace.sh(root, "git", "add", "-A")
    workspace.sh(root, "git", "commit", "-qm", "pipeline")
    return root


def _repro(root: Path, *options: str):
    # the project's params.yaml: the command itself reads none, but `python -m pipeline` validates it first
    command = [sys.executable, "-m", "pipeline", "--params", str(workspace.REPO / "params.yaml"), "repro", *options]
    return workspace.sh(root, *command, check=False, timeout=300)


def test_independent_stages_run_side_by_side_and_dvc_records_every_one(tmp_path):
    root = _pipeline(tmp_path / "repo")
    done = _repro(root, "--jobs", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "out/join").read_text() == "join(left(base())right(base()))"
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"base", "left", "right", "join"}
    assert "up to date" in workspace.dvc(root, "status").stdout
    # with two jobs, each line says which stage printed it
    assert "left | Running stage 'left'" in done.stdout
    assert "right | Running stage 'right'" in done.stdout
    # nothing changed: DVC skips every stage
    again = _repro(root, "--jobs", "2")
    assert again.returncode == 0 and "Running stage" not in again.stdout


def test_one_job_runs_one_stage_at_a_time(tmp_path):
    root = _pipeline(tmp_path / "repo", wait_s=2)
    done = _repro(root, "--jobs", "1")
    # the partners cannot meet: the first of them fails, the other never starts, nor does join
    assert done.returncode == 1
    failed = "left" if (root / "marks/left").exists() else "right"
    assert f"dvc repro failed in {failed} (exit" in done.stderr
    assert "not started:" in done.stderr and "join" in done.stderr.rsplit("not started:", 1)[1]
    assert not (root / "marks/join").exists()
    assert "Running stage 'base'" in done.stdout and " | " not in done.stdout  # unprefixed with one job


def test_a_failing_stage_is_named_and_nothing_downstream_starts(tmp_path):
    root = _pipeline(tmp_path / "repo", right_exit=3)
    done = _repro(root, "--jobs", "2")
    assert done.returncode == 1
    assert "dvc repro failed in right (exit" in done.stderr
    assert "not started: join" in done.stderr
    assert not (root / "marks/join").exists()
    # the partner that succeeded is recorded, as `dvc repro --keep-going` would have it
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"base", "left"}


def test_the_graph_is_read_as_dvc_prints_it():
    graph = repro.parse_dot(
        textwrap.dedent(
            """
            strict digraph {
            "data.dvc";
            "validate";
            "train@irv2";
            "data.dvc" -> "validate";
            "validate" -> "train@irv2";
            }
            """
        )
    )
    assert graph.order == ["data.dvc", "validate", "train@irv2"]
    assert graph.upstream == {"data.dvc": set(), "validate": {"data.dvc"}, "train@irv2": {"validate"}}


def test_a_graph_line_it_does_not_understand_is_refused():
    with pytest.raises(repro.StageFailed, match="does not understand"):
        repro.parse_dot('strict digraph {\n"a" -- "b";\n}\n')
