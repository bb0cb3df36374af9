"""The promotion gate's arithmetic (pipeline/release/gate.py, judge) and the registry's roll-back rule
(registry.lineage), with numbers only: floors, tolerance against every champion, per-class tolerance."""

from __future__ import annotations

import pytest

from pipeline.config import PromoteConfig
from pipeline.release.gate import judge

GATE = PromoteConfig(stage="prod", gate={"macro_f1": 0.25}, tolerance=0.02, per_class_tolerance=None)


def figures(macro_f1: float, **per_class: float) -> dict:
    return {"macro_f1": macro_f1, "per_class": {k: {"f1": v} for k, v in per_class.items()}}


def verdict(checks) -> bool:
    return all(c.passed for c in checks)


def test_no_champion_means_the_floor_alone():
    assert verdict(judge(figures(0.25), {}, GATE))
    checks = judge(figures(0.2499), {}, GATE)
    assert [(c.against, c.passed) for c in checks] == [("floor", False)]


def test_the_tolerance_holds_against_every_champion():
    champions = {"v1.0.0": figures(0.50), "v1.1.0": figures(0.49)}
    assert verdict(judge(figures(0.48), champions, GATE))  # exactly 0.02 below the best: passes
    checks = judge(figures(0.47), champions, GATE)
    failed = [(c.against, c.limit) for c in checks if not c.passed]
    assert failed == [("v1.0.0", 0.48)]  # within 0.02 of v1.1.0, not of v1.0.0


def test_per_class_tolerance_when_set():
    gate = PromoteConfig(stage="prod", gate={"macro_f1": 0.0}, tolerance=0.02, per_class_tolerance=0.1)
    champion = {"v1.0.0": figures(0.5, joy=0.8, fear=0.4)}
    assert verdict(judge(figures(0.5, joy=0.75, fear=0.3), champion, gate))
    checks = judge(figures(0.6, joy=0.9, fear=0.25), champion, gate)
    assert [c.metric for c in checks if not c.passed] == ["per_class.fear.f1"]


@pytest.mark.parametrize(
    ("assigned", "lineage"),
    [
        (["v1.0.0", "v1.1.0", "v1.2.0"], ["v1.2.0", "v1.1.0", "v1.0.0"]),
        (["v1.0.0", "v1.1.0", "v1.2.0", "v1.0.0"], ["v1.0.0"]),  # rolled back: what came before no longer counts
        (["v1.0.0", "v1.1.0", "v1.2.0", "v1.0.0", "v1.3.0"], ["v1.3.0", "v1.0.0"]),
    ],
)
def test_lineage_stops_at_the_last_roll_back(monkeypatch, assigned, lineage):
    from pipeline.release import registry

    fake = [registry.Version("m", v, f"c{v}") for v in assigned]
    monkeypatch.setattr(registry, "assignments", lambda root, name, stage: fake)
    assert [v.version for v in registry.lineage(None, "m", "prod")] == lineage


def test_model_arguments_of_predict_and_export(tmp_path):
    import shutil
    from pathlib import Path

    from pipeline.release import registry
    from tests import workspace

    shutil.copy(workspace.REPO / "dvc.yaml", tmp_path)  # its artifacts: say where each model's file is
    names = ["irv2", "irv2_unet"]
    assert registry.locate("irv2", None, names, tmp_path) == ("irv2", tmp_path / "models/irv2/model.keras")
    assert registry.locate("irv2_unet@prod", Path("x.keras"), names, tmp_path) == ("irv2_unet", Path("x.keras"))
    with pytest.raises(registry.RegistryError, match="resnet is not a model of params.yaml"):
        registry.locate("resnet@prod", None, names, tmp_path)
