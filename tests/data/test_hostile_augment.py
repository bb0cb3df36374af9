"""The augment stage on params that cannot split this data, or that name a class like a path: one line that names
the key and the files, no traceback, checked before any image is written; and no params value makes augment write
outside its --out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import atomic
from pipeline.__main__ import main as cli
from pipeline.config import merge as config_merge
from pipeline.data import duplicates
from pipeline.data import manifest as manifest_lib
from pipeline.stages import augment
from tests import workspace


def write_manifest(raw: Path, params, path: Path):
    """validate's manifest of ``raw``, written to ``path`` (augment's input)."""
    frame = manifest_lib.build(raw, params.classes, params.class_aliases, params.split_folders,
                               duplicates.rule(params.validate))  # fmt: skip
    frame.to_csv(path, index=False)
    return frame


def run_augment(params_file: Path, manifest: Path, raw: Path, out: Path) -> int:
    """`python -m pipeline augment` through the CLI, its metrics and plot beside the manifest."""
    return cli(["--params", str(params_file), "augment", "--manifest", str(manifest), "--raw", str(raw),
                "--out", str(out), "--metrics", str(manifest.parent / "a.json"),
                "--plot", str(manifest.parent / "p.csv")])  # fmt: skip


@pytest.mark.parametrize(
    ("group_regex", "expected"),
    [
        (r"^child(?P<group>\d+)_", "augment.group_regex '^child(?P<group>\\\\d+)_' matches no Train file name ("),
        (r"^img_(?P<group>000\d)", "Train file names ("),
    ],
    ids=["matches-no-file", "matches-some-files"],
)
def test_a_group_regex_that_misses_file_names_is_one_clear_line(tiny_raw, tmp_path, capsys, group_regex, expected):
    raw = workspace.profile_params({"augment": {"group_regex": group_regex, "val_fraction": 0.34}})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    params = workspace.tiny_params()
    write_manifest(tiny_raw, params, tmp_path / "manifest.csv")
    out = tmp_path / "balanced"
    code = run_augment(params_file, tmp_path / "manifest.csv", tiny_raw, out)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert expected in err and "set it to null" in err
    assert not out.exists()


ESCAPING_NAMES = ["../../raw/Train/joy", "../natural", "a/b", ".hidden", "x\x00y"]


@pytest.mark.parametrize("key", ["classes", "class_aliases"])
@pytest.mark.parametrize("name", ESCAPING_NAMES, ids=["raw-joy", "dotdot", "a-b", "hidden", "nul"])
def test_a_class_name_that_is_a_path_is_refused_before_any_work(tiny_raw, tmp_path, capsys, key, name):
    """Issue 23: a class or alias named like a path would make augment write outside --out (into data/raw, even)."""
    overrides = {"classes": [*workspace.tiny_params().classes, name]}
    if key == "class_aliases":
        overrides = {"class_aliases": {name: "joy"}}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(config_merge(workspace.profile_params(), overrides)))
    before = workspace.tree_digest(tmp_path)
    code = cli(
        ["--params", str(params_file), "augment", "--manifest", str(tmp_path / "manifest.csv"), "--raw", str(tiny_raw),
         "--out", str(tmp_path / "balanced"), "--metrics", str(tmp_path / "a.json"), "--plot", str(tmp_path / "p.csv")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert f"{key}" in err and f"{name!r} is not a plain folder name" in err and "give a folder's own name" in err
    assert workspace.tree_digest(tmp_path) == before


def test_no_class_name_makes_augment_write_outside_its_out(tiny_raw, tmp_path):
    """Defence in depth: params that slipped past the schema (built without validation) still cannot lead a write
    out of --out; augment stops with one line naming the folder, and nothing is left anywhere."""
    params = workspace.tiny_params()
    frame = manifest_lib.build(
        tiny_raw, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )
    escaping = "../../escaped"
    frame["label"] = frame["label"].replace("joy", escaping)
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    unchecked = params.model_copy(update={"classes": [escaping if c == "joy" else c for c in params.classes]})
    before = workspace.tree_digest(tmp_path)
    out = tmp_path / "work" / "balanced"
    with pytest.raises(atomic.OutputError, match=r"leads outside the output folder .*balanced: refused"):
        augment.run(unchecked, tmp_path / "manifest.csv", tiny_raw, out, tmp_path / "a.json", tmp_path / "p.csv")
    assert workspace.tree_digest(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []


def test_a_raw_file_turned_into_a_link_out_of_raw_after_validate_is_never_read(tiny_raw, tmp_path, capsys):
    """validate refuses such a link; augment checks again, for a raw folder changed between the two stages."""
    params = workspace.tiny_params()
    frame = write_manifest(tiny_raw, params, tmp_path / "manifest.csv")
    victim = tiny_raw / frame.loc[frame["split"] == "train", "path"].iloc[0]
    (tmp_path / "secret").write_text("TOP SECRET\n")
    victim.unlink()
    victim.symlink_to(tmp_path / "secret")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(workspace.profile_params()))
    out = tmp_path / "balanced"
    code = run_augment(params_file, tmp_path / "manifest.csv", tiny_raw, out)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    link = f"a symbolic link to {tmp_path / 'secret'}, outside {tiny_raw}"
    assert err == f"error: {victim}: {link}: never opened; put the image itself in the folder\n"
    assert not out.exists() and not list(tmp_path.glob(".balanced*"))
