"""`predict` on files, folders and videos with a tiny model: rows, face detection, and bad inputs that never stop
the run."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline import __main__ as cli
from pipeline.config import OptionError
from pipeline.data import faces, sample
from pipeline.data.images import read_rgb
from pipeline.release import registry
from pipeline.serving import ensemble, inference, predict
from tests.unit import tiny_models
from tests.workspace import REPO


@pytest.fixture(scope="module")
def model():
    return tiny_models.model("irv2")


@pytest.fixture(scope="module")
def whole() -> predict.Settings:
    return predict.settings(tiny_models.params(), "whole", None)


@pytest.fixture(scope="module")
def detect(whole) -> predict.Settings:
    return dataclasses.replace(whole, faces="detect")


@pytest.fixture(scope="module")
def sample_faces(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces") / "raw"
    sample.generate(root, {"test": {"joy": 3, "surprise": 3, "anger": 2}}, seed=5, size=112)
    return root / "Test"


@pytest.fixture(scope="module")
def found_faces(sample_faces) -> list[Path]:
    """Sample images in which the Haar cascade finds exactly one face (most, not all, of the cartoons)."""
    detector = faces.FaceDetector()
    found = [p for p in sorted(sample_faces.rglob("*.jpg")) if len(detector.detect(read_rgb(p))) == 1]
    assert len(found) >= 2, "the cascade should find faces in the sample cartoons"
    return found


def run(model, paths, settings, **kwargs) -> list[dict]:
    return list(predict.run(model, [Path(p) for p in paths], settings, **kwargs))


def write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_folder_gives_one_row_per_image_in_whole_mode(model, whole, sample_faces):
    rows = run(model, [sample_faces], whole)
    files = sorted(str(p) for p in sample_faces.rglob("*.jpg"))
    assert sorted(r["file"] for r in rows) == files
    for row in rows:
        assert row["status"] == "ok" and row["label"] in whole.classes and row["face"] == 0
        assert (row["x"], row["y"], row["w"], row["h"]) == (0, 0, 112, 112)
        assert sum(row[f"p_{c}"] for c in whole.classes) == pytest.approx(1, abs=1e-3)
        assert row["confidence"] == max(row[f"p_{c}"] for c in whole.classes)


def test_whole_mode_sees_what_evaluate_sees(model, whole, sample_faces):
    paths = sorted(sample_faces.rglob("*.jpg"))
    rows = run(model, paths, whole)
    views = np.stack([faces.prepare(read_rgb(p), 75, None)[0] for p in paths])
    expected = inference.classify(model, views)
    got = np.array([[r[f"p_{c}"] for c in whole.classes] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_detect_mode_crops_the_face_as_training_does(model, detect, found_faces):
    rows = run(model, found_faces[:1], detect)
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    rgb = read_rgb(found_faces[0])
    view, found = faces.prepare(rgb, 75, faces.FaceDetector(), detect.face_margin)
    assert found
    expected = inference.classify(model, view[None])[0]
    assert rows[0]["p_joy"] == pytest.approx(float(expected[0]), abs=1e-4)
    assert 0 < rows[0]["w"] < 112


def test_no_face_is_said_not_guessed(model, detect, tmp_path):
    # a grey ramp, not one colour: a single-colour picture is a blank one, refused by the rule of every reader
    ramp = np.repeat(np.linspace(60, 200, 160, dtype=np.uint8)[None, :, None], 120, axis=0).repeat(3, axis=2)
    wall = write_jpeg(tmp_path / "wall.jpg", ramp)
    (row,) = run(model, [wall], detect)
    assert row["status"] == "no_face" and row["label"] is None and row["p_joy"] is None
    assert "no face" in row["message"]


def test_auto_classifies_a_tight_face_crop_whole_and_says_so(model, detect, found_faces, tmp_path):
    """A photo that is already a face crop (48 px, like FER images) has no face the cascade can find in it."""
    rgb = read_rgb(found_faces[0])
    box = faces.FaceDetector().detect(rgb)[0]
    tight = cv2.resize(rgb[box.y : box.y + box.h, box.x : box.x + box.w], (48, 48), interpolation=cv2.INTER_AREA)
    path = write_jpeg(tmp_path / "crop.jpg", tight)
    seen = read_rgb(path)
    view, found = faces.prepare(seen, 75, faces.FaceDetector(), detect.face_margin)
    assert found is False, "the cascade should find no face in a tight 48 px crop"

    (row,) = run(model, [path], dataclasses.replace(detect, faces="detect_or_whole"))
    assert row["status"] == "ok" and row["label"] in detect.classes and row["message"] == predict.WHOLE_FALLBACK
    assert (row["face"], row["x"], row["y"], row["w"], row["h"]) == (0, 0, 0, 48, 48)
    # what augment and evaluate show a model trained on face crops for a picture without a face
    expected = inference.classify(model, view[None])[0]
    assert [row[f"p_{c}"] for c in detect.classes] == pytest.approx(expected.tolist(), abs=1e-4)

    (strict,) = run(model, [path], detect)
    assert strict["status"] == "no_face" and strict["label"] is None


def test_several_faces_each_reported(model, detect, found_faces, tmp_path):
    a, b = (read_rgb(p) for p in found_faces[:2])
    group = write_jpeg(tmp_path / "group.jpg", np.concatenate([a, np.full_like(a, 255), b], axis=1))
    rows = run(model, [group], detect)
    assert [r["face"] for r in rows] == [0, 1]
    assert all(r["status"] == "ok" and r["label"] for r in rows)
    lefts = sorted(r["x"] for r in rows)
    assert lefts[0] < 112 and lefts[1] > 2 * 112


def test_huge_image_is_searched_downscaled_and_boxed_in_its_own_pixels(model, detect, found_faces, tmp_path):
    big = cv2.resize(read_rgb(found_faces[0]), (8000, 8000), interpolation=cv2.INTER_CUBIC)
    path = write_jpeg(tmp_path / "huge.jpg", big)
    del big
    rows = run(model, [path], detect)
    row = rows[0]  # the largest face (the cascade may add a false one in so large a cartoon)
    assert row["status"] == "ok" and row["frame"] is None and row["face"] == 0
    assert row["w"] > 3000  # a face of over half the image, in the 8000 px picture's coordinates
    assert 0 <= row["x"] and row["x"] + row["w"] <= 8000


def test_video_frames_every_nth(model, whole, found_faces, tmp_path):
    frame = cv2.cvtColor(read_rgb(found_faces[0]), cv2.COLOR_RGB2BGR)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (frame.shape[1], frame.shape[0]))
    assert writer.isOpened()
    for i in range(7):
        writer.write(np.roll(frame, i, axis=1))
    writer.release()
    rows = run(model, [path], dataclasses.replace(whole, video_frame_step=3))
    assert [r["frame"] for r in rows] == [0, 3, 6]
    assert all(r["file"] == str(path) and r["status"] == "ok" for r in rows)


def test_bad_inputs_get_their_own_rows_and_the_run_goes_on(model, whole, found_faces, tmp_path):
    good = found_faces[0]
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("hello, not a picture")
    (folder / "readme.txt").write_text("skip me")
    (folder / "broken.png").write_bytes(cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))[1].tobytes()[:30])
    (folder / "fake.avi").write_bytes(b"not a video at all")
    empty = tmp_path / "nothing"
    empty.mkdir()
    text = tmp_path / "plain.dat"
    text.write_text("some text")
    rows = run(model, [folder, good, empty, tmp_path / "missing.jpg", text], whole)
    by_file = {Path(r["file"]).name: r for r in rows}
    assert by_file[good.name]["status"] == "ok"
    for name in ("empty.jpg", "notes.jpg", "broken.png", "fake.avi", "nothing", "missing.jpg", "plain.dat"):
        assert by_file[name]["status"] == "error" and by_file[name]["message"], name
        assert by_file[name]["label"] is None
    assert "decodable" in by_file["empty.jpg"]["message"] or "zero-byte" in by_file["empty.jpg"]["message"]
    assert "text" in by_file["notes.jpg"]["message"]
    assert by_file["nothing"]["message"] == "no image or video files in this folder"
    assert by_file["missing.jpg"]["message"] == "not found"
    assert by_file["readme.txt"]["status"] == "skipped"


def test_annotate_and_gradcam_write_images(model, detect, found_faces, tmp_path):
    out = tmp_path / "annotated"
    rows = run(model, found_faces[:2], detect, annotate_dir=out, gradcam_min_size=7)
    assert len(rows) == 2
    for path in found_faces[:2]:
        boxed = cv2.imread(str(out / f"{path.name}.png"))
        assert boxed is not None and boxed.shape[:2] == (112, 112)
        strip = cv2.imread(str(out / f"{path.name}_face0_gradcam.png"))
        assert strip.shape == (75, 150, 3)  # the crop and one backbone map


def test_annotated_copies_of_same_stem_pictures_do_not_overwrite_each_other(model, whole, found_faces, tmp_path):
    """a.jpg and a.png in one folder: each keeps its own annotated copy, named after its whole file name."""
    face = read_rgb(found_faces[0])
    folder = tmp_path / "photos"
    write_jpeg(folder / "a.jpg", face)
    assert cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(face[:, :100], cv2.COLOR_RGB2BGR))
    clip = cv2.VideoWriter(str(folder / "a.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (112, 112))
    clip.write(cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    clip.release()
    out = tmp_path / "annotated"
    run(model, [folder], whole, annotate_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["a.avi_frame000000.png", "a.jpg.png", "a.png.png"]
    assert cv2.imread(str(out / "a.jpg.png")).shape[:2] == (112, 112)
    assert cv2.imread(str(out / "a.png.png")).shape[:2] == (112, 100)
    run(model, [folder], whole, annotate_dir=out)  # a second run writes the same names again, no new ones
    assert len(list(out.iterdir())) == 3


def test_batches_span_pictures(model, whole, sample_faces):
    paths = sorted(sample_faces.rglob("*.jpg"))
    small = run(model, paths, dataclasses.replace(whole, batch_size=3))
    large = run(model, paths, whole)
    assert [r["file"] for r in small] == [r["file"] for r in large]
    assert [r["label"] for r in small] == [r["label"] for r in large]


def test_render_csv_and_json(model, whole, found_faces, tmp_path):
    rows = run(model, [found_faces[0], tmp_path / "missing.jpg"], whole)
    table = pd.read_csv(io.StringIO(predict.render(rows, "csv", whole.classes)))
    assert list(table.columns) == predict.columns(whole.classes)
    assert table["status"].tolist() == ["ok", "error"]
    assert json.loads(predict.render(rows, "json", whole.classes)) == rows


def test_auto_follows_the_training_face_crop():
    params = tiny_models.params()
    expected = "detect_or_whole" if params.augment.face_crop else "whole"
    assert predict.settings(params, "auto", None).faces == expected
    cropped = params.model_copy(update={"augment": params.augment.model_copy(update={"face_crop": True})})
    assert predict.settings(cropped, "auto", None).faces == "detect_or_whole"
    assert predict.settings(cropped, "detect", None).faces == "detect"
    assert predict.settings(cropped, "whole", 4).video_frame_step == 4


def test_cli_refuses_gradcam_without_annotate(tmp_path):
    with pytest.raises(SystemExit):
        cli.run(tiny_models.params(), ["predict", str(tmp_path), "--model", "irv2", "--gradcam"])


def test_a_model_of_another_size_is_refused(model, whole, sample_faces):
    with pytest.raises(inference.ModelError, match="takes 75 px images, params.yaml image_size is 80"):
        run(model, [sample_faces], dataclasses.replace(whole, image_size=80))


def test_ensemble_gives_one_label_per_picture_from_the_mean(whole, sample_faces):
    members = [tiny_models.model("irv2"), tiny_models.model("irv2_unet")]
    rows = run(members, [sample_faces], whole)
    pictures = sorted(sample_faces.rglob("*.jpg"))
    assert len(rows) == len(pictures) and all(r["status"] == "ok" and r["label"] in whole.classes for r in rows)
    views = np.stack([faces.resize(read_rgb(Path(r["file"])), 75) for r in rows])
    expected = ensemble.mean([inference.classify(m, views, whole.batch_size) for m in members])
    got = np.array([[r[f"p_{c}"] for c in whole.classes] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_predict_reads_the_tta_of_evaluate():
    params = tiny_models.params()
    assert predict.settings(params, "whole", None).tta == tuple(params.evaluate.tta)
    flipped = params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"tta": ["flip"]})})
    assert predict.settings(flipped, "whole", None).tta == ("flip",)


def test_cli_model_ensemble_loads_every_member(sample_faces, tmp_path, monkeypatch):
    loaded = []

    def load_model(path: Path):  # the tiny models stand in for the trained files
        loaded.append(path)
        return tiny_models.model(path.parent.name)

    monkeypatch.setattr(inference, "load_model", load_model)
    monkeypatch.chdir(REPO)  # dvc.yaml's artifacts place each member's file
    out = tmp_path / "rows.csv"
    argv = [str(sample_faces), "--model", "ensemble", "--faces", "whole", "--out", str(out)]
    cli.run(tiny_models.params(), ["predict", *argv])
    assert loaded == [Path("models/irv2/model.keras"), Path("models/irv2_unet/model.keras")]
    table = pd.read_csv(out)
    assert len(table) == len(list(sample_faces.rglob("*.jpg"))) and table["label"].notna().all()


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("ensemble@prod", [], "the ensemble is not a registry artifact"),
        ("ensemble", ["--model-file", "m.keras"], "give --model-file with one model only"),
        ("ensemble", ["--annotate", "out", "--gradcam"], "--gradcam explains one model's evidence"),
    ],
)
def test_cli_ensemble_refusals(model, extra, message, tmp_path):
    with pytest.raises((OptionError, registry.RegistryError), match=re.escape(message)):
        cli.run(tiny_models.params(), ["predict", str(tmp_path), "--model", model, *extra])


def test_locate_names_the_members_files_or_one_model(tmp_path):
    params = tiny_models.params()
    assert ensemble.locate("ensemble", None, params, REPO) == (
        "ensemble",
        [REPO / "models/irv2/model.keras", REPO / "models/irv2_unet/model.keras"],
    )
    assert ensemble.locate("irv2", Path("x.keras"), params, REPO) == ("irv2", [Path("x.keras")])
    off = params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"ensemble": []})})
    with pytest.raises(registry.RegistryError, match="evaluate.ensemble is empty"):
        ensemble.locate("ensemble", None, off, REPO)
