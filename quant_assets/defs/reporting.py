"""Turn core reports (ingest reports, changes of a model's state, lineage tables) into Dagster metadata, events and
check results."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pandas as pd

from quant_assets.core.ingest.report import IngestReport
from quant_assets.core.ingest.validate import EXCLUDED_REASONS
from quant_assets.core.registry.states import Decision

SHARE_DEFINITION = (
    "damaged records quarantined / records read from the source, per partition (records: CSV data lines, "
    "tweet lines, synthetic rows; a whole-file problem counts as one); excluded reasons "
    f"({', '.join(sorted(EXCLUDED_REASONS))}) are quarantined but not counted"
)


def table(frame: pd.DataFrame) -> dg.MetadataValue:
    """``frame`` as a Dagster table (the UI sorts and filters it): integer columns typed as such, the rest text."""
    ints = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
    columns = [dg.TableColumn(c, "int" if c in ints else "string") for c in frame.columns]
    records = [
        dg.TableRecord({c: int(row[c]) if c in ints else str(row[c]) for c in frame.columns})
        for row in frame.to_dict("records")
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns))


def _md(df: pd.DataFrame, max_rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False) if not df.empty else "_(none)_")


def _notices(reports: list[IngestReport]) -> pd.DataFrame:
    """Distinct source notices of the run (a notice repeats in every partition the source served)."""
    seen = {(n.code, n.subject, n.detail) for r in reports for n in r.notices}
    return pd.DataFrame(sorted(seen), columns=["notice", "name", "detail"])


def _flags(reports: list[IngestReport]) -> pd.DataFrame:
    frames = [r.step_flags for r in reports if not r.step_flags.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ingest_metadata(reports: list[IngestReport], dataset_path: str) -> dict:
    """Row counts, records read, tickers, date span, schema, a preview, the quarantine tally and notices; the
    partitions whose delivery matched a receipt (``core/ingest/receipts.py``) count as read, with nothing written."""
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
                "read": r.records_read,
                "clean": r.rows_clean,
                "quarantined": r.rows_quarantined,
                "excluded": r.rows_excluded,
                "written": r.rows_written,
                "bad_share": round(r.bad_share, 4),
            }
            for r in reports
        ]
    )
    return {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "partitions": dg.MetadataValue.int(len(reports)),
        "records_read": dg.MetadataValue.int(sum(r.records_read for r in reports)),
        "rows_written": dg.MetadataValue.int(sum(r.rows_written for r in reports)),
        "partitions_unchanged": dg.MetadataValue.int(sum(r.unchanged for r in reports)),  # receipts matched
        "rows_quarantined": dg.MetadataValue.int(sum(r.rows_quarantined for r in reports)),
        "rows_excluded": dg.MetadataValue.int(sum(r.rows_excluded for r in reports)),
        "tickers": dg.MetadataValue.int(max((r.tickers for r in reports), default=0)),
        "first_event_time": dg.MetadataValue.text(min(firsts).isoformat() if firsts else "-"),
        "last_event_time": dg.MetadataValue.text(max(lasts).isoformat() if lasts else "-"),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in schema]),
        "preview": _md(preview),
        "quarantine_reasons": _md(
            pd.DataFrame(sorted(reasons.items()), columns=["reason", "rows"]) if reasons else pd.DataFrame()
        ),
        "source_notices": _md(_notices(reports), 50),
        "partitions_detail": _md(per_partition.sort_values("bad_share", ascending=False), 20),
        "path": dg.MetadataValue.path(dataset_path),
    }


def quarantine_check(asset_key: str, reports: list[IngestReport], max_bad_share: float) -> dg.AssetCheckResult:
    """Fails (ERROR, blocking) when any partition's damaged share exceeds the limit."""
    worst = max(reports, key=lambda r: r.bad_share) if reports else None
    share = worst.bad_share if worst else 0.0
    breaches = [r for r in reports if r.bad_share > max_bad_share]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="quarantine_share",
        passed=not breaches,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(breaches)} partition(s) above {max_bad_share:.1%} damaged records"
            if breaches
            else f"all partitions at or below {max_bad_share:.1%} damaged records"
        ),
        metadata={
            "share_definition": dg.MetadataValue.text(SHARE_DEFINITION),
            "max_bad_share": dg.MetadataValue.float(max_bad_share),
            "worst_share": dg.MetadataValue.float(round(share, 6)),
            "worst_partition": dg.MetadataValue.text(worst.partition.isoformat() if worst else "-"),
            "records_read": dg.MetadataValue.int(sum(r.records_read for r in reports)),
            "quarantined_rows": dg.MetadataValue.int(sum(r.rows_quarantined for r in reports)),
            "excluded_rows": dg.MetadataValue.int(sum(r.rows_excluded for r in reports)),
            "breaching_partitions": dg.MetadataValue.text(
                ", ".join(r.partition.isoformat() for r in breaches[:20]) or "-"
            ),
        },
    )


def _warning(asset_key: str, name: str, table: pd.DataFrame, what: str, max_rows: int = 50) -> dg.AssetCheckResult:
    """A non-blocking WARN result that fails when ``table`` has rows, and lists them."""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=table.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(table)} {what}" if len(table) else f"no {what}",
        metadata={"count": dg.MetadataValue.int(len(table)), "details": _md(table, max_rows)},
    )


def source_check(asset_key: str, reports: list[IngestReport]) -> dg.AssetCheckResult:
    """``source_complete``: every missing or unexpected source entry, by name."""
    return _warning(asset_key, "source_complete", _notices(reports), "source notice(s): missing or unexpected entries")


def steps_check(asset_key: str, reports: list[IngestReport]) -> dg.AssetCheckResult:
    """``price_steps``: bars kept but flagged for a large move since the previous stored bar."""
    flags = _flags(reports)
    if not flags.empty:
        flags = flags.assign(ratio=flags["ratio"].round(4)).sort_values(["date", "ticker", "field"])
    return _warning(asset_key, "price_steps", flags, "flagged step(s) (kept; ratio = value / previous bar)", 100)


def excluded_check(asset_key: str, reports: list[IngestReport]) -> dg.AssetCheckResult:
    """``excluded_records``: valid records left out on purpose, per partition and reason."""
    rows = [
        {"partition": r.partition.isoformat(), "reason": reason, "records": n, "of_read": r.records_read}
        for r in reports
        for reason, n in sorted(r.reasons.items())
        if reason in EXCLUDED_REASONS
    ]
    table = pd.DataFrame(rows)
    return _warning(asset_key, "excluded_records", table, "partition/reason(s) with records excluded on purpose")


def state_change(node: str, change: Decision, **extra) -> dg.AssetObservation:
    """A change of a model's state as an observation on ``trained_model``, with the same keys whoever made it
    (the state sensor, a reviewer's approval): from, to, the session whose information decided it, the rule and
    the values it read."""
    values = {k: v for k, v in change.values.items() if v is not None}
    return dg.AssetObservation(
        asset_key="trained_model",
        description=f"{node}: {change.from_state} -> {change.to_state} from the session after {change.date} "
        f"({change.reason})",
        metadata={"model": node, "from": change.from_state, "to": change.to_state, "information of": change.date,
                  "rule": change.signal, **values, **extra},
    )  # fmt: skip
