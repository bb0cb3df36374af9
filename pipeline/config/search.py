"""tune: the hyperparameter search, its budget and its space (dimensions keyed by train.<model> field)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Tag, TypeAdapter, ValidationError, field_validator
from pydantic.fields import FieldInfo

from pipeline.config import rules
from pipeline.config.errors import UNION_TAGS, located, problems
from pipeline.config.rules import Count, Share, Strict, nonempty, within
from pipeline.config.training import TrainConfig


class Range(Strict):
    """A numeric dimension of the search space: uniform between low and high, or log-uniform."""

    low: float
    high: float
    log: bool


class Choice(Strict):
    """A categorical dimension of the search space."""

    choice: Annotated[list[Annotated[int | float | str | bool, rules.scalar]], nonempty()]


def _dimension_kind(value: Any) -> str | None:
    if isinstance(value, Choice) or isinstance(value, dict) and "choice" in value:
        return UNION_TAGS[1]
    if isinstance(value, Range) or isinstance(value, dict) and {"low", "high", "log"} & set(value):
        return UNION_TAGS[0]
    return None


Dimension = Annotated[
    Annotated[Range, Tag(UNION_TAGS[0])] | Annotated[Choice, Tag(UNION_TAGS[1])],
    Discriminator(
        _dimension_kind,
        custom_error_type="params_dimension",
        custom_error_message="give a range {low, high, log} or a choice {choice: [...]}",
    ),
]


class HyperbandConfig(Strict):
    max_epochs: Count
    factor: Annotated[int, within(2)]
    iterations: Count


class BayesianConfig(Strict):
    initial_points: Count


class EvolutionaryConfig(Strict):
    population: Annotated[int, within(2)]
    crossover: Share
    mutation: Share
    mutation_sigma: Annotated[float, within(0, above=True)]
    tournament: Count


# TrainConfig fields a search may not set: they pick the model or are set by the search budget itself
UNTUNABLE = ("architecture", "weights", "unet", "epochs", "finetune_epochs")


class TuneConfig(Strict):
    # none: no search; hparams.json holds train.<model>'s own values (runs that cannot afford a search)
    algorithm: Literal["hyperband", "random", "bayesian", "evolutionary", "none"]
    max_trials: Count
    epochs_per_trial: Count
    time_cap_s: Annotated[int | None, within(0, above=True, null=True)]
    trial_time_s: Annotated[float | None, within(0, above=True, null=True)]  # a trial's training stops at this
    subset_per_class: Annotated[int | None, within(1, null=True)]  # training images per class a trial sees
    hyperband: HyperbandConfig
    bayesian: BayesianConfig
    evolutionary: EvolutionaryConfig
    space: dict[str, Dimension]

    @field_validator("space")
    @classmethod
    def _tunable(cls, space: dict[str, Range | Choice]) -> dict[str, Range | Choice]:
        wrong = [problem for name, dim in space.items() for problem in _dimension_problems(name, dim)]
        if wrong:
            raise problems(wrong)
        return space


def _annotated(field: FieldInfo) -> Any:
    """The field's type with its rules, which pydantic keeps apart from its annotation."""
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


# a dimension's values are checked exactly as the train.<model> field they set
_STRICT = ConfigDict(strict=True, allow_inf_nan=False)
_FIELDS = {
    name: TypeAdapter(
        Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation, config=_STRICT
    )
    for name, field in TrainConfig.model_fields.items()
    if name not in UNTUNABLE
}


def _dimension_problems(name: str, dim: Range | Choice) -> list[tuple[tuple[str | int, ...], str]]:
    if name not in _FIELDS:
        return [((name,), f"not a tunable field of train.<model> (one of {', '.join(_FIELDS)})")]
    field = TrainConfig.model_fields[name].annotation
    if isinstance(dim, Range):
        if field not in (int, float):
            return [((name,), "a range needs a numeric field; give a choice instead")]
        if not dim.low < dim.high or dim.log and dim.low <= 0:
            return [((name,), "needs low < high (and low > 0 on a log scale)")]
        ends = {"low": dim.low, "high": dim.high}
        if field is int:  # a search rounds an integer field's values
            ends = {key: round(value) for key, value in ends.items()}
        return [found for key, value in ends.items() for found in _value_problems(name, value, (name, key))]
    return [found for i, value in enumerate(dim.choice) for found in _value_problems(name, value, (name, "choice", i))]


def _value_problems(name: str, value: Any, at: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    try:
        _FIELDS[name].validate_python(value)
    except ValidationError as exc:
        return [((*at, *loc), message) for loc, message in located(exc)]
    return []
