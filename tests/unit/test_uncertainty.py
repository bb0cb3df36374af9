"""The 95 % bootstrap intervals evaluate reports: by image, or by subject where augment.group_regex names them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from pipeline.evaluation import uncertainty
from pipeline.release import report as promotion_report


def _figures(seed: int = 3, n: int = 75, right: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, n)
    predicted = np.where(rng.random(n) < right, labels, (labels + 1) % 6)
    return labels, predicted


def test_the_interval_holds_the_figure_and_is_the_same_for_the_same_seed():
    labels, predicted = _figures()
    ci = uncertainty.interval(labels, predicted, seed=42)
    accuracy = float(np.mean(labels == predicted))
    assert ci["by"] == "image" and ci["units"] == 75 and ci["resamples"] == uncertainty.RESAMPLES
    assert ci["accuracy"]["low"] < accuracy < ci["accuracy"]["high"]
    assert 0.1 < ci["macro_f1"]["high"] - ci["macro_f1"]["low"] < 0.4  # about ±0.1 on 75 images, as measured
    assert uncertainty.interval(labels, predicted, seed=42) == ci


def test_a_resample_s_macro_f1_is_sklearn_s_over_the_classes_it_holds():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        truth, guess = rng.integers(0, 6, n), rng.integers(0, 6, n)
        expected = f1_score(truth, guess, average="macro", zero_division=0)
        assert uncertainty._macro_f1(truth, guess, 6) == pytest.approx(expected, abs=1e-12)


def test_a_perfect_model_has_a_point_interval():
    labels, _ = _figures()
    ci = uncertainty.interval(labels, labels, seed=0)
    assert ci["accuracy"] == {"low": 1.0, "high": 1.0} and ci["macro_f1"] == {"low": 1.0, "high": 1.0}


def test_resampling_by_subject_widens_the_interval_when_a_subject_is_all_right_or_all_wrong():
    """15 subjects of 5 pictures each, every subject's pictures all right or all wrong: resampled one by one, the
    pictures look like 75 independent draws, and the interval is too narrow."""
    labels = np.tile(np.arange(5), 15)
    subject = np.repeat(np.arange(15), 5)
    predicted = np.where(subject % 3 == 0, (labels + 1) % 5, labels)
    by_image = uncertainty.interval(labels, predicted, seed=1)
    by_subject = uncertainty.interval(labels, predicted, seed=1, groups=subject)
    assert by_subject["by"] == "subject" and by_subject["units"] == 15
    width = {k: ci["accuracy"]["high"] - ci["accuracy"]["low"] for k, ci in (("i", by_image), ("s", by_subject))}
    assert width["s"] > 1.5 * width["i"]


def test_subjects_come_from_the_group_regex_or_not_at_all():
    paths = pd.Series(["Test/joy/KA.HA1.jpg", "Test/sadness/KM.SA2.jpg"])
    assert list(uncertainty.subjects(paths, r"^([A-Z]{2})\.")) == ["KA", "KM"]
    assert uncertainty.subjects(paths, None) is None
    # a Test name without the id: the interval falls back to images rather than failing the evaluation
    assert uncertainty.subjects(pd.Series(["Test/joy/x.jpg", *paths]), r"^([A-Z]{2})\.") is None


@pytest.mark.parametrize(("tolerance", "says"), [(0.02, "well inside"), (0.3, "may be real")])
def test_the_promotion_report_reads_the_tolerance_against_the_interval(tolerance, says):
    challenger = {"macro_f1": 0.7, "ci95": {"macro_f1": {"low": 0.6, "high": 0.8}}}
    (line, _) = promotion_report.uncertainty(challenger, tolerance)
    assert "0.6000 to 0.8000 (about ±0.100)" in line and f"tolerance of {tolerance}" in line and says in line
    assert promotion_report.uncertainty({"macro_f1": 0.7}, tolerance) == []  # a figure with no interval: no line
