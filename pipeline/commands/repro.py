"""`python -m pipeline repro [--jobs N]`: the whole pipeline as `dvc repro` runs it, independent stages side by side.

`dvc repro` runs one stage at a time. While a stage's command runs, DVC no longer holds its repository lock, only read
locks on that stage's dependencies and write locks on its outputs, so a second `dvc repro --single-item` of a stage
sharing no output with it can run meanwhile; with `--wait-for-lock` each waits out the other's short locked steps
(checking a stage, committing its outputs) instead of failing. This command takes the stage graph from DVC itself
(`dvc dag --dot`) and starts each stage once every stage it reads from has succeeded, at most --jobs at a time. After
a failure it starts nothing more, lets the running stages finish, and exits 1 naming the stage. Every stage is still
run, checked and recorded by DVC (dvc.lock, the cache, the run-cache), so the result is what `dvc repro` leaves.

`make run` uses --jobs 2: on 2 CPU cores one 75 px training leaves the cores partly idle (tracing its graph uses one;
its small convolutions do not fill two), so the sample's two trainings finish sooner side by side than one after the
other, with the same results (README, Figures on the sample data). Two trainings on one GPU would compete for its
memory: use --jobs 1, or `dvc repro`, there.
"""

from __future__ import annotations

import argparse
import queue
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Params, UserError

_NODE = re.compile(r'"(?P<name>[^"]+)";')
_EDGE = re.compile(r'"(?P<source>[^"]+)" -> "(?P<target>[^"]+)";')
_FRAME = {"strict digraph {", "digraph {", "}"}
_OUTPUT = threading.Lock()  # one stage's line at a time


class StageFailed(UserError, RuntimeError):
    """A stage's `dvc repro` exited non-zero (its own output says why)."""


class Interrupted(UserError):
    """Ctrl-C: the stages running were stopped (DVC records none of them; a training resumes where it stopped)."""

    exit_code = 130


@dataclass
class Graph:
    """Stages in DVC's order, and for each the stages whose outputs it reads."""

    order: list[str] = field(default_factory=list)
    upstream: dict[str, set[str]] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--jobs", "-j", type=_positive, default=1, help="stages run at once (default: 1)")
    parser.add_argument("--dvc", help="the dvc command (default: the one beside this Python, else dvc on PATH)")


def main(params: Params, args: argparse.Namespace) -> None:
    dvc = args.dvc or _default_dvc()
    try:
        run(graph(dvc), dvc, args.jobs)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: the stages that were running stopped; run it again to go on") from None


def graph(dvc: str) -> Graph:
    """The pipeline's stages and edges as `dvc dag --dot` prints them (``.dvc`` files included: DVC reproduces those
    too, as it does in `dvc repro`)."""
    done = subprocess.run([dvc, "dag", "--dot"], capture_output=True, text=True)
    if done.returncode != 0:
        raise StageFailed(f"`dvc dag --dot` exited {done.returncode}: {done.stderr.strip()}")
    return parse_dot(done.stdout)


def parse_dot(text: str) -> Graph:
    """The graph of `dvc dag --dot`'s output; a line of another shape is refused, since a misread graph would run a
    stage before its inputs exist."""
    found = Graph()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line in _FRAME:
            continue
        if edge := _EDGE.fullmatch(line):
            for name in (edge["source"], edge["target"]):
                _add(found, name)
            found.upstream[edge["target"]].add(edge["source"])
        elif node := _NODE.fullmatch(line):
            _add(found, node["name"])
        else:
            raise StageFailed(f"`dvc dag --dot` printed a line this command does not understand: {line!r}")
    return found


def run(stages: Graph, dvc: str, jobs: int) -> None:
    """Reproduce every stage of ``stages``, each after its upstream ones, at most ``jobs`` at once."""
    waiting = list(stages.order)
    running: dict[str, subprocess.Popen] = {}
    succeeded: set[str] = set()
    failed: dict[str, int] = {}
    ended: queue.SimpleQueue[str] = queue.SimpleQueue()  # each stage's name once its output is all relayed
    try:
        while waiting or running:
            while not failed and len(running) < jobs:
                ready = next((s for s in waiting if stages.upstream[s] <= succeeded), None)
                if ready is None:
                    break
                waiting.remove(ready)
                running[ready] = _start(dvc, ready, jobs > 1, ended)
            if not running:
                break  # a failure (nothing more starts), or stages whose upstream can never succeed
            name = ended.get()
            code = running.pop(name).wait()
            if code == 0:
                succeeded.add(name)
            else:
                failed[name] = code
    finally:
        for process in running.values():  # interrupted: stop the stages still running (a training resumes)
            process.terminate()
        for process in running.values():
            process.wait()
    if waiting and not failed:
        raise StageFailed(f"stages whose upstream never ran: {', '.join(waiting)}")
    if failed:
        names = ", ".join(f"{name} (exit {code})" for name, code in failed.items())
        left = f"; not started: {', '.join(waiting)}" if waiting else ""
        raise StageFailed(f"dvc repro failed in {names}{left}")


def _start(dvc: str, name: str, prefixed: bool, ended: queue.SimpleQueue[str]) -> subprocess.Popen:
    process = subprocess.Popen(
        [dvc, "--wait-for-lock", "repro", "--single-item", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with _OUTPUT:
                sys.stdout.write(f"{name} | {line}" if prefixed else line)
                sys.stdout.flush()
        ended.put(name)

    threading.Thread(target=relay, name=f"repro {name}", daemon=True).start()
    return process


def _add(found: Graph, name: str) -> None:
    if name not in found.upstream:
        found.order.append(name)
        found.upstream[name] = set()


def _default_dvc() -> str:
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else shutil.which("dvc") or "dvc"


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return number
