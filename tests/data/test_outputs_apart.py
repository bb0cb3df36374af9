"""An output given on top of an input is refused before any work, and the input is left as it was: augment's --out
as the raw folder would replace it whole, validate's files inside it would become raw data, export over its model
file or a folder of pictures would destroy them, convert-faces' --out would replace its source, predict's copies
inside its input folder would be read as pictures next time. And a file name's control characters reach no
terminal: a newline in a name cannot forge a line of validate's findings, an escape sequence cannot clear the
screen. (Found by an audit that ran each of these against a copy of the sample data.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import atomic
from pipeline.__main__ import main as cli
from pipeline.data import links
from pipeline.training import state
from tests import workspace
from tests.data.test_hostile_augment import run_augment, write_manifest


@pytest.fixture
def params_file(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(workspace.profile_params()))
    return path


def refused(capsys, code: int, *expected: str) -> str:
    """The CLI's one-line refusal (exit 1, no traceback), holding each of ``expected``."""
    err = capsys.readouterr().err.removeprefix("device: no GPU found: running on CPU\n")  # commands that load TF
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    return err


@pytest.mark.parametrize(
    ("where", "how"),
    [(".", "is --raw"), ("Train", "is inside --raw"), ("..", "holds --raw")],
    ids=["is", "in", "holds"],
)
def test_augment_refuses_an_out_on_the_raw_folder_and_leaves_it_whole(
    tiny_raw, tmp_path, params_file, capsys, where, how
):
    write_manifest(tiny_raw, workspace.tiny_params(), tmp_path / "manifest.csv")
    before = workspace.tree_digest(tiny_raw)
    out = (tiny_raw / where).absolute() if where != ".." else tiny_raw.parent
    code = run_augment(params_file, tmp_path / "manifest.csv", tiny_raw, out)
    refused(capsys, code, f"--out {out}: {how} {tiny_raw}", "give an output apart from it")
    assert workspace.tree_digest(tiny_raw) == before


def test_augment_refuses_a_manifest_label_that_is_no_class(tiny_raw, tmp_path, params_file, capsys):
    frame = write_manifest(tiny_raw, workspace.tiny_params(), tmp_path / "manifest.csv")
    frame.loc[frame.index[0], "label"] = "../../../../tmp/x"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "balanced"
    code = run_augment(params_file, tmp_path / "manifest.csv", tiny_raw, out)
    refused(capsys, code, f"{frame['path'].iloc[0]} has the label '../../../../tmp/x', not one of classes", "validate")
    assert not out.exists()


def test_augment_names_a_manifest_path_out_of_raw_as_such_not_as_a_link(tiny_raw, tmp_path, params_file, capsys):
    frame = write_manifest(tiny_raw, workspace.tiny_params(), tmp_path / "manifest.csv")
    first = frame.index[frame["split"] == "train"][0]
    (tmp_path / "x.jpg").write_bytes((tiny_raw / frame.loc[first, "path"]).read_bytes())  # a picture, out of raw
    frame.loc[first, "path"] = "../x.jpg"
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    code = run_augment(params_file, tmp_path / "manifest.csv", tiny_raw, tmp_path / "balanced")
    err = refused(capsys, code, f"{tiny_raw / '../x.jpg'}: a path that leads outside {tiny_raw}: never opened")
    assert "symbolic link" not in err


@pytest.mark.parametrize("option", ["--manifest", "--metrics", "--report"])
def test_validate_writes_nothing_into_the_raw_folder(tiny_raw, tmp_path, params_file, capsys, option):
    files = {"--manifest": tmp_path / "m.csv", "--metrics": tmp_path / "v.json", "--report": tmp_path / "r.html"}
    files[option] = tiny_raw / "Train" / "joy" / "x.csv"
    before = workspace.tree_digest(tiny_raw)
    args = [a for o, f in files.items() for a in (o, str(f))]
    code = cli(["--params", str(params_file), "validate", "--raw", str(tiny_raw), *args])
    refused(capsys, code, f"{option} {files[option]}: is inside --raw {tiny_raw}")
    assert workspace.tree_digest(tiny_raw) == before


@pytest.mark.parametrize("where", [".", "conv", ".."], ids=["is", "in", "holds"])
def test_convert_faces_refuses_an_out_on_its_source(tmp_path, params_file, capsys, where):
    source = tmp_path / "jaffe"
    source.mkdir()
    (source / "KA.HA1.29.tiff").write_bytes(b"a picture")
    out = source / where if where != ".." else tmp_path
    code = cli(["--params", str(params_file), "convert-faces", "jaffe", str(source), "--out", str(out)])
    refused(capsys, code, f"--out {out}: ", f"the source {source}")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["params.yaml", "KA.HA1.29.tiff"]


def model_file(tmp_path: Path) -> Path:
    """A stand-in model file: export refuses before it loads one."""
    path = tmp_path / "m.keras"
    path.write_bytes(b"the trained model")
    return path


@pytest.mark.parametrize(
    ("form", "out", "expected"),
    [
        ("tflite", "m.keras", "--out {tmp}/m.keras: is the model file {tmp}/m.keras"),
        ("savedmodel", "pictures", "--out {tmp}/pictures: exists and is not a SavedModel"),
        ("tflite", "pictures", "--out {tmp}/pictures: is a folder"),
    ],
    ids=["tflite-over-its-model", "savedmodel-over-a-folder", "tflite-over-a-folder"],
)
def test_export_refuses_to_write_over_its_model_file_or_a_folder_of_pictures(
    tmp_path, params_file, capsys, form, out, expected
):
    model = model_file(tmp_path)
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "a.jpg").write_bytes(b"a picture")
    before = workspace.tree_digest(tmp_path)
    code = cli(["--params", str(params_file), "export", "--model", "irv2", "--model-file", str(model),
                "--format", form, "--out", str(tmp_path / out)])  # fmt: skip
    refused(capsys, code, expected.format(tmp=tmp_path))
    assert workspace.tree_digest(tmp_path) == before


def test_predict_refuses_annotated_copies_inside_its_input_folder_or_through_a_link(tmp_path, params_file, capsys):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "sub" / "a.jpg").write_bytes(b"a picture")
    model = model_file(tmp_path)
    predict = ["--params", str(params_file), "predict", str(photos), "--model", "irv2", "--model-file", str(model)]
    code = cli([*predict, "--annotate", str(photos / "notes")])
    refused(capsys, code, f"--annotate {photos / 'notes'}: is inside the input folder {photos}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "sub").symlink_to(elsewhere)
    code = cli([*predict, "--annotate", str(tmp_path / "notes")])
    refused(capsys, code, f"{tmp_path / 'notes' / 'sub'} leads outside it through a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_a_file_name_cannot_forge_or_hide_a_line_of_validates_findings(tiny_raw, tmp_path, params_file, capsys):
    forged = "b.jpg: ok\n    Train-joy-img_0001.jpg"
    (tiny_raw / "Train" / "joy" / forged).write_bytes(b"x")
    (tiny_raw / "Train" / "joy" / "evil\x1b[2J\x1b[32mOK.jpg").write_bytes(b"x")
    code = cli(["--params", str(params_file), "validate", "--raw", str(tiny_raw), "--manifest", str(tmp_path / "m"),
                "--metrics", str(tmp_path / "v.json"), "--report", str(tmp_path / "r.html")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "\x1b" not in err, err
    assert "Train/joy/b.jpg: ok\\n    Train-joy-img_0001.jpg: " in err
    assert "Train/joy/evil\\x1b[2J\\x1b[32mOK.jpg: " in err
    assert not any(line.startswith("    Train-joy-img_0001.jpg") for line in err.splitlines()), err


def test_printable_escapes_control_characters_and_keeps_the_rest():
    assert links.printable("a\nb\x1b[0m\tç") == "a\\nb\\x1b[0m\\tç"
    assert links.printable("one\ntwo\x07", keep="\n") == "one\ntwo\\x07"


def test_printable_keeps_the_spaces_and_joiners_of_real_names():
    for name in [
        "Screenshot 10.12.33\u202fAM.png",
        "a\xa0b.jpg",
        "写真\u30001.jpg",
        "می\u200cخواهم.jpg",
        "👨\u200d👩.png",
    ]:
        assert links.printable(name) == name
    assert links.printable("x\u202egnp.exe\u2028") == "x\\u202egnp.exe\\u2028"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["convert-faces", "jaffe", "{src}", "--out", "{tmp}/data"], "--out {tmp}/data: holds raw, which convert"),
        (["augment", "--manifest", "{tmp}/m.csv", "--raw", "{src}", "--out", "{tmp}/data", "--metrics", "{tmp}/a.json",
          "--plot", "{tmp}/p.csv"], "--out {tmp}/data: holds raw, which augment did not write"),
    ],
    ids=["convert-faces", "augment"],
)  # fmt: skip
def test_a_folder_output_with_someone_elses_files_is_not_replaced(tmp_path, params_file, capsys, command, expected):
    source = tmp_path / "source"
    source.mkdir()
    (tmp_path / "m.csv").write_text("path,split,label\n")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "a.jpg").write_bytes(b"a picture")
    before = workspace.tree_digest(tmp_path / "data")
    code = cli(["--params", str(params_file), *(a.format(tmp=tmp_path, src=source) for a in command)])
    refused(capsys, code, expected.format(tmp=tmp_path), "give a new or empty folder, or one it wrote")
    assert workspace.tree_digest(tmp_path / "data") == before


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("other.keras", "--out {tmp}/other.keras: exists and is not a tflite export (a .tflite file)"),
        ("hparams", "--out {tmp}/hparams: {tmp}/hparams.json, which export writes beside it, exists without an export"),
    ],
    ids=["another-model", "a-file-where-its-metadata-goes"],
)
def test_export_writes_no_file_that_is_not_an_earlier_export(tmp_path, params_file, capsys, out, expected):
    model = model_file(tmp_path)
    (tmp_path / "other.keras").write_bytes(b"the other trained model")
    (tmp_path / "hparams.json").write_text("{}")
    before = workspace.tree_digest(tmp_path)
    code = cli(["--params", str(params_file), "export", "--model", "irv2", "--model-file", str(model),
                "--format", "tflite", "--out", str(tmp_path / out)])  # fmt: skip
    refused(capsys, code, expected.format(tmp=tmp_path))
    assert workspace.tree_digest(tmp_path) == before


def test_train_and_tune_keep_their_state_folders_off_the_data(tmp_path, params_file, capsys):
    data = tmp_path / "balanced"
    (data / "train").mkdir(parents=True)
    (data / "index.csv").write_text("path,split,label\n")
    before = workspace.tree_digest(tmp_path)
    outs = ["--hparams", str(tmp_path / "h.json"), "--metrics", str(tmp_path / "t.json")]
    code = cli(["--params", str(params_file), "tune", "--model", "irv2", "--data", str(data), "--dir", str(tmp_path),
                *outs, "--plot", str(tmp_path / "p.csv")])  # fmt: skip
    refused(capsys, code, f"--dir {tmp_path}: holds --data {data}")
    outs = ["--out", str(tmp_path / "m.keras"), "--metrics", str(tmp_path / "t.json"), "--live", str(tmp_path / "l")]
    code = cli(["--params", str(params_file), "train", "--model", "irv2", "--data", str(data), "--state", str(data),
                *outs])  # fmt: skip
    refused(capsys, code, f"--state {data}: is --data {data}")
    assert workspace.tree_digest(tmp_path) == before


def test_a_state_root_given_by_mistake_loses_nothing_but_stale_state(tmp_path):
    root = tmp_path / "models"
    (root / "irv2").mkdir(parents=True)
    (root / "irv2" / "model.keras").write_bytes(b"a trained model")
    (root / "0123456789abcdef").mkdir()  # another key's state: stale
    folder = state.keyed_folder(root, "fedcba9876543210")
    assert sorted(p.name for p in root.iterdir()) == ["fedcba9876543210", "irv2"] and folder.is_dir()
    assert (root / "irv2" / "model.keras").read_bytes() == b"a trained model"


def test_evaluate_writes_nothing_into_the_raw_folder(tiny_raw, tmp_path, params_file, capsys):
    before = workspace.tree_digest(tiny_raw)
    code = cli(["--params", str(params_file), "evaluate", "--models", f"irv2={model_file(tmp_path)}",
                f"irv2_unet={tmp_path / 'u.keras'}", "--manifest", str(tmp_path / "m.csv"), "--raw", str(tiny_raw),
                "--metrics", str(tmp_path / "e.json"), "--report", str(tmp_path / "r.md"),
                "--figures", str(tiny_raw / "Test"), "--headline", str(tmp_path / "h.json"),
                "--plots", str(tmp_path / "plots")])  # fmt: skip
    refused(capsys, code, f"--figures {tiny_raw / 'Test'}: is inside --raw {tiny_raw}")
    assert workspace.tree_digest(tiny_raw) == before


def test_overlap_survives_a_link_loop(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert atomic.overlap(tmp_path / "loop" / "x", tmp_path / "raw") is None
