"""Command `sample-data`: generate the embedded synthetic dataset, or a contact sheet of it."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import Params
from pipeline.data import sample


def main(params: Params, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline sample-data", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="folder to create in the Kaggle layout (Train/<class>, Test/<class>)")
    target.add_argument("--preview", type=Path, help="PNG contact sheet: a row of faces per emotion")
    parser.add_argument("--seed", type=int, default=params.sample_data.seed)
    args = parser.parse_args(argv)
    cfg = params.sample_data
    if args.preview:
        sample.preview(args.preview, seed=args.seed, size=cfg.image_size)
        print(f"sample-data: contact sheet written to {args.preview}")
        return
    written = sample.generate(args.out, cfg.counts, seed=args.seed, size=cfg.image_size)
    print(f"sample-data: {written['train']} train and {written['test']} test images written to {args.out}")
