"""Per-task workspaces of the retraining DAG: git (origin) and the DVC remote are the only state tasks share.

Every task clones origin at the run's commit into a temporary folder of its own, gets what it needs with DVC
(`dvc repro --pull`: data sources and upstream stages come back from the remote and its run-cache, they are not
executed again), does its one job, publishes (`publish`: the outputs, then the run-cache record that names them), and
removes the folder. Nothing is read from another task's disk, so a task may land on any worker.

A task's commands die with it: `run` kills a command's whole process tree when the task is interrupted (the DAG's
execution_timeout, a SIGTERM), so no training outlives its task. On a GPU worker a stage task leases its GPUs
(`gpu_lease`) for its lifetime, so two stages never share one. A command that could not reach origin or the DVC
remote raises `Unreachable`, which the DAG retries; any other failure is a `TaskError`.

Standard library only: the DAG processor imports this module with the DAG file. Settings come from the worker's
environment when a task runs (see docs/airflow.md):

    EMOTION_GIT_REMOTE           git URL of origin (required)
    EMOTION_GIT_BRANCH           branch the runs follow and promotions push to (default: main)
    EMOTION_GIT_MIRROR           optional local clone used as `git clone --reference-if-able` (a speed-up only)
    EMOTION_DVC_REMOTE           optional DVC remote URL that replaces the repository's default remote
    EMOTION_DVC_REMOTE_ENDPOINT  optional endpoint of an S3-compatible store (MinIO) for that remote
    EMOTION_WORKDIR              optional parent folder of the temporary workspaces (default: the system's temp);
                                 the GPU lease files (gpu-<id>.lock) live there too
    EMOTION_GPU_DEVICES          optional CUDA device ids this worker owns, comma-separated ("0" or "0,1"); unset on
                                 CPU workers (no lease, stage commands see the worker's environment unchanged)
    EMOTION_GPUS_PER_TASK        how many of them a stage task leases (default: 1; 2+ trains under MirroredStrategy)
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import dvc_stages

# The pipeline's CLI (pipeline/__main__.py) refuses to run a dvc.yaml stage whose name is not this variable's value;
# "none" lets no stage run. A task that must only restore results therefore fails instead of quietly recomputing.
EXECUTE = "EMOTION_EXECUTE"
NOTHING = "none"
# DVC's own log line for a stage it executes (a restored stage logs "is cached - skipping run" instead)
_RUNNING = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)
# the tasks' temporary folders (under EMOTION_WORKDIR) and the lock file that says a live task owns one
PREFIX = "emotion-"
OWNER = ".owner"
# a ref a trigger may pin: a branch, tag or commit name, never a path or an option
REF = r"^[A-Za-z0-9][A-Za-z0-9._/@#-]{0,199}$"
# how long an interrupted command's processes get between SIGTERM and SIGKILL (a training may save its state)
GRACE_S = 10.0
# how often a stage task waiting for a free GPU looks again
LEASE_POLL_S = 5.0


class TaskError(RuntimeError):
    """A command of a workspace task failed; the message carries its output."""


class Unreachable(TaskError):
    """origin or the DVC remote could not be reached: a transient fault, retried (the message carries the output)."""


@dataclass(frozen=True)
class Settings:
    git_remote: str
    branch: str = "main"
    mirror: str | None = None
    dvc_remote: str | None = None
    dvc_endpoint: str | None = None
    workdir: str | None = None
    gpu_devices: tuple[str, ...] = ()  # this worker's CUDA device ids; empty: a CPU worker, no leases
    gpus_per_task: int = 1

    @classmethod
    def from_env(cls) -> Settings:
        remote = os.environ.get("EMOTION_GIT_REMOTE")
        if not remote:
            raise TaskError("EMOTION_GIT_REMOTE is not set: the workers need the git URL of the pipeline's origin")
        return cls(
            git_remote=remote,
            branch=os.environ.get("EMOTION_GIT_BRANCH") or "main",
            mirror=os.environ.get("EMOTION_GIT_MIRROR") or None,
            dvc_remote=os.environ.get("EMOTION_DVC_REMOTE") or None,
            dvc_endpoint=os.environ.get("EMOTION_DVC_REMOTE_ENDPOINT") or None,
            workdir=os.environ.get("EMOTION_WORKDIR") or None,
            **gpus_from_env(),
        )


def gpus_from_env() -> dict:
    """EMOTION_GPU_DEVICES and EMOTION_GPUS_PER_TASK, checked: a worker that asks for more GPUs per task than it
    owns would wait forever, so it fails at once with the variables named."""
    devices = tuple(d.strip() for d in os.environ.get("EMOTION_GPU_DEVICES", "").split(",") if d.strip())
    per_task = os.environ.get("EMOTION_GPUS_PER_TASK") or "1"
    if not per_task.isdigit() or not 1 <= int(per_task) <= max(len(devices), 1):
        raise TaskError(
            f"EMOTION_GPUS_PER_TASK={per_task!r}: a whole number from 1 to the count of EMOTION_GPU_DEVICES "
            f"({len(devices)} listed)"
        )
    return {"gpu_devices": devices, "gpus_per_task": int(per_task)}


def run(cwd: Path | None, *args: str, env: dict | None = None, ok: tuple[int, ...] = (0,)):
    """Run a command, its output captured; an exit status outside ``ok`` raises Unreachable or TaskError.

    Whatever interrupts the wait (the DAG's execution_timeout, which Airflow raises in the task by SIGALRM; a SIGTERM;
    Ctrl-C) kills the command's whole process tree before it propagates: killing `dvc` alone would leave its child, the
    stage (a training holding a GPU), running after the task. The execution_timeout relies on this. The child stays
    in the worker's process group, so a worker killed by group (container runtimes, tests/cluster) takes it along."""
    # stage commands say `python`: the worker's own interpreter (the one with the pipeline's lock installed) runs them
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    child = subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PATH": path, **(env or {})},
    )
    try:
        stdout, stderr = child.communicate()
    except BaseException:
        kill_tree(child, GRACE_S)
        raise
    if child.returncode not in ok:
        message = f"`{' '.join(args)}` exited {child.returncode}\n{stdout[-4000:]}\n{stderr[-4000:]}"
        raise (Unreachable if unreachable(stdout + stderr) else TaskError)(message)
    return subprocess.CompletedProcess(args, child.returncode, stdout, stderr)


def unreachable(output: str) -> bool:
    """Whether a failed command's output says origin or the DVC remote could not be reached, or that a push lost a
    race (pipeline/release/tools.py lists the signs; imported here, at run time, as gate() imports the gate)."""
    from pipeline.release.tools import transient

    return transient(output)


def kill_tree(child: subprocess.Popen, grace: float) -> None:
    """SIGTERM ``child`` and every descendant, SIGKILL whatever is left after ``grace`` seconds, reap ``child``."""
    import psutil  # lazily: the DAG processor imports this module, and Airflow brings psutil to every worker

    procs: list = []
    with suppress(psutil.NoSuchProcess):
        procs.append(psutil.Process(child.pid))
        # listed before any signal: once a parent dies its children are re-parented and no longer found through it
        procs += procs[0].children(recursive=True)
    for proc in procs:
        with suppress(psutil.NoSuchProcess):
            proc.terminate()
    try:
        psutil.wait_procs(procs, timeout=grace)
    finally:  # even if a second signal interrupts the grace period
        for proc in procs:
            with suppress(psutil.NoSuchProcess):
                proc.kill()  # psutil checks the pid was not reused since it was listed
        for stream in (child.stdout, child.stderr):
            if stream:
                stream.close()
        child.wait()


# The tasks' own git and DVC (the library's are pipeline/release/tools.py): parsing the DAG imports no more than
# the standard library, YAML and pipeline.config, and a task's commands must die with the task (run, above).
def git(cwd: Path | None, *args: str) -> str:
    return run(cwd, "git", *args).stdout.strip()


def dvc(cwd: Path, *args: str, env: dict | None = None) -> str:
    done = run(cwd, sys.executable, "-m", "dvc", *args, env=env)
    return done.stdout + done.stderr  # DVC logs to both; callers read its log lines


@contextmanager
def workspace(settings: Settings, task: str, commit: str | None = None) -> Iterator[Path]:
    """A fresh clone of origin (at ``commit``, or the head of the branch) in a temporary folder, removed on exit.

    A task killed with its worker cannot remove its folder; the next workspace made beside it does (sweep)."""
    parent = tempfile.mkdtemp(prefix=f"{PREFIX}{re.sub(r'[^A-Za-z0-9_.-]', '_', task)}-", dir=settings.workdir)
    owner = claim(Path(parent))
    sweep(Path(parent).parent)
    root = Path(parent) / "ws"
    try:
        reference = ["--reference-if-able", settings.mirror, "--dissociate"] if settings.mirror else []
        git(None, "clone", "--quiet", "--branch", settings.branch, *reference, settings.git_remote, str(root))
        if commit is not None:
            git(root, "checkout", "--quiet", "--detach", commit)
        if settings.dvc_remote:
            use_remote(root, settings.dvc_remote, settings.dvc_endpoint)
        yield root
    finally:
        shutil.rmtree(parent, ignore_errors=True)
        os.close(owner)


def claim(folder: Path) -> int:
    """Mark ``folder`` as in use by this process for as long as the returned descriptor is open: an exclusive
    `flock` of ``folder``/.owner, which the kernel drops when the process ends in any way, SIGKILL included. The lock
    is taken before the file gets its name, so no sweep ever sees it unlocked."""
    pending = folder / ".owner.new"
    fd = os.open(pending, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    pending.rename(folder / OWNER)
    return fd


def sweep(parent: Path) -> list[Path]:
    """Remove the task folders under ``parent`` whose owner is gone (its .owner lock is free); returns them.
    Folders without an .owner yet (being created right now) are left alone."""
    removed = []
    for folder in parent.glob(f"{PREFIX}*"):
        fd = try_flock(folder / OWNER, create=False)  # never creates one: a folder being made has none yet
        if fd is None:
            continue  # a live task's folder, or one without an owner yet
        os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def try_flock(path: Path, create: bool) -> int | None:
    """An open descriptor of ``path`` holding its exclusive `flock`, or None when another process holds it (or, with
    ``create`` false, the file cannot be opened). The lock lasts until the descriptor is closed or its process ends."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
    except OSError:
        if create:
            raise  # a lease folder that cannot hold its lock files is the deployment's error, not a busy GPU
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def use_remote(root: Path, url: str, endpoint: str | None) -> None:
    """Make ``url`` the clone's default DVC remote, in .dvc/config.local (what `dvc remote add --local --default`
    writes; written directly, it saves two DVC start-ups per task). Credentials stay in the environment."""
    lines = ["[core]", "    remote = cluster", "['remote \"cluster\"']", f"    url = {url}"]
    lines += [f"    endpointurl = {endpoint}"] if endpoint else []
    (root / ".dvc" / "config.local").write_text("\n".join(lines) + "\n", encoding="utf-8")


def stages_at(root: Path) -> list[str]:
    """The stage names of the workspace's dvc.yaml, as DVC lists them."""
    if not (root / "dvc.yaml").exists():
        return []
    return sorted(dvc(root, "stage", "list", "--names-only").split())


def resolve(settings: Settings, ref: str, expected: list[str]) -> str:
    """The run's commit: the head of the branch, after committing updated imports to it. A run promotes onto the
    branch, so it judges the branch's head and nothing else: ``ref``, if given, must name that same commit (a trigger
    that pins what it expects), and any other commit is refused here, before any work."""
    if ref and not re.fullmatch(REF, ref):
        raise TaskError(f"ref {ref!r} is not a branch, tag or commit name")
    with workspace(settings, "resolve") as root:
        if ref:
            found = [
                c
                for c in (f"origin/{ref}", ref)
                if run(root, "git", "rev-parse", "--verify", "--quiet", f"{c}^{{commit}}", ok=(0, 1)).returncode == 0
            ]
            if not found:
                raise TaskError(f"ref {ref!r} is not a branch, tag or commit of {settings.git_remote}")
            pinned, head = git(root, "rev-parse", f"{found[0]}^{{commit}}"), git(root, "rev-parse", "HEAD")
            if pinned != head:
                raise TaskError(
                    f"ref {ref!r} is {pinned[:12]}, not the head of {settings.branch} ({head[:12]}): a run promotes "
                    f"onto {settings.branch}, so it judges that branch's head only. Merge the change into "
                    f"{settings.branch} (reviewed), or judge it by hand: `python -m pipeline promote check` in a clone"
                )
        else:
            update_imports(root, settings.branch)
        found = stages_at(root)
        if found != sorted(expected):
            raise TaskError(
                f"the commit's dvc.yaml has stages {found}, the DAG was parsed with {sorted(expected)}: "
                "deploy the DAG of that commit"
            )
        return git(root, "rev-parse", "HEAD")


def update_imports(root: Path, branch: str) -> None:
    """`dvc update` every import (`dvc import`, `import-url`); if one changed, push its data and commit it."""
    imports = [
        f for f in git(root, "ls-files", "--", "*.dvc").splitlines() if "\ndeps:" in (root / f).read_text("utf-8")
    ]
    if not imports:
        return
    dvc(root, "update", *imports)
    if not git(root, "status", "--porcelain", "--", *imports):
        return
    dvc(root, "push", *imports)  # the data first: a commit on origin never names data the remote lacks
    git(root, "add", "--", *imports)
    message = f"Update imported data: {', '.join(imports)}"
    run(root, "git", "commit", "--quiet", "-m", message, env=identity())
    git(root, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")


def reproduce(root: Path, stage: str | None, env: dict[str, str] | None = None) -> list[str]:
    """`dvc repro --pull` of ``stage`` (None: the whole pipeline) where only ``stage`` may execute: every changed
    upstream stage is restored from the remote's run-cache. Returns the stages DVC executed.

    For one stage, `--allow-missing` skips the stages that match the commit's dvc.lock without downloading their
    outputs (a stage that does run gets its missing dependencies pulled first); the whole pipeline is restored in
    full, since the gate reads its outputs."""
    args = ["repro", "--pull"] + (["--allow-missing", stage] if stage else [])
    log = dvc(root, *args, env={**(env or {}), EXECUTE: stage or NOTHING})
    return _RUNNING.findall(log)


def run_stage(settings: Settings, commit: str, stage: str, lease_timeout: float | None = None) -> dict:
    """The task of one dvc.yaml stage: on its GPUs if the worker has some, reproduce it in a fresh workspace, then
    publish what it executed."""
    with gpu_lease(settings, stage, lease_timeout) as gpu_env, workspace(settings, stage, commit) as root:
        executed = reproduce(root, stage, gpu_env)
        publish(root, executed)
        return {"stage": stage, "commit": commit, "executed": executed}


def publish(root: Path, executed: list[str]) -> None:
    """Send the executed stages' outputs to the DVC remote, then their run-cache records, in that order.

    A record on the remote tells every later task "restore this stage, don't run it"; a record whose objects are not
    there yet makes that restore fail. DVC's `push --run-cache` sends the records first, so it comes last, after the
    cached outputs (`dvc push <stages>`) and the uncached ones (publish_uncached): a task killed in between leaves
    objects without a record, which its retry simply executes again."""
    if not executed:  # everything was restored from the remote: nothing new to send
        return
    dvc(root, "push", *executed)
    publish_uncached(root, executed)
    dvc(root, "push", "--run-cache", *executed)


def publish_uncached(root: Path, executed: list[str]) -> None:
    """Send the `cache: false` outputs (metrics, plots) of the executed stages to the DVC remote.

    DVC's run-cache records them by hash and, to restore a stage elsewhere, pulls them from the remote; but since
    DVC 3 `dvc push --run-cache` sends the run records only, not those files. Tracking a copy of each with `dvc add`
    stores the same content under the same hash, so `dvc push` of the copies delivers exactly the objects a restore
    asks for (a directory's listing, relative to itself, hashes the same too). The copies die with the workspace.
    """
    paths = [p for s in dvc_stages.read(root) if s.name in executed for p in s.uncached if (root / p).exists()]
    if not paths:
        return
    outbox = root / ".outbox"
    copies = []
    for i, path in enumerate(paths):
        copy = outbox / str(i) / Path(path).name
        copy.parent.mkdir(parents=True)
        (shutil.copytree if (root / path).is_dir() else shutil.copy2)(root / path, copy)
        copies.append(str(copy.relative_to(root)))
    dvc(root, "add", "--quiet", *copies)
    dvc(root, "push", *(f"{c}.dvc" for c in copies))


@contextmanager
def gpu_lease(settings: Settings, task: str, timeout: float | None = None) -> Iterator[dict[str, str]]:
    """Lease ``settings.gpus_per_task`` of the worker's GPUs for the block; yields the environment of the stage's
    commands (CUDA_VISIBLE_DEVICES, TF_FORCE_GPU_ALLOW_GROWTH), empty on a CPU worker. Waits, polling, while every
    GPU is leased; ``timeout`` (seconds, None: no limit) bounds the wait with a TaskError.

    A lease is an exclusive `flock` of ``gpu-<id>.lock`` in the worker's EMOTION_WORKDIR: the kernel releases it when
    its holder exits in any way, SIGKILL included, so a dead task never keeps a GPU leased."""
    if not settings.gpu_devices:
        yield {}
        return
    folder = Path(settings.workdir or tempfile.gettempdir())
    wanted = f"{settings.gpus_per_task} of GPUs {','.join(settings.gpu_devices)}"
    start = next_log = time.monotonic()
    while not (held := _try_lease(folder, settings.gpu_devices, settings.gpus_per_task)):
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise TaskError(f"{task}: no {wanted} free after {waited:.0f} s")
        if time.monotonic() >= next_log:  # once a minute: a wait may last hours
            print(f"{task}: waiting for {wanted} to be free (leased by other tasks; {waited:.0f} s so far)", flush=True)
            next_log += 60
        time.sleep(LEASE_POLL_S if timeout is None else min(LEASE_POLL_S, timeout / 10))
    try:
        devices = ",".join(device for device, _ in held)
        print(f"{task}: leased GPU(s) {devices}", flush=True)
        # growth: TensorFlow takes GPU memory as it needs it instead of all of it at start
        yield {"CUDA_VISIBLE_DEVICES": devices, "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    finally:
        for _, fd in held:
            os.close(fd)  # closing the descriptor releases its flock


def _try_lease(folder: Path, devices: tuple[str, ...], count: int) -> list[tuple[str, int]]:
    """``count`` free devices, each with its locked descriptor, or none at all: holding some while waiting for the
    rest could deadlock two tasks that each want two."""
    held: list[tuple[str, int]] = []
    for device in devices:
        fd = try_flock(folder / f"gpu-{device}.lock", create=True)
        if fd is None:
            continue
        held.append((device, fd))
        if len(held) == count:
            return held
    for _, fd in held:
        os.close(fd)
    return []


class Rejected(TaskError):
    """The promotion gate rejected a model (a verdict); the message carries this run's report."""


class Superseded(TaskError):
    """The branch moved on after the run resolved its commit: the run promotes nothing, the next one judges the head."""


def gate(settings: Settings, commit: str, action: str, run_id: str = "manual", new_lineage: bool = False) -> int:
    """compare (``check``) or promote (``apply``): the whole pipeline restored with no stage executing, then
    `python -m pipeline promote` under the policy of the branch's head as origin has it now, its verdict stored on
    origin (refs/verdicts/); returns its exit status (0, or NOTHING_NEW). A rejection raises Rejected, a transient
    fault Unreachable, anything else TaskError. The report is printed to the task's log: the workspace it was written
    in is removed with the task, the stored verdict is not."""
    # imported here, not at the top, to keep the DAG processor's import of this module to the standard library
    from pipeline.release.gate import NOTHING_NEW, REJECTED, TRANSIENT

    with workspace(settings, f"promote-{action}", commit) as root:
        head = git(root, "rev-parse", f"origin/{settings.branch}")
        if action == "apply" and head != commit:
            raise Superseded(f"{settings.branch} moved from {commit[:12]} to {head[:12]} since this run resolved it")
        executed = reproduce(root, None)
        if executed:  # the guard in pipeline/__main__.py makes this unreachable; kept as the task's own check
            raise TaskError(f"stages executed while restoring: {executed}")
        report = root / "reports" / "promotion.md"
        report.unlink(missing_ok=True)  # the committed one is an older run's: only this run's may be shown
        options = ["--policy", f"origin/{settings.branch}", "--verdicts", "origin", "--scores", "origin"]
        options += ["--run-id", run_id]
        options += ["--push", "origin", "--branch", settings.branch] if action == "apply" else []
        options += ["--new-lineage"] if new_lineage else []
        done = run(root, sys.executable, "-m", "pipeline", "promote", action, *options,
                   ok=(0, REJECTED, NOTHING_NEW, TRANSIENT))  # fmt: skip
        text = report.read_text(encoding="utf-8") if report.exists() else "(no report written)"
        print(done.stdout, done.stderr, f"--- reports/promotion.md of this run ({commit}) ---", text, sep="\n")
        if done.returncode == TRANSIENT:
            raise Unreachable(f"the promotion gate met a transient fault:\n{done.stderr[-4000:]}")
        if done.returncode == REJECTED:
            raise Rejected(f"the promotion gate rejected a model of {commit}; reports/promotion.md:\n{text}")
        return done.returncode


def identity() -> dict[str, str]:
    """Who commits an import update: GIT_AUTHOR_*/GIT_COMMITTER_* of the worker when set, else a name that says who."""
    names = {"GIT_AUTHOR_NAME": "emotion-retraining", "GIT_AUTHOR_EMAIL": "retraining@localhost"}
    names |= {"GIT_COMMITTER_NAME": names["GIT_AUTHOR_NAME"], "GIT_COMMITTER_EMAIL": names["GIT_AUTHOR_EMAIL"]}
    return {key: os.environ.get(key) or value for key, value in names.items()}
