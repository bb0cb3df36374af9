"""The layout's rules that code can check (docs/architecture.md): dvc.yaml spells the stages' paths, and no command or
library imports a stage module, so changing a stage's CLI affects nothing else."""

from __future__ import annotations

import ast
import importlib
import shlex
import subprocess
import sys

import pytest
import yaml

from tests import workspace
from tests.unit import tiny_models

PACKAGE = workspace.REPO / "pipeline"


def stage_imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return {m for m in found if m.startswith("pipeline.stages.")}


def test_no_command_or_library_imports_a_stage_module():
    offenders = {
        rel: stage_imports(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
        if (rel := path.relative_to(PACKAGE).as_posix()).split("/")[0] != "stages"
    }
    assert {rel: found for rel, found in offenders.items() if found} == {}


@pytest.mark.parametrize("stage", ["tune", "train"])
def test_matrix_stages_take_their_paths_from_dvc_yaml_only(stage, capsys):
    module = importlib.import_module(f"pipeline.stages.{stage}")
    with pytest.raises(SystemExit):
        module.main(tiny_models.params(), ["--model", "irv2"])
    assert "the following arguments are required: --data" in capsys.readouterr().err


@pytest.mark.parametrize("stage", ["validate", "augment", "evaluate"])
def test_every_path_option_is_required_and_dvc_yaml_gives_it(stage, monkeypatch, capsys):
    module = importlib.import_module(f"pipeline.stages.{stage}")
    params = tiny_models.params()
    with pytest.raises(SystemExit):
        module.main(params, [])
    assert "the following arguments are required" in capsys.readouterr().err
    cmd = yaml.safe_load((workspace.REPO / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    words = shlex.split(cmd)
    assert words[:4] == ["python", "-m", "pipeline", stage]
    called = []
    monkeypatch.setattr(module, "run", lambda *args: called.append(args) or _summary(stage))
    module.main(params, words[4:])
    assert len(called) == 1


def _summary(stage: str) -> dict:
    """What each stage's main prints from, as little of it as printing needs."""
    if stage == "validate":
        return {"images": 0, "expectations": {"evaluated": 0}}
    if stage == "augment":
        return {"before": {}, "after": {}, "val": {}}
    return {}


def test_predict_imports_no_tensorflow_until_a_keras_model_is_loaded():
    """The TFLite path's start-up (pipeline/serving/lite.py): the predict command, its config and LiteRT load
    without TensorFlow or Keras, which alone take about twelve seconds to import on two CPU cores."""
    probe = (
        "import sys, pipeline.__main__, pipeline.commands.predict, pipeline.serving.lite, ai_edge_litert.interpreter; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=workspace.REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
