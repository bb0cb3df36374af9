"""The DAG's reading of dvc.yaml (dags/dvc_stages.py, a plain YAML read) against DVC's own: same stage names,
same dependencies, on this repository's dvc.yaml and on one that uses every expansion DVC offers."""

from __future__ import annotations

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


EXPANSIONS = """
vars:
  - sizes: {small: 8, large: 16}
stages:
  prepare:
    foreach: [a, b]
    do:
      cmd: echo ${item}
      deps: ["raw/${item}"]
      outs: ["prepared/${item}"]
  features:
    foreach: ${sizes}
    do:
      cmd: echo ${key} ${item} ${model.name}
      deps: [prepared]
      outs: ["features/${key}.csv"]
  fit:
    matrix:
      size: [small, large]
      opts: [{lr: 1}, {lr: 2}]
      fast: [true]
    cmd: echo ${item.size} ${item.opts.lr}
    deps: ["features/${item.size}.csv"]
    outs: ["fits/${item.size}-${key}.bin"]
  report:
    wdir: reports
    cmd: echo report
    deps: [../fits]
    metrics:
      - summary.json:
          cache: false
  composite:
    foreach: [{n: 1}, {n: 2}]
    do:
      cmd: echo ${item.n}
      deps: [reports/summary.json]
      outs: ["composite/${model.name}-${item.n}"]
  unrelated:
    cmd: echo alone
    deps: [elsewhere]
"""


def test_foreach_matrix_vars_and_wdir_read_as_dvc_reads_them(tmp_path):
    (tmp_path / "dvc.yaml").write_text(EXPANSIONS)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"model": {"name": "m"}}))
    ours = our_graph(tmp_path)
    assert ours == dvc_graph(dvc_repo(tmp_path))
    assert "fit@small-opts0-true" in ours  # DVC's naming of composite and boolean matrix values
    assert ours["composite@1"] == ["report"]  # reached through wdir: reports/summary.json


def test_stages_come_after_what_they_read():
    order = [s.name for s in dvc_stages.topological(dvc_stages.read(workspace.REPO))]
    for stage in dvc_stages.read(workspace.REPO):
        assert all(order.index(up) < order.index(stage.name) for up in stage.upstream), stage.name


def test_a_cycle_is_reported():
    a = dvc_stages.Stage("a", "a", None, "", "", (), (), upstream=("b",))
    b = dvc_stages.Stage("b", "b", None, "", "", (), (), upstream=("a",))
    with pytest.raises(ValueError, match="cycle"):
        dvc_stages.topological([a, b])


def test_gpu_stages_in_params_name_stages_of_dvc_yaml(raw_params):
    # a renamed stage would otherwise silently move to the CPU queue
    groups = {s.group for s in dvc_stages.read(workspace.REPO)}
    assert set(raw_params["retrain"]["gpu_stages"]) <= groups
