"""Temporary pipeline workspaces for the integration tests: a git + DVC repository holding this checkout's pipeline,
the test profile of params and a tiny sample dataset, so the real tools run on tiny data without touching the repo."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import config
from pipeline.data import sample

REPO = Path(__file__).resolve().parents[1]
PROFILE = Path(__file__).with_name("profile.yaml")
TINY_COUNTS = {"train": dict.fromkeys(sample.FOLDERS, 3), "test": dict.fromkeys(sample.FOLDERS, 1)}
# what a workspace copies from the checkout: the pipeline, its map and its knobs (never data, models or state)
COPIED = ["pipeline", "dvc.yaml", "params.yaml", ".dvcignore", "requirements.lock"]


def tiny_dataset(root: Path) -> Path:
    """The tiny sample dataset of the tests (3 train and 1 test image per class, 80 px), written to ``root``."""
    sample.generate(root, TINY_COUNTS, seed=7, size=80)
    return root


def env() -> dict[str, str]:
    """The environment of a tool run: this interpreter's bin first (stage commands say `python -m pipeline`)."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


def sh(cwd: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command in ``cwd``; on failure the assertion shows its output."""
    done = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(cwd, sys.executable, "-m", "dvc", *args, check=check)


def profile_params(overrides: dict | None = None) -> dict:
    """params.yaml with the test profile (and ``overrides``) merged over it, validated."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    merged = config.merge(config.merge(raw, yaml.safe_load(PROFILE.read_text())), overrides or {})
    config.from_dict(merged)  # a profile that does not validate fails here, not deep in a stage
    return merged


@functools.cache
def tiny_params() -> config.Params:
    """The test profile over params.yaml, as config objects: what the tiny-model tests build and train with."""
    return config.from_dict(profile_params())


def tree_digest(root: Path) -> dict[str, str]:
    """Content hash of every file under root, to prove a stage did not write to its inputs."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_params(root: Path, raw: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def make(root: Path, overrides: dict | None = None, raw_data: Path | None = None) -> Path:
    """Create a workspace at ``root``: git repo, DVC repo with a local remote, tiny raw data tracked by data.dvc."""
    root.mkdir(parents=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    write_params(root, profile_params(overrides))
    (root / ".gitignore").write_text("/.train-state/\n/.tuner/\n__pycache__/\n")
    sh(root, "git", "init", "-q", "-b", "main")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    remote = root.parent / f"{root.name}-remote"
    dvc(root, "remote", "add", "-d", "local", str(remote))
    if raw_data is not None:
        shutil.copytree(raw_data, root / "data" / "raw")
    else:
        tiny_dataset(root / "data" / "raw")
    dvc(root, "add", "-q", "data/raw")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "workspace")
    return root


def copy(src: Path, dest: Path) -> Path:
    """A private copy of workspace ``src`` (git history, DVC cache and outputs included) that a test may change."""
    shutil.copytree(src, dest, symlinks=True)
    return dest
