"""The Great Expectations suites that gate the pipeline: one over the image manifest, one over the class counts.

Each expectation carries in its ``meta`` the problem it stands for and a template for the per-file detail, so a
failed run reads as a list of files and what is wrong with each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network calls from a validation stage

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

from pipeline.config import ValidateConfig  # noqa: E402


@dataclass(frozen=True)
class Check:
    name: str
    problem: str
    success: bool
    findings: list[str] = field(default_factory=list)


def _meta(problem: str, detail: str) -> dict:
    return {"problem": problem, "detail": detail}


def image_suite(cfg: ValidateConfig) -> gx.ExpectationSuite:
    """Expectations on each row of the manifest (one row per file under the raw folder)."""
    decodable = {"row_condition": "error.isna()", "condition_parser": "pandas"}
    return gx.ExpectationSuite(
        name="raw_images",
        expectations=[
            gxe.ExpectColumnValuesToNotBeNull(
                column="split", meta=_meta("file outside the <Train|Test>/<class>/ layout", "stray file in '{folder}'")
            ),
            gxe.ExpectColumnValuesToNotBeNull(
                column="label",
                row_condition="split.notna()",
                condition_parser="pandas",
                meta=_meta("folder is not a known class", "folder '{folder}' matches no class or alias in params.yaml"),
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="extension",
                value_set=cfg.allowed_extensions,
                meta=_meta(
                    "stray file: not an image extension",
                    "extension '{extension}' is not one of " + ", ".join(cfg.allowed_extensions),
                ),
            ),
            gxe.ExpectColumnValuesToBeNull(column="error", meta=_meta("file does not decode as an image", "{error}")),
            # the size and blank-picture rule every reader applies (pipeline/data/shape.py), recorded per row
            gxe.ExpectColumnValuesToBeNull(
                column="shape", **decodable, meta=_meta("image too small or too elongated", "{shape}")
            ),
            gxe.ExpectColumnValuesToBeNull(column="blank", **decodable, meta=_meta("blank picture", "{blank}")),
            gxe.ExpectColumnValuesToBeInSet(
                column="channels",
                value_set=cfg.allowed_channels,
                **decodable,
                meta=_meta("unsupported number of channels", "{channels} channels"),
            ),
            gxe.ExpectColumnValuesToBeNull(
                column="leaks_with",
                meta=_meta("leak: the same image is in Train and Test", "same image as {leaks_with}"),
            ),
            gxe.ExpectColumnValuesToBeNull(
                column="label_conflict",
                meta=_meta("one picture under two classes", "{label_conflict}"),
            ),
        ],
    )


def count_suite() -> gx.ExpectationSuite:
    """Expectations on the per-split, per-class image counts (a row per class and split, zeros included)."""
    return gx.ExpectationSuite(
        name="class_counts",
        expectations=[
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="count",
                column_B="minimum",
                or_equal=True,
                meta=_meta(
                    "too few images in a class",
                    "class '{label}' has {count} image(s) in {split}, fewer than the minimum {minimum}",
                ),
            ),
        ],
    )


def _run(context, name: str, suite: gx.ExpectationSuite, frame: pd.DataFrame) -> list[Check]:
    asset = context.data_sources.add_pandas(name).add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe(name)
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["path"]},
    )
    rows = frame.set_index("path", drop=False)
    checks = []
    for outcome in result.results:
        config = outcome.expectation_config
        if outcome.exception_info.get("raised_exception"):
            message = outcome.exception_info["exception_message"]
            raise RuntimeError(f"expectation {config.type} could not run: {message}")
        findings = []
        for hit in outcome.result.get("unexpected_index_list") or []:
            row = rows.loc[hit["path"]].to_dict()
            findings.append(f"{hit['path']}: {config.meta['detail'].format(**row)}")
        checks.append(
            Check(name=config.type, problem=config.meta["problem"], success=outcome.success, findings=findings)
        )
    return checks


def run(manifest: pd.DataFrame, counts: pd.DataFrame, cfg: ValidateConfig) -> list[Check]:
    """Validate the manifest and the class counts; returns every check with the files behind each failure."""
    counts = counts.assign(path=counts["folder"], minimum=counts["split"].map(cfg.min_images_per_class).fillna(0))
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # a stage log, not a terminal UI
    return _run(context, "images", image_suite(cfg), manifest) + _run(context, "counts", count_suite(), counts)
