"""`python -m pipeline bench --quick` on the test profile: the JSON has every figure, each one positive.

Speeds are never asserted (they depend on the machine and on what else runs); only that each was measured.
"""

from __future__ import annotations

import json
import numbers

import pytest

from pipeline import __main__ as cli
from pipeline import config
from pipeline.profiling import models
from tests import workspace


def _positive(section: dict, *keys: str) -> None:
    for key in keys:
        value = section[key]
        assert isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0, (key, value)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[config.Params, dict]:
    params = config.from_dict(workspace.profile_params())
    out = tmp_path_factory.mktemp("bench") / "bench" / "results.json"
    nowhere = out.parent / "no-balanced-data"  # the input pipeline then times generated faces
    cli.run(params, ["bench", "--quick", "--out", str(out), "--data", str(nowhere)])
    return params, json.loads(out.read_text())


def test_bench_is_a_command():
    assert cli.COMMANDS["bench"].module == "pipeline.commands.bench"


def test_quick_bench_reports_machine_and_every_model(results):
    params, figures = results
    assert {"machine", "budget", "models", "input_pipeline", "augmentation", "memory", "seconds"} <= set(figures)
    machine = figures["machine"]
    assert machine["cpu_count"] >= 1 and machine["tensorflow"] and any("CPU" in d for d in machine["devices"])
    assert figures["budget"]["sizes"] == [params.image_size]
    assert {(m["model"], m["image_size"]) for m in figures["models"]} == {(n, params.image_size) for n in params.train}
    for entry in figures["models"]:
        _positive(entry, "parameters")
        _positive(entry["training"], "batch_size", "steps", "images_per_s", "first_step_s", "mfu")
        # a training step is the forward pass and about twice its cost again for the gradients
        flops_per_image = entry["flops_per_image"]
        assert 2.5 < flops_per_image["training"] / flops_per_image["forward"] < 3.5, flops_per_image
        _positive(entry["inference"], "batch32_images_per_s", "batch1_median_ms")
        _positive(entry["memory"], "rss_peak_mib")
    _positive(figures["memory"], "rss_peak_mib")
    _positive(machine["matmul_peak_gflops"], "float32")


def test_quick_bench_times_the_cold_start_of_predict(results):
    params, figures = results
    cold = figures["predict_cold_start"]
    assert cold["model"] in params.train and cold["image_size"] == params.image_size and cold["reps"] == 1
    _positive(cold, "predict_cold_start_s", "import_s", "model_file_mib")


def test_quick_bench_sets_input_pipeline_and_augmentation_beside_their_baselines(results):
    params, figures = results
    (feed,) = figures["input_pipeline"]
    assert feed["image_size"] == params.image_size and feed["source"].startswith("generated")
    _positive(feed, "images", "first_pass_images_per_s", "cached_images_per_s")
    assert len(feed["ratio_to_training"]) == len(params.train)
    assert all(r > 0 for r in feed["ratio_to_training"].values()) and isinstance(feed["meets_target"], bool)
    _positive(figures["augmentation"], "images", "ours_images_per_s", "keras_image_data_generator_images_per_s")
    _positive(figures["augmentation"], "speedup")


def test_gpu_variants_cover_mixed_precision_and_xla(params):
    cfg = params.train["irv2"].model_copy(update={"mixed_precision": True, "xla": False})
    assert [(c.mixed_precision, c.xla) for c in models.variants(cfg, gpu=True)] == [
        (False, False),
        (False, True),
        (True, False),
        (True, True),
    ]
    # a CPU runs float32 (mixed float16 is emulated there, and slow) with XLA as params say
    assert [(c.mixed_precision, c.xla) for c in models.variants(cfg, gpu=False)] == [(False, False)]
