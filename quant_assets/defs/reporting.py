"""Turn core ingest reports into Dagster metadata and check results."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pandas as pd

from quant_assets.core.ingest import IngestReport


def _md(df: pd.DataFrame, max_rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False) if not df.empty else "_(none)_")


def ingest_metadata(reports: list[IngestReport], dataset_path: str) -> dict:
    """Row counts, tickers, date span, schema, a preview and the quarantine tally."""
    rows = sum(r.rows_clean for r in reports)
    firsts = [r.first_event for r in reports if r.first_event is not None]
    lasts = [r.last_event for r in reports if r.last_event is not None]
    reasons = sum((r.reasons for r in reports), Counter())
    schema = next((r.schema for r in reports if r.schema), [])
    preview = next((r.preview for r in reports if not r.preview.empty), pd.DataFrame())
    per_partition = pd.DataFrame(
        [
            {
                "partition": r.partition.isoformat(),
                "clean": r.rows_clean,
                "quarantined": r.rows_quarantined,
                "written": r.rows_written,
                "bad_share": round(r.bad_share, 4),
            }
            for r in reports
        ]
    )
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "partitions": dg.MetadataValue.int(len(reports)),
        "rows_written": dg.MetadataValue.int(sum(r.rows_written for r in reports)),
        "rows_quarantined": dg.MetadataValue.int(sum(r.rows_quarantined for r in reports)),
        "tickers": dg.MetadataValue.int(max((r.tickers for r in reports), default=0)),
        "first_event_time": dg.MetadataValue.text(min(firsts).isoformat() if firsts else "-"),
        "last_event_time": dg.MetadataValue.text(max(lasts).isoformat() if lasts else "-"),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in schema]),
        "preview": _md(preview),
        "quarantine_reasons": _md(
            pd.DataFrame(sorted(reasons.items()), columns=["reason", "rows"]) if reasons else pd.DataFrame()
        ),
        "partitions_detail": _md(per_partition.sort_values("bad_share", ascending=False), 20),
        "path": dg.MetadataValue.path(dataset_path),
    }


def quarantine_check(asset_key: str, reports: list[IngestReport], max_bad_share: float) -> dg.AssetCheckResult:
    """Fails (ERROR, blocking) when any partition's quarantined share exceeds the limit."""
    worst = max(reports, key=lambda r: r.bad_share) if reports else None
    share = worst.bad_share if worst else 0.0
    breaches = [r for r in reports if r.bad_share > max_bad_share]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="quarantine_share",
        passed=not breaches,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(breaches)} partition(s) above {max_bad_share:.1%} bad rows"
            if breaches
            else f"all partitions at or below {max_bad_share:.1%} bad rows"
        ),
        metadata={
            "max_bad_share": dg.MetadataValue.float(max_bad_share),
            "worst_share": dg.MetadataValue.float(round(share, 6)),
            "worst_partition": dg.MetadataValue.text(worst.partition.isoformat() if worst else "-"),
            "quarantined_rows": dg.MetadataValue.int(sum(r.rows_quarantined for r in reports)),
            "breaching_partitions": dg.MetadataValue.text(
                ", ".join(r.partition.isoformat() for r in breaches[:20]) or "-"
            ),
        },
    )
