"""The search space is described once (tune.space in params.yaml) and both searches read that one description."""

from __future__ import annotations

import copy
import random
import re

import pytest

from pipeline import config
from pipeline.tuning import space


@pytest.fixture(scope="module")
def dims(params):
    return space.dimensions(params.tune.space)


def test_dimensions_follow_params(params, dims):
    assert [d.name for d in dims] == list(params.tune.space)
    kinds = {d.name: d.kind for d in dims}
    assert kinds["learning_rate"] == "float" and kinds["optimizer"] == "choice"
    lr = next(d for d in dims if d.name == "learning_rate")
    assert lr.log and lr.low == params.tune.space["learning_rate"].low


def test_keras_tuner_reads_the_same_space(params, dims):
    hp = space.hyperparameters(dims, space.baseline(dims, params.train["irv2"]))
    assert [p.name for p in hp.space] == [d.name for d in dims]
    for seed in range(20):
        values = {p.name: p.random_sample(seed) for p in hp.space}
        overrides = space.from_values(dims, {**values, "tuner/epochs": 3})
        assert set(overrides) == set(params.tune.space)
        # a trial's values are valid train.<model> settings
        for name, cfg in params.train.items():
            tuned = config.replace(cfg, overrides, f"train.{name}")
            assert tuned.optimizer in ("adam", "sgd") and tuned.architecture == cfg.architecture


@pytest.mark.parametrize("model", ["irv2", "irv2_unet"])
def test_genes_decode_to_valid_overrides(params, dims, model):
    rng = random.Random(0)
    for _ in range(50):
        overrides = space.decode(dims, [rng.random() for _ in dims])
        cfg = config.replace(params.train[model], overrides, f"train.{model}")
        for d in dims:
            value = getattr(cfg, d.name)
            if d.kind == "choice":
                assert value in d.choices
            else:
                assert d.low <= value <= d.high
        assert isinstance(cfg.head_units, int) and isinstance(cfg.learning_rate, float)
    # the corners of the cube are the ends of the ranges and the first and last choices
    low, high = space.decode(dims, [0.0] * len(dims)), space.decode(dims, [1.0] * len(dims))
    assert low["learning_rate"] == pytest.approx(1e-4) and high["learning_rate"] == pytest.approx(1e-2)
    assert (low["optimizer"], high["optimizer"]) == ("adam", "sgd")


def test_encode_inverts_decode(params, dims):
    values = space.baseline(dims, params.train["irv2"])
    assert space.decode(dims, space.encode(dims, values)) == pytest.approx(values)


def test_baseline_is_brought_into_the_space(params, dims):
    cfg = config.replace(params.train["irv2"], {"head_units": 100, "dropout": 0.9}, "train.irv2")
    base = space.baseline(dims, cfg)
    assert base["head_units"] == dims[[d.name for d in dims].index("head_units")].choices[0]
    assert base["dropout"] == params.tune.space["dropout"].high


@pytest.mark.parametrize(
    ("space_override", "message"),
    [
        ({"batchsize": {"choice": [8]}}, "tune.space.batchsize: not a tunable field"),
        ({"architecture": {"choice": ["irv2"]}}, "tune.space.architecture: not a tunable field"),
        ({"optimizer": {"low": 0, "high": 1, "log": False}}, "tune.space.optimizer: a range needs a numeric field"),
        ({"dropout": {"low": 0.5, "high": 0.1, "log": False}}, "tune.space.dropout: needs low < high"),
        ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "needs low < high (and low > 0 on a log scale)"),
        ({"optimizer": {"choice": ["adam", "rmsprop"]}}, "tune.space.optimizer.choice[1]: 'rmsprop' is not one of"),
        ({"head_units": {"choice": []}}, "tune.space.head_units.choice: give at least one value"),
        ({"dropout": {"low": 0.1}}, "tune.space.dropout.high: missing key"),
        ({"dropout": [0.1, 0.5]}, "tune.space.dropout: give a range {low, high, log} or a choice {choice: [...]}"),
        ({"dropout": {"choice": [0.1, 1.5]}}, "tune.space.dropout.choice[1]: 1.5 is outside [0, 1)"),
    ],
)
def test_space_mistakes_are_clear_errors(raw_params, space_override, message):
    raw = copy.deepcopy(raw_params)
    raw["tune"]["space"].update(space_override)  # whole dimensions replaced, not merged
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.from_dict(raw)


def test_replace_checks_like_params(params):
    with pytest.raises(config.ConfigError, match=re.escape("hp.json.head_units: expected int, got 'wide'")):
        config.replace(params.train["irv2"], {"head_units": "wide"}, "hp.json")
    with pytest.raises(config.ConfigError, match="hp.json.head_unit: unknown key"):
        config.replace(params.train["irv2"], {"head_unit": 8}, "hp.json")
