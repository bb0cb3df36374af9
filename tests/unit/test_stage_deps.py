"""dvc.yaml's deps are the truth about the code a stage runs: every module of `pipeline/` that a stage module imports,
directly or through others, at the top or inside a function, is listed in that stage's deps (itself or a folder
holding it). A module missing there lets DVC skip a stage whose code changed: `dvc status` clean, `dvc.lock` wrong.

Two kinds of file may stay out, by decision:
- `pipeline/config/`: its effect reaches a stage only through params.yaml, which DVC tracks per key (`params:`);
- a package `__init__.py` with nothing in it but a docstring: importing it changes nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import workspace
from tests.dags.airflow_env import dvc_stages

REPO = workspace.REPO
EXEMPT_FOLDERS = ("pipeline/config/",)


def module_file(name: str) -> Path | None:
    """The file of module ``pipeline.a.b`` (a.b.py, or a/b/__init__.py), or None if it is not one (an attribute)."""
    path = REPO.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(source: str, package: str) -> set[str]:
    """Every `pipeline...` module that ``source`` (a module of ``package``) imports, anywhere in it, with the
    packages on the way."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, up level-1
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    modules = set()
    for name in (n for n in found if n == "pipeline" or n.startswith("pipeline.")):
        parts = name.split(".")
        modules |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}  # importing a.b.c runs a and a.b
    return {m for m in modules if module_file(m) is not None}


def closure(start: Path) -> set[Path]:
    """``start`` and every file of `pipeline/` it reaches through imports."""
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = ".".join(path.relative_to(REPO).parts[:-1])
        todo += [module_file(m) for m in imported_modules(path.read_text(encoding="utf-8"), package)]
    return seen


def exempt(rel: str) -> bool:
    if rel.startswith(EXEMPT_FOLDERS):
        return True
    if rel.endswith("__init__.py"):
        body = ast.parse((REPO / rel).read_text(encoding="utf-8")).body
        return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)
    return False


def covered(rel: str, deps: tuple[str, ...]) -> bool:
    return any(rel == dep or rel.startswith(dep.rstrip("/") + "/") for dep in deps)


STAGES = dvc_stages.read(REPO)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_module_a_stage_imports_is_in_its_deps(stage):
    module = REPO / "pipeline" / "stages" / f"{stage.group}.py"
    assert module.is_file() and covered(f"pipeline/stages/{stage.group}.py", stage.deps), stage.deps
    reached = sorted(p.relative_to(REPO).as_posix() for p in closure(module))
    missing = [rel for rel in reached if not exempt(rel) and not covered(rel, stage.deps)]
    assert missing == [], f"{stage.name} imports these but dvc.yaml does not list them in its deps: {missing}"


def test_the_import_walk_sees_lazy_and_relative_imports():
    """The check above is only as good as this walk: an import inside a function counts as much as one at the top."""
    evaluate = closure(REPO / "pipeline" / "stages" / "evaluate.py")
    names = {p.relative_to(REPO).as_posix() for p in evaluate}
    assert "pipeline/evaluation/scoring.py" in names and "pipeline/stages/evaluate.py" in names
    lazy = "def f():\n    from pipeline.serving import lite\n"
    assert {"pipeline", "pipeline.serving", "pipeline.serving.lite"} <= imported_modules(lazy, "pipeline.stages")
    relative = "from ..data import images\nfrom . import train\n"
    found = imported_modules(relative, "pipeline.stages")
    assert {"pipeline.data.images", "pipeline.stages.train"} <= found


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_stage_depends_on_the_locked_environment(stage):
    """Another TensorFlow, Keras or Great Expectations can change a stage's result: two environments must not share a
    run-cache key, so requirements.lock (what is installed) is a dep of every stage."""
    assert "requirements.lock" in stage.deps
