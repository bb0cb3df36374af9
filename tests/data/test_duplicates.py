"""The same picture twice: edited copies across Train and Test are leaks (named, with the kind of match and the
distance), copies inside Train stay on one side of the train/validation split, and one picture under two classes
fails validation naming both files. No false alarm on the embedded sample dataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data import duplicates, sample
from pipeline.data import manifest as manifest_lib
from pipeline.data.images import read_rgb, write_png
from pipeline.stages import augment, validate
from tests import workspace


def _first(raw: Path, rel: str) -> Path:
    return sorted((raw / rel).glob("*.jpg"))[0]


def _brighter(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb.astype(np.float32) * 1.3, 0, 255).astype(np.uint8)


def _more_contrast(rgb: np.ndarray) -> np.ndarray:
    return np.clip((rgb.astype(np.float32) - 127.5) * 1.3 + 127.5, 0, 255).astype(np.uint8)


def _border_crop(rgb: np.ndarray, px: int = 6) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb[px : h - px, px : w - px], (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        (lambda rgb: rgb[:, ::-1], "mirrored copy"),
        (_brighter, "near-duplicate"),
        (lambda rgb: (rgb.astype(np.float32) * 0.7).astype(np.uint8), "near-duplicate"),
        (_more_contrast, "near-duplicate"),
        (_border_crop, "near-duplicate"),
        (lambda rgb: _border_crop(rgb)[:, ::-1], "mirrored copy"),
    ],
    ids=["mirrored", "brighter-30pc", "darker-30pc", "contrast-30pc", "border-crop-6px", "cropped-and-mirrored"],
)
def test_an_edited_copy_of_a_train_image_in_test_is_a_leak(params, tiny_raw, tmp_path, edit, kind):
    source = _first(tiny_raw, "Train/anger")
    write_png(tiny_raw / "Test/anger/edited.png", np.ascontiguousarray(edit(read_rgb(source))))
    with pytest.raises(validate.ValidationFailed) as failed:
        validate.run(params, tiny_raw, tmp_path / "m.csv", tmp_path / "v.json", tmp_path / "r.html")
    message = str(failed.value)
    assert f"Test/anger/edited.png: same image as Train/anger/{source.name}" in message
    assert kind in message and "hash distance" in message and "colour correlation" in message


def test_no_false_alarm_on_the_sample_dataset(params, tmp_path):
    # the embedded sample dataset, drawn again by its generator: distinct faces of one style, often alike
    raw = tmp_path / "raw"
    sample.generate(raw, params.sample_data.counts, params.sample_data.seed, params.sample_data.image_size)
    frame = manifest_lib.build(
        raw, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )
    assert len(frame) == 835  # the study-sized sample (params.yaml sample_data.counts)
    assert frame["leaks_with"].isna().all() and frame["duplicate_of"].isna().all()


def test_copies_inside_train_stay_on_one_side_of_the_split(tiny_raw, tmp_path):
    params = config_with_validation_split()
    source = _first(tiny_raw, "Train/fear")
    for i, edit in enumerate((lambda rgb: rgb, lambda rgb: rgb[:, ::-1], _brighter)):
        write_png(tiny_raw / f"Train/fear/copy{i}.png", np.ascontiguousarray(edit(read_rgb(source))))
    frame = manifest_lib.build(
        tiny_raw, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )
    copies = frame[frame["duplicate_of"].notna()]
    assert sorted(copies["path"]) == sorted(
        [f"Train/fear/{source.name}", *(f"Train/fear/copy{i}.png" for i in range(3))]
    )
    assert copies["duplicate_of"].nunique() == 1 and frame["label_conflict"].isna().all()
    for seed in range(6):  # whatever the seed, the four copies land together
        sides = augment.split(frame, params.model_copy(update={"seed": seed}))
        assert sides.loc[sides["path"].isin(copies["path"]), "side"].nunique() == 1


def test_one_picture_under_two_classes_fails_validation_naming_both(params, tiny_raw, tmp_path):
    source = _first(tiny_raw, "Train/joy")
    write_png(tiny_raw / "Train/sadness/relabelled.png", read_rgb(source)[:, ::-1].copy())
    with pytest.raises(validate.ValidationFailed) as failed:
        validate.run(params, tiny_raw, tmp_path / "m.csv", tmp_path / "v.json", tmp_path / "r.html")
    message = str(failed.value)
    assert "one picture under two classes" in message
    assert (
        f"Train/sadness/relabelled.png: the same picture is labelled differently in Train/joy/{source.name} (joy)"
        in (message)
    )
    assert f"Train/joy/{source.name}: the same picture is labelled differently in " in message


def config_with_validation_split():
    """The test profile with a third of each Train class held out, so that a split has two sides to choose from."""
    return workspace.tiny_params().model_copy(
        update={"augment": workspace.tiny_params().augment.model_copy(update={"val_fraction": 0.34})}
    )
