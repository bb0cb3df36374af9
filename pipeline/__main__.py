"""One CLI for every stage: ``python -m pipeline [--params FILE] <command> [options]`` (dvc.yaml calls these)."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys

# command -> module with a ``main(params, argv)``; imported lazily so `--help` and light commands stay fast.
COMMANDS = {
    "sample-data": "pipeline.commands.sample_data",
    "validate": "pipeline.stages.validate",
    "augment": "pipeline.stages.augment",
    "tune": "pipeline.stages.tune",
    "train": "pipeline.stages.train",
    "evaluate": "pipeline.stages.evaluate",
    "predict": "pipeline.commands.predict",
    "export": "pipeline.commands.export",
    "promote": "pipeline.commands.promote",
    "bench": "pipeline.commands.bench",
}

# Errors that mean "your input is wrong", reported as one clear message rather than a traceback.
USER_ERRORS = (
    "pipeline.config.ConfigError",
    "pipeline.stages.validate.ValidationFailed",
    "pipeline.data.images.ImageReadError",
    "pipeline.data.split.SplitError",
    "pipeline.serving.errors.ModelError",
    "pipeline.commands.promote.GateFailed",
    "pipeline.release.registry.RegistryError",
    "pipeline.commands.OptionError",
    "pipeline.data.sample.OutputExists",
    "pipeline.atomic.OutputError",
)


def _user_error_types() -> tuple[type, ...]:
    types = []
    for dotted in USER_ERRORS:
        module, name = dotted.rsplit(".", 1)
        if module in sys.modules:
            types.append(getattr(sys.modules[module], name))
    return (*types, FileNotFoundError)


def refuse_unwanted_stage() -> str | None:
    """A retraining task that must restore a stage from the DVC remote, not run it, names the one stage it may run
    in EMOTION_EXECUTE ("none": no stage; see dags/workspaces.py). DVC names the stage it runs in DVC_STAGE."""
    allowed, stage = os.environ.get("EMOTION_EXECUTE"), os.environ.get("DVC_STAGE")
    if allowed is None or stage is None or stage == allowed:
        return None
    wanted = "no stage" if allowed == "none" else f"only {allowed}"
    return (
        f"stage {stage} was about to execute in a task that runs {wanted}: its result is not in the DVC remote's "
        f"run-cache. Run its own task first (or `dvc repro {stage}` and `dvc push --run-cache`)."
    )


def has_nvidia_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU, without importing TensorFlow (which is what we are about to tune)."""
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def quiet_cuda_probe() -> None:
    """On a machine without a GPU, hide TensorFlow's CUDA probe (``failed call to cuInit``, cudart_stub): it is logged
    at absl's ERROR level, which only TF_CPP_MIN_LOG_LEVEL=3 hides. Must run before TensorFlow is imported. A level
    the user set is kept; on a GPU machine TensorFlow's errors stay visible (2 hides its info and warnings only)."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2" if has_nvidia_gpu() else "3"


def log_device() -> None:
    """Say what TensorFlow runs on, since the CUDA probe's own messages may now be hidden."""
    tf = sys.modules["tensorflow"]
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    print(f"device: {', '.join(names)}" if names else "device: no GPU found: running on CPU", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    refused = refuse_unwanted_stage()
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    quiet_cuda_probe()
    from pipeline import config

    try:
        params = config.load(ns.params)
        tensorflow_before = "tensorflow" in sys.modules
        command = importlib.import_module(COMMANDS[ns.command])
        # once, by the command that brought TensorFlow in; commands without it (validate, augment, predict with a
        # TFLite model) run on no device. predict imports it only once it loads a Keras model: logged after.
        logged = not tensorflow_before and "tensorflow" in sys.modules
        if logged:
            log_device()
        try:
            command.main(params, ns.args)
        finally:
            if not logged and not tensorflow_before and "tensorflow" in sys.modules:
                log_device()
    except _user_error_types() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
