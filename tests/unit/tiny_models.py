"""Tiny models for the inference tests (evaluate, explain, predict, export): the test profile's settings (75 px,
``weights: null``, tiny heads and decoder), each built once per test session, since a build takes seconds."""

from __future__ import annotations

import functools

import keras

from pipeline import config
from pipeline.models import build
from tests import workspace


def params() -> config.Params:
    return workspace.tiny_params()


@functools.cache
def model(name: str) -> keras.Model:
    p = params()
    keras.utils.set_random_seed(p.seed)
    return build(p.train[name], p.image_size, len(p.classes))
