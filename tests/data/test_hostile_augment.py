"""The augment stage on params that cannot split this data: one line that names the key and the files, no traceback,
checked before any image is written."""

from __future__ import annotations

import pytest
import yaml

from pipeline.__main__ import main as cli
from pipeline.data import duplicates
from pipeline.data import manifest as manifest_lib
from tests import workspace


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
    frame = manifest_lib.build(
        tiny_raw, params.classes, params.class_aliases, params.split_folders, duplicates.rule(params.validate)
    )
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "balanced"
    code = cli(
        ["--params", str(params_file), "augment", "--manifest", str(tmp_path / "manifest.csv"), "--raw", str(tiny_raw),
         "--out", str(out), "--metrics", str(tmp_path / "a.json"), "--plot", str(tmp_path / "p.csv")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert expected in err and "set it to null" in err
    assert not out.exists()
