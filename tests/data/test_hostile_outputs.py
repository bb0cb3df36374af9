"""Outputs the disk will not take: a read-only file system, a folder without write permission, a full disk. Each is
one line naming the output (and for a full disk, how much it needs at least), exit status 1, no traceback, and no
temporary file or folder left behind; an output written before stays whole.

Simulated: the tests run as root, which ignores a folder's mode, and mounting a read-only or full file system needs
privileges a test should not take. So the file system's refusal is raised where it would come from (creating the
temporary file or folder, or writing an image into it) with the errno the kernel gives (EROFS, EACCES, ENOSPC).
"""

from __future__ import annotations

import errno
import os
import types
from pathlib import Path

import pytest
import yaml

from pipeline import atomic
from pipeline.__main__ import main as cli
from tests import workspace


def refuse(code: int):
    def fail(*args, dir: str, **kwargs):  # noqa: A002 (tempfile's name)
        raise OSError(code, os.strerror(code), dir)

    return fail


def no_temporaries(monkeypatch, code: int) -> None:
    """The file system refuses to create anything: atomic's temporary file and folder alike."""
    monkeypatch.setattr(atomic, "tempfile", types.SimpleNamespace(mkstemp=refuse(code), mkdtemp=refuse(code)))


def full_after(monkeypatch, files: int) -> None:
    """The disk fills after ``files`` whole files of the output folder (an image of 2,000 bytes fails then)."""
    written = []
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if ".balanced." in str(self):  # augment's temporary output folder
            if len(written) >= files:
                real(self, data[: len(data) // 2])  # half of it made it to the disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written.append(self)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


@pytest.fixture
def stage_args(tiny_raw, tmp_path) -> dict[str, list[str]]:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(workspace.profile_params()))
    out = tmp_path / "out"
    validate = ["validate", "--raw", str(tiny_raw), "--manifest", str(out / "manifest.csv"), "--metrics",
                str(out / "validate.json"), "--report", str(out / "validation.html")]  # fmt: skip
    assert cli(["--params", str(params), *validate]) == 0
    augment = ["augment", "--manifest", str(out / "manifest.csv"), "--raw", str(tiny_raw), "--out",
               str(out / "balanced"), "--metrics", str(out / "augment.json"), "--plot",
               str(out / "balance.csv")]  # fmt: skip
    return {"params": ["--params", str(params)], "validate": validate, "augment": augment}


# (case, stage, how the disk refuses, the one line after "error: cannot write <out>/")
OUTPUTS = [
    ("validate read-only", "validate", lambda m: no_temporaries(m, errno.EROFS),
     "validate.json: {out} is on a read-only file system; give an output folder you can write to"),
    ("augment read-only", "augment", lambda m: no_temporaries(m, errno.EROFS),
     "balanced: {out} is on a read-only file system; give an output folder you can write to"),
    ("augment no permission", "augment", lambda m: no_temporaries(m, errno.EACCES),
     "balanced: {out} is not writable (permission denied); give an output folder you can write to"),
    ("augment full disk", "augment", lambda m: full_after(m, 3),
     "balanced: the disk holding {out} is full ("),
]  # fmt: skip


@pytest.mark.parametrize(("stage", "fault", "expected"), [c[1:] for c in OUTPUTS], ids=[c[0] for c in OUTPUTS])
def test_an_output_the_disk_refuses_is_one_line_and_leaves_nothing(
    stage_args, tmp_path, monkeypatch, capsys, stage, fault, expected
):
    out = tmp_path / "out"
    capsys.readouterr()
    before = workspace.tree_digest(out)
    fault(monkeypatch)
    assert cli([*stage_args["params"], *stage_args[stage]]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot write {out}/" + expected.format(out=out)), err
    if "full" in expected:
        assert "free; it needs at least" in err and "free some space or give an output folder on another disk" in err
    assert workspace.tree_digest(out) == before, "an output changed or a temporary file was left behind"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "a temporary file or folder was left behind"


def test_a_full_disk_says_how_much_the_output_needs_at_least(tmp_path):
    with pytest.raises(atomic.OutputError) as caught:
        with atomic.target(tmp_path / "model.keras", needed=5_000_000):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    message = str(caught.value)
    assert message.startswith(f"cannot write {tmp_path / 'model.keras'}: the disk holding {tmp_path} is full (")
    assert "; it needs at least 5.0 MB); free some space" in message and caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_permission_error_reading_an_input_is_not_called_an_unwritable_output(tmp_path):
    with pytest.raises(PermissionError), atomic.target(tmp_path / "out" / "metrics.json"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/elsewhere/input.jpg")
    assert list((tmp_path / "out").iterdir()) == []


def test_pull_on_a_fresh_clone_exits_0_and_fetches_the_sample_data(tmp_path):
    """Issue 23: a bare `dvc pull` on a fresh clone exits 1 (the in-repo remote holds data/raw, not the sample run's
    220 MB models that dvc.lock names); `make pull` is the command that exits 0. It clones what is committed."""
    makefile = (workspace.REPO / "Makefile").read_text()
    assert "\npull: setup\n\t$(BIN)/dvc pull --allow-missing\n" in makefile
    clone = tmp_path / "clone"
    workspace.sh(tmp_path, "git", "clone", "-q", str(workspace.REPO), str(clone))
    done = workspace.dvc(clone, "pull", "--allow-missing", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len([p for p in (clone / "data/raw").rglob("*") if p.is_file()]) == 835
    assert "data/raw" not in workspace.dvc(clone, "status", "data.dvc").stdout
