"""The command line that the two stages of one model share (tune@<model>, train@<model>): the model, which dvc.yaml's
matrix names, and the augment stage's output it learns from."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import Params, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model of params.yaml train (dvc.yaml's matrix item)")
    parser.add_argument("--data", type=Path, required=True, help="the augment stage's output")


def model(params: Params, args: argparse.Namespace) -> str:
    """The model --model names, refused as argparse refuses a choice when params.yaml does not train it."""
    if args.model not in params.train:
        choices = ", ".join(repr(name) for name in sorted(params.train))
        raise UsageError(f"argument --model: invalid choice: {args.model!r} (choose from {choices})")
    return args.model
