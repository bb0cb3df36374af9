"""Command `convert-faces`: a public facial-expression dataset (FER2013, JAFFE, the Taiwanese posed set) in the
Kaggle layout, to develop and measure the pipeline on real photographs.

    python -m pipeline convert-faces fer2013 path/to/fer2013.csv --out data/public/fer2013 --per-class 300
    python -m pipeline convert-faces fer2013 path/to/fer2013-folders --out data/public/fer2013
    python -m pipeline convert-faces jaffe path/to/jaffe --out data/public/jaffe --test-subjects KA,KL,KM
    python -m pipeline convert-faces taiwanese path/to/faces_256x256 --out data/public/taiwanese \
        --classes joy,sadness,fear,anger,surprise

Their licences do not allow redistribution: keep the output out of git and out of the project's DVC remote
(data/public/ is git-ignored). Then point the pipeline at it, as with the real Kaggle dataset (README).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from pipeline import atomic
from pipeline.config import OptionError, Params
from pipeline.data import public


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("dataset", choices=["fer2013", "jaffe", "taiwanese"])
    parser.add_argument(
        "source", type=Path, help="fer2013.csv or FER2013's train/ test/ folders; JAFFE's or the Taiwanese set's folder"
    )
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (replaced whole)")
    parser.add_argument("--per-class", type=int, help="at most this many images per class and split")
    parser.add_argument("--classes", help="comma-separated: only these of our classes (default: all the set has)")
    parser.add_argument(
        "--test-subjects",
        help="JAFFE, Taiwanese: comma-separated subject ids for Test (default: a fifth of them, at least 3, by seed)",
    )


# the sets with subject ids: how to list them, what their names look like, and the group_regex that reads them
SUBJECTS = {
    "jaffe": (public.jaffe_subjects, "names like KA.HA1.29.tiff", public.JAFFE_GROUP_REGEX),
    "taiwanese": (public.taiwanese_subjects, "names like 0211d20.jpg", public.TAIWANESE_GROUP_REGEX),
}


def main(params: Params, args: argparse.Namespace) -> None:
    if args.per_class is not None and args.per_class < 1:
        raise OptionError(f"--per-class {args.per_class}: give a whole number of at least 1")
    if not args.source.exists():
        raise OptionError(f"{args.source}: no such file or folder")
    atomic.keep_apart({"--out": args.out}, {"the source": args.source})  # --out is replaced whole
    atomic.refuse_foreign(args.out, "--out", params.split_folders.values(), "convert-faces")
    classes = None
    if args.classes is not None:
        classes = {c.strip() for c in args.classes.split(",") if c.strip()}
        ours = set(public.CLASSES)
        if not classes or classes - ours:
            raise OptionError(f"--classes {args.classes}: some of {', '.join(sorted(ours))}")
    missed: list[str] = []
    if args.dataset == "jaffe":
        faces = public.jaffe(args.source, test_subjects(args, params.seed))
    elif args.dataset == "taiwanese":
        faces = public.taiwanese(args.source, test_subjects(args, params.seed), missed)
    elif args.source.is_file():
        faces = public.fer2013_csv(args.source)
    else:
        faces = public.fer2013_folders(args.source)
    counts = public.write(faces, args.out, params.split_folders, args.per_class, classes)
    for split in ("train", "test"):
        shown = ", ".join(f"{label} {counts[(split, label)]}" for label in params.classes)
        print(f"{params.split_folders[split]}: {shown}")
    if missed:
        print(f"left out, no face found: {len(missed)} ({', '.join(missed)})")
    if args.dataset in SUBJECTS:
        print(f"subject ids lead every name: augment.group_regex: '{SUBJECTS[args.dataset][2]}'")


def test_subjects(args: argparse.Namespace, seed: int) -> set[str]:
    listed, names, _ = SUBJECTS[args.dataset]
    known = listed(args.source)
    if not known:
        raise OptionError(f"{args.source}: no {args.dataset} images found ({names})")
    if args.test_subjects is None:
        chosen = set(random.Random(seed).sample(known, min(max(3, round(len(known) / 5)), len(known) - 1)))
        print(f"Test subjects (seed {seed}): {', '.join(sorted(chosen))}")
        return chosen
    chosen = {s.strip().upper() for s in args.test_subjects.split(",") if s.strip()}
    if not chosen or chosen - set(known) or chosen == set(known):
        raise OptionError(f"--test-subjects {args.test_subjects}: some of {', '.join(known)}, not all of them")
    return chosen
