"""The serving error, in a module of its own: the TFLite path raises it without importing Keras."""

from __future__ import annotations

from pipeline.config import UserError


class ModelError(UserError, ValueError):
    """A model file that is not a trained model of this pipeline, or one that does not fit the params (input size,
    classes); the message names the file and what is wrong."""
