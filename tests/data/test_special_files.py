"""Files that are not plain images in the raw data: FIFOs, sockets, dangling links, link loops, unreadable files,
linked class folders and links that lead outside the raw folder. Each is a finding that names the file and says what
to do, never opened (a FIFO would block validate forever, a link to /etc/shadow would be read), and every one of them
is listed, not only the first. No finding, report or metric carries a byte of any file."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from pipeline.data import manifest as manifest_lib
from pipeline.stages import validate

SECRET = "root:$6$not-a-real-hash:19000:0:99999:7:::\n"


def _fifo(raw: Path) -> None:
    os.mkfifo(raw / "Train/joy/pipe.jpg")


def _socket(raw: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(raw / "Train/joy/sock.jpg"))
    sock.close()


def _dangling(raw: Path) -> None:
    (raw / "Train/joy/gone.jpg").symlink_to(raw / "Train/joy/nowhere.jpg")
    (raw / "Train/fear/gone-too.jpg").symlink_to(raw / "Train/fear/nowhere.jpg")


def _loop(raw: Path) -> None:
    (raw / "Train/joy/a.jpg").symlink_to(raw / "Train/joy/b.jpg")
    (raw / "Train/joy/b.jpg").symlink_to(raw / "Train/joy/a.jpg")


def _unreadable(raw: Path) -> None:
    victim = sorted((raw / "Train/joy").glob("*.jpg"))[0]
    shutil.copy(victim, raw / "Train/joy/locked.jpg")
    (raw / "Train/joy/locked.jpg").chmod(0)


def _link_outside(raw: Path) -> None:
    (raw.parent / "shadow").write_text(SECRET)
    (raw / "Train/joy/s.jpg").symlink_to(raw.parent / "shadow")


def _linked_folder(raw: Path) -> None:
    elsewhere = raw.parent / "elsewhere"
    shutil.move(raw / "Train/fear", elsewhere)
    (raw / "Train/fear").symlink_to(elsewhere, target_is_directory=True)


@pytest.mark.parametrize(
    ("make_bad", "expected"),
    [
        (_fifo, ["Train/joy/pipe.jpg", "not a regular file (FIFO), never opened"]),
        (_socket, ["Train/joy/sock.jpg", "not a regular file (socket)"]),
        (_dangling, ["Train/joy/gone.jpg", "Train/fear/gone-too.jpg", "dangling symbolic link"]),
        (_loop, ["Train/joy/a.jpg", "symbolic link loop"]),
        (_unreadable, ["Train/joy/locked.jpg", "cannot be read (permission denied)"]),
        (_linked_folder, ["Train/fear", "a folder that is a symbolic link, not followed"]),
        (_link_outside, ["Train/joy/s.jpg: a symbolic link to", "shadow, outside", "raw: never opened"]),
    ],
    ids=["fifo", "socket", "dangling-links", "link-loop", "unreadable", "linked-class-folder", "link-outside-raw"],
)
def test_special_entries_are_named_findings(params, tiny_raw, tmp_path, make_bad, expected):
    if make_bad is _unreadable and os.geteuid() == 0:
        pytest.skip("root reads a file of mode 000")
    make_bad(tiny_raw)
    out = tmp_path / "out"
    with pytest.raises(validate.ValidationFailed) as failed:
        validate.run(params, tiny_raw, out / "manifest.csv", out / "metrics.json", out / "report.html")
    for fragment in expected:
        assert fragment in str(failed.value), str(failed.value)


def test_a_link_out_of_the_raw_folder_is_never_opened_nor_echoed(params, tiny_raw, tmp_path, monkeypatch):
    _link_outside(tiny_raw)
    (tiny_raw / "Train/joy/notes.jpg").write_text(SECRET)  # a text file inside: said to be text, never shown
    opened = []

    def inspect(path):
        opened.append(Path(path).name)
        return real(path)

    real = manifest_lib.inspect_pixels
    monkeypatch.setattr(manifest_lib, "inspect_pixels", inspect)
    out = tmp_path / "out"
    with pytest.raises(validate.ValidationFailed) as failed:
        validate.run(params, tiny_raw, out / "manifest.csv", out / "metrics.json", out / "report.html")
    assert "s.jpg" not in opened and "notes.jpg" in opened
    assert f"Train/joy/s.jpg: a symbolic link to {tiny_raw.parent / 'shadow'}, outside {tiny_raw}" in str(failed.value)
    assert "Train/joy/notes.jpg: not an image: it holds text (43 bytes)" in str(failed.value)
    for text in (str(failed.value), (out / "report.html").read_text(), (out / "metrics.json").read_text()):
        assert "root:" not in text and "not-a-real-hash" not in text
