"""Text rendering of lineage walks, with long runs of source partitions folded into ranges."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd


def _fold_sources(children: list[str]) -> list[str]:
    """source:<dataset>:<date> siblings become one line per dataset: first..last (n partitions)."""
    by_dataset: dict[str, list[str]] = defaultdict(list)
    others = []
    for c in children:
        if c.startswith("source:") and c.count(":") == 2:
            _, dataset, day = c.split(":")
            by_dataset[dataset].append(day)
        else:
            others.append(c)
    folded = [f"source:{ds}:{min(days)}..{max(days)} ({len(days)} partitions)" for ds, days in by_dataset.items()]
    return sorted(others) + sorted(folded)


def render_upstream(root: str, edges: pd.DataFrame) -> str:
    """The tree of everything ``root`` was built from (edges: src -> dst)."""
    parents: dict[str, list[str]] = defaultdict(list)
    for src, dst in zip(edges["src"], edges["dst"], strict=True):
        parents[dst].append(src)
    lines = [root]
    seen: set[str] = set()

    def walk(node: str, indent: str) -> None:
        kids = _fold_sources(parents.get(node, []))
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            repeat = kid in seen and kid in parents
            lines.append(f"{indent}{'└── ' if last else '├── '}{kid}{' (see above)' if repeat else ''}")
            if kid in parents and not repeat:
                seen.add(kid)
                walk(kid, indent + ("    " if last else "│   "))

    walk(root, "")
    return "\n".join(lines)
