"""Lineage in Postgres: a graph of edges ``src -> dst`` between typed node ids.

Nodes: ``source:<dataset>:<date>`` (a raw partition), ``family:<name>@<version>``, ``feature:<name>@<version>``,
``features:<family>/fv=<unit>:<date>`` (one stored feature partition: a unit directory's day), ``snapshot:<fp>``,
``code:<git sha>``, ``model:<name>:v<version>``, ``prediction:<name>:v<version>:<date>`` (one model's scores of one
session), ``book:<date>`` (the live book's session), ``backtest:<id>``, ``drift:<name>:v<version>:<date>``.

Each edge names a read that happened: a feature partition's raw partitions are its window's (``units``' markers
hash their parts), a prediction day's feature partitions are those its point-in-time read answers from (its
staleness window per family, ``FeatureStore.read_inputs``), a book session's are the predictions it traded and the
price partitions it realised with, a drift row's the prediction days and price partitions of its windows, a
champion backtest's the stored prediction days it read. Book sessions are not chained: a session's positions
carry from the session before (``trading.live``), but an edge per session would make every later session
downstream of every earlier one, and a walk is depth-limited.

Upstream and downstream walks are one recursive query each; ``affected`` groups a node's downstream by kind (the
blast radius of a bad commit, feature version, delivery or snapshot). ``lineage_view.py`` renders them as text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd
from psycopg2.extras import execute_values

if TYPE_CHECKING:
    from quant_assets.core.research.scoring import DayScores

KINDS = ("model", "prediction", "book", "backtest", "drift")  # what a blast radius lists, in this order
NODE_KINDS = ("source", "family", "feature", "features", "snapshot", "code", *KINDS)
WALK_DEPTH = 20  # the longest path is 5 edges (family -> feature -> snapshot -> model -> prediction -> book)
_PART = re.compile(r"^(?P<base>.+)/date=(?P<day>\d{4}-\d{2}-\d{2})/[^/]+$")  # <base>/date=D/<file>


def prediction_node(model_node: str, day: dt.date | str) -> str:
    """``prediction:<name>:vN:<date>``: model ``model_node``'s scores of session ``day``."""
    return f"prediction:{model_node.removeprefix('model:')}:{day}"


def drift_node(model_node: str, day: dt.date | str) -> str:
    """``drift:<name>:vN:<date>``: model ``model_node``'s drift row of ``day``."""
    return f"drift:{model_node.removeprefix('model:')}:{day}"


def features_node(directory: str, day: dt.date | str) -> str:
    """``features:<family>/fv=<unit>:<date>``: one day of one feature directory (``directory``: "price/fv=abc")."""
    return f"features:{directory}:{day}"


def part_partitions(lines: Iterable[str]) -> dict[str, set[str]]:
    """The partitions that lake part names relative to the root (``<dataset>/date=D/part-...``, or
    ``features/<family>/fv=<unit>/date=D/part-...``) belong to: {base: {date}}. Other lines are not parts."""
    out: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        if match := _PART.match(line):
            out[match["base"]].add(match["day"])
    return out


def _feature_reads(lines: Iterable[str], day: dt.date) -> list[str]:
    """The feature partition nodes of the parts among ``lines`` (relative to the lake root) before ``day``: the
    partitions a read at ``day``'s decision time can answer from (the day's own holds only later events)."""
    found = part_partitions(lines)
    return sorted(
        features_node(base.removeprefix("features/"), on)
        for base, days in found.items()
        if base.startswith("features/")
        for on in days
        if on < day.isoformat()
    )


def feature_partition_edges(
    directory: str, day: dt.date, features: dict[str, str], dataset: str, partitions: Iterable[dt.date], producer: str
) -> list[tuple[str, str]]:
    """Edges into one stored feature partition: the feature versions its unit computed into it (``features``: name
    -> version), the raw partitions of ``dataset`` its window read (those holding parts) and the code version that
    computed it."""
    node = features_node(directory, day)
    edges = [(f"feature:{n}@{v}", node) for n, v in sorted(features.items())]
    edges += [(f"source:{dataset}:{p.isoformat()}", node) for p in partitions]
    return edges + [(f"code:{producer}", node)]


def prediction_edges(model_node: str, day: dt.date, code: str, read: Iterable[str]) -> list[tuple[str, str]]:
    """Edges into one (model, session) prediction node: the model, the code version that scored it, and the feature
    partitions its point-in-time read can answer from (``read``: the lines naming the window's stored files,
    ``FeatureStore.read_inputs``; its staleness window per family)."""
    node = prediction_node(model_node, day)
    return [(model_node, node), (f"code:{code}", node)] + [(f, node) for f in _feature_reads(read, day)]


def scoring_edges(model_node: str, code: str, scores: Iterable[DayScores]) -> list[tuple[str, str]]:
    """Edges into the prediction nodes of the days ``scores`` scored and stored (``scoring.score_days``); a day
    taken from its receipt (unchanged) or with no prediction has none to add."""
    return [e for s in scores if s.rows and not s.unchanged for e in prediction_edges(model_node, s.day, code, s.read)]


def book_edges(day: dt.date, model_node: str, parts: Iterable[str]) -> list[tuple[str, str]]:
    """Edges into the live book's session ``day``: the predictions of ``model_node`` it traded, and the raw price
    partitions among ``parts`` (``live.input_parts``: the session before's and the day's, whose labels realise
    the session before). Not the session before: positions carry over, but sessions are not chained (module
    docstring)."""
    node, traded = f"book:{day}", prediction_node(model_node, day)
    edges = [(model_node, traded), (traded, node)]  # the model's edge too: days scored before lineage had them
    prices = part_partitions(parts).get("raw_prices", set())
    return edges + [(f"source:raw_prices:{p}", node) for p in sorted(prices)]


def window_edges(node: str, model_node: str, parts: Iterable[str], scored: set[str]) -> list[tuple[str, str]]:
    """Edges into ``node`` (a drift row) from what its windows read among ``parts`` (names relative to the root):
    ``model_node``'s prediction days that exist as nodes (``scored``: other models' parts share the partitions)
    and the raw price partitions."""
    found = part_partitions(parts)
    days = [prediction_node(model_node, d) for d in sorted(found.get("predictions", set()))]
    edges = [(p, node) for p in days if p in scored]
    return edges + [(f"source:raw_prices:{d}", node) for d in sorted(found.get("raw_prices", set()))]


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
    """Insert ``edges``; those stored already are left (a rerun adds nothing)."""
    edges = list(dict.fromkeys(edges))
    if edges:
        with conn.cursor() as cur:
            sql = "INSERT INTO quant.lineage_edges (src, dst) VALUES %s ON CONFLICT DO NOTHING"
            execute_values(cur, sql, edges, page_size=1000)


def children(conn, node: str, kind: str) -> set[str]:
    """The nodes of ``kind`` one edge below ``node`` (e.g. a model's prediction days)."""
    with conn.cursor() as cur:
        cur.execute("SELECT dst FROM quant.lineage_edges WHERE src = %s AND starts_with(dst, %s)", (node, f"{kind}:"))
        return {r[0] for r in cur.fetchall()}


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
                    JOIN walk w ON e.{here} = w.{there} WHERE w.depth < %s)
                SELECT src, dst, min(depth) AS depth FROM walk GROUP BY src, dst ORDER BY depth, src, dst""",
            (node, WALK_DEPTH),
        )
        return pd.DataFrame(cur.fetchall(), columns=["src", "dst", "depth"])


def node_exists(conn, node: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM quant.lineage_edges WHERE src = %s OR dst = %s)", (node, node))
        return cur.fetchone()[0]


def similar(conn, node: str) -> tuple[str, int, str | None, str | None]:
    """What a mistyped id may have meant: the longest of ``node``'s prefixes (its id up to its last ``:``, else its
    kind) that stored nodes share, how many share it, and the first and last of them (None: no node of the kind)."""
    prefixes = [node.rsplit(":", 1)[0] + ":", node.partition(":")[0] + ":"] if ":" in node else [node]
    with conn.cursor() as cur:
        for prefix in prefixes:
            cur.execute(
                """SELECT count(*), min(n), max(n) FROM (SELECT src AS n FROM quant.lineage_edges
                   UNION SELECT dst FROM quant.lineage_edges) a WHERE starts_with(n, %s)""",
                (prefix,),
            )
            count, first, last = cur.fetchone()
            if count:
                return prefix, count, first, last
    return prefixes[-1], 0, None, None


def affected(conn, node: str) -> dict[str, list[str]]:
    """Everything downstream of ``node`` that a bad input spreads to, by kind (``KINDS``: models, prediction days,
    book sessions, backtests, drift rows), each sorted; one walk."""
    reached = set(downstream(conn, node)["dst"])
    return {kind: sorted(n for n in reached if n.startswith(f"{kind}:")) for kind in KINDS}


def blast_radius(conn, node: str) -> list[str]:
    """Models and backtests that used ``node`` (a feature version, snapshot, source partition or code version)."""
    found = affected(conn, node)
    return sorted(found["model"] + found["backtest"])
