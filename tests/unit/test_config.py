"""Unit tests of params.yaml loading: typed objects, and a clear error for each kind of mistake."""

from __future__ import annotations

import re

import pytest
import yaml

from pipeline import config
from pipeline.data.classes import normalise
from tests import workspace


def test_repository_params_load(params):
    assert params.classes == ["joy", "sadness", "fear", "anger", "surprise", "natural"]
    assert params.class_index("natural") == 5
    assert isinstance(params.validate.min_images_per_class["train"], int)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"validate": {"min_widht": 3}}, "validate.min_widht: unknown key (did you mean 'min_width'?)"),
        ({"image_size": "big"}, "image_size: expected int, got 'big'"),
        ({"image_size": 64}, "image_size: 64 is below 75"),
        ({"seed": True}, "seed: expected int, got True"),
        ({"classes": "joy"}, "classes: expected a list"),
        ({"validate": {"min_images_per_class": {"val": 1}}}, "min_images_per_class.val: unknown split"),
        ({"promote": {"gate": {"val_macro_f1": 0.3}}}, "promote.gate.val_macro_f1: not a gated Test metric"),
        ({"evaluate": {"tta": "flip"}}, "evaluate.tta: expected a list"),
        ({"evaluate": {"tta": ["rotate"]}}, "evaluate.tta[0]: 'rotate' is not a test-time augmentation (one of flip)"),
        ({"evaluate": {"tta": ["flip", "flip"]}}, "evaluate.tta: names must be unique (flip repeated)"),
        ({"evaluate": {"ensemble": ["irv2"]}}, "evaluate.ensemble: give at least two models of train, or []"),
        ({"evaluate": {"ensemble": ["irv2", "resnet"]}}, "evaluate.ensemble[1]: 'resnet' is not a model of train"),
        ({"evaluate": {"ensemble": ["irv2", "irv2"]}}, "evaluate.ensemble: names must be unique (irv2 repeated)"),
        ({"promote": {"gate": {"macro_f1": 1.5}}}, "promote.gate.macro_f1: floor 1.5 is outside [0, 1]"),
        ({"promote": {"tolerance": -1}}, "promote.tolerance: -1.0 is outside [0, 1]"),
        ({"promote": {"per_class_tolerance": 2.0}}, "promote.per_class_tolerance: 2.0 is outside [0, 1]"),
        ({"promote": {"stage": "Prod Stage"}}, "promote.stage: 'Prod Stage' is not a GTO stage name"),
        ({"promote": {"tag_prefix": "model-"}}, "promote.tag_prefix: unknown key"),
    ],
)
def test_mistakes_are_clear_errors(raw_params, override, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.from_dict(raw_params, override)


def test_missing_key_is_named(raw_params):
    broken = {k: v for k, v in raw_params.items() if k != "seed"}
    with pytest.raises(config.ConfigError, match="seed: missing key"):
        config.from_dict(broken)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("classes: [a\n")
    with pytest.raises(config.ConfigError, match="params.yaml: not valid YAML"):
        config.load(path)


@pytest.mark.parametrize(
    ("folder", "label"),
    [("Natural", "natural"), ("neutral", "natural"), ("HAPPY", "joy"), ("  Sadness ", "sadness"), ("bored", None)],
)
def test_folder_names_normalise(params, folder, label):
    assert normalise(folder, params.classes, params.class_aliases) == label


def test_ensemble_may_be_off_and_its_name_is_no_model_name(raw_params):
    assert config.from_dict(raw_params, {"evaluate": {"ensemble": []}}).evaluate.ensemble == []
    with pytest.raises(config.ConfigError, match=re.escape("train.ensemble: 'ensemble' is the ensemble's name")):
        config.from_dict(raw_params, {"train": {"ensemble": raw_params["train"]["irv2"]}})


def test_an_alias_of_a_class_no_longer_listed_is_ignored_with_a_note():
    classes = ["joy", "sadness", "fear", "anger", "surprise"]  # natural removed, its aliases left as they were
    with pytest.warns(config.ConfigWarning, match=r"class_aliases.neutral: 'natural' is not one of classes"):
        params = config.from_dict(workspace.profile_params(), {"classes": classes})
    assert "neutral" not in params.class_aliases and params.class_aliases["happy"] == "joy"
    assert normalise("neutral", params.classes, params.class_aliases) is None  # validate: matches no class


def test_the_cli_prints_that_note_as_one_plain_line(tmp_path, capsys):
    """What a 5-class run shows in every stage: the note alone, not a Python warning with its source line."""
    from pipeline.__main__ import main as cli

    raw = {**workspace.profile_params(), "classes": ["joy", "sadness", "fear", "anger", "surprise"]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    outs = [f"--{o}={tmp_path / o}" for o in ("manifest", "metrics", "report")]
    assert cli(["--params", str(path), "validate", f"--raw={tmp_path / 'missing'}", *outs]) == 1
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if "class_aliases" in line]
    assert notes and all(line.startswith("note: params: class_aliases.") and "is ignored" in line for line in notes), (
        err
    )
    assert "note: params: class_aliases.neutral: 'natural' is not one of classes" in err[0]
    assert not any("warn" in line.lower() for line in err), err
    assert err[-1].startswith("error: ") and "missing" in err[-1]


def test_a_number_as_dvc_writes_it_is_read_as_dvc_reads_it(tmp_path):
    """`dvc exp run -S train.irv2.learning_rate=0.00001` writes `1e-05`: a number in YAML 1.2 (DVC), a string in
    PyYAML's YAML 1.1. params.yaml is read as DVC reads it; a quoted one stays a string, and is refused."""
    text = (workspace.REPO / "params.yaml").read_text()
    assert "    learning_rate: 0.001\n" in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("    learning_rate: 0.001\n", "    learning_rate: 1e-05\n", 1))
    assert config.load(path).train["irv2"].learning_rate == 1e-05
    path.write_text(text.replace("    learning_rate: 0.001\n", "    learning_rate: '1e-05'\n", 1))
    with pytest.raises(config.ConfigError, match=r"train.irv2.learning_rate: expected a number, got '1e-05'"):
        config.load(path)
