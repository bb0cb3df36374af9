"""The DAG's reading of dvc.yaml (dags/dvc_stages.py, a plain YAML read) against DVC's own: same stage names,
same dependencies, on this repository's dvc.yaml and on a matrix of two axes; what it does not read is refused."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests import workspace
from tests.dags.airflow_env import dvc_stages


def dvc_graph(root: Path) -> dict[str, list[str]]:
    """Each pipeline stage of ``root`` with the stages it depends on, as DVC itself builds the graph."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph
        stages = [s for s in repo.index.stages if not s.is_data_source]
        return {s.name: sorted(d.name for d in graph.successors(s) if not d.is_data_source) for s in stages}


def our_graph(root: Path) -> dict[str, list[str]]:
    return {s.name: sorted(s.upstream) for s in dvc_stages.read(root)}


def dvc_repo(root: Path) -> Path:
    workspace.dvc(root, "init", "--no-scm", "-q")
    return root


def test_this_repository_dvc_yaml_reads_as_dvc_reads_it(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(workspace.REPO / name, tmp_path / name)
    assert our_graph(tmp_path) == dvc_graph(dvc_repo(tmp_path))


TWO_AXES = """
stages:
  fit:
    matrix:
      size: [small, large]
      optimizer: [adam, sgd]
    cmd: python fit.py --size ${item.size} --optimizer ${item.optimizer}
    outs: ["fits/${item.size}-${item.optimizer}.bin"]
  report:
    cmd: python report.py
    deps: [fits/large-sgd.bin]
    metrics:
      - summary.json:
          cache: false
"""


def test_a_matrix_of_two_axes_reads_as_dvc_reads_it(tmp_path):
    (tmp_path / "dvc.yaml").write_text(TWO_AXES)
    ours = our_graph(tmp_path)
    assert ours == dvc_graph(dvc_repo(tmp_path))
    assert ours["report"] == ["fit@large-sgd"]
    (report,) = [s for s in dvc_stages.read(tmp_path) if s.name == "report"]
    assert report.uncached == ("summary.json",)


@pytest.mark.parametrize(
    ("stage", "named"),
    [
        ({"foreach": ["a", "b"], "do": {"cmd": "echo ${item}"}}, "do, foreach"),
        ({"cmd": "echo", "wdir": "sub"}, "wdir"),
        ({"cmd": ["echo a", "echo b"]}, "cmd as a list"),
        ({"cmd": "echo ${model.name}"}, "${model.name}"),
        ({"matrix": {"model": ["a"]}, "cmd": "echo ${item.size}"}, "${item.size}"),
        ({"matrix": {"model": "${models}"}, "cmd": "echo"}, "matrix values other than lists of strings"),
        ({"matrix": {"lr": [0.1, 0.2]}, "cmd": "echo"}, "matrix values other than lists of strings"),
    ],
)
def test_an_unsupported_feature_is_refused_by_name(tmp_path, stage, named):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": stage}}))
    with pytest.raises(ValueError, match=re.escape(named)):
        dvc_stages.read(tmp_path)


def test_vars_are_refused_by_name(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"vars": [{"n": 1}], "stages": {"s": {"cmd": "echo ${n}"}}}))
    with pytest.raises(ValueError, match="vars"):
        dvc_stages.read(tmp_path)


def test_gpu_stages_in_params_name_stages_of_dvc_yaml(raw_params):
    # a renamed stage would otherwise silently move to the CPU queue
    groups = {s.group for s in dvc_stages.read(workspace.REPO)}
    assert set(raw_params["retrain"]["gpu_stages"]) <= groups
