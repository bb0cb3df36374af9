"""Hostile params.yaml files: each wrong key is refused when params load, by a message naming the key and what it
allows. Params only: nothing here trains or reads images."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.__main__ import main as cli
from pipeline.release import registry
from tests.dags.airflow_env import dvc_stages
from tests.workspace import REPO


class _Missing:
    """The key is deleted rather than given a value (a stable repr: test ids must match across pytest-xdist workers)."""

    def __repr__(self) -> str:
        return "<deleted>"


MISSING = _Missing()

CASES = [
    ("augment.cap_majority", -5, "augment.cap_majority: -5 is below 1 (allowed: null or >= 1)"),
    ("augment.cap_majority", 0, "augment.cap_majority: 0 is below 1 (allowed: null or >= 1)"),
    ("augment.target", "Majority", "augment.target: must be a positive integer, 'majority' or 'none'"),
    ("augment.target", 0, "augment.target: must be a positive integer, 'majority' or 'none', got 0"),
    ("augment.group_regex", "([", "augment.group_regex: '([' is not a valid regular expression: unterminated"),
    ("augment.val_fraction", 0, "augment.val_fraction: 0.0 is outside (0, 1)"),
    ("augment.val_fraction", 1, "augment.val_fraction: 1.0 is outside (0, 1)"),
    ("augment.face_margin", -0.1, "augment.face_margin: -0.1 is below 0 (allowed: >= 0)"),
    ("augment.rotation", -12, "augment.rotation: -12.0 is outside [0, 180]"),
    ("augment.zoom", 1.0, "augment.zoom: 1.0 is outside [0, 1)"),
    ("augment.brightness", 2, "augment.brightness: 2.0 is outside [0, 1]"),
    ("augment.horizontal_flip", "yes", "augment.horizontal_flip: expected bool (true or false), got 'yes'"),
    ("validate.near_duplicate_max_distance", -1, "validate.near_duplicate_max_distance: -1 is outside [0, 32]"),
    ("validate.min_width", -10, "validate.min_width: -10 is below 1 (allowed: >= 1)"),
    ("validate.max_aspect", 0.5, "validate.max_aspect: 0.5 is outside [1, 100]"),
    ("validate.max_aspect", MISSING, "validate.max_aspect: missing key"),
    ("validate.min_images_per_class.train", -1, "validate.min_images_per_class.train: -1 is below 0"),
    ("validate.allowed_channels", [3, 5], "validate.allowed_channels[1]: 5 is not a channel count (one of 1, 2, 3, 4)"),
    ("validate.allowed_extensions", ["jpg"], "validate.allowed_extensions[0]: 'jpg' is not a file extension"),
    ("train.irv2.epochs", -1, "train.irv2.epochs: -1 is below 1 (allowed: >= 1)"),
    ("train.irv2.finetune_epochs", -1, "train.irv2.finetune_epochs: -1 is below 0 (allowed: >= 0)"),
    ("train.irv2.batch_size", 0, "train.irv2.batch_size: 0 is below 1 (allowed: >= 1)"),
    ("train.irv2.dropout", 1.5, "train.irv2.dropout: 1.5 is outside [0, 1)"),
    ("train.irv2.learning_rate", -0.1, "train.irv2.learning_rate: -0.1 is not above 0 (allowed: > 0)"),
    ("train.irv2.learning_rate", float("nan"), "train.irv2.learning_rate: nan is not a finite number"),
    ("train.irv2.learning_rate", "0.001 or so", "train.irv2.learning_rate: expected a number, got '0.001 or so'"),
    ("train.irv2.learnin_rate", 0.1, "train.irv2.learnin_rate: unknown key (did you mean 'learning_rate'?)"),
    ("train.irv2.momentum", 1, "train.irv2.momentum: 1.0 is outside [0, 1)"),
    ("train.irv2.label_smoothing", -0.1, "train.irv2.label_smoothing: -0.1 is outside [0, 1)"),
    ("train.irv2.head_units", 0, "train.irv2.head_units: 0 is below 1"),
    ("train.irv2.head_units", 1.5, "train.irv2.head_units: expected int, got 1.5"),
    ("train.irv2.unfreeze_top_layers", -1, "train.irv2.unfreeze_top_layers: -1 is below 0"),
    ("train.irv2.early_stopping_patience", -1, "train.irv2.early_stopping_patience: -1 is below 0"),
    ("train.irv2.optimizer", "rmsprop", "train.irv2.optimizer: 'rmsprop' is not one of 'adam', 'sgd'"),
    ("train.irv2.weights", "", "train.irv2.weights: give a non-empty name"),
    ("train.irv2.unet", {"decoder_filters": [8], "reconstruction_weight": 0.2}, "train.irv2.unet: give it for"),
    ("train.irv2_unet.unet.decoder_filters", [], "train.irv2_unet.unet.decoder_filters: give at least one value"),
    ("train.irv2_unet.unet.decoder_filters", [16, 0], "train.irv2_unet.unet.decoder_filters[1]: 0 is below 1"),
    ("train.irv2_unet.unet.reconstruction_weight", -1, "train.irv2_unet.unet.reconstruction_weight: -1.0 is below 0"),
    ("promote.tolerance", -1, "promote.tolerance: -1.0 is outside [0, 1]"),
    ("promote.gate", {}, "promote.gate: name at least one Test metric"),
    ("retrain.retries", -3, "retrain.retries: -3 is below 0 (allowed: >= 0)"),
    ("retrain.schedule", "every tuesday-ish", "retrain.schedule: 'every tuesday-ish' is not a cron expression"),
    ("retrain.schedule", "0 3 * *", "retrain.schedule: '0 3 * *' is not a cron expression (5 fields), an Airflow"),
    ("retrain.schedule", "0 25 * * *", "retrain.schedule: '0 25 * * *' is not a cron expression (5 fields)"),
    ("retrain.gpu_stages", ["trian"], "retrain.gpu_stages[0]: 'trian' is not a stage of dvc.yaml (one of validate,"),
    ("retrain.timeout_hours", {"cpu": 2}, "retrain.timeout_hours: needs exactly the keys 'cpu' and 'gpu'"),
    ("retrain.timeout_hours.gpu", 0, "retrain.timeout_hours.gpu: 0.0 is not above 0"),
    ("tune.time_cap_s", -5, "tune.time_cap_s: -5 is not above 0 (allowed: null or > 0)"),
    ("tune.max_trials", 0, "tune.max_trials: 0 is below 1"),
    ("tune.hyperband.factor", 1, "tune.hyperband.factor: 1 is below 2"),
    ("tune.hyperband.factor", MISSING, "tune.hyperband.factor: missing key"),
    ("tune.evolutionary.crossover", 1.5, "tune.evolutionary.crossover: 1.5 is outside [0, 1]"),
    ("tune.algorithm", "grid", "tune.algorithm: 'grid' is not one of 'hyperband', 'random'"),
    ("tune.algorithm", "None", "tune.algorithm: 'None' is not one of"),
    ("tune.trial_time_s", 0, "tune.trial_time_s: 0.0 is not above 0 (allowed: null or > 0)"),
    ("tune.trial_time_s", MISSING, "tune.trial_time_s: missing key"),
    ("tune.subset_per_class", 0, "tune.subset_per_class: 0 is below 1 (allowed: null or >= 1)"),
    ("tune.subset_per_class", 2.5, "tune.subset_per_class: expected int"),
    ("tune.space.dropout", {"low": 0.1, "high": 1.5, "log": False}, "tune.space.dropout.high: 1.5 is outside [0, 1)"),
    ("classes", [], "classes: give at least 2 values, got 0"),
    ("classes", ["joy", "joy"], "classes: names must be unique (joy repeated)"),
    # class names and aliases become folders of augment's output: one plain path component each (issue 23)
    ("classes", ["joy", "../../raw/Train/joy"], "classes[1]: '../../raw/Train/joy' is not a plain folder name (it"),
    ("classes", ["joy", "../natural"], "classes[1]: '../natural' is not a plain folder name (it holds a path"),
    ("classes", ["joy", "a/b"], "classes[1]: 'a/b' is not a plain folder name (it holds a path separator); give a"),
    ("classes", ["joy", "a\\b"], "classes[1]: 'a\\\\b' is not a plain folder name (it holds a path separator)"),
    ("classes", ["joy", ".."], "classes[1]: '..' is not a plain folder name (it names a folder itself"),
    ("classes", ["joy", ".hidden"], "classes[1]: '.hidden' is not a plain folder name (it starts with a dot"),
    ("classes", ["joy", "x\x00y"], "classes[1]: 'x\\x00y' is not a plain folder name (it holds a control character)"),
    ("classes", ["joy", ""], "classes[1]: give a non-empty name"),
    ("class_aliases", {"../natural": "natural"}, "class_aliases.../natural: '../natural' is not a plain folder name"),
    ("class_aliases", {"neutral": "../../raw/Train/joy"}, "class_aliases.neutral: '../../raw/Train/joy' is not a"),
    ("class_aliases", {".sad": "sadness"}, "class_aliases..sad: '.sad' is not a plain folder name (it starts with"),
    ("split_folders", {"train": "../Train", "test": "Test"}, "split_folders.train: '../Train' is not a plain folder"),
    ("seed", -1, "seed: -1 is below 0 (allowed: >= 0)"),
    ("image_size", 74, "image_size: 74 is below 75"),
    ("image_size", "75", "image_size: expected int, got '75'"),
    ("split_folders", {"train": "Train"}, "split_folders: needs exactly the keys 'train' and 'test'"),
    ("evaluate.gradcam_per_class", 0, "evaluate.gradcam_per_class: 0 is below 1"),
    ("evaluate.tta", [True], "evaluate.tta[0]: expected str"),
    ("evaluate.tta", MISSING, "evaluate.tta: missing key"),
    ("evaluate.ensemble", ["irv2_unet", "irv"], "evaluate.ensemble[1]: 'irv' is not a model of train (one of irv2,"),
    ("evaluate.reference", {"x": {"accuracy": 2, "macro_f1": None, "per_class_f1": {}}}, "reference.x.accuracy: 2.0"),
    ("predict.max_detect_side", 64, "predict.max_detect_side: 64 is below image_size"),
    ("sample_data.counts.train.joy", -1, "sample_data.counts.train.joy: -1 is below 0"),
]


def _write(path: Path, raw: dict, key: str, value: object) -> None:
    *parents, last = key.split(".")
    section = raw
    for part in parents:
        section = section[part]
    if value is MISSING:
        del section[last]
    else:
        section[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.mark.parametrize(("key", "value", "message"), CASES, ids=[f"{k}={v!r}" for k, v, _ in CASES])
def test_a_wrong_key_is_refused_when_params_load(raw_params, tmp_path, key, value, message):
    path = tmp_path / "params.yaml"
    _write(path, copy.deepcopy(raw_params), key, value)
    with pytest.raises(config.ConfigError, match=re.escape(message)) as caught:
        config.load(path)
    assert "pydantic" not in str(caught.value) and "Union" not in str(caught.value)


@pytest.mark.parametrize("text", ["- seed: 1\n- image_size: 75\n", "", "# only a comment\n"])
def test_params_must_be_a_mapping(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=re.escape("params.yaml: must be a mapping of keys")):
        config.load(path)


def test_a_key_given_twice_is_refused(tmp_path):
    text = (REPO / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(f"{text}\nimage_size: 299\n")
    line = len(f"{text}\n".splitlines()) + 1
    with pytest.raises(config.ConfigError, match=re.escape(f"params.yaml line {line}: duplicate key 'image_size'")):
        config.load(path)


def alias_bomb(depth: int = 9) -> str:
    """A 'billion laughs' file: nine x, then levels of nine aliases of the level below; classes: the last one."""
    names = [f"l{i}" for i in range(depth)]
    lines = [f"{names[0]}: &{names[0]} [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]" for prev, cur in zip(names, names[1:], strict=False)]
    return "\n".join([*lines, f"classes: *{names[-1]}", ""])


# hostile YAML files: (case, the file's text, the one line after "<path>: ")
YAML_FILES = [
    ("alias bomb 9^9", alias_bomb(), "its aliases expand to more than 100,000 values (a 'billion laughs' file?)"),
    ("self-reference", "classes: &a [joy, *a]\n", "an alias refers to the collection that holds it (an endless value)"),
    ("2 MiB", "seed: 1\n" + "#" * (2 << 20) + "\n", "larger than 1 MiB, the limit of a YAML file here"),
    ("[[[ 400000 deep", "[" * 400_000 + "]" * 400_000, "collections nest more than 50 deep; flatten it"),
    ("- - - 400000 deep", "- " * 400_000 + "x\n", "collections nest more than 50 deep; flatten it"),
    ("not UTF-8", "seed: 1\nname: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 17); save it as UTF-8"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in YAML_FILES], ids=[c[0] for c in YAML_FILES])
def test_a_hostile_yaml_file_is_refused_in_a_second_with_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    started = time.perf_counter()
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert time.perf_counter() - started < 1.0
    assert str(caught.value).startswith(f"{path}: {message}") and "\n" not in str(caught.value)
    outs = [f"--{o}={tmp_path / o}" for o in ("manifest", "metrics", "report")]
    assert cli(["--params", str(path), "validate", f"--raw={tmp_path / 'raw'}", *outs]) == 1
    assert capsys.readouterr().err == f"error: {caught.value}\n"


def test_every_yaml_a_stage_reads_is_bounded(tmp_path):
    """dvc.yaml too: read by params loading (stage names), the model registry and the retraining DAG."""
    (tmp_path / "dvc.yaml").write_text(alias_bomb().replace("classes:", "stages:"))
    for read in (lambda: dvc_stages.read(tmp_path), lambda: registry.artifacts(tmp_path)):
        with pytest.raises(config.ConfigError, match="its aliases expand to more than 100,000 values"):
            read()


def test_anchors_and_aliases_within_the_limit_still_work(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("classes: [", "classes: &classes [")
    path = tmp_path / "params.yaml"
    path.write_text(f"{text}\nx: *classes\n")
    with pytest.raises(config.ConfigError, match="x: unknown key"):  # the alias itself was read
        config.load(path)
    path.write_text(text)
    assert config.load(path).classes == ["joy", "sadness", "fear", "anger", "surprise", "natural"]
