"""Small files kept on a git remote under a ref of their own, outside branches and tags: a commit whose tree is the
files, nothing else. The gate's verdicts (pipeline/release/verdicts.py) and its score cache (pipeline/release/scores.py)
are kept this way; nothing fetches these refs by default, so clones and GTO do not see them."""

from __future__ import annotations

from pathlib import Path

from pipeline.release import tools


def store(root: Path, remote: str, ref: str, files: dict[str, bytes], message: str, parent: str | None = None) -> None:
    """Commit ``files`` (name -> UTF-8 text content) as a tree of their own, child of ``parent`` if given, and push
    the commit to ``remote`` as ``ref``, replacing what was there."""
    entries = []
    for name, data in files.items():
        blob = tools.git(root, "hash-object", "-w", "--stdin", stdin=data.decode("utf-8"))
        entries.append(f"100644 blob {blob}\t{name}")
    tree = tools.git(root, "mktree", stdin="\n".join(entries) + "\n")
    lineage = ["-p", parent] if parent else []
    commit = tools.git(root, *tools.identity(root), "commit-tree", tree, *lineage, "-m", message)
    tools.git(root, "push", "--quiet", "--force", remote, f"{commit}:{ref}")


def read(root: Path, remote: str, ref: str, name: str) -> str | None:
    """File ``name`` of ``ref`` on ``remote``; None where the remote has no such ref (tools.Unreachable when it cannot
    be reached)."""
    if not tools.git(root, "ls-remote", remote, ref):
        return None
    tools.git(root, "fetch", "--quiet", remote, ref)
    return tools.git(root, "show", f"FETCH_HEAD:{name}")
