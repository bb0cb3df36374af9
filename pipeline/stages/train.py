"""Stage `train@<model>`: two-phase training of one model on the balanced data, resumable after a kill.

Phase 1 trains the head on a frozen pretrained base (with `weights: null`, the whole network from scratch); phase 2
unfreezes the top layers at a lower learning rate. Each finished epoch is backed up and each finished phase recorded
in a state folder keyed to the inputs (pipeline/training/loop.py), so a rerun after a crash picks up where it stopped
and a rerun with new params or data starts afresh.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline import atomic, config
from pipeline.config import Params, TrainConfig
from pipeline.models import build, saving
from pipeline.training import callbacks, loop, model_stage, runtime, state
from pipeline.training.metrics import classification_metrics


def fingerprint(cfg: TrainConfig, params: Params, index_file: Path) -> str:
    """What the training state depends on: a changed knob or dataset must not resume stale weights."""
    return state.inputs_key([cfg.model_dump(), params.image_size, params.seed, params.classes], index_file)


def tuned(cfg: TrainConfig, hparams: Path | None) -> TrainConfig:
    """``cfg`` with the tune stage's best hyperparameters (a JSON object of TrainConfig fields) applied over it."""
    return cfg if hparams is None else config.replace(cfg, json.loads(hparams.read_text()), str(hparams))


def run(params: Params, name: str, args: argparse.Namespace) -> dict:
    cfg = tuned(params.train[name], args.hparams)
    started = time.time()
    strategy = runtime.configure(cfg, params.seed)
    folder = state.keyed_folder(args.state / name, fingerprint(cfg, params, args.data / "index.csv"))
    train, val, val_labels = loop.datasets(params, cfg, args.data)
    with strategy.scope():  # each phase's model is made and compiled in it too, as a MirroredStrategy needs
        model = build(cfg, params.image_size, len(params.classes))
        history = loop.fit(model, cfg, train, val, folder, args.live, params.seed)
        # through an uncompiled view of the same layers: the file holds no optimizer state (callbacks.Progress),
        # which the compiled model would report as an optimizer it skipped
        loop.without_optimizer(model).load_weights(callbacks.best_weights(folder))
        probabilities = model.predict(val, verbose=0)["emotion"]
    metrics = {
        "val": classification_metrics(val_labels, probabilities, params.classes),
        "best_epoch": callbacks.best_epoch(history, cfg.keep),
        "epochs_run": len(history),
    }
    saving.save(loop.without_optimizer(model), args.out)  # only inference loads it: a third of the file
    atomic.write_json(args.metrics, metrics)
    state.discard(folder)  # finished: the next run with these inputs is DVC's to skip
    # the time goes to the log, not to the metrics: a committed file that changed on every identical rerun
    print(f"train {name}: {time.time() - started:.1f} s", flush=True)
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    model_stage.add_arguments(parser)
    parser.add_argument("--hparams", type=Path, help="the tune stage's best hyperparameters")
    parser.add_argument("--out", type=Path, required=True, help="the trained model (.keras)")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder of the training curves")
    parser.add_argument("--state", type=Path, default=Path(".train-state"), help="resume state (not a DVC output)")


def main(params: Params, args: argparse.Namespace) -> None:
    name = model_stage.model(params, args)
    inputs = {"--data": args.data} | ({"--hparams": args.hparams} if args.hparams else {})
    outputs = {"--state": args.state, "--out": args.out, "--metrics": args.metrics, "--live": args.live}
    atomic.keep_apart(outputs, inputs)  # the state folder removes stale keys' state; the outputs replace theirs
    metrics = run(params, name, args)
    print(
        f"train {name}: validation macro F1 {metrics['val']['macro_f1']:.3f}, "
        f"accuracy {metrics['val']['accuracy']:.3f}, best epoch {metrics['best_epoch']}"
    )
