"""The README's real-data CPU settings are a `dvc exp run -S ...` command; DVC itself applies its overrides here (a
queued experiment, nothing trained) and the params it writes must load, with every value where the README says. A
renamed key, a value the schema refuses or quoting that DVC reads otherwise fails here instead of in a user's run."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from pipeline import config
from pipeline.release.policy import value_at
from tests import workspace
from tests.workspace import REPO

pytestmark = pytest.mark.integration

MARK = "<!-- real-data CPU settings"


def readme_overrides() -> list[str]:
    """The ``-S key=value`` arguments of the fenced block that follows MARK in README.md, as the shell splits them."""
    text = (REPO / "README.md").read_text()
    start = text.index(MARK)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.DOTALL)
    assert block, "README: no ```bash block after the real-data CPU settings mark"
    words = shlex.split(block.group(1).replace("\\\n", " "), comments=True)
    assert words[:3] == ["dvc", "exp", "run"], words[:3]
    overrides = [value for flag, value in zip(words, words[1:], strict=False) if flag in ("-S", "--set-param")]
    assert len(overrides) == words.count("-S") + words.count("--set-param")
    return overrides


def test_dvc_applies_the_readme_settings_and_params_load_them(tmp_path, raw_params):
    overrides = readme_overrides()
    assert any(o.startswith("train.irv2.") for o in overrides)
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        (repo / name).write_bytes((REPO / name).read_bytes())
    workspace.sh(repo, "git", "init", "-q")
    workspace.dvc(repo, "init", "-q")
    workspace.sh(repo, "git", "add", "-A")
    workspace.sh(repo, "git", "commit", "-qm", "params")
    args = [arg for override in overrides for arg in ("-S", override)]
    workspace.dvc(repo, "exp", "run", "--queue", "-n", "readme", *args)
    shown = json.loads(workspace.dvc(repo, "exp", "show", "--json").stdout)
    queued = [
        rev
        for commit in shown
        for experiment in commit.get("experiments") or []
        for rev in experiment.get("revs") or []
        if rev.get("name") == "readme"
    ]
    assert len(queued) == 1, shown
    raw = queued[0]["data"]["params"]["params.yaml"]["data"]

    params = config.from_dict(raw)  # every key there (the schema has no defaults) and none unknown

    for override in overrides:
        key, _, text = override.partition("=")
        expected = yaml.safe_load(text)
        assert value_at(raw, key) == expected, override
        unchanged = value_at(raw, key) == value_at(raw_params, key)
        assert not unchanged or key == "seed", f"{override}: the sample profile's own value"
    # what the README says of these settings: every class filled to the largest, none cut, 75 px from scratch
    assert params.augment.target == "majority" and params.augment.cap_majority is None
    assert params.image_size == 75 and all(model.weights is None for model in params.train.values())
