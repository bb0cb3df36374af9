"""The test profile's settings (tests/profile.yaml: tiny heads, one epoch), shared by the training tests."""

from __future__ import annotations

import pytest

from pipeline import config
from tests import workspace


@pytest.fixture(scope="session")
def tiny_params() -> config.Params:
    return config.from_dict(workspace.profile_params())
