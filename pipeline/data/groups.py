"""Disjoint groups (union-find): items joined directly or through others end in one group, named by its least item.

The manifest groups copies of one picture; the train/validation split merges subject groups that share a picture.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any


class Groups:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, item: Hashable) -> Any:
        """The least item of ``item``'s group (``item`` itself while it was never joined)."""
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(a), self.find(b)
        self.parent[max(ra, rb)] = min(ra, rb)
