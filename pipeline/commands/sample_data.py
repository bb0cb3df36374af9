"""Command `sample-data`: generate the embedded synthetic dataset, or a contact sheet of it."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import Params
from pipeline.data import sample


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="folder to create in the Kaggle layout (Train/<class>, Test/<class>)")
    target.add_argument("--preview", type=Path, help="PNG contact sheet: a row of faces per emotion")
    parser.add_argument("--seed", type=int, help="default: params.yaml sample_data.seed")


def main(params: Params, args: argparse.Namespace) -> None:
    cfg = params.sample_data
    seed = cfg.seed if args.seed is None else args.seed
    if args.preview:
        sample.preview(args.preview, seed=seed, size=cfg.image_size)
        print(f"sample-data: contact sheet written to {args.preview}")
        return
    written = sample.generate(args.out, cfg.counts, seed=seed, size=cfg.image_size)
    print(f"sample-data: {written['train']} train and {written['test']} test images written to {args.out}")
