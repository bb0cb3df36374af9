"""The DAG's workspaces (dags/workspaces.py) on a small repository, no Airflow: `resolve` commits updated imports to
origin's branch so that every task of the run sees the same data; a pinned ref must be the branch's head."""

from __future__ import annotations

import pytest

from tests import workspace
from tests.cluster import workspaces


@pytest.fixture
def origin_with_an_import(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_text("first\n")
    seed = tmp_path / "seed"
    seed.mkdir()
    workspace.sh(seed, "git", "init", "-q", "-b", "main")
    workspace.dvc(seed, "init", "-q")
    workspace.dvc(seed, "remote", "add", "-d", "store", str(tmp_path / "dvc-remote"))
    (seed / "data").mkdir()
    workspace.dvc(seed, "import-url", "-q", str(source), "data/ext")  # data from outside the repository
    workspace.dvc(seed, "push", "-q")
    workspace.sh(seed, "git", "add", "-A")
    workspace.sh(seed, "git", "commit", "-qm", "import")
    workspace.sh(tmp_path, "git", "clone", "-q", "--bare", str(seed), "origin.git")
    settings = workspaces.Settings(str(tmp_path / "origin.git"), "main", workdir=str(tmp_path / "tasks"))
    (tmp_path / "tasks").mkdir()
    return settings, source, tmp_path


def head(settings) -> str:
    return workspace.sh(workspace.REPO, "git", "ls-remote", settings.git_remote, "refs/heads/main").stdout.split()[0]


def test_resolve_commits_changed_imports_to_the_branch(origin_with_an_import):
    settings, source, base = origin_with_an_import
    before = head(settings)
    expected: list[str] = []  # no dvc.yaml here: no pipeline stages
    assert workspaces.resolve(settings, "", expected) == before  # nothing changed: the head as it is
    (source / "a.txt").write_text("second\n")
    commit = workspaces.resolve(settings, "", expected)
    assert commit != before and head(settings) == commit
    clone = base / "clone"
    workspace.sh(base, "git", "clone", "-q", settings.git_remote, "clone")
    assert "Update imported data: data/ext.dvc" in workspace.sh(clone, "git", "log", "-1", "--format=%s").stdout
    workspace.dvc(clone, "pull", "-q")  # the new data reached the DVC remote before the commit reached origin
    assert (clone / "data/ext/a.txt").read_text() == "second\n"
    assert list((base / "tasks").iterdir()) == []
    # a pinned ref must name the head, which is taken as it is, imports untouched
    (source / "a.txt").write_text("third\n")
    assert workspaces.resolve(settings, commit, expected) == commit == head(settings)
    assert workspaces.resolve(settings, "main", expected) == commit
    with pytest.raises(workspaces.TaskError, match="is not a branch, tag or commit"):
        workspaces.resolve(settings, "no-such-branch", expected)


def test_a_ref_other_than_the_branch_head_is_refused_before_any_work(origin_with_an_import):
    """A run promotes onto the branch: an older commit (or one ahead of the branch, never reviewed onto it) would
    move the branch back or forward; it is refused before a stage runs, in one message naming both commits."""
    settings, _, base = origin_with_an_import
    older = head(settings)
    dev = base / "dev"
    workspace.sh(base, "git", "clone", "-q", settings.git_remote, "dev")
    (dev / "b.txt").write_text("unreviewed\n")
    workspace.sh(dev, "git", "add", "b.txt")
    workspace.sh(dev, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ahead of main")
    workspace.sh(dev, "git", "push", "-q", "origin", "HEAD:refs/heads/feature")
    workspace.sh(dev, "git", "push", "-q", "origin", "HEAD:refs/heads/main")
    with pytest.raises(workspaces.TaskError, match=rf"ref '{older}' is {older[:12]}, not the head of main"):
        workspaces.resolve(settings, older, [])
    workspace.sh(dev, "git", "push", "-q", "--force", "origin", f"{older}:refs/heads/main")
    with pytest.raises(workspaces.TaskError, match=r"ref 'feature' is .*, not the head of main .*Merge the change"):
        workspaces.resolve(settings, "feature", [])
    assert head(settings) == older and list((base / "tasks").iterdir()) == []


# --- a task's commands die with it ----------------------------------------------------------------------------------


class Timeout(Exception):
    """Stands for AirflowTaskTimeout, which Airflow raises in the task from its SIGALRM handler."""


def gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # dead, waiting for its new parent to reap it
    except psutil.NoSuchProcess:
        return True


def interrupted_after(seconds: float, error: BaseException, cwd, script: str) -> None:
    """Run ``sh -c script`` with workspaces.run and raise ``error`` in the waiting thread after ``seconds``, by
    SIGALRM, as Airflow's execution_timeout does; the error must come out of run()."""
    import signal

    def on_alarm(signum, frame):
        raise error

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with pytest.raises(type(error)):
            workspaces.run(cwd, "sh", "-c", script)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_interrupted_command_takes_its_whole_process_tree_along(tmp_path):
    """The DAG's execution_timeout: dvc's child (the training) must not outlive the task."""
    import time

    pids = tmp_path / "pids"
    # a shell (dvc) with two children (the stage and its helper), each pid written before the wait
    script = f"sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"

    start = time.monotonic()
    interrupted_after(1.0, Timeout("execution_timeout"), tmp_path, script)
    recorded = [int(p) for p in pids.read_text().split()]
    assert len(recorded) == 3
    deadline = time.monotonic() + 5
    while not all(map(gone, recorded)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(map(gone, recorded)), recorded
    assert time.monotonic() - start < 8  # sleep obeys SIGTERM: no need to wait for the grace period's SIGKILL


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(workspaces, "GRACE_S", 0.5)
    pid = tmp_path / "pid"
    script = f"trap '' TERM; sleep 300 & echo $! > {pid}.child; echo $$ > {pid}; wait; wait; wait"

    interrupted_after(1.0, KeyboardInterrupt(), tmp_path, script)
    shell, child = int(pid.read_text()), int(pid.with_suffix(".child").read_text())
    deadline = time.monotonic() + 5
    while not (gone(shell) and gone(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(shell) and gone(child)


def test_a_failed_command_keeps_its_output_in_the_error(tmp_path):
    with pytest.raises(workspaces.TaskError, match=r"(?s)`sh -c echo out; echo err >&2; exit 3` exited 3\nout.*err"):
        workspaces.run(tmp_path, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert workspaces.run(tmp_path, "sh", "-c", "echo fine").stdout == "fine\n"


# --- one GPU per task ------------------------------------------------------------------------------------------------


def gpu_settings(tmp_path, devices: str, per_task: str | None = None, monkeypatch=None) -> workspaces.Settings:
    monkeypatch.setenv("EMOTION_GIT_REMOTE", "unused")
    monkeypatch.setenv("EMOTION_WORKDIR", str(tmp_path))
    monkeypatch.setenv("EMOTION_GPU_DEVICES", devices)
    if per_task is None:
        monkeypatch.delenv("EMOTION_GPUS_PER_TASK", raising=False)
    else:
        monkeypatch.setenv("EMOTION_GPUS_PER_TASK", per_task)
    return workspaces.Settings.from_env()


def test_two_tasks_lease_different_gpus_and_a_third_waits_for_a_free_one(tmp_path, monkeypatch):
    import threading
    import time

    settings = gpu_settings(tmp_path, "0, 1", monkeypatch=monkeypatch)
    assert settings.gpu_devices == ("0", "1") and settings.gpus_per_task == 1
    with workspaces.gpu_lease(settings, "a") as a, workspaces.gpu_lease(settings, "b") as b:
        assert {a["CUDA_VISIBLE_DEVICES"], b["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
        assert a["TF_FORCE_GPU_ALLOW_GROWTH"] == b["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        with pytest.raises(workspaces.TaskError, match="no 1 of GPUs 0,1 free"):
            with workspaces.gpu_lease(settings, "c", timeout=0.3):
                pass
        got = {}

        def third():
            with workspaces.gpu_lease(settings, "c", timeout=5) as c:
                got["c"], got["at"] = c["CUDA_VISIBLE_DEVICES"], time.monotonic()

        waiter = threading.Thread(target=third)
        waiter.start()
        time.sleep(0.3)
        assert not got  # still waiting
        released = time.monotonic()
    waiter.join(10)
    assert got["c"] in ("0", "1") and got["at"] >= released


def test_a_task_may_lease_two_gpus_for_a_mirrored_strategy_and_none_on_a_cpu_worker(tmp_path, monkeypatch):
    settings = gpu_settings(tmp_path, "0,1,2", "2", monkeypatch=monkeypatch)
    with workspaces.gpu_lease(settings, "a") as a:
        assert a["CUDA_VISIBLE_DEVICES"] == "0,1"
        with pytest.raises(workspaces.TaskError):  # one is free, two are wanted
            with workspaces.gpu_lease(settings, "b", timeout=0.2):
                pass
    with pytest.raises(workspaces.TaskError, match="EMOTION_GPUS_PER_TASK='4'"):
        gpu_settings(tmp_path, "0,1,2", "4", monkeypatch=monkeypatch)
    monkeypatch.delenv("EMOTION_GPU_DEVICES")
    monkeypatch.delenv("EMOTION_GPUS_PER_TASK")
    monkeypatch.setenv("EMOTION_WORKDIR", str(tmp_path / "cpu-worker"))
    (tmp_path / "cpu-worker").mkdir()
    cpu = workspaces.Settings.from_env()
    assert cpu.gpu_devices == ()
    with workspaces.gpu_lease(cpu, "a") as env:
        assert env == {}
    assert list((tmp_path / "cpu-worker").iterdir()) == []


def test_a_lease_held_by_a_killed_process_is_free_again(tmp_path, monkeypatch):
    import subprocess
    import sys

    settings = gpu_settings(tmp_path, "0", monkeypatch=monkeypatch)
    holder = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
    holder += "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(300)"
    proc = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / "gpu-0.lock")], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"held\n"
        with pytest.raises(workspaces.TaskError):
            with workspaces.gpu_lease(settings, "a", timeout=0.2):
                pass
    finally:
        proc.kill()  # SIGKILL: no clean-up code runs, the kernel drops the lock
        proc.wait()
    with workspaces.gpu_lease(settings, "a", timeout=1) as env:
        assert env["CUDA_VISIBLE_DEVICES"] == "0"


def test_the_stage_command_runs_on_the_leased_gpu(tmp_path, monkeypatch):
    from contextlib import contextmanager

    settings = gpu_settings(tmp_path, "3", monkeypatch=monkeypatch)
    calls = []

    @contextmanager
    def no_clone(settings, task, commit=None):
        yield tmp_path

    def recording_dvc(cwd, *args, env=None):
        calls.append((args, env))
        return ""  # DVC executed nothing

    monkeypatch.setattr(workspaces, "workspace", no_clone)
    monkeypatch.setattr(workspaces, "dvc", recording_dvc)
    assert workspaces.run_stage(settings, "abc", "train@irv2")["executed"] == []
    [(args, env)] = calls
    assert args[:2] == ("repro", "--pull")
    assert env == {"CUDA_VISIBLE_DEVICES": "3", "TF_FORCE_GPU_ALLOW_GROWTH": "true", workspaces.EXECUTE: "train@irv2"}


# --- transient faults are told apart ---------------------------------------------------------------------------------

# Verbatim output of the failed commands, captured on this machine (ports and hashes as they came):
UNREACHABLE_OUTPUTS = {
    # `git clone ssh://root@127.0.0.1:1/x.git`
    "git over ssh, port closed": (
        "Cloning into 'x'...\nssh: connect to host 127.0.0.1 port 1: Connection refused\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n"
    ),
    # `git clone http://127.0.0.1:1/x.git`
    "git over http, port closed": (
        "Cloning into 'x'...\nfatal: unable to access 'http://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1 "
        "port 1 after 0 ms: Couldn't connect to server\n"
    ),
    # `git clone https://nonexistent.invalid/x.git`
    "git over https, unknown host": (
        "Cloning into 'x'...\nfatal: unable to access 'https://nonexistent.invalid/x.git/': Could not resolve host: "
        "nonexistent.invalid\n"
    ),
    # `git clone git://127.0.0.1:1/x.git`
    "git protocol, port closed": (
        "Cloning into 'x'...\nfatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection "
        "refused\n\n"
    ),
    # `dvc push` to an s3:// remote whose endpoint (moto_server, started and killed) refuses connections
    "dvc push, S3 endpoint down": (
        'ERROR: unexpected error - Could not connect to the endpoint URL: "http://127.0.0.1:45577/b?list-type=2&'
        'prefix=store%2Ffiles%2Fmd5%2F00%2F0&delimiter=&encoding-type=url"\n\n'
        "Having any troubles? Hit us up at https://dvc.org/support, we are always happy to help!\n"
    ),
    # `dvc pull` from it
    "dvc pull, S3 endpoint down": (
        'ERROR: failed to connect to s3 (b/store/files/md5) - Could not connect to the endpoint URL: "http://127.0.0.1'
        ':59807/b/store/files/md5"\nERROR: failed to pull data from the cloud - 1 files failed to download\n'
    ),
}

NOT_UNREACHABLE_OUTPUTS = {
    # a rejected deploy key: no retry fixes it (same last lines as a refused connection)
    "git over ssh, key refused": (
        "Cloning into 'x'...\ngit@github.com: Permission denied (publickey).\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n"
    ),
    "dvc, missing object": "ERROR: failed to pull data from the cloud - Checkout failed for following targets:\n",
    "a stage's bug": "Traceback (most recent call last):\n  ...\nKeyError: 'irv2'\n",
}


@pytest.mark.parametrize("output", UNREACHABLE_OUTPUTS.values(), ids=UNREACHABLE_OUTPUTS.keys())
def test_an_unreachable_origin_or_remote_is_a_transient_fault(tmp_path, output):
    assert workspaces.unreachable(output)
    (tmp_path / "out").write_text(output)
    with pytest.raises(workspaces.Unreachable):
        workspaces.run(tmp_path, "sh", "-c", "cat out >&2; exit 128")


@pytest.mark.parametrize("output", NOT_UNREACHABLE_OUTPUTS.values(), ids=NOT_UNREACHABLE_OUTPUTS.keys())
def test_other_failures_are_not_retried_as_transient(tmp_path, output):
    assert not workspaces.unreachable(output)
    (tmp_path / "out").write_text(output)
    with pytest.raises(workspaces.TaskError) as failed:
        workspaces.run(tmp_path, "sh", "-c", "cat out >&2; exit 1")
    assert type(failed.value) is workspaces.TaskError


def test_an_ssh_origin_on_a_closed_port_is_unreachable(tmp_path):
    """The real thing, once: git's own output for an origin nobody answers at."""
    with pytest.raises(workspaces.Unreachable, match="ssh: connect to host 127.0.0.1 port 1"):
        workspaces.git(tmp_path, "clone", "ssh://root@127.0.0.1:1/x.git")


def test_a_task_folder_left_by_a_killed_task_is_swept_by_the_next_one_and_live_ones_are_kept(tmp_path):
    """A worker killed mid-task cannot remove its task's folder (a clone plus pulled data: gigabytes); the next
    workspace made beside it does, since nothing holds the folder's .owner lock any more."""
    import subprocess
    import sys

    tasks = tmp_path / "tasks"
    dead, live, unclaimed = (tasks / f"{workspaces.PREFIX}{name}" for name in ("dead", "live", "new"))
    for folder in (dead, live, unclaimed):
        folder.mkdir(parents=True)
    claim = "import sys; sys.path.insert(0, sys.argv[2]); import workspaces; from pathlib import Path\n"
    claim += "workspaces.claim(Path(sys.argv[1])); print('held', flush=True); import time; time.sleep(300)"
    proc = subprocess.Popen(
        [sys.executable, "-c", claim, str(dead), str(workspace.REPO / "dags")], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline() == b"held\n"
        assert workspaces.sweep(tasks) == []  # its owner lives
    finally:
        proc.kill()  # SIGKILL, as a worker dies: no clean-up code runs
        proc.wait()
    owner = workspaces.claim(live)
    try:
        assert workspaces.sweep(tasks) == [dead]
        assert sorted(p.name for p in tasks.iterdir()) == sorted([live.name, unclaimed.name])
    finally:
        import os

        os.close(owner)
