"""The layout's rules that code can check (docs/architecture.md): dvc.yaml spells the stages' paths; no command or
library imports a stage module, so changing a stage's CLI affects nothing else; no library imports a command, and
nothing but the CLI imports one; one CLI tree whose commands are imported only when they run."""

from __future__ import annotations

import ast
import importlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import __main__ as cli
from tests import workspace
from tests.unit import tiny_models

PACKAGE = workspace.REPO / "pipeline"


def imported(source: str, package: str) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports, anywhere in it (at the top or inside a function),
    relative imports resolved, and each imported name as a possible module (``from pipeline import commands``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return found


def imports(path: Path) -> set[str]:
    return imported(path.read_text(encoding="utf-8"), ".".join(path.relative_to(workspace.REPO).parts[:-1]))


def stage_imports(source_file: Path) -> set[str]:
    return {m for m in imports(source_file) if m.startswith("pipeline.stages.")}


def layer(rel: str) -> str:
    """The layer of a file of pipeline/ (docs/architecture.md): cli, stages, commands, config or library."""
    if rel == "__main__.py":
        return "cli"
    top = rel.split("/")[0]
    return top if top in ("stages", "commands", "config") else "library"


def reaches(found: set[str], package: str) -> bool:
    return any(m == package or m.startswith(f"{package}.") for m in found)


def test_no_command_or_library_imports_a_stage_module():
    offenders = {
        rel: stage_imports(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if (rel := path.relative_to(PACKAGE).as_posix()).split("/")[0] != "stages"
    }
    assert {rel: found for rel, found in offenders.items() if found} == {}


def test_no_library_imports_a_command_or_a_stage():
    """Imports point down the layers: a library (or config) never imports a command or a stage (the upward arrow)."""
    offenders = [
        rel
        for path in sorted(PACKAGE.rglob("*.py"))
        if layer(rel := path.relative_to(PACKAGE).as_posix()) in ("library", "config")
        and (reaches(imports(path), "pipeline.commands") or reaches(imports(path), "pipeline.stages"))
    ]
    assert offenders == []


def test_only_the_cli_and_the_commands_import_a_command():
    """pipeline.commands is the CLI's: what else needs a command's code (the DAG, profiling) imports its library."""
    files = [*sorted(PACKAGE.rglob("*.py")), *sorted((workspace.REPO / "dags").rglob("*.py"))]
    offenders = [
        rel
        for path in files
        if (rel := path.relative_to(workspace.REPO).as_posix()) != "pipeline/__main__.py"
        and not rel.startswith("pipeline/commands/")
        and reaches(imports(path), "pipeline.commands")
    ]
    assert offenders == []


def test_the_import_rules_see_every_form_of_import():
    """The checks above are only as good as this walk: lazy, relative and from-package imports count too."""
    lazy = "def f():\n    from pipeline.commands.export import tflite\n"
    relative = "from ..commands import promote\nfrom .. import stages\n"
    assert reaches(imported(lazy, "pipeline.profiling"), "pipeline.commands")
    assert reaches(imported(relative, "pipeline.release"), "pipeline.commands")
    assert reaches(imported(relative, "pipeline.release"), "pipeline.stages")
    assert not reaches({"pipeline.commandsx"}, "pipeline.commands")
    assert [layer(r) for r in ("__main__.py", "stages/train.py", "commands/export.py", "serving/lite.py")] == [
        "cli",
        "stages",
        "commands",
        "library",
    ]


def test_every_command_adds_its_arguments_and_runs_from_them():
    """Each entry of the one CLI names a module with the two functions the tree calls; none is imported to list them."""
    for name, command in cli.COMMANDS.items():
        tree = ast.parse(PACKAGE.joinpath(*command.module.split(".")[1:]).with_suffix(".py").read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"add_arguments", "main"} <= functions, name


def test_the_cli_help_lists_every_command_without_importing_one():
    probe = (
        "import contextlib, io, sys, pipeline.__main__ as cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    cli.main(['--help'])\n"
        "print(all(n in out.getvalue() for n in cli.COMMANDS), sorted(m for m in sys.modules if m.startswith("
        "('pipeline.stages.', 'pipeline.commands.', 'tensorflow', 'keras'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=workspace.REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True []"


@pytest.mark.parametrize("stage", ["tune", "train"])
def test_matrix_stages_take_their_paths_from_dvc_yaml_only(stage, capsys):
    with pytest.raises(SystemExit):
        cli.run(tiny_models.params(), [stage, "--model", "irv2"])
    assert "the following arguments are required: --data" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stage", "paths"),
    [("tune", ["--dir", "d", "--hparams", "h", "--metrics", "m", "--plot", "p"]), ("train", ["--out", "o", "--metrics",
     "m", "--live", "l"])],
)  # fmt: skip
def test_matrix_stages_refuse_a_model_that_params_does_not_train(stage, paths, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.run(tiny_models.params(), [stage, "--model", "resnet", "--data", "data/balanced", *paths])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"python -m pipeline {stage}: error: argument --model: invalid choice: 'resnet'" in err


@pytest.mark.parametrize("command", ["validate", "augment", "predict", "sample-data", "convert-faces"])
def test_a_light_command_imports_its_own_module_alone_and_no_tensorflow(command):
    """The tree imports only the command named (its --help, here): the others' imports cost it nothing."""
    probe = (
        "import contextlib, io, sys, pipeline.__main__ as cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    cli.main([{command!r}, '--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('pipeline.stages.', 'pipeline.commands.', 'tensorflow', 'keras'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=workspace.REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([cli.COMMANDS[command].module])


@pytest.mark.parametrize("stage", ["validate", "augment", "evaluate"])
def test_every_path_option_is_required_and_dvc_yaml_gives_it(stage, monkeypatch, capsys):
    module = importlib.import_module(f"pipeline.stages.{stage}")
    params = tiny_models.params()
    with pytest.raises(SystemExit):
        cli.run(params, [stage])
    assert "the following arguments are required" in capsys.readouterr().err
    cmd = yaml.safe_load((workspace.REPO / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    words = shlex.split(cmd)
    assert words[:4] == ["python", "-m", "pipeline", stage]
    called = []
    monkeypatch.setattr(module, "run", lambda *args: called.append(args) or _summary(stage))
    cli.run(params, words[3:])
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
