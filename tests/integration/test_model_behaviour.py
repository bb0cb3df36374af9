"""Behaviour of the trained models (test profile, trained by the pipeline on tiny data), beside their metrics: a face
keeps its label when mirrored, slightly brighter or slightly shifted, and the label does not depend on the file format
the same picture arrives in. Each picture goes through the stages' own path: decode (images.decode_rgb), prepare
(faces.prepare, as augment and evaluate do), classify (inference.classify).

One-epoch models on a handful of images are weak classifiers, so the invariances are asked of most faces, not all
(a label on the edge between two classes may flip under any change); the format check is exact for lossless PNG.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline import config
from pipeline.data import faces
from pipeline.data.images import decode_rgb
from pipeline.serving import inference

pytestmark = pytest.mark.integration

MODELS = ("irv2", "irv2_unet")
KEEP = 0.8  # the share of faces that must keep their label under a small change


@pytest.fixture(scope="module")
def pictures(reproduced_workspace) -> list[np.ndarray]:
    """The Test pictures of the trained workspace, decoded as every stage decodes them (8-bit RGB)."""
    paths = sorted((reproduced_workspace / "data/raw/Test").rglob("*.jpg"))
    assert len(paths) >= 6
    return [decode_rgb(p.read_bytes(), str(p)) for p in paths]


@pytest.fixture(scope="module", params=MODELS)
def model(request, reproduced_workspace):
    params = config.load(reproduced_workspace / "params.yaml")
    loaded = inference.load_model(reproduced_workspace / f"models/{request.param}/model.keras")
    return loaded, params


def labels(model, pictures: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    loaded, params = model
    detector = faces.FaceDetector() if params.augment.face_crop else None
    size, margin = params.image_size, params.augment.face_margin
    prepared = np.stack([faces.prepare(p, size, detector, margin)[0] for p in pictures])
    probabilities = inference.classify(loaded, prepared)
    return probabilities.argmax(axis=1), probabilities


def reencode(picture: np.ndarray, ext: str, flags: list[int] | None = None) -> np.ndarray:
    ok, data = cv2.imencode(ext, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), flags or [])
    assert ok
    return decode_rgb(data.tobytes(), f"picture{ext}")


def brighter(picture: np.ndarray, factor: float = 1.1) -> np.ndarray:
    return np.clip(picture.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def shifted(picture: np.ndarray, pixels: int = 2) -> np.ndarray:
    """Moved right and down by ``pixels``, the uncovered edge filled by reflection (as the augmentation fills)."""
    h, w = picture.shape[:2]
    warp = np.float32([[1, 0, pixels], [0, 1, pixels]])
    return cv2.warpAffine(picture, warp, (w, h), borderMode=cv2.BORDER_REFLECT_101)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p[:, ::-1].copy(), id="mirrored"),
        pytest.param(brighter, id="brighter-10pc"),
        pytest.param(shifted, id="shifted-2px"),
    ],
)
def test_a_slightly_changed_face_keeps_its_label(model, pictures, change):
    before, _ = labels(model, pictures)
    after, _ = labels(model, [change(p) for p in pictures])
    kept = float((before == after).mean())
    assert kept >= KEEP, f"only {kept:.0%} of the faces kept their label"


def test_the_label_does_not_depend_on_the_file_format(model, pictures):
    before, probabilities = labels(model, pictures)
    as_png, png_probabilities = labels(model, [reencode(p, ".png") for p in pictures])
    np.testing.assert_array_equal(as_png, before)  # lossless: the very same pixels
    np.testing.assert_allclose(png_probabilities, probabilities, atol=1e-6)
    as_jpeg, jpeg_probabilities = labels(model, [reencode(p, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]) for p in pictures])
    assert float((as_jpeg == before).mean()) >= KEEP
    assert np.abs(jpeg_probabilities - probabilities).max() < 0.1
