"""What the lake holds, answered by DuckDB in-process over the Parquet files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from quant_assets.core.storage import lake

DATASETS = ("raw_prices", "alt_data")


def _span(con, files: str, key: str) -> dict:
    """Partitions, rows, distinct keys and event-time span of the Parquet files matching ``files``."""
    return (
        con.execute(
            f"""
            SELECT count(DISTINCT date) AS partitions, count(*) AS rows, count(DISTINCT {key}) AS tickers,
                   min(event_time) AS first_event, max(event_time) AS last_event
            FROM read_parquet(?, hive_partitioning = true)
            """,
            [files],
        )
        .fetchdf()
        .iloc[0]
        .to_dict()
    )


def summarize(root: Path) -> pd.DataFrame:
    """Per dataset and feature family version: partitions, rows (all versions), tickers, event-time span."""
    rows = []
    con = duckdb.connect()
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
        if lake.has_files(root, name):
            entry.update(_span(con, lake.dataset_glob(root, name), "ticker"))
        if lake.has_files(root, f"quarantine/{name}"):
            entry["quarantined"] = con.execute(
                "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
                [lake.dataset_glob(root, f"quarantine/{name}")],
            ).fetchone()[0]
        rows.append(entry)
    for fdir in sorted((Path(root) / "features").glob("*/fv=*")):
        entry = {"dataset": f"features/{fdir.parent.name}@{fdir.name[3:]}", "quarantined": 0}
        entry.update(_span(con, str(fdir / "date=*" / f"{lake.PART_PREFIX}*.parquet"), "entity_key"))
        rows.append(entry)
    return pd.DataFrame(rows)


def registry_summary(conn, root: Path) -> pd.DataFrame:
    """Models in the registry with their test metrics, promotion decision and days scored."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.name || ':v' || m.version AS model, m.status, left(m.snapshot, 12) AS snapshot,
                      max(x.value) FILTER (WHERE x.metric = 'rank_ic') AS test_rank_ic,
                      max(x.value) FILTER (WHERE x.metric = 'icir') AS test_icir,
                      (SELECT p.decision FROM quant.model_promotions p WHERE p.model_id = m.model_id
                       ORDER BY p.promotion_id DESC LIMIT 1) AS decision
               FROM quant.models m LEFT JOIN quant.model_metrics x
                 ON x.model_id = m.model_id AND x.dataset_type = 'test' AND x.scope = 'overall'
               GROUP BY m.model_id ORDER BY m.model_id"""
        )
        models = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    if models.empty or not lake.has_files(root, "predictions"):
        return models.assign(days_scored=0)
    scored = duckdb.sql(
        "SELECT model, count(DISTINCT date) AS days_scored FROM read_parquet(?, hive_partitioning = true) "
        "GROUP BY model",
        params=[lake.dataset_glob(root, "predictions")],
    ).df()
    scored["model"] = scored["model"].str.removeprefix("model:")
    out = models.merge(scored, on="model", how="left").fillna({"days_scored": 0})
    return out.astype({"days_scored": int})
