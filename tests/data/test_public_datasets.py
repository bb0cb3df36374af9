"""convert-faces: FER2013 (its CSV, its image folders) and JAFFE in the Kaggle layout, on tiny stand-ins written
here in each dataset's own format; disgust left out, JAFFE's Test side whole subjects, nothing read through a link
that leaves the source."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import UserError
from pipeline.data import faces, images, links, public, sample
from tests import workspace

FACE = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)


def convert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "convert-faces", *args], cwd=workspace.REPO,
                          capture_output=True, text=True)  # fmt: skip


def layout(out: Path) -> dict[str, int]:
    return {f"{p.parent.parent.name}/{p.parent.name}": len(list(p.parent.glob("*.png"))) for p in out.rglob("*.png")}


def test_fer2013_csv_rows_become_faces_and_disgust_is_left_out(tmp_path):
    rows = ["emotion,pixels,Usage"]
    for emotion, usage in [(3, "Training"), (3, "Training"), (1, "Training"), (6, "PublicTest"), (0, "PrivateTest")]:
        rows.append(f"{emotion},{' '.join(str(v) for v in FACE[:48, :48].ravel())},{usage}")
    (tmp_path / "fer2013.csv").write_text("\n".join(rows) + "\n")
    done = convert("fer2013", str(tmp_path / "fer2013.csv"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert layout(tmp_path / "out") == {"Train/joy": 2, "Test/natural": 1, "Test/anger": 1}
    face = images.read_rgb(next((tmp_path / "out/Train/joy").glob("*.png")))
    assert face.shape == (48, 48, 3) and (face[..., 0] == FACE[:48, :48]).all()
    assert "Train: joy 2, sadness 0" in done.stdout


def test_fer2013_folders_map_their_names_and_the_limit_holds(tmp_path):
    for split, emotion, n in [("train", "happy", 3), ("train", "disgust", 2), ("test", "sad", 1)]:
        folder = tmp_path / "src" / split / emotion
        folder.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(folder / f"im{i}.jpg"), FACE)
    folders = {"train": "Train", "test": "Test"}
    counts = public.write(public.fer2013_folders(tmp_path / "src"), tmp_path / "out", folders, per_class=2)
    assert layout(tmp_path / "out") == {"Train/joy": 2, "Test/sadness": 1}
    assert counts[("train", "joy")] == 2


def jaffe_folder(root: Path) -> Path:
    root.mkdir()
    for subject in ("KA", "KL", "KM", "NA"):
        for code in ("HA1", "SA2", "DI1", "NE1"):
            cv2.imwrite(str(root / f"{subject}.{code}.{len(code) * 7}.tiff"), FACE)
    (root / "README").write_text("not an image\n")
    return root


def test_jaffe_test_side_is_whole_subjects_whose_ids_lead_every_name(tmp_path):
    source = jaffe_folder(tmp_path / "jaffe")
    done = convert("jaffe", str(source), "--out", str(tmp_path / "out"), "--test-subjects", "ka,NA")
    assert done.returncode == 0, done.stderr
    # two subjects a side, one picture of each class each; disgust (DI) and the README left out
    assert layout(tmp_path / "out") == {f"{s}/{c}": 2 for s in ("Train", "Test") for c in ("joy", "sadness", "natural")}
    test_subjects = {p.name[:2] for p in (tmp_path / "out/Test").rglob("*.png")}
    train_subjects = {p.name[:2] for p in (tmp_path / "out/Train").rglob("*.png")}
    assert test_subjects == {"KA", "NA"} and train_subjects == {"KL", "KM"}
    import re

    assert all(re.match(public.JAFFE_GROUP_REGEX, p.name) for p in (tmp_path / "out").rglob("*.png"))
    assert public.JAFFE_GROUP_REGEX in done.stdout


@pytest.mark.parametrize("subjects", ["XX", "KA,KL,KM,NA"])
def test_jaffe_test_subjects_must_be_some_known_ones(tmp_path, subjects):
    source = jaffe_folder(tmp_path / "jaffe")
    done = convert("jaffe", str(source), "--out", str(tmp_path / "out"), "--test-subjects", subjects)
    assert done.returncode == 1 and "not all of them" in done.stderr and not (tmp_path / "out").exists()


def test_a_link_out_of_the_source_is_refused_and_nothing_is_written(tmp_path):
    source = jaffe_folder(tmp_path / "jaffe")
    secret = tmp_path / "secret.tiff"
    cv2.imwrite(str(secret), FACE)
    (source / "KA.AN1.99.tiff").symlink_to(secret)
    with pytest.raises(UserError, match="outside"):
        public.write(public.jaffe(source, {"KA"}), tmp_path / "out", {"train": "Train", "test": "Test"})
    assert not (tmp_path / "out").exists() and links.escape(source / "KA.AN1.99.tiff", source)


def test_a_csv_that_is_not_fer2013_is_named(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(public.ConvertError, match="not FER2013's CSV"):
        list(public.fer2013_csv(tmp_path / "x.csv"))


def taiwanese_folder(root: Path, tmp_path: Path) -> Path:
    """Sample cartoons in which the cascade finds a face, named as the Taiwanese set names its photographs."""
    sample.generate(tmp_path / "cartoons", {"test": {"joy": 4, "surprise": 4}}, seed=5, size=112)
    detector = faces.FaceDetector()
    found = [p for p in sorted((tmp_path / "cartoons").rglob("*.jpg")) if detector.detect(images.read_rgb(p))]
    assert len(found) >= 3, "the cascade should find faces in the sample cartoons"
    root.mkdir()
    # subjects 01-03: happy (b), surprised (g), disgust (e, left out) and neutral written with a digit (0)
    for i, subject in enumerate(("01", "02", "03")):
        for code in ("b", "g", "e", "0"):
            shutil.copy(found[i], root / f"{subject}{0 if code == '0' else 1}1{code}0{i}.jpg")
    cv2.imwrite(str(root / "0311b99.jpg"), np.full((112, 112, 3), 128, np.uint8))  # no face in it
    (root / "Readme.txt").write_text("not an image\n")
    return root


def test_taiwanese_photographs_become_grayscale_face_crops_of_whole_subjects(tmp_path):
    source = taiwanese_folder(tmp_path / "taiwanese", tmp_path)
    done = convert("taiwanese", str(source), "--out", str(tmp_path / "out"), "--test-subjects", "02",
                   "--classes", "joy,surprise")  # fmt: skip
    assert done.returncode == 0, done.stderr
    # natural left out by --classes, disgust always; the picture without a face is named
    assert layout(tmp_path / "out") == {"Train/joy": 2, "Train/surprise": 2, "Test/joy": 1, "Test/surprise": 1}
    assert "no face found: 1 (0311b99.jpg)" in done.stdout
    assert {p.name[:3] for p in (tmp_path / "out/Test").rglob("*.png")} == {"P02"}
    import re

    for path in (tmp_path / "out").rglob("*.png"):
        assert re.match(public.TAIWANESE_GROUP_REGEX, path.name)
        face = images.read_rgb(path)
        assert (
            face.shape == (48, 48, 3) and (face[..., 0] == face[..., 1]).all() and (face[..., 1] == face[..., 2]).all()
        )
    assert public.TAIWANESE_GROUP_REGEX in done.stdout
    # without --classes the neutral pictures (code a or 0) are kept
    everything = public.write(public.taiwanese(source, {"02"}), tmp_path / "all", {"train": "Train", "test": "Test"})
    assert everything[("train", "natural")] == 2 and everything[("test", "natural")] == 1


def test_the_default_test_subjects_are_a_fifth_at_least_three_by_seed(tmp_path):
    source = tmp_path / "many"
    source.mkdir()
    for subject in range(1, 21):
        cv2.imwrite(str(source / f"{subject:02d}11b01.jpg"), FACE)  # no face found: only the ids are read here
    done = convert("taiwanese", str(source), "--out", str(tmp_path / "out"))
    chosen = done.stdout.split("Test subjects (seed 42): ")[1].splitlines()[0].split(", ")
    assert done.returncode == 0, done.stderr
    assert len(chosen) == 4 and set(chosen) <= {f"{s:02d}" for s in range(1, 21)}


def test_every_dataset_maps_onto_the_study_classes_that_the_params_name(params):
    """The converters write the folders of public.CLASSES, which --classes checks against: the sample's classes."""
    assert list(public.CLASSES) == params.classes
    for table in (public.FER2013_LABELS, public.FOLDERS, public.JAFFE_CODES, public.TAIWANESE_CODES):
        assert set(table.values()) == set(public.CLASSES)
