"""Command `convert-faces`: a public facial-expression dataset (FER2013, JAFFE) in the Kaggle layout, to develop
and measure the pipeline on real photographs.

    python -m pipeline convert-faces fer2013 path/to/fer2013.csv --out data/public/fer2013 --per-class 300
    python -m pipeline convert-faces fer2013 path/to/fer2013-folders --out data/public/fer2013
    python -m pipeline convert-faces jaffe path/to/jaffe --out data/public/jaffe --test-subjects KA,KL,KM

Their licences do not allow redistribution: keep the output out of git and out of the project's DVC remote
(data/public/ is git-ignored). Then point the pipeline at it, as with the real Kaggle dataset (README).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from pipeline.config import OptionError, Params
from pipeline.data import public


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("dataset", choices=["fer2013", "jaffe"])
    parser.add_argument("source", type=Path, help="fer2013.csv or FER2013's train/ test/ folders; JAFFE's folder")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (replaced whole)")
    parser.add_argument("--per-class", type=int, help="at most this many images per class and split")
    parser.add_argument("--test-subjects", help="JAFFE: comma-separated subject ids for Test (default: 3, by seed)")


def main(params: Params, args: argparse.Namespace) -> None:
    if args.per_class is not None and args.per_class < 1:
        raise OptionError(f"--per-class {args.per_class}: give a whole number of at least 1")
    if not args.source.exists():
        raise OptionError(f"{args.source}: no such file or folder")
    if args.dataset == "jaffe":
        faces = public.jaffe(args.source, test_subjects(args, params.seed))
    elif args.source.is_file():
        faces = public.fer2013_csv(args.source)
    else:
        faces = public.fer2013_folders(args.source)
    counts = public.write(faces, args.out, params.split_folders, args.per_class)
    for split in ("train", "test"):
        shown = ", ".join(f"{label} {counts[(split, label)]}" for label in params.classes)
        print(f"{params.split_folders[split]}: {shown}")
    if args.dataset == "jaffe":
        print(f"subjects are the first two letters of each name: augment.group_regex: '{public.JAFFE_GROUP_REGEX}'")


def test_subjects(args: argparse.Namespace, seed: int) -> set[str]:
    known = public.jaffe_subjects(args.source)
    if not known:
        raise OptionError(f"{args.source}: no JAFFE images found (names like KA.HA1.29.tiff)")
    if args.test_subjects is None:
        chosen = set(random.Random(seed).sample(known, min(3, len(known) - 1)))
        print(f"Test subjects (seed {seed}): {', '.join(sorted(chosen))}")
        return chosen
    chosen = {s.strip().upper() for s in args.test_subjects.split(",") if s.strip()}
    if not chosen or chosen - set(known) or chosen == set(known):
        raise OptionError(f"--test-subjects {args.test_subjects}: some of {', '.join(known)}, not all of them")
    return chosen
