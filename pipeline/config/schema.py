"""The schema of params.yaml: immutable pydantic models, every key required and held to its range or choices.

Nothing here has a default: params.yaml is the single source of truth. Types are strict (no "1" -> 1), except that
an integer is a valid number wherever a float is asked for.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from pipeline.config import rules
from pipeline.config.errors import ConfigWarning, problem, problems
from pipeline.config.rules import Count, Folder, Fraction, Share, Strict, nonempty, one_of, within
from pipeline.config.search import TuneConfig
from pipeline.config.training import TrainConfig


class ValidateConfig(Strict):
    min_width: Count
    min_height: Count
    max_aspect: Annotated[float, within(1, 100)]  # longer side / shorter side; the rule of pipeline/data/shape.py
    allowed_channels: Annotated[list[Annotated[int, one_of((1, 2, 3, 4), "a channel count")]], nonempty(unique=True)]
    allowed_extensions: Annotated[list[Annotated[str, rules.extension]], nonempty(unique=True)]
    min_images_per_class: dict[str, Annotated[int, within(0)]]
    near_duplicate_max_distance: Annotated[int, within(0, 32)]  # bits of a 64-bit perceptual hash
    near_duplicate_min_correlation: Annotated[float, within(0, 1)]  # of two images' colour thumbnails
    near_duplicate_min_structure: Annotated[float, within(0, 1)]  # of their fine structure (duplicates.py)


class AugmentConfig(Strict):
    val_fraction: Annotated[float, within(0, 1, above=True, below=True)]
    group_regex: Annotated[str | None, rules.regex]
    target: Annotated[int | Literal["majority", "none"], rules.target]
    cap_majority: Annotated[int | None, within(1, null=True)]
    face_crop: bool
    face_margin: Annotated[float, within(0)]
    rotation: Annotated[float, within(0, 180)]  # degrees, +/-
    shift: Fraction
    zoom: Fraction  # a scale of 1 - zoom must stay positive
    horizontal_flip: bool
    brightness: Share
    contrast: Fraction


class RetrainConfig(Strict):
    schedule: Annotated[str | None, rules.schedule]
    gpu_stages: list[str]
    retries: Annotated[int, within(0)]
    retry_delay_minutes: Annotated[float, within(0)]
    timeout_hours: Annotated[dict[str, Annotated[float, within(0, above=True)]], rules.keys("cpu", "gpu")]

    @field_validator("gpu_stages")
    @classmethod
    def _dvc_stages(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # the DAG matches these against the stage names of dvc.yaml (the name before any @), read by the loader
        stages = (info.context or {}).get("stages")
        wrong = [
            ((i,), f"{stage!r} is not a stage of dvc.yaml (one of {', '.join(stages)})")
            for i, stage in enumerate(value)
            if stages and stage not in stages
        ]
        if wrong:
            raise problems(wrong)
        return value


GATED_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1")


class PromoteConfig(Strict):
    stage: Annotated[str, rules.stage_name]  # the registry stage a promotion assigns (GTO), e.g. prod
    gate: dict[str, float]  # Test-split metric of metrics/evaluate.json -> absolute floor
    tolerance: Share  # a challenger may trail the champions, re-scored on the same Test split, by at most this
    per_class_tolerance: Annotated[float | None, within(0, 1, null=True)]  # no class's F1 may fall by more than this

    @field_validator("gate")
    @classmethod
    def _gated_metrics(cls, gate: dict[str, float]) -> dict[str, float]:
        if not gate:
            raise problem(f"name at least one Test metric with its floor (one of {', '.join(GATED_METRICS)})")
        wrong = [
            ((metric,), f"not a gated Test metric (one of {', '.join(GATED_METRICS)})")
            if metric not in GATED_METRICS
            else ((metric,), f"floor {floor!r} is outside [0, 1]")
            for metric, floor in gate.items()
            if metric not in GATED_METRICS or not 0 <= floor <= 1
        ]
        if wrong:
            raise problems(wrong)
        return gate


class ReferenceFigures(Strict):
    """Published figures of a study, shown beside ours in the evaluation report; null where it gives none."""

    accuracy: Annotated[float | None, within(0, 1, null=True)]
    macro_f1: Annotated[float | None, within(0, 1, null=True)]
    per_class_f1: dict[str, Share]


# The test-time augmentations pipeline/serving/inference.py knows (a view of each image whose probabilities are
# averaged with the image's own): flip, its left-right mirror.
TTA_VIEWS = ("flip",)
# The name of the ensemble beside the models of train: a row of metrics/evaluate.json, and a --model of predict, export
ENSEMBLE = "ensemble"


class EvaluateConfig(Strict):
    batch_size: Count
    gradcam_per_class: Count
    gradcam_min_map_size: Count
    # applied to every model (and so to the ensemble) by evaluate, predict, export and the promotion gate alike
    tta: Annotated[list[Annotated[str, one_of(TTA_VIEWS, "a test-time augmentation")]], nonempty(0, unique=True)]
    # models of train whose mean probabilities are the ensemble; [] for none (checked against train in Params)
    ensemble: Annotated[list[str], nonempty(0, unique=True)]
    reference: dict[str, ReferenceFigures]


class PredictConfig(Strict):
    batch_size: Count
    video_frame_step: Count
    max_detect_side: Count


class SampleDataConfig(Strict):
    seed: Annotated[int, within(0)]
    image_size: Count
    counts: dict[str, dict[str, Annotated[int, within(0)]]]


with warnings.catch_warnings():
    # the section `validate` (the stage's name) shadows BaseModel.validate, pydantic v1's deprecated spelling of
    # model_validate, which nothing here calls
    warnings.filterwarnings("ignore", 'Field name "validate"', UserWarning)

    class Params(Strict):
        classes: Annotated[list[Folder], nonempty(2, unique=True)]
        class_aliases: Annotated[dict[str, str], rules.folder_names]
        split_folders: Annotated[dict[str, Folder], rules.keys("train", "test")]
        image_size: Annotated[int, within(75)]  # the smallest InceptionResNetV2 input
        seed: Annotated[int, within(0)]
        validate: ValidateConfig
        augment: AugmentConfig
        train: Annotated[dict[str, TrainConfig], nonempty()]
        tune: TuneConfig
        retrain: RetrainConfig
        promote: PromoteConfig
        sample_data: SampleDataConfig
        evaluate: EvaluateConfig
        predict: PredictConfig

        def class_index(self, name: str) -> int:
            return self.classes.index(name)

        @model_validator(mode="before")
        @classmethod
        def _drop_stray_aliases(cls, data: Any) -> Any:
            # an alias of a class no longer listed (a class removed from classes) is left out with a note, not an
            # error: validate then names any folder still spelled that way as matching no class
            classes = data.get("classes") if isinstance(data, dict) else None
            valid = isinstance(classes, list) and len(set(map(str, classes))) == len(classes) >= 2
            if not (valid and isinstance(data.get("class_aliases"), dict)):
                return data  # the errors of classes come first; aliases are judged against a valid list
            stray = {
                a: t
                for a, t in data["class_aliases"].items()
                if isinstance(t, str) and t not in classes and rules.folder_problem(t) is None  # a path: refused
            }
            for alias, target in stray.items():
                warnings.warn(
                    f"params: class_aliases.{alias}: {target!r} is not one of classes {classes}; the alias is "
                    f"ignored (a folder named {alias!r} now matches no class)",
                    ConfigWarning,
                    stacklevel=1,
                )
            return {**data, "class_aliases": {a: t for a, t in data["class_aliases"].items() if a not in stray}}

        @model_validator(mode="after")
        def _consistent(self) -> Params:
            # checks that read two sections; they run once every key is valid on its own
            wrong = [
                (("validate", "min_images_per_class", split), "unknown split (use train, test)")
                for split in self.validate.min_images_per_class
                if split not in self.split_folders
            ]
            wrong += [
                (("evaluate", "reference", name, "per_class_f1", label), f"not one of classes {self.classes}")
                for name, figures in self.evaluate.reference.items()
                for label in figures.per_class_f1
                if label not in self.classes
            ]
            wrong += self._ensemble_problems()
            if self.predict.max_detect_side < self.image_size:
                wrong.append((("predict", "max_detect_side"), f"{self.predict.max_detect_side} is below image_size"))
            if wrong:
                raise problems(wrong)
            return self

        def _ensemble_problems(self) -> list[tuple[tuple, str]]:
            members = self.evaluate.ensemble
            wrong = [
                (("evaluate", "ensemble", i), f"{name!r} is not a model of train (one of {', '.join(self.train)})")
                for i, name in enumerate(members)
                if name not in self.train
            ]
            if len(members) == 1:  # the mean of one model is that model, a second row of the same figures
                wrong.append((("evaluate", "ensemble"), "give at least two models of train, or [] for no ensemble"))
            if ENSEMBLE in self.train:  # its figures, plots and predict --model would be the ensemble's
                wrong.append((("train", ENSEMBLE), f"{ENSEMBLE!r} is the ensemble's name; give the model another"))
            return wrong
