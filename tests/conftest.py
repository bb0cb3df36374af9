"""Shared fixtures: the repository's params with a tiny test profile, and tiny raw datasets in the Kaggle layout."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from pipeline import config  # noqa: E402
from tests import workspace  # noqa: E402
from tests.workspace import REPO, tiny_dataset  # noqa: E402

if TYPE_CHECKING:
    from tests.cluster import Cluster
    from tests.dags.airflow_env import DagRun


SHARED_RUN = {"retraining_run", "reproduced_workspace"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """`make test` runs on two processes (pytest-xdist, `--dist loadgroup`). Each test file is one group, so its module
    fixtures run once; every file with a test that reads the retraining DAG run (a session fixture of about 5 minutes)
    joins one group, so that run happens once, on one process, while the other process works through the rest."""
    path = {item: item.nodeid.split("::")[0] for item in items}
    shared = {path[item] for item in items if SHARED_RUN & set(item.fixturenames)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group("retraining-run" if path[item] in shared else path[item]))


@pytest.fixture(scope="session")
def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def params(raw_params) -> config.Params:
    return config.from_dict(raw_params)


@pytest.fixture(scope="session")
def tiny_params() -> config.Params:
    """The test profile's settings (tests/profile.yaml: 75 px, tiny heads and decoder, one epoch)."""
    return workspace.tiny_params()


@pytest.fixture(scope="session")
def tiny_raw_master(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "raw"
    return tiny_dataset(root)


@pytest.fixture
def tiny_raw(tiny_raw_master, tmp_path) -> Path:
    """A private, writable copy of a tiny sample dataset (3 train and 1 test image per class)."""
    root = tmp_path / "raw"
    shutil.copytree(tiny_raw_master, root)
    return root


@dataclass(frozen=True)
class RetrainingRun:
    home: Path  # AIRFLOW_HOME, with its SQLite DB
    cluster: Cluster  # origin, the DVC remote and the tasks' folder; later DAG tests go on running against them
    run: DagRun  # the first `airflow dags test` run
    snapshot: Path  # a fresh clone of origin after the first run, its outputs pulled from the DVC remote


@pytest.fixture(scope="session")
def retraining_run(tmp_path_factory) -> RetrainingRun:
    """The first run of the retraining DAG (`airflow dags test`) against a fresh origin and DVC remote with the test
    profile: each task in its own temporary clone, every stage executed once on tiny data, then a promotion.

    Running the pipeline is the slow part of the integration tests, so it runs once per session: the DAG tests check
    this run, and tests that need a reproduced pipeline take a copy of the clone of its result (reproduced_workspace).
    """
    from tests import cluster
    from tests.dags import airflow_env

    base = tmp_path_factory.mktemp("retraining")
    home = base / "airflow"
    airflow_env.migrate(home)
    made = cluster.make(base, overrides={"retrain": {"retries": 0}})  # no retries: a failure shows at once
    run = airflow_env.dags_test(home, made.env())
    snapshot = base / "after-first-run"
    if run.done.returncode == 0:
        made.clone(snapshot)
    return RetrainingRun(home, made, run, snapshot)


@pytest.fixture(scope="session")
def reproduced_workspace(retraining_run) -> Path:
    """A clone of the pipeline where every stage ran once on tiny data (test profile), its outputs pulled from the DVC
    remote and committed (promoted). Tests that change it work on their own copy (tests.workspace.copy)."""
    if retraining_run.run.done.returncode != 0:
        pytest.fail("the retraining DAG run that reproduces the pipeline failed (see tests/dags/test_dag_run.py)")
    return retraining_run.snapshot
