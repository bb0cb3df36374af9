"""Data tests of the augment stage: class balance, label-keeping augmentation, no leakage from validation or Test into
the training side, grouped splits, determinism, and raw data left untouched.

Each test runs the stage in-process on the tiny sample dataset (3 Train and 1 Test image per class) with the test
profile's settings (tests/profile.yaml), so the whole file takes seconds.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline import config
from pipeline.data import duplicates
from pipeline.data import manifest as manifest_lib
from pipeline.data.classes import normalise
from pipeline.data.images import read_rgb
from pipeline.data.transforms import Transform, apply
from pipeline.stages import augment, validate
from tests import workspace
from tests.workspace import tree_digest

TARGET = 6  # of 2 training images per class: 4 augmented copies each
GROUPS = r"^(?P<group>[^_]+)_"


def _params(**overrides) -> config.Params:
    augment_overrides = {"target": TARGET, "cap_majority": TARGET}
    top = {k: overrides.pop(k) for k in ("seed",) if k in overrides}
    return config.from_dict(workspace.profile_params({"augment": augment_overrides | overrides, **top}))


def _run(params: config.Params, raw: Path, out: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Manifest and augment stage on ``raw``; returns the summary, the manifest and the output index."""
    before = tree_digest(raw)
    out.mkdir(parents=True, exist_ok=True)
    manifest = manifest_lib.build(
        raw, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )
    manifest.to_csv(out / "manifest.csv", index=False)
    summary = augment.run(params, out / "manifest.csv", raw, out / "balanced", out / "augment.json", out / "plot.csv")
    assert tree_digest(raw) == before, "the augment stage wrote to the raw data"
    return summary, manifest, pd.read_csv(out / "balanced" / "index.csv")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_class_reaches_the_target(tiny_raw, tmp_path):
    params = _params()
    summary, _, index = _run(params, tiny_raw, tmp_path)
    assert summary["before"] == dict.fromkeys(params.classes, 2)
    assert summary["after"] == dict.fromkeys(params.classes, TARGET)
    assert summary["augmented_images"] == len(params.classes) * (TARGET - 2)
    balanced = tmp_path / "balanced"
    for label in params.classes:
        assert len(list((balanced / "train" / label).glob("*.png"))) == TARGET, label
    assert len(index) == len(list(balanced.rglob("*.png")))  # the index lists every file, and only those
    plot = pd.read_csv(tmp_path / "plot.csv")
    assert plot.loc[plot["when"] == "after", "count"].eq(TARGET).all()


def test_augmented_images_differ_from_their_source_and_keep_its_label(tiny_raw, tmp_path):
    params = _params()
    _, manifest, index = _run(params, tiny_raw, tmp_path)
    balanced = tmp_path / "balanced"
    originals = index[(index["split"] == "train") & ~index["augmented"]].set_index("source")
    copies = index[index["augmented"]]
    assert len(copies) > 0 and (copies["split"] == "train").all()
    source_label = manifest.set_index("path")["label"]
    for row in copies.itertuples():
        image, source = read_rgb(balanced / row.path), read_rgb(balanced / originals.loc[row.source, "path"])
        assert image.shape == source.shape == (params.image_size, params.image_size, 3)
        assert np.abs(image.astype(int) - source.astype(int)).mean() > 1, f"{row.path} is its source, unchanged"
        folder = Path(row.path).parts[1]
        assert folder == row.label == source_label[row.source], row.path
        assert normalise(Path(row.source).parts[1], params.classes, params.class_aliases) == row.label
    # no two copies are the same picture
    assert copies["path"].map(lambda p: _sha(balanced / p)).is_unique


def test_no_validation_or_test_image_reaches_the_training_side(tiny_raw, tmp_path):
    params = _params()
    _, manifest, index = _run(params, tiny_raw, tmp_path)
    balanced = tmp_path / "balanced"
    train, val = index[index["split"] == "train"], index[index["split"] == "val"]
    assert len(val) == len(params.classes) and not val["augmented"].any()
    test_hashes = set(manifest.loc[manifest["split"] == "test", "sha256"])
    assert not index["source"].str.startswith("Test/").any(), "the augment stage read Test"
    # by source: no training image (original or copy) comes from a validation or Test file
    assert not set(train["source_sha256"]) & (set(val["source_sha256"]) | test_hashes)
    # by content: no written training file is byte-identical to a validation file
    train_files = {_sha(balanced / p) for p in train["path"]}
    assert not train_files & {_sha(balanced / p) for p in val["path"]}


def _name_by_subject(raw: Path, subjects: int) -> None:
    """Prefix each Train file with a subject id, several subjects per class and several classes per subject."""
    for c, folder in enumerate(sorted((raw / "Train").iterdir())):
        for i, path in enumerate(sorted(folder.iterdir())):
            path.rename(path.with_name(f"s{(c + i) % subjects}_{path.name}"))


def test_grouped_split_keeps_each_subject_on_one_side(tiny_raw, tmp_path):
    _name_by_subject(tiny_raw, subjects=4)
    params = _params(group_regex=GROUPS)
    summary, _, index = _run(params, tiny_raw, tmp_path)
    subject = index["source"].map(lambda s: re.match(GROUPS, Path(s).name)["group"])
    train_subjects, val_subjects = set(subject[index["split"] == "train"]), set(subject[index["split"] == "val"])
    assert train_subjects and val_subjects
    assert not train_subjects & val_subjects, "a subject is on both sides"
    assert summary["after"] == dict.fromkeys(params.classes, TARGET)


def test_same_seed_same_bytes_other_seed_other_augmentation(tiny_raw, tmp_path):
    params = _params()
    _run(params, tiny_raw, tmp_path / "a")
    _run(params, tiny_raw, tmp_path / "b")
    first = tree_digest(tmp_path / "a" / "balanced")
    assert first == tree_digest(tmp_path / "b" / "balanced")

    _, _, index = _run(_params(seed=params.seed + 1), tiny_raw, tmp_path / "c")
    other = tree_digest(tmp_path / "c" / "balanced")
    augmented = {digest for path, digest in first.items() if "_aug" in path}
    assert len(augmented) == len(params.classes) * (TARGET - 2)
    assert not augmented & {digest for path, digest in other.items() if "_aug" in path}
    assert index["augmented"].sum() == len(augmented)


def test_class_with_a_single_training_image_still_balances(tiny_raw, tmp_path):
    for path in sorted((tiny_raw / "Train" / "fear").iterdir())[1:]:
        path.unlink()
    params = _params()
    summary, _, index = _run(params, tiny_raw, tmp_path)
    assert summary["before"]["fear"] == 1 and summary["val"]["fear"] == 0  # the only image stays in training
    assert summary["after"] == dict.fromkeys(params.classes, TARGET)
    fear = index[(index["split"] == "train") & (index["label"] == "fear")]
    assert fear["source"].nunique() == 1 and fear["augmented"].sum() == TARGET - 1


def test_classes_above_the_cap_are_subsampled(tiny_raw, tmp_path):
    params = _params(target="majority", cap_majority=1)
    summary, _, index = _run(params, tiny_raw, tmp_path)
    assert summary["after"] == dict.fromkeys(params.classes, 1)
    assert not index["augmented"].any()


def test_class_missing_from_train_is_rejected_by_validate(tiny_raw, tmp_path):
    for path in (tiny_raw / "Train" / "anger").iterdir():
        path.unlink()
    params = _params()
    assert params.validate.min_images_per_class["train"] >= 1
    with pytest.raises(validate.ValidationFailed, match=r"class 'anger' has 0 image\(s\) in train"):
        validate.run(params, tiny_raw, tmp_path / "manifest.csv", tmp_path / "v.json", tmp_path / "r.html")
    assert not (tmp_path / "manifest.csv").exists(), "no manifest, so the augment stage never runs"


IDENTITY = Transform(angle=0.0, scale=1.0, shift_x=0.0, shift_y=0.0, flip=False, brightness=0.0, contrast=1.0)


def _picture() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (31, 40, 3), dtype=np.uint8)  # odd and non-square: off-by-one errors show


def test_identity_transform_returns_the_image_unchanged():
    image = _picture()
    assert np.array_equal(apply(image, IDENTITY), image)


def test_flip_is_an_exact_mirror_folded_into_the_warp():
    image = _picture()
    flipped = apply(image, Transform(**{**IDENTITY.__dict__, "flip": True}))
    assert np.array_equal(flipped, image[:, ::-1])
    assert np.array_equal(flipped, cv2.flip(image, 1))


def test_brightness_and_contrast_saturate_instead_of_wrapping():
    image = np.array([[[0, 128, 255]]], dtype=np.uint8)
    brighter = apply(image, Transform(**{**IDENTITY.__dict__, "brightness": 0.2}))
    assert brighter.tolist() == [[[51, 179, 255]]]
    flatter = apply(image, Transform(**{**IDENTITY.__dict__, "contrast": 0.5}))
    assert flatter.tolist() == [[[64, 128, 191]]]
