"""Stage `augment`: split Train into train/val, balance the training classes with augmented copies, write both.

Reads the manifest and the raw images (never writes to them); Test is not read at all. Output: images at the model's
size under data/balanced/{train,val}/<class>/, an index.csv, the balance metrics and a bar chart for `dvc plots`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import atomic
from pipeline.config import Params
from pipeline.data import faces, links, shape
from pipeline.data.images import write_png
from pipeline.data.split import SplitError, train_val_split
from pipeline.data.transforms import augment

SIDES = ("train", "val")  # the folders of --out, beside its index
INDEX = "index.csv"


def _target(size: int, counts: pd.Series, params: Params) -> int:
    """Images a class of ``size`` training images ends with: the target (majority, a number, or its own size when
    balancing is off), never above the majority cap."""
    cfg = params.augment
    target = {"majority": int(counts.max()), "none": size}.get(cfg.target, cfg.target)
    return min(target, cfg.cap_majority) if cfg.cap_majority else target


def known_labels(manifest: pd.DataFrame, path: Path, params: Params) -> pd.DataFrame:
    """``manifest`` as validate wrote it, or SplitError naming the first row whose label is not a class of params
    (a manifest edited by hand, or written for other classes)."""
    unknown = manifest["label"].notna() & ~manifest["label"].isin(params.classes)
    if unknown.any():
        row = manifest[unknown].iloc[0]
        raise SplitError(
            f"{path}: {links.printable(str(row['path']))} has the label '{links.printable(str(row['label']))}', "
            f"not one of classes {params.classes} ({int(unknown.sum())} such row(s)); run validate again"
        )
    return manifest


def split(manifest: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The Train rows of the manifest, each with its side: 'train' or 'val'."""
    train = manifest[manifest["split"] == "train"].copy()
    train["side"] = train_val_split(
        train, params.augment.val_fraction, params.seed, params.augment.group_regex, train.get("duplicate_of")
    )
    return train


def plan(train: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Which source image each output file comes from, and which augmented copy it is (None: the original)."""
    rows = [r | {"copy": None} for r in train[train["side"] == "val"].to_dict("records")]
    fit = train[train["side"] == "train"]
    counts = fit.groupby("label").size()
    for label, group in fit.groupby("label", sort=False):
        target = _target(len(group), counts, params)
        class_id = params.class_index(label)
        rng = np.random.default_rng([params.seed, class_id])
        sources = group.loc[rng.permutation(group.index.to_numpy())].to_dict("records")
        kept = sources[:target]  # a class above the cap is subsampled; below it, every original is kept
        rows += [r | {"copy": None} for r in kept]
        rows += [kept[i % len(kept)] | {"copy": i} for i in range(target - len(kept))]
    return pd.DataFrame(rows)


def run(params: Params, manifest_path: Path, raw: Path, out: Path, metrics_path: Path, plot_path: Path) -> dict:
    # --out is replaced whole: given as (or around) the raw folder, it would delete the raw data
    atomic.keep_apart(
        {"--out": out, "--metrics": metrics_path, "--plot": plot_path}, {"--raw": raw, "--manifest": manifest_path}
    )
    atomic.refuse_foreign(out, "--out", (*SIDES, INDEX), "augment")
    train = split(known_labels(pd.read_csv(manifest_path), manifest_path, params), params)
    todo = plan(train, params)
    detector = faces.FaceDetector() if params.augment.face_crop else None
    picture = shape.rule(params.validate)
    prepared: dict[str, np.ndarray] = {}
    found = []
    index = []
    with atomic.directory(out) as tmp:
        for row in todo.itertuples():
            if row.path not in prepared:
                image, face = faces.prepare(
                    shape.read(raw / row.path, raw, picture), params.image_size, detector, params.augment.face_margin
                )
                prepared[row.path] = image
                found.append(face)
            image = prepared[row.path]
            name = row.sha256[:16]
            if pd.notna(row.copy):
                copy = int(row.copy)
                rng = np.random.default_rng([params.seed, params.class_index(row.label), copy])
                image = augment(image, params.augment, rng)
                name = f"{name}_aug{copy:04d}"
            rel = Path(row.side) / row.label / f"{name}.png"
            write_png(atomic.inside(tmp, rel, shown=out), image)  # never outside --out, whatever the class is called
            index.append(
                {
                    "path": rel.as_posix(),
                    "split": row.side,
                    "label": row.label,
                    "source": row.path,
                    "source_sha256": row.sha256,
                    "augmented": pd.notna(row.copy),
                }
            )
        pd.DataFrame(index).to_csv(tmp / INDEX, index=False)
    summary = summarise(train, pd.DataFrame(index), params, found)
    atomic.write_json(metrics_path, summary)
    with atomic.target(plot_path) as tmp_plot:
        pd.DataFrame(
            [
                {"bar": f"{label} {when}", "class": label, "when": when, "count": summary[when][label]}
                for label in params.classes
                for when in ("before", "after")
            ]
        ).to_csv(tmp_plot, index=False)
    return summary


def summarise(train: pd.DataFrame, index: pd.DataFrame, params: Params, found: list[bool | None]) -> dict:
    def per_class(frame: pd.DataFrame) -> dict[str, int]:
        sizes = frame.groupby("label").size()
        return {label: int(sizes.get(label, 0)) for label in params.classes}

    balanced = index[index["split"] == "train"]
    summary = {
        "before": per_class(train[train["side"] == "train"]),
        "after": per_class(balanced),
        "val": per_class(index[index["split"] == "val"]),
        "augmented_images": int(balanced["augmented"].sum()),
    }
    if params.augment.face_crop:
        summary["faces_found"] = sum(f is True for f in found)
        summary["faces_missing"] = sum(f is False for f in found)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    for option in ("--manifest", "--raw", "--out", "--metrics", "--plot"):
        parser.add_argument(option, type=Path, required=True)


def main(params: Params, args: argparse.Namespace) -> None:
    summary = run(params, args.manifest, args.raw, args.out, args.metrics, args.plot)
    print(f"augment: train per class {summary['before']} -> {summary['after']}; val {summary['val']}")
