"""The image manifest: one row per file under the raw data folder, with what validation and later stages need."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from pipeline.data import classes as class_names
from pipeline.data import duplicates, shape
from pipeline.data.groups import Groups
from pipeline.data.images import ImageInfo, ImageReadError, inspect_pixels
from pipeline.data.links import escape

COLUMNS = [
    "path", "split", "folder", "label", "extension", *[f.name for f in fields(ImageInfo)],
    "error", "shape", "blank", "leaks_with", "duplicate_of", "label_conflict",
]  # fmt: skip


def walk(root: Path) -> list[Path]:
    """Every file under ``root``, in a stable order (sorted folders, then sorted names)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files.extend(Path(dirpath) / name for name in sorted(filenames))
    return files


def linked_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that are symbolic links: the walk does not follow them (a link loop would never end)."""
    return [
        Path(dirpath) / name
        for dirpath, dirnames, _ in os.walk(root)
        for name in sorted(dirnames)
        if (Path(dirpath) / name).is_symlink()
    ]


def unusable(file: Path) -> str | None:
    """Why ``file`` cannot be opened as an image without risk, or None. Checked before any open: a FIFO would block
    the reader forever, a device could stream without end."""
    try:
        mode = file.lstat().st_mode
        if stat.S_ISLNK(mode):
            try:
                mode = file.stat().st_mode
            except OSError as exc:
                target = os.readlink(file)
                what = "a symbolic link loop" if exc.errno == errno.ELOOP else f"a dangling symbolic link (to {target})"
                return f"{what}: replace it with the image file or remove it"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
        return f"not a regular file ({kind}), never opened: remove it from the raw data"
    if not os.access(file, os.R_OK):
        return "cannot be read (permission denied): give the pipeline read access (chmod a+r)"
    return None


def extension(path: Path) -> str:
    """A file's extension as the manifest records it, and as params' allowed_extensions list them: ".jpg"."""
    return path.suffix.lower()


def build(
    raw: Path,
    classes: list[str],
    aliases: dict[str, str],
    split_folders: dict[str, str],
    same_picture: duplicates.Rule,
    picture: shape.Rule | None = None,
) -> pd.DataFrame:
    """Describe every file under ``raw``. Nothing is dropped: problems are recorded per row for the suite to judge
    (with ``picture``, the size and blank-picture rule's too)."""
    raw = Path(raw)
    if not raw.is_dir():
        raise FileNotFoundError(f"{raw}: raw data folder not found (run `dvc pull`, or see README: bring your data)")
    rows, signatures = [], {}
    for file in walk(raw):
        rel = file.relative_to(raw)
        parts = rel.parts
        split = class_names.split_of(parts[0], split_folders) if len(parts) == 3 else None
        label = class_names.normalise(parts[1], classes, aliases) if len(parts) == 3 else None
        row = {
            "path": rel.as_posix(),
            "split": split,
            "folder": "/".join(parts[:-1]),
            "label": label,
            "extension": extension(file),
            "error": None,
            "leaks_with": None,
        }
        row["error"] = escape(file, raw) or unusable(file)  # a link out of the raw folder is never opened
        if row["error"] is None:
            try:
                info, rgb = inspect_pixels(file)
                row.update(asdict(info))
                if picture is not None:
                    row["shape"] = shape.size_problem(info.width, info.height, picture)
                    row["blank"] = shape.blank_problem(rgb, shape.alpha(file.read_bytes()))
                signatures[len(rows)] = duplicates.signature(rgb)
            except ImageReadError as exc:
                row["error"] = str(exc).removeprefix(f"{file}: ")
            except OSError as exc:
                row["error"] = f"cannot be read ({exc.strerror})"
        rows.append(row)
    for folder in linked_folders(raw):
        rel = folder.relative_to(raw)
        rows.append(
            {
                "path": rel.as_posix() + "/",
                "split": class_names.split_of(rel.parts[0], split_folders) if len(rel.parts) == 2 else None,
                "folder": rel.as_posix(),
                "label": class_names.normalise(rel.parts[1], classes, aliases) if len(rel.parts) == 2 else None,
                "extension": "",
                "error": "a folder that is a symbolic link, not followed: put the images themselves in the folder",
                "leaks_with": None,
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    same = _same_pictures(frame, signatures, same_picture)
    frame["leaks_with"] = _leaks(frame, same)
    frame["duplicate_of"], frame["label_conflict"] = _groups(frame, same)
    return frame


def _same_pictures(frame: pd.DataFrame, signatures: dict, rule: duplicates.Rule) -> list[tuple[int, int, str]]:
    """Every pair of rows (i < j) showing one picture, with how: an identical file, or a near-duplicate."""
    rows = sorted(signatures)
    pairs = {}
    for m in duplicates.matches([signatures[r] for r in rows], [signatures[r] for r in rows], rule, same=True):
        pairs[(rows[m.a], rows[m.b])] = f"near-duplicate: {m.describe()}"
    by_hash = frame.loc[rows].groupby("sha256").groups
    for members in by_hash.values():
        members = sorted(members)
        for k, i in enumerate(members):
            for j in members[k + 1 :]:
                pairs[(i, j)] = "identical file"
    return sorted((i, j, how) for (i, j), how in pairs.items())


def _leaks(frame: pd.DataFrame, same: list[tuple[int, int, str]]) -> pd.Series:
    """For each image, the image of the other split that is the same picture, if any."""
    leaks = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    split = frame["split"]
    for i, j, how in same:
        if {split[i], split[j]} == {"train", "test"}:
            leaks[i] = f"{frame.at[j, 'path']} ({how})"
            leaks[j] = f"{frame.at[i, 'path']} ({how})"
    return leaks


def _groups(frame: pd.DataFrame, same: list[tuple[int, int, str]]) -> tuple[pd.Series, pd.Series]:
    """Copies of one picture inside a split: the group's first path for every member (the augment stage keeps a
    group on one side of its train/validation split), and, where the copies carry different labels, the conflict."""
    groups = Groups()
    for i, j, _ in same:
        if frame.at[i, "split"] == frame.at[j, "split"]:
            groups.join(i, j)
    group = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    conflict = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    members: dict[int, list[int]] = {}
    for i in range(len(frame)):
        members.setdefault(groups.find(i), []).append(i)
    for first, rows in members.items():
        if len(rows) < 2:
            continue
        for i in rows:
            group[i] = frame.at[first, "path"]
        if frame.loc[rows, "label"].nunique(dropna=False) > 1:
            for i in rows:
                others = [f"{frame.at[j, 'path']} ({frame.at[j, 'label']})" for j in rows if j != i]
                conflict[i] = "the same picture is labelled differently in " + ", ".join(others)
    return group, conflict


def class_counts(frame: pd.DataFrame, classes: list[str], split_folders: dict[str, str]) -> pd.DataFrame:
    """Decodable images per split and class, zeros included, so an empty or missing class shows up as a row."""
    good = frame[frame["error"].isna() & frame["label"].notna()]
    counts = good.groupby(["split", "label"]).size()
    folders = frame.dropna(subset=["split", "label"]).groupby(["split", "label"])["folder"].first()
    return pd.DataFrame(
        [
            {
                "split": split,
                "label": label,
                "count": int(counts.get((split, label), 0)),
                "folder": folders.get((split, label), f"{top}/{label}"),
            }
            for split, top in split_folders.items()
            for label in classes
        ]
    )
