"""Cold start of `python -m pipeline predict`: what a user waits for on one photo, measured in fresh processes."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import yaml

from pipeline import atomic
from pipeline.config import Params
from pipeline.models import build
from pipeline.profiling.data import faces
from pipeline.serving import inference
from pipeline.serving.lite import metadata_file as lite_metadata
from pipeline.training import loop

# what the predict command imports before it reads a file with a Keras model: TensorFlow and Keras above all
IMPORT_ONLY = "import pipeline.commands.predict, pipeline.serving.inference"


def _seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return seconds


def predict_cold_start(params: Params, name: str, scratch: Path, reps: int, lite: bool = False) -> dict:
    """Median wall time of fresh `predict` processes on one generated face with a model saved as the train stage
    saves it, beside the time of the imports alone; the rest is loading the model and classifying. ``lite``: the
    same for the model's TFLite export, which predict runs with LiteRT (``tflite`` in the result)."""
    folder = scratch / "cold-start"
    folder.mkdir(parents=True, exist_ok=True)
    model_file = folder / "model.keras"
    cfg = params.train[name].model_copy(update={"weights": None})  # start-up does not depend on the weights
    loop.without_optimizer(build(cfg, params.image_size, len(params.classes))).save(model_file)
    params_file = folder / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
    image = folder / "face.png"
    cv2.imwrite(str(image), cv2.cvtColor(faces(1, max(params.image_size, 96), params.seed)[0], cv2.COLOR_RGB2BGR))
    predict = [sys.executable, "-m", "pipeline", "--params", str(params_file), "predict", str(image)]
    predict += ["--model", name, "--model-file", str(model_file), "--faces", "whole"]
    runs = [_seconds(predict) for _ in range(reps)]
    imports = [_seconds([sys.executable, "-c", IMPORT_ONLY]) for _ in range(reps)]
    result = {
        "model": name,
        "image_size": params.image_size,
        "model_file_mib": round(model_file.stat().st_size / 2**20, 1),
        "reps": reps,
        "predict_cold_start_s": round(statistics.median(runs), 2),
        "import_s": round(statistics.median(imports), 2),
    }
    if lite:
        from pipeline.serving import export

        exported = folder / "model.tflite"
        export.tflite(inference.load_model(model_file), exported, params.evaluate.tta)
        atomic.write_json(lite_metadata(exported), export.metadata(params, name, "tflite"))
        argv = [*predict[: predict.index("--model-file") + 1], str(exported), "--faces", "whole"]
        result["tflite"] = {
            "model_file_mib": round(exported.stat().st_size / 2**20, 1),
            "predict_cold_start_s": round(statistics.median(_seconds(argv) for _ in range(reps)), 2),
        }
    return result
