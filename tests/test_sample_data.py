"""The synthetic sample dataset: Kaggle layout, determinism, no label leaking through trivial cues."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data import sample

SIZE = 96
COUNTS = {"train": dict.fromkeys(sample.FOLDERS, 2), "test": dict.fromkeys(sample.FOLDERS, 1)}


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample") / "raw"
    assert sample.generate(root, COUNTS, seed=3, size=SIZE) == {"train": 12, "test": 6}
    return root


def test_layout_matches_kaggle(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == ["Test", "Train"]
    names = []
    for split, top in sample.SPLITS.items():
        assert sorted(p.name for p in (dataset / top).iterdir()) == sorted(sample.FOLDERS.values())
        for cls, folder in sample.FOLDERS.items():
            files = sorted((dataset / top / folder).iterdir())
            assert len(files) == COUNTS[split][cls]
            for f in files:
                assert re.fullmatch(r"img_\d{4}\.jpg", f.name), "names must not give the label away"
                img = cv2.imread(str(f))
                assert img is not None and img.shape == (SIZE, SIZE, 3)
                assert 500 < f.stat().st_size < 8000
            names += [f.name for f in files]
    assert len(set(names)) == len(names), "file numbers are unique over the whole dataset"


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
    sample.generate(tmp_path / "again", COUNTS, seed=3, size=SIZE)
    assert digests(tmp_path / "again") == digests(dataset)
    sample.generate(tmp_path / "other", COUNTS, seed=4, size=SIZE)
    assert not set(digests(tmp_path / "other").values()) & set(digests(dataset).values())


def test_image_depends_only_on_its_key(dataset, tmp_path):
    """Dropping the Test split renames files (one shuffle over the dataset) but redraws no Train image."""
    sample.generate(tmp_path / "train_only", {"train": COUNTS["train"]}, seed=3, size=SIZE)
    assert [p.name for p in (tmp_path / "train_only").iterdir()] == ["Train"]
    for folder in sample.FOLDERS.values():
        redrawn = digests(tmp_path / "train_only" / "Train" / folder).values()
        assert sorted(redrawn) == sorted(digests(dataset / "Train" / folder).values())


def test_no_trivial_cue_in_colour_or_brightness():
    """A nearest-centroid classifier on mean colour (or brightness) must stay near chance (1/6), leave-one-out."""
    per_class = 20
    labels = np.repeat(np.arange(len(sample.FOLDERS)), per_class)
    means = np.array(
        [
            sample.draw_face(name, np.random.default_rng([11, c, i]), SIZE).reshape(-1, 3).mean(0)
            for c, name in enumerate(sample.FOLDERS)
            for i in range(per_class)
        ]
    )
    for feats in (means, means.mean(1, keepdims=True)):
        z = (feats - feats.mean(0)) / feats.std(0)
        hits = 0
        for i in range(len(z)):
            keep = np.arange(len(z)) != i
            centroids = np.array([z[keep & (labels == c)].mean(0) for c in range(len(sample.FOLDERS))])
            hits += int(np.argmin(((centroids - z[i]) ** 2).sum(1)) == labels[i])
        assert hits / len(z) < 0.4


def test_draw_face_is_deterministic_and_checks_its_input():
    a = sample.draw_face("natural", np.random.default_rng([1, 2]), 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, sample.draw_face("natural", np.random.default_rng([1, 2]), 64))
    with pytest.raises(ValueError, match="happy"):
        sample.draw_face("happy", np.random.default_rng(0), 64)


def test_refuses_a_non_empty_folder(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        sample.generate(out, COUNTS, seed=3, size=SIZE)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_accepts_an_empty_folder_and_rejects_unknown_classes(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    assert sample.generate(out, {"test": {"joy": 1}}, seed=3, size=SIZE) == {"test": 1}
    assert len(list((out / "Test").iterdir())) == 6, "every class folder exists, even when empty"
    with pytest.raises(ValueError, match="happy"):
        sample.generate(tmp_path / "bad", {"train": {"happy": 1}}, seed=3, size=SIZE)
    assert not (tmp_path / "bad").exists()


def test_preview_writes_a_png(tmp_path):
    out = tmp_path / "sheet" / "preview.png"
    sample.preview(out, seed=3, size=SIZE, per_class=3)
    assert out.read_bytes().startswith(b"\x89PNG")
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[0] > 6 * SIZE and sheet.shape[1] > 3 * SIZE
