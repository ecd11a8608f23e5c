"""Views of lineage walks: text with long runs of dated nodes (partitions, prediction days, book sessions, drift
rows) folded into ranges (``quant-assets lineage``), and the tables the UI shows (a model's upstream, every model
version's downstream)."""

from __future__ import annotations

import re
from collections import defaultdict

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.registry import lineage, states

_DATED = re.compile(r"^(?P<series>.+):(?P<day>\d{4}-\d{2}-\d{2})$")  # <kind>:<...>:<date>
_LABELS = {"model": "models", "prediction": "prediction days", "book": "book sessions", "backtest": "backtests",
           "drift": "drift rows"}  # fmt: skip
DOWNSTREAM_COLUMNS = (
    "prediction_days", "prediction_span", "book_sessions", "book_span", "drift_rows", "drift_span", "backtests"
)  # fmt: skip


def dated(nodes: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """``nodes`` split into series of dated nodes ({"source:raw_prices": [dates]}, dates sorted) and the others."""
    series: dict[str, list[str]] = defaultdict(list)
    others = []
    for node in nodes:
        if match := _DATED.match(node):
            series[match["series"]].append(match["day"])
        else:
            others.append(node)
    return {k: sorted(v) for k, v in series.items()}, sorted(others)


def _fold(children: list[str]) -> list[tuple[str, list[str]]]:
    """Siblings as (line, the nodes it stands for): dated siblings of one series become one line,
    series:first..last (n partitions)."""
    series, others = dated(children)
    folded = [
        (f"{name}:{days[0]}..{days[-1]} ({len(days)} partitions)" if len(days) > 1 else f"{name}:{days[0]}",
         [f"{name}:{d}" for d in days])
        for name, days in series.items()
    ]  # fmt: skip
    return [(o, [o]) for o in others] + sorted(folded)


def runs(days: list[str]) -> list[str]:
    """Sorted ISO dates as runs of consecutive sessions ("a..b", or "c" alone; a date that is no session is a run
    of its own)."""
    out: list[list[tuple[str, int | None]]] = []
    for day in days:
        here = sessions.session_index(day) if sessions.is_session(day) else None
        last = out[-1][-1][1] if out else None
        if here is not None and last is not None and here == last + 1:
            out[-1].append((day, here))
        else:
            out.append([(day, here)])
    return [run[0][0] if len(run) == 1 else f"{run[0][0]}..{run[-1][0]}" for run in out]


def summary(found: dict[str, list[str]]) -> list[tuple[str, int, list[str]]]:
    """Each kind of ``lineage.affected``'s answer as (label, count, lines): undated nodes as they are, dated ones
    one line per series with its count and runs of consecutive sessions."""
    out = []
    for kind, nodes in found.items():
        series, others = dated(nodes)
        lines = others + [f"{name}: {len(days)} on {', '.join(runs(days))}" for name, days in sorted(series.items())]
        out.append((_LABELS.get(kind, kind), len(nodes), lines))
    return out


def render_affected(node: str, found: dict[str, list[str]]) -> str:
    """What ``node`` spreads to, grouped by kind with counts and folded date ranges."""
    lines = [f"Downstream of {node}:"]
    for label, count, items in summary(found):
        lines.append(f"  {label} ({count})" + (":" if items else ""))
        lines += [f"    {item}" for item in items]
    return "\n".join(lines)


def render_upstream(root: str, edges: pd.DataFrame) -> str:
    """The tree of everything ``root`` was built from (edges: src -> dst); a folded line's children are those of
    every node it stands for."""
    parents: dict[str, list[str]] = defaultdict(list)
    for src, dst in zip(edges["src"], edges["dst"], strict=True):
        parents[dst].append(src)
    lines = [root]
    seen: set[str] = set()

    def walk(members: list[str], indent: str) -> None:
        kids = _fold(sorted({p for m in members for p in parents.get(m, [])}))
        for i, (kid, stands_for) in enumerate(kids):
            last = i == len(kids) - 1
            built = any(m in parents for m in stands_for)
            repeat = kid in seen and built
            lines.append(f"{indent}{'└── ' if last else '├── '}{kid}{' (see above)' if repeat else ''}")
            if built and not repeat:
                seen.add(kid)
                walk(stands_for, indent + ("    " if last else "│   "))

    walk([root], "")
    return "\n".join(lines)


def model_downstream(conn, name: str) -> pd.DataFrame:
    """Per version of model ``name`` (with its state now): what it spread to, each kind's count and first..last
    date (backtests: their ids). One downstream walk per version."""
    rows = []
    for version in states.overview(conn, name).itertuples():
        found = lineage.affected(conn, f"model:{version.model}")
        row = {"model": f"model:{version.model}", "state": version.state}
        for kind, label in (("prediction", "prediction_days"), ("book", "book_sessions"), ("drift", "drift_rows")):
            days = sorted(n.rsplit(":", 1)[1] for n in found[kind])
            row[label] = len(days)
            row[f"{kind}_span"] = f"{days[0]}..{days[-1]}" if days else "-"
        row["backtests"] = ", ".join(n.removeprefix("backtest:") for n in found["backtest"]) or "-"
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "state", *DOWNSTREAM_COLUMNS])


def upstream_table(manifest: dict, code: str) -> pd.DataFrame:
    """A model's upstream as rows (kind, node, detail): its snapshot, the feature versions it holds, the code that
    trained it and the environment the snapshot was built in (not recorded by snapshots older than that field)."""
    span = " .. ".join(manifest.get("date_range", [])) or "-"
    rows = [("snapshot", f"snapshot:{manifest['fingerprint']}", f"{span}, as of {manifest.get('as_of', '-')}")]
    rows += [("feature", f"feature:{n}@{v}", "") for n, v in sorted(manifest["features"].items())]
    rows.append(("code", f"code:{code}", "trained the model"))
    environment = manifest.get("environment") or {"environment": "not recorded by this snapshot"}
    rows += [("environment", key, str(value)) for key, value in environment.items()]
    return pd.DataFrame(rows, columns=["kind", "node", "detail"])
