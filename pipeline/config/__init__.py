"""params.yaml -> typed, validated, immutable config objects (pydantic models).

Every knob lives in params.yaml; nothing here has a default, so the file is the single source of truth, and a
missing, unknown, mistyped or out-of-range key is reported with its dotted path before any work starts.
"""

from pipeline.config.errors import ConfigError, ConfigWarning, OptionError, UsageError, UserError
from pipeline.config.loading import from_dict, load, merge, replace
from pipeline.config.schema import (
    ENSEMBLE,
    GATED_METRICS,
    TTA_VIEWS,
    AugmentConfig,
    EvaluateConfig,
    Params,
    PredictConfig,
    PromoteConfig,
    ReferenceFigures,
    RetrainConfig,
    SampleDataConfig,
    ValidateConfig,
)
from pipeline.config.search import (
    UNTUNABLE,
    BayesianConfig,
    Choice,
    EvolutionaryConfig,
    HyperbandConfig,
    Range,
    TuneConfig,
)
from pipeline.config.training import TrainConfig, UnetConfig

__all__ = [
    "ENSEMBLE",
    "GATED_METRICS",
    "TTA_VIEWS",
    "UNTUNABLE",
    "AugmentConfig",
    "BayesianConfig",
    "Choice",
    "ConfigError",
    "ConfigWarning",
    "EvaluateConfig",
    "EvolutionaryConfig",
    "HyperbandConfig",
    "OptionError",
    "Params",
    "PredictConfig",
    "PromoteConfig",
    "Range",
    "ReferenceFigures",
    "RetrainConfig",
    "SampleDataConfig",
    "TrainConfig",
    "TuneConfig",
    "UnetConfig",
    "UsageError",
    "UserError",
    "ValidateConfig",
    "from_dict",
    "load",
    "merge",
    "replace",
]
