"""Shared fixtures: the repository's params with a tiny test profile, and tiny raw datasets in the Kaggle layout."""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import filelock
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
FIRST = "tests/dags/test_dag_run.py"  # the file that makes the retraining DAG run and goes on with its cluster


def pytest_collection_modifyitems(config, items):
    """Under `make test` (pytest-xdist, `--dist loadfile --no-loadscope-reorder`, files handed out in this order) the
    process that takes the first file makes the retraining DAG run while the other works through the files that do not
    need it; the files that only read its result come last, by when it is made (any process can read it: see
    retraining_run)."""

    def rank(item) -> int:
        if item.nodeid.split("::")[0] == FIRST:
            return 0
        return 2 if SHARED_RUN & set(item.fixturenames) else 1

    items.sort(key=rank)  # stable: pytest's order within each rank


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

    Running the pipeline is the slow part of the integration tests, so it runs once per `pytest` command: the DAG
    tests check this run, and tests that need a reproduced pipeline take a copy of the clone of its result
    (reproduced_workspace). Under pytest-xdist the first process that asks makes it, in the folder the processes share,
    and the others wait for it and read its record (every part of it is on disk). Only tests/dags/test_dag_run.py goes
    on with its cluster; the snapshot is never changed in place.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        shared = shared.parent  # the processes' common folder (pytest-xdist's documented pattern)
    record = shared / "retraining-run.pickle"
    with filelock.FileLock(shared / "retraining-run.lock"):
        if not record.exists():
            made = _retrain(shared / "retraining")
            partial = record.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(made))
            partial.replace(record)
    return pickle.loads(record.read_bytes())


def _retrain(base: Path) -> RetrainingRun:
    from tests import cluster
    from tests.dags import airflow_env

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
