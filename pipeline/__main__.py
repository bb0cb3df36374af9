"""One CLI for every stage: ``python -m pipeline [--params FILE] <command> [options]`` (dvc.yaml calls these)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pipeline.config import Params


class Command(NamedTuple):
    module: str  # has add_arguments(parser) and main(params, args)
    summary: str  # its line in `python -m pipeline --help`


# imported only when its command runs (or shows its help), so `--help` and light commands stay fast
COMMANDS = {
    "sample-data": Command("pipeline.commands.sample_data", "generate the embedded synthetic dataset, or a preview"),
    "convert-faces": Command(
        "pipeline.commands.convert_faces", "FER2013, JAFFE or a Taiwanese set in the Kaggle layout (real faces)"
    ),
    "validate": Command("pipeline.stages.validate", "stage: describe the raw images and gate them on a suite"),
    "augment": Command("pipeline.stages.augment", "stage: train/val split and class balancing by augmentation"),
    "tune": Command("pipeline.stages.tune", "stage: search one model's hyperparameters"),
    "train": Command("pipeline.stages.train", "stage: two-phase training of one model"),
    "evaluate": Command("pipeline.stages.evaluate", "stage: every model and the ensemble on the Test split"),
    "repro": Command("pipeline.commands.repro", "dvc repro with independent stages side by side (--jobs)"),
    "predict": Command("pipeline.commands.predict", "emotions of the faces in images, folders and videos"),
    "export": Command("pipeline.commands.export", "a trained model as a SavedModel or TFLite file"),
    "promote": Command("pipeline.commands.promote", "the promotion gate: champion against challenger"),
    "bench": Command("pipeline.commands.bench", "how fast this machine trains, feeds and serves the models"),
}


class CommandParser(argparse.ArgumentParser):
    """One command's sub-parser in the tree: its module adds the arguments once the command line names the command,
    so that parsing imports that module alone."""

    def __init__(self, *args: Any, module: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.module_name = module
        self.module: ModuleType | None = None

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.module is None and self.module_name:
            self.module = importlib.import_module(self.module_name)
            self.module.add_arguments(self)
        return super().parse_known_args(args, namespace)


def parser() -> tuple[argparse.ArgumentParser, dict[str, CommandParser]]:
    """The one argparse tree: --params, then a command and its own options; and each command's sub-parser."""
    top = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    top.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = top.add_subparsers(dest="command", metavar="<command>", required=True, parser_class=CommandParser)
    commands = {name: sub.add_parser(name, help=c.summary, module=c.module) for name, c in COMMANDS.items()}
    return top, commands


def run(params: Params, argv: list[str]) -> None:
    """Parse ``argv`` (a command and its options) and run the command with ``params``: what `python -m pipeline` does
    once it has read params.yaml. A UsageError is reported as argparse reports one (SystemExit 2)."""
    top, commands = parser()
    execute(params, top.parse_args(argv), commands)


def execute(params: Params, args: argparse.Namespace, commands: dict[str, CommandParser]) -> None:
    from pipeline.config import UsageError

    command = commands[args.command]
    try:
        command.module.main(params, args)
    except UsageError as exc:
        command.error(str(exc))


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


@contextlib.contextmanager
def device_logged(tensorflow_before: bool) -> Iterator[None]:
    """Log the device once, by the command that brought TensorFlow in: at the start if importing the command did,
    else when it ends if it imported TensorFlow while running (predict, once it loads a Keras model). Commands
    without it (validate, augment, predict with a TFLite model) run on no device."""
    logged = not tensorflow_before and "tensorflow" in sys.modules
    if logged:
        log_device()
    try:
        yield
    finally:
        if not logged and not tensorflow_before and "tensorflow" in sys.modules:
            log_device()


def load_params(path: str) -> Params:
    """params.yaml, its notes (``ConfigWarning``: e.g. an alias of a removed class) printed as one plain line each,
    ``note: ...``, rather than as a Python warning with its source line; any other warning as Python shows it."""
    from pipeline import config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", config.ConfigWarning)
        params = config.load(path)
    for w in caught:
        if issubclass(w.category, config.ConfigWarning):
            print(f"note: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return params


def main(argv: list[str] | None = None) -> int:
    refused = refuse_unwanted_stage()
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    quiet_cuda_probe()
    tensorflow_before = "tensorflow" in sys.modules
    top, commands = parser()
    args = top.parse_args(argv)  # imports the command's module alone, and with it perhaps TensorFlow
    from pipeline import config

    try:
        params = load_params(args.params)
        with device_logged(tensorflow_before):
            execute(params, args, commands)
    except (config.UserError, FileNotFoundError) as exc:
        from pipeline.data.links import printable  # a file name's escape sequences reach no terminal

        print(f"error: {printable(str(exc), keep=chr(10))}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)  # the promotion gate's errors carry their own (pipeline/release/gate.py)
    return 0


if __name__ == "__main__":
    sys.exit(main())
