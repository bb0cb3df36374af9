"""`python -m pipeline bench`: how fast this machine trains, feeds, augments and serves the two models.

Not a pipeline stage (nothing downstream reads it): `make bench` writes bench/results.json. Figures come from a few
steps after a warm-up step on synthetic batches, so they are rough but comparable between runs on one machine. The
input pipeline and augmentation are timed on the same images that the models would see (the balanced data when it is
there, otherwise generated faces), and each is set beside what it must keep up with: the input pipeline beside the
training throughput, our augmentation beside Keras' legacy ImageDataGenerator doing the same operations.
On a GPU every model is also timed with mixed precision and XLA on and off; on a CPU only as params.yaml says.
Training is also set against the machine: MFU, the training step's FLOPs per image (counted by TensorFlow's profiler)
times images/s over the measured matrix-multiply peak (pipeline/profiling/flops.py). The cold start of `predict` on
one photo (a fresh process: imports, model load, one classification) is timed too, with the Keras model and with its
TFLite export (LiteRT), and so is one tuning trial per model at params.yaml's tune budget, on the augment stage's
output (full runs only: a trial trains for real).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from pipeline import atomic
from pipeline.config import Params
from pipeline.models import build
from pipeline.profiling import data as data_profile
from pipeline.profiling import flops, models, startup, system, trials

STUDY_SIZE = 299  # the study's input size, timed beside params' image_size


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work each figure gets; --quick shrinks everything to a smoke test."""

    sizes: list[int]
    steps: int  # timed training steps after one warm-up step (graph tracing included in the warm-up)
    large_steps: int  # the same above params' image_size, where a step takes long on a CPU
    large_batch: int  # training batch above params' image_size
    inference_reps: int
    latency_reps: int
    augment_images: int
    pipeline_images: int
    startup_reps: int  # fresh `predict` processes timed for the cold start (each takes seconds)
    lite: bool  # also export the model to TFLite and time predict's LiteRT path (a conversion of a minute or more)
    trials: bool  # time one real tuning trial per model (minutes on a CPU)
    peak_sizes: tuple[int, ...] = flops.PEAK_SIZES  # the square matrix multiplies that measure the peak FLOP/s


FULL = Budget(
    [], 3, 2, 8, inference_reps=2, latency_reps=10, augment_images=256, pipeline_images=512, startup_reps=3,
    lite=True, trials=True,
)  # fmt: skip
QUICK = Budget(
    [], 1, 1, 2, inference_reps=1, latency_reps=2, augment_images=16, pipeline_images=32, startup_reps=1,
    lite=False, trials=False, peak_sizes=(1024,),
)  # fmt: skip


def model_figures(params: Params, name: str, size: int, budget: Budget, gpu: bool) -> list[dict]:
    figures = []
    base = params.train[name].model_copy(update={"weights": None})  # speed does not depend on the starting weights
    small = size <= params.image_size
    batch = base.batch_size if small else min(base.batch_size, budget.large_batch)
    counted = None  # FLOPs per image: the same for every variant of one model and size
    for cfg in models.variants(base, gpu):
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("mixed_float16" if cfg.mixed_precision else "float32")
        system.reset_gpu_peaks()
        model = build(cfg, size, len(params.classes))
        counted = counted or flops.per_image(model, size)
        x, y = models.synthetic_batch(size, batch, len(params.classes), cfg.unet is not None, params.seed)
        entry = {"model": name, "image_size": size, "mixed_precision": cfg.mixed_precision, "xla": cfg.xla,
                 "run_eagerly": cfg.run_eagerly, "parameters": model.count_params(),
                 "flops_per_image": counted}  # fmt: skip
        entry["training"] = models.training(model, cfg, x, y, budget.steps if small else budget.large_steps)
        peak = flops.matmul_peak("float16" if cfg.mixed_precision else "float32", budget.peak_sizes)
        entry["training"]["mfu"] = flops.utilisation(counted["training"], entry["training"]["images_per_s"], peak)
        entry["inference"] = models.inference(model, size, cfg, budget.inference_reps, budget.latency_reps)
        entry["memory"] = system.peak_memory()
        figures.append(entry)
        print(
            f"bench {name} {size}px mp={cfg.mixed_precision} xla={cfg.xla}: "
            f"train {entry['training']['images_per_s']} img/s (MFU {entry['training']['mfu']:.1%}), "
            f"infer {entry['inference']['batch32_images_per_s']} img/s, "
            f"latency {entry['inference']['batch1_median_ms']} ms",
            flush=True,
        )
    keras.mixed_precision.set_global_policy("float32")
    return figures


def run(params: Params, data: Path, budget: Budget) -> dict:
    started = time.perf_counter()
    keras.utils.set_random_seed(params.seed)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    results: dict = {
        "machine": system.machine(),
        "budget": dataclasses.asdict(budget),
        "models": [],
        "input_pipeline": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        # first, while this process holds no models: the subprocesses then compete with nothing of the bench's own
        name = next(iter(params.train))
        cold = startup.predict_cold_start(params, name, Path(scratch), budget.startup_reps, budget.lite)
    results["predict_cold_start"] = cold
    print(f"bench predict cold start: {cold['predict_cold_start_s']} s, of which imports {cold['import_s']} s")
    if budget.lite:
        print(f"bench predict cold start with the TFLite export (LiteRT): {cold['tflite']['predict_cold_start_s']} s")
    # the peak of MFU, while nothing else of the bench's own runs; the float16 one is measured where a variant needs it
    peak = flops.matmul_peak("float32", budget.peak_sizes)
    results["machine"]["matmul_peak_gflops"] = {"float32": round(peak / 1e9, 1)}
    if budget.trials:
        results["tune_trial"] = trials.trial_costs(params, data)
    for size in budget.sizes:
        for name in params.train:
            results["models"].extend(model_figures(params, name, size, budget, gpu))

    images = data_profile.faces(budget.augment_images, params.image_size, params.seed)
    results["augmentation"] = data_profile.augmentation(images, params.augment, params.seed)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for size in budget.sizes:
            paths, source = data_profile.pipeline_files(data, size, budget.pipeline_images, params.seed, Path(scratch))
            batch = max(m["training"]["batch_size"] for m in results["models"] if m["image_size"] == size)
            feed = data_profile.input_pipeline(paths, size, batch, len(params.classes), params.seed)
            entry = {"image_size": size, "source": source, **feed}
            # the first (decoding) pass is the conservative figure; training reads the cache after epoch 1
            entry["ratio_to_training"] = {
                f"{m['model']} mp={m['mixed_precision']} xla={m['xla']}": round(
                    entry["first_pass_images_per_s"] / m["training"]["images_per_s"], 2
                )
                for m in results["models"]
                if m["image_size"] == size
            }
            entry["meets_target"] = min(entry["ratio_to_training"].values()) >= data_profile.TARGET_RATIO
            results["input_pipeline"].append(entry)
    if gpu:
        results["machine"]["matmul_peak_gflops"]["float16"] = round(
            flops.matmul_peak("float16", budget.peak_sizes) / 1e9, 1
        )
    results["memory"] = system.peak_memory()
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--data", type=Path, default=Path("data/balanced"), help="training images to feed, if built")
    parser.add_argument("--quick", action="store_true", help="a smoke test: one step of everything, params' size only")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help=f"default: image_size and {STUDY_SIZE} (quick: image_size)"
    )


def main(params: Params, args: argparse.Namespace) -> None:
    budget = QUICK if args.quick else FULL
    default_sizes = [params.image_size] if args.quick else sorted({params.image_size, STUDY_SIZE})
    budget = dataclasses.replace(budget, sizes=args.sizes or default_sizes)
    results = run(params, args.data, budget)
    atomic.write_json(args.out, results)
    print(f"bench: {args.out} in {results['seconds']} s")
