"""What the lake holds, answered by DuckDB in-process over the Parquet files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from quant_assets.core import lake

DATASETS = ("raw_prices", "alt_data")


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
            entry.update(
                con.execute(
                    """
                    SELECT count(DISTINCT date) AS partitions, count(*) AS rows,
                           count(DISTINCT ticker) AS tickers,
                           min(event_time) AS first_event, max(event_time) AS last_event
                    FROM read_parquet(?, hive_partitioning = true)
                    """,
                    [lake.dataset_glob(root, name)],
                )
                .fetchdf()
                .iloc[0]
                .to_dict()
            )
        if lake.has_files(root, f"quarantine/{name}"):
            entry["quarantined"] = con.execute(
                "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
                [lake.dataset_glob(root, f"quarantine/{name}")],
            ).fetchone()[0]
        rows.append(entry)
    for fdir in sorted((Path(root) / "features").glob("*/fv=*")):
        entry = {"dataset": f"features/{fdir.parent.name}@{fdir.name[3:]}", "quarantined": 0}
        entry.update(
            con.execute(
                """
                SELECT count(DISTINCT date) AS partitions, count(*) AS rows,
                       count(DISTINCT entity_key) AS tickers,
                       min(event_time) AS first_event, max(event_time) AS last_event
                FROM read_parquet(?, hive_partitioning = true)
                """,
                [str(fdir / "date=*" / f"{lake.PART_PREFIX}*.parquet")],
            )
            .fetchdf()
            .iloc[0]
            .to_dict()
        )
        rows.append(entry)
    return pd.DataFrame(rows)
