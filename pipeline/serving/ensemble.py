"""The ensemble: the mean of several trained models' class probabilities, named ``ensemble`` beside them.

Its members are params.yaml ``evaluate.ensemble``, the one place that lists them. It is not a registry artifact
(promotion knows each trained model alone): predict and export load its members from the workspace, each from its
path in dvc.yaml's ``artifacts:``, and evaluate averages the probabilities it has already computed per member.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import ENSEMBLE, Params
from pipeline.release import registry

if TYPE_CHECKING:
    import keras

NAME = ENSEMBLE


def mean(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities from its members' (each N x classes): their mean, itself a distribution."""
    return np.mean(np.stack(probabilities), axis=0, dtype=np.float32)


def classify(models: Sequence[keras.Model], images: np.ndarray, batch_size: int, tta: Sequence[str]) -> np.ndarray:
    """The mean of the class probabilities of ``models`` (one model: its own), each with the same ``tta``."""
    from pipeline.serving import inference  # Keras and TensorFlow: locate() and mean() do without them

    return mean([inference.classify(m, images, batch_size, tta) for m in models])


def locate(model: str, file: Path | None, params: Params, root: Path = Path(".")) -> tuple[str, list[Path]]:
    """The name and model file(s) that ``--model`` and ``--model-file`` of predict and export mean: one model as
    ``registry.locate`` finds it, or ``ensemble``: the workspace's file of each member."""
    name, _, which = model.partition("@")
    if name != NAME:
        found, path = registry.locate(model, file, sorted(params.train), root)
        return found, [path]
    if which:
        raise registry.RegistryError(
            f"--model {model}: the ensemble is not a registry artifact; give --model {NAME} (its members "
            f"{', '.join(params.evaluate.ensemble) or 'none'} from this workspace) or one model's reference"
        )
    if file is not None:
        raise registry.RegistryError(
            f"--model-file {file}: the ensemble loads each of its members (params.yaml evaluate.ensemble) from its "
            "path in dvc.yaml artifacts; give --model-file with one model only"
        )
    if not params.evaluate.ensemble:
        raise registry.RegistryError(f"--model {NAME}: params.yaml evaluate.ensemble is empty (no ensemble)")
    return NAME, [registry.model_file(member, root) for member in params.evaluate.ensemble]
