"""Classifying the faces in image files, folders and videos: the loop behind `python -m pipeline predict`.

Each face becomes a row: file, frame (videos), face index and box, label, confidence and every class's probability.
``settings`` says what the model is shown, following its training: a model trained on face crops
(augment.face_crop: true) gets every face the Haar cascade finds, cropped as in training, and a picture in which it
finds none is classified whole, as the augment and evaluate stages treat such a picture (``WHOLE_FALLBACK``); a model
trained on whole pictures gets the whole picture, resized, exactly as the evaluate stage shows it the Test split.
A file that cannot be read, or that is refused unopened (a symbolic link leading out of its folder, a picture that
breaks the rule of pipeline/data/shape.py), gets a row with status ``error`` and the reason; the run goes on with the
other files. Several Keras models are an ensemble (the mean of their probabilities, with evaluate.tta's views); a
TFLite export (pipeline/serving/lite.py) is classified with LiteRT, without TensorFlow or Keras.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipeline.config import Params
from pipeline.data import faces, media, shape
from pipeline.data.images import ImageReadError, write_png
from pipeline.evaluation import draw
from pipeline.serving import ensemble, lite

if TYPE_CHECKING:  # Keras (with TensorFlow) is imported only when a Keras model is loaded: seconds of start-up
    import keras

WHOLE_FALLBACK = "no face found: whole image used"
BASE_COLUMNS = ["file", "frame", "face", "x", "y", "w", "h", "status", "label", "confidence", "message"]


@dataclass(frozen=True)
class Settings:
    classes: list[str]
    image_size: int
    faces: str  # "detect", "whole", or "detect_or_whole" (the whole picture where no face is found)
    face_margin: float
    image_extensions: tuple[str, ...]
    video_frame_step: int
    max_detect_side: int
    batch_size: int
    tta: tuple[str, ...]  # evaluate.tta: predict sees each face as evaluate sees each Test image
    picture: shape.Rule  # validate's size, aspect and blank-picture rule, which every reader applies


@dataclass(frozen=True)
class Picture:
    """One still image or video frame, the faces to classify in it, and what became of it."""

    file: str
    frame: int | None
    rgb: np.ndarray | None = None
    annotate_as: Path | None = None  # relative path of its annotated copy
    width: int = 0  # of the picture as read (boxes are in its pixels; rgb may become a smaller display copy)
    boxes: tuple[faces.Box, ...] = ()
    crops: tuple[np.ndarray, ...] = ()
    status: str = "ok"
    message: str = ""


def columns(classes: list[str]) -> list[str]:
    return BASE_COLUMNS + [f"p_{c}" for c in classes]


def annotated_name(name: Path, frame: int | None) -> Path:
    """The annotated copy of ``name``: the whole source name kept, so that a.jpg and a.png beside it stay apart."""
    return name.with_name(f"{name.name}.png" if frame is None else f"{name.name}_frame{frame:06d}.png")


def pictures(paths: list[Path], s: Settings) -> Iterator[Picture]:
    """Every picture under ``paths`` (files, folders recursively, every Nth frame of videos); problems as pictures
    with status error or skipped, so that each input is accounted for in the output."""
    for found in media.find(paths, s.image_extensions):
        if found.kind in ("skipped", "error"):
            yield Picture(str(found.path), None, status=found.kind, message=found.message)
            continue
        try:
            for frame, rgb in media.read(found, s.video_frame_step, s.picture):
                yield Picture(str(found.path), frame, rgb, annotated_name(found.name, frame))
        except ImageReadError as exc:
            yield Picture(str(found.path), None, status="error", message=str(exc).removeprefix(f"{found.path}: "))


def detect(detector: faces.FaceDetector, rgb: np.ndarray, max_side: int) -> list[faces.Box]:
    """Faces in ``rgb``, largest first, in its own coordinates; a large image is searched in a downscaled copy
    (the cascade's cost grows with the pixel count, and a face filling a tenth of it is still large there)."""
    scale = max_side / max(rgb.shape[:2])
    if scale >= 1:
        return detector.detect(rgb)
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return [faces.Box(*(round(v / scale) for v in b.as_list())) for b in detector.detect(small)]


def find_faces(picture: Picture, s: Settings, detector: faces.FaceDetector | None) -> Picture:
    """``picture`` with the model's view of it: one crop per face, or the whole picture, at the model's size."""
    rgb = picture.rgb
    if detector is None:
        box = faces.Box(0, 0, rgb.shape[1], rgb.shape[0])
        return replace(picture, width=rgb.shape[1], boxes=(box,), crops=(faces.resize(rgb, s.image_size),))
    boxes = tuple(detect(detector, rgb, s.max_detect_side))
    # the same crop and resize as faces.prepare gives training and evaluation for the largest face
    crops = tuple(faces.resize(faces.crop(rgb, b, s.face_margin), s.image_size) for b in boxes)
    found = replace(picture, width=rgb.shape[1], boxes=boxes, crops=crops)
    if boxes:
        return found
    if s.faces == "detect_or_whole":
        return replace(find_faces(picture, s, None), message=WHOLE_FALLBACK)
    return replace(found, status="no_face", message="no face found; not classified")


def rows_of(picture: Picture, probabilities: np.ndarray, classes: list[str]) -> list[dict]:
    base = dict.fromkeys(columns(classes))
    base.update(file=picture.file, frame=picture.frame, status=picture.status, message=picture.message or None)
    if not picture.boxes:
        return [base]
    rows = []
    for i, (box, p) in enumerate(zip(picture.boxes, probabilities, strict=True)):
        row = dict(base, face=i, x=box.x, y=box.y, w=box.w, h=box.h)
        row.update(label=classes[int(p.argmax())], confidence=round(float(p.max()), 4))
        row.update({f"p_{c}": round(float(v), 4) for c, v in zip(classes, p, strict=True)})
        rows.append(row)
    return rows


def _display_copy(rgb: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(rgb.shape[:2])
    return rgb if scale >= 1 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def save_annotations(folder: Path, picture: Picture, rows: list[dict], heatmaps: list[dict]) -> None:
    """The picture with boxes and labels; with Grad-CAM, per face a strip: the crop, then each map laid over it."""
    target = folder / picture.annotate_as
    labelled = [
        (*(r[k] for k in "xywh"), f"{r['label']} {r['confidence']:.2f}") for r in rows if r["label"] is not None
    ]
    write_png(target, draw.labelled_boxes(picture.rgb, labelled, picture.rgb.shape[1] / picture.width))
    for i, maps in enumerate(heatmaps):
        strip = draw.heat_strip(picture.crops[i], maps.values())
        write_png(target.with_name(f"{target.stem}_face{i}_gradcam.png"), strip)


def classifier(model: keras.Model | Sequence[keras.Model] | lite.LiteModel, s: Settings, gradcam_min_size: int | None):
    """What classifies a batch of faces (uint8 RGB at the model's size), and the Grad-CAM that explains it or None."""
    if isinstance(model, lite.LiteModel):  # the export holds evaluate.tta and the ensemble's mean already
        if gradcam_min_size is not None:
            raise ValueError(f"{model.path}: Grad-CAM needs the Keras model's layers, which a TFLite export has not")
        return model.classify, None
    from pipeline.evaluation import explain
    from pipeline.serving import inference

    models = list(model) if isinstance(model, Sequence) else [model]
    for m in models:
        inference.check(m, s.image_size, s.classes)
    if gradcam_min_size is not None and len(models) != 1:
        raise ValueError(f"Grad-CAM explains one model's evidence, not the mean of {len(models)}")
    cam = explain.GradCam(models[0], gradcam_min_size) if gradcam_min_size is not None else None
    return (lambda batch: ensemble.classify(models, batch, s.batch_size, s.tta)), cam


def run(
    model: keras.Model | Sequence[keras.Model] | lite.LiteModel,
    paths: list[Path],
    s: Settings,
    annotate_dir: Path | None = None,
    gradcam_min_size: int | None = None,
) -> Iterator[dict]:
    """Rows for every face in ``paths``, in input order; classifies in batches across pictures and frames. Several
    models are an ensemble: each face gets the mean of their probabilities (Grad-CAM explains one model only)."""
    classify, cam = classifier(model, s, gradcam_min_size)
    detector = None if s.faces == "whole" else faces.FaceDetector()
    pending: list[Picture] = []

    def flush() -> Iterator[dict]:
        crops = [c for p in pending for c in p.crops]
        batch = np.stack(crops) if crops else np.zeros((0, s.image_size, s.image_size, 3), np.uint8)
        probabilities = classify(batch)
        heat = cam(batch).heatmaps if cam is not None and crops else {}
        start = 0
        for picture in pending:
            n = len(picture.crops)
            rows = rows_of(picture, probabilities[start : start + n], s.classes)
            if annotate_dir is not None and picture.rgb is not None:
                per_face = [{t: m[start + i] for t, m in heat.items()} for i in range(n)] if heat else []
                save_annotations(annotate_dir, picture, rows, per_face)
            start += n
            yield from rows
        pending.clear()

    queued = 0
    for picture in pictures(paths, s):
        if picture.rgb is not None:
            picture = find_faces(picture, s, detector)
            # keep at most a display copy while the picture waits for its batch: a few 8000 px frames are gigabytes
            display = _display_copy(picture.rgb, s.max_detect_side) if annotate_dir is not None else None
            picture = replace(picture, rgb=display)
        pending.append(picture)
        queued += len(picture.crops)
        if queued >= s.batch_size:
            yield from flush()
            queued = 0
    yield from flush()


def outcome(rows: list[dict]) -> tuple[int, int]:
    """(inputs classified, inputs failed): a file with a row of status error failed; one whose rows are ok or
    no_face (no face found is an answer) was classified. Files skipped in a folder are neither."""
    failed = {r["file"] for r in rows if r["status"] == "error"}
    classified = {r["file"] for r in rows if r["status"] in ("ok", "no_face")} - failed
    return len(classified), len(failed)


def render(rows: list[dict], fmt: str, classes: list[str]) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(classes), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def settings(params: Params, faces_mode: str, every: int | None) -> Settings:
    if faces_mode == "auto":  # show the model what it was trained on, as augment and evaluate prepare it
        faces_mode = "detect_or_whole" if params.augment.face_crop else "whole"
    return Settings(
        classes=params.classes,
        image_size=params.image_size,
        faces=faces_mode,
        face_margin=params.augment.face_margin,
        image_extensions=tuple(e.lower() for e in params.validate.allowed_extensions),
        video_frame_step=every or params.predict.video_frame_step,
        max_detect_side=params.predict.max_detect_side,
        batch_size=params.predict.batch_size,
        tta=tuple(params.evaluate.tta),
        picture=shape.rule(params.validate),
    )
