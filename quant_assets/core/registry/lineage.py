"""Lineage in Postgres: a graph of edges ``src -> dst`` between typed node ids.

Nodes: ``source:<dataset>:<date>``, ``family:<name>@<version>``, ``feature:<name>@<version>``,
``snapshot:<fingerprint>``, ``code:<git sha>``, ``model:<name>:v<version>``, ``backtest:<id>``,
``drift:<id>``. Upstream and downstream walks are recursive queries; the blast radius of a node is every
model and backtest downstream of it. ``lineage_view.py`` renders a walk as text.
"""

from __future__ import annotations

import pandas as pd
from psycopg2.extras import execute_values


def snapshot_edges(
    manifest: dict, feature_family: dict[str, str], sources: dict[str, list[str]]
) -> list[tuple[str, str]]:
    """Edges into one snapshot: its code version and the code versions that produced the feature rows it read,
    the feature versions it holds (each under its family version), and every raw partition it was built from.

    ``feature_family`` maps a feature name to its family version ("price@abc"); ``sources`` maps a raw dataset to
    the partitions the snapshot read (``snapshots.lineage_windows``). Partitions and producers point at the
    snapshot itself, not at the family node its features share with other snapshots: a walk down from a
    partition reaches only the snapshots (and their models) built from it, and a model's upstream lists only
    the partitions its own snapshot read.
    """
    snap = f"snapshot:{manifest['fingerprint']}"
    edges = [(f"code:{manifest['code_version']}", snap)]
    for name, version in manifest["features"].items():
        feature = f"feature:{name}@{version}"
        edges += [(feature, snap), (f"family:{feature_family[name]}", feature)]
    for dataset, partitions in sources.items():
        edges += [(f"source:{dataset}:{d}", snap) for d in partitions]
    producers = {v for versions in manifest.get("producer_versions", {}).values() for v in versions}
    edges += [(f"code:{v}", snap) for v in sorted(producers)]
    return edges


def add_edges(conn, edges) -> None:
    with conn.cursor() as cur:
        execute_values(cur, "INSERT INTO quant.lineage_edges (src, dst) VALUES %s ON CONFLICT DO NOTHING", list(edges))


def upstream(conn, node: str) -> pd.DataFrame:
    """Every edge on a path into ``node``: (src, dst, depth)."""
    return _walk(conn, node, "dst", "src")


def downstream(conn, node: str) -> pd.DataFrame:
    """Every edge on a path out of ``node``: (src, dst, depth)."""
    return _walk(conn, node, "src", "dst")


def _walk(conn, node: str, here: str, there: str) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            f"""WITH RECURSIVE walk(src, dst, depth) AS (
                    SELECT src, dst, 1 FROM quant.lineage_edges WHERE {here} = %s
                    UNION
                    SELECT e.src, e.dst, w.depth + 1 FROM quant.lineage_edges e
                    JOIN walk w ON e.{here} = w.{there} WHERE w.depth < 20)
                SELECT src, dst, min(depth) AS depth FROM walk GROUP BY src, dst ORDER BY depth, src, dst""",
            (node,),
        )
        return pd.DataFrame(cur.fetchall(), columns=["src", "dst", "depth"])


def node_exists(conn, node: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM quant.lineage_edges WHERE src = %s OR dst = %s)", (node, node))
        return cur.fetchone()[0]


def blast_radius(conn, node: str) -> list[str]:
    """Models and backtests that used ``node`` (a feature version, snapshot, source partition or code version)."""
    nodes = set(downstream(conn, node)["dst"])
    return sorted(n for n in nodes if n.startswith(("model:", "backtest:")))
