"""Public facial-expression datasets converted to the Kaggle layout (``Train/<class>/``, ``Test/<class>/``), so that
the pipeline can be developed and measured on real photographs: FER2013 (in-the-wild, 48 px grayscale; its CSV or
its image folders), JAFFE (posed, 10 subjects, file names like ``KA.HA1.29.tiff``) and a Taiwanese posed set (29
subjects, 256 px colour photographs of head and shoulders, names like ``0211d20.jpg``), cut to 48 px grayscale
face crops as the other two are.

Their own classes map onto ours (FER2013_LABELS, FOLDERS, JAFFE_CODES); disgust, which we do not classify, is left
out. JAFFE's Test side is a set of whole subjects, and each file keeps its subject id at the start of its name, so
``augment.group_regex`` (JAFFE_GROUP_REGEX) keeps a subject on one side of the train/validation split too. Only
regular files inside the source folder are read; the output folder is written whole or not at all.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline import atomic
from pipeline.config import UserError
from pipeline.data import faces, images, links

# the study's six classes, the folder names every converter here writes
CLASSES = ("joy", "sadness", "fear", "anger", "surprise", "natural")
# FER2013's `emotion` column: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
FER2013_LABELS = {0: "anger", 2: "fear", 3: "joy", 4: "sadness", 5: "surprise", 6: "natural"}
# the folder names of FER2013's image-folder copies (train/<emotion>/, test/<emotion>/)
FOLDERS = {"angry": "anger", "fear": "fear", "happy": "joy", "sad": "sadness", "surprise": "surprise",
           "neutral": "natural"}  # fmt: skip
FER2013_SPLITS = {"Training": "train", "PublicTest": "test", "PrivateTest": "test", "train": "train", "test": "test"}
# JAFFE's expression codes
JAFFE_CODES = {"AN": "anger", "FE": "fear", "HA": "joy", "NE": "natural", "SA": "sadness", "SU": "surprise"}
JAFFE_NAME = re.compile(r"(?P<subject>[A-Z]{2})\.(?P<code>[A-Z]{2})\d*\.(?P<number>\d+)\.(?:tiff?|png|jpe?g)", re.I)
JAFFE_GROUP_REGEX = r"^(?P<group>[A-Z]{2})\."
# The Taiwanese set (described in the Chinese Journal of Psychology, 2013, 55(4)): ``PPTVE##.jpg`` is person, kind
# of performance (0 neutral, 1 acted, 2 by facial-action instructions, 3 a recalled event), view, expression, take
TAIWANESE_CODES = {
    "a": "natural",
    "0": "natural",
    "b": "joy",
    "c": "sadness",
    "d": "anger",
    "f": "fear",
    "g": "surprise",
}
TAIWANESE_NAME = re.compile(r"(?P<subject>\d{2})(?P<kind>\d)(?P<view>\d)(?P<code>[a-g0])(?P<take>\d+)\.jpe?g", re.I)
TAIWANESE_GROUP_REGEX = r"^(?P<group>P\d{2})\."
FACE_SIZE = 48  # FER2013's size, and that of the CK+ crops in common use


class ConvertError(UserError, ValueError):
    """A source that is not the dataset it was named as; the message says what was expected."""


@dataclass(frozen=True)
class Face:
    split: str  # train | test
    label: str  # one of our classes
    name: str  # the output file's name (a PNG), unique within its class folder
    pixels: np.ndarray  # 8-bit RGB


def fer2013_csv(path: Path) -> Iterator[Face]:
    """The rows of fer2013.csv (emotion, pixels, Usage): 48x48 grayscale faces as space-separated values."""
    with path.open(newline="", encoding="utf-8") as file:
        rows = csv.DictReader(file)
        if not {"emotion", "pixels", "Usage"} <= set(rows.fieldnames or ()):
            raise ConvertError(f"{path}: not FER2013's CSV (columns emotion, pixels, Usage); found {rows.fieldnames}")
        for number, row in enumerate(rows):
            label = FER2013_LABELS.get(int(row["emotion"]))
            split = FER2013_SPLITS.get(row["Usage"])
            if label is None or split is None:
                continue
            values = np.array(row["pixels"].split(), dtype=np.uint8)
            if values.size != 48 * 48:
                raise ConvertError(f"{path}: row {number + 2} has {values.size} pixel values, not 48x48")
            gray = values.reshape(48, 48)
            yield Face(split, label, f"fer_{number:05d}.png", np.stack([gray] * 3, axis=-1))


def fer2013_folders(root: Path) -> Iterator[Face]:
    """FER2013's image-folder copies: ``train/<emotion>/*`` and ``test/<emotion>/*``."""
    found = False
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower() in ("train", "test")):
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and p.name.lower() in FOLDERS):
            for file in _regular_files(class_dir, root):
                found = True
                name = f"fer_{split_dir.name.lower()}_{file.stem}.png"
                yield Face(split_dir.name.lower(), FOLDERS[class_dir.name.lower()], name, images.read_rgb(file))
    if not found:
        raise ConvertError(f"{root}: no FER2013 images found (train/<emotion>/*, test/<emotion>/*, or fer2013.csv)")


def jaffe(root: Path, test_subjects: set[str]) -> Iterator[Face]:
    """JAFFE's images (``<subject>.<code><n>.<number>.tiff``), the subjects ``test_subjects`` on the Test side."""
    for file in _regular_files(root, root):
        m = JAFFE_NAME.fullmatch(file.name)
        if m is None or m["code"].upper() not in JAFFE_CODES:
            continue  # README files, and disgust (DI)
        subject = m["subject"].upper()
        split = "test" if subject in test_subjects else "train"
        name = f"{subject}.{m['code'].upper()}.{m['number']}.png"
        yield Face(split, JAFFE_CODES[m["code"].upper()], name, images.read_rgb(file))


def jaffe_subjects(root: Path) -> list[str]:
    return sorted({m["subject"].upper() for f in _regular_files(root, root) if (m := JAFFE_NAME.fullmatch(f.name))})


def taiwanese(root: Path, test_subjects: set[str], missed: list[str] | None = None) -> Iterator[Face]:
    """The Taiwanese set's photographs (``PPTVE##.jpg``) as 48 px grayscale crops of the largest face found (OpenCV's
    Haar cascade, pipeline.data.faces), the subjects ``test_subjects`` (``"01"`` ...) on the Test side; a picture
    with no face found is left out and its name appended to ``missed``."""
    detector = faces.FaceDetector()
    for file in _regular_files(root, root):
        m = TAIWANESE_NAME.fullmatch(file.name)
        if m is None or m["code"].lower() not in TAIWANESE_CODES:
            continue  # the folder's papers and spreadsheet, and disgust (e)
        rgb = images.read_rgb(file)
        boxes = detector.detect(rgb)
        if not boxes:
            if missed is not None:
                missed.append(file.name)
            continue
        gray = cv2.cvtColor(faces.resize(faces.crop(rgb, boxes[0], 0.05), FACE_SIZE), cv2.COLOR_RGB2GRAY)
        split = "test" if m["subject"] in test_subjects else "train"
        name = f"P{m['subject']}.{m['kind']}{m['code'].lower()}.{m['take']}.png"
        yield Face(split, TAIWANESE_CODES[m["code"].lower()], name, np.repeat(gray[..., None], 3, axis=2))


def taiwanese_subjects(root: Path) -> list[str]:
    return sorted({m["subject"] for f in _regular_files(root, root) if (m := TAIWANESE_NAME.fullmatch(f.name))})


def _regular_files(folder: Path, root: Path) -> list[Path]:
    """Regular files under ``folder``, in name order; a link that leads outside ``root`` is refused (links.check)."""
    found = []
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            links.check(file, root)
            found.append(file)
    return found


def write(
    found: Iterator[Face],
    out: Path,
    folders: dict[str, str],
    per_class: int | None = None,
    classes: set[str] | None = None,
) -> Counter:
    """Write ``found`` as PNGs under ``out`` in the Kaggle layout (``folders``: split -> Train/Test folder name),
    at most ``per_class`` per class and split (the first ones in the source's order), only ``classes`` where given;
    returns the counts."""
    counts: Counter = Counter()
    names: dict[tuple[str, str], set[str]] = defaultdict(set)
    with atomic.directory(out) as tmp:
        for face in found:
            key = (face.split, face.label)
            if (classes is not None and face.label not in classes) or (
                per_class is not None and counts[key] >= per_class
            ):
                continue
            if face.name in names[key]:
                raise ConvertError(f"two source files become {face.name} in {face.split}/{face.label}")
            names[key].add(face.name)
            images.write_png(atomic.inside(tmp, folders[face.split], face.label, face.name, shown=out), face.pixels)
            counts[key] += 1
    return counts
