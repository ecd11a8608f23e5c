"""What the lake holds, answered by DuckDB in-process over the Parquet files."""

from __future__ import annotations

import pandas as pd

from quant_assets.core.features.files import day_files, family_dirs
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

DATASETS = ("raw_prices", "alt_data")


def _span(con, files: list, key: str) -> dict:
    """Partitions, rows, distinct keys and event-time span of the Parquet ``files``."""
    return (
        con.execute(
            f"""
            SELECT count(DISTINCT date) AS partitions, count(*) AS rows, count(DISTINCT {key}) AS tickers,
                   min(event_time) AS first_event, max(event_time) AS last_event
            FROM read_parquet(?, hive_partitioning = true)
            """,
            [[str(f) for f in files]],
        )
        .fetchdf()
        .iloc[0]
        .to_dict()
    )


def summarize(root: Location) -> pd.DataFrame:
    """Per dataset and feature family version: partitions, rows (all versions), tickers, event-time span."""
    rows = []
    con = fs.duckdb_connection([root])
    for name in DATASETS:
        entry = {
            "dataset": name,
            "partitions": 0,
            "rows": 0,
            "tickers": 0,
            "first_event": None,
            "last_event": None,
            "quarantined": 0,
        }
        files, rejected = lake.dataset_files(root, name), lake.dataset_files(root, f"quarantine/{name}")
        if files:
            entry.update(_span(con, files, "ticker"))
        if rejected:
            entry["quarantined"] = con.execute(
                "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)", [[str(f) for f in rejected]]
            ).fetchone()[0]
        rows.append(entry)
    for fdir in family_dirs(root):
        entry = {"dataset": f"features/{fdir.parent.name}@{fdir.name[3:]}", "quarantined": 0}
        files = day_files(fdir)
        if files:
            entry.update(_span(con, files, "entity_key"))
        rows.append(entry)
    return pd.DataFrame(rows)


def registry_summary(conn, root: Location) -> pd.DataFrame:
    """Models in the registry with their status, state now, test metrics, promotion decision and days scored."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.name || ':v' || m.version AS model, m.status,
                      coalesce((SELECT s.to_state FROM quant.model_states s WHERE s.model_id = m.model_id
                                ORDER BY s.transition_id DESC LIMIT 1),
                               CASE m.status WHEN 'champion' THEN 'live' WHEN 'candidate' THEN 'shadow'
                                             ELSE 'retired' END) AS state,
                      left(m.snapshot, 12) AS snapshot,
                      max(x.value) FILTER (WHERE x.metric = 'rank_ic') AS test_rank_ic,
                      max(x.value) FILTER (WHERE x.metric = 'icir') AS test_icir,
                      (SELECT p.decision FROM quant.model_promotions p WHERE p.model_id = m.model_id
                       ORDER BY p.promotion_id DESC LIMIT 1) AS decision
               FROM quant.models m LEFT JOIN quant.model_metrics x
                 ON x.model_id = m.model_id AND x.dataset_type = 'test' AND x.scope = 'overall'
               GROUP BY m.model_id ORDER BY m.model_id"""
        )
        models = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    files = lake.dataset_files(root, "predictions")
    if models.empty or not files:
        return models.assign(days_scored=0)
    with fs.duckdb_connection([root]) as con:
        scored = con.sql(
            "SELECT model, count(DISTINCT date) AS days_scored FROM read_parquet(?, hive_partitioning = true) "
            "GROUP BY model",
            params=[[str(f) for f in files]],
        ).df()
    scored["model"] = scored["model"].str.removeprefix("model:")
    out = models.merge(scored, on="model", how="left").fillna({"days_scored": 0})
    return out.astype({"days_scored": int})
