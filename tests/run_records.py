"""Does every run-cache record on a DVC remote name objects the remote has? A record tells a task "restore this stage,
do not run it"; one whose outputs are missing makes `dvc repro --pull` fail downstream (dags/workspaces.py publish).

Works on a plain listing, so any remote can be checked: a folder (`missing_in_folder`), or an S3 bucket listed by the
caller, e.g. with boto3:

    keys = [o["Key"][len(prefix):] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=prefix)
            for o in page.get("Contents", [])]
    missing_run_objects(keys, lambda path: s3.get_object(Bucket=b, Key=prefix + path)["Body"].read())

where ``prefix`` is the remote's path in the bucket with a trailing "/" (``s3://b/store`` -> ``"store/"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml


def missing_run_objects(files: Iterable[str], read: Callable[[str], bytes]) -> list[str]:
    """Every output of every run record under ``runs/`` whose object (or, for a directory, one of whose files' objects)
    is not among ``files``: the remote's file paths relative to its root, "/"-separated. ``read(path)`` returns a
    file's bytes (records and directory listings are read). Empty when the remote is consistent."""
    present = set(files)
    missing = []
    for record in sorted(p for p in present if p.startswith("runs/")):
        for out in yaml.safe_load(read(record)).get("outs", []):
            obj = object_path(out["md5"], out.get("hash"))
            if obj not in present:
                missing.append(f"{record}: {out['path']} ({obj})")
            elif obj.endswith(".dir"):
                for entry in json.loads(read(obj)):
                    part = object_path(entry["md5"], out.get("hash"))
                    if part not in present:
                        missing.append(f"{record}: {out['path']}/{entry['relpath']} ({part})")
    return missing


def object_path(md5: str, hash_name: str | None) -> str:
    """Where a DVC 3 remote keeps an object: files/md5/ for `hash: md5` entries, the root for DVC 2's."""
    return f"{'files/md5/' if hash_name == 'md5' else ''}{md5[:2]}/{md5[2:]}"


def missing_in_folder(remote: Path) -> list[str]:
    """missing_run_objects of a DVC remote that is a local folder."""
    files = [p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()]
    return missing_run_objects(files, lambda path: (remote / path).read_bytes())
