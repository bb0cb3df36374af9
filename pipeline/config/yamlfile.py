"""YAML files read with limits: a size cap on the file and on what its aliases expand to.

PyYAML shares one object among the aliases of an anchor, so ``a: &a [x, x, ...]`` and eight more levels of
``b: &b [*a, *a, ...]`` load at once; the billion items appear when anything walks them (the schema, a dump), which
then runs for minutes and gigabytes. The loader below counts what each node would expand to before building any
object, and refuses the file past MAX_NODES, in a few milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.errors import ConfigError

MAX_BYTES = 1 << 20  # 1 MiB: params.yaml is about 13 kB, dvc.yaml 8 kB
MAX_NODES = 100_000  # values once every alias is expanded; params.yaml has under 1,000
# collections inside collections: params.yaml goes 4 deep. PyYAML's scanner takes time quadratic in the depth of
# [[[...]]] (a 1 MiB file of them would run for hours) and its composer recurses once per level
MAX_DEPTH = 50


class TooLarge(yaml.YAMLError):
    """What the file's aliases expand to is past the limit (or refers to itself)."""


def expanded_size(node: yaml.Node, limit: int) -> int:
    """How many nodes ``node`` stands for with every alias written out; stops counting past ``limit``."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(current: yaml.Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise TooLarge("an alias refers to the collection that holds it (an endless value)")
        open_nodes.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(node)


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a document whose aliases expand to more than ``max_nodes`` values, or whose
    collections nest deeper than MAX_DEPTH."""

    max_nodes = MAX_NODES
    depth = 0

    def fetch_flow_collection_start(self, TokenClass: type) -> None:  # noqa: N803 (PyYAML's name)
        if self.flow_level >= MAX_DEPTH:
            raise TooLarge(f"collections nest more than {MAX_DEPTH} deep; flatten it")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise TooLarge(f"collections nest more than {MAX_DEPTH} deep; flatten it")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        if expanded_size(node, self.max_nodes) > self.max_nodes:
            raise TooLarge(
                f"its aliases expand to more than {self.max_nodes:,} values (a 'billion laughs' file?); "
                "write the values out, or use fewer aliases"
            )
        return super().construct_document(node)


# YAML 1.2 (DVC's reader) takes 1e-05 for a number; PyYAML's 1.1 rules want a dot (1.0e-05) and make it a string.
# `dvc exp run -S train.irv2.learning_rate=0.00001` writes 1e-05, so we read such a scalar as DVC does: a float.
BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load(path: Path, loader: type[BoundedLoader] = BoundedLoader) -> Any:
    """The YAML document in ``path`` with ``loader``; ConfigError, naming the file, for one over MAX_BYTES or one
    whose aliases expand past the loader's limit. yaml.YAMLError otherwise, and FileNotFoundError, as PyYAML's."""
    path = Path(path)
    with path.open("rb") as file:
        return parse(file.read(MAX_BYTES + 1), str(path), loader)


def parse(data: bytes, where: str, loader: type[BoundedLoader] = BoundedLoader) -> Any:
    """The YAML document in ``data`` (read from ``where``: a file, or a file at a git revision), as load() reads it."""
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{where}: larger than {MAX_BYTES // (1 << 20)} MiB, the limit of a YAML file here; is it the right file?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=loader)
    except TooLarge as exc:
        raise ConfigError(f"{where}: {exc}") from None
