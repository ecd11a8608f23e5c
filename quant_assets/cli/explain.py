"""``quant-assets explain``: why a model predicted what it did on a past session (core/registry/explain.py)."""

from __future__ import annotations

import sys

import click

from quant_assets.cli.options import data_root, pg_url, registry


@click.command()
@click.argument("model")
@click.argument("session")
@click.argument("ticker", required=False)
@click.option("--rows", "rows_view", is_flag=True, help="List every feature row the session's scoring used instead.")
@click.option("--known-at", help="The knowledge cut-off of the today's-knowledge section (default: now, UTC).")
@data_root
@pg_url
def explain(model, session, ticker, rows_view, known_at, data_root, pg_url) -> None:
    """Explain MODEL's (name:vN, or a name: its champion) prediction for TICKER on SESSION: the feature vector it
    saw at the decision time (as known then), the prediction recomputed from its verified artifact against the
    stored one (exit 1 if they differ; 2 for a model, session or name it did not score), and what the same events
    as known now would give. Without TICKER, or with --rows: every feature row the session's scoring used, its file
    and the raw parts behind it."""
    import pandas as pd

    from quant_assets.cli import inputs
    from quant_assets.core.features.library import ALL_FEATURES
    from quant_assets.core.features.store import FeatureStore
    from quant_assets.core.registry import explain as core

    day = inputs.session(session, "session")
    store = FeatureStore(data_root, ALL_FEATURES)
    with registry(pg_url) as conn:
        try:
            if rows_view or ticker is None:
                click.echo(_rows_text(core.used_rows(conn, data_root, store, model, day)))
                return
            now = pd.Timestamp(known_at or pd.Timestamp.now(tz="UTC"))
            found = core.explain(
                conn, data_root, store, model, day, ticker, now if now.tzinfo else now.tz_localize("UTC")
            )
        except core.ExplainError as exc:
            raise inputs.InputError(str(exc)) from None
    click.echo(_explanation_text(found))
    if not found.identical:
        sys.exit(1)


def _table(frame) -> str:
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_colwidth", 120, "display.max_rows", 100_000):
        return frame.to_string(index=False) if len(frame) else "  (none)"


def _explanation_text(found) -> str:
    """The vector, the two predictions and their verdict, then the today's-knowledge section."""
    verdict = "identical" if found.identical else "differs"
    lines = [
        f"{found.node} on {found.day} for {found.ticker}: decision time {found.decision_time}",
        f"inputs as known then ({len(found.then)} features):",
        _table(found.then),
        f"recomputed prediction: {found.recomputed!r}",
        f"stored prediction:     {found.stored!r}",
        verdict,
        "",
        f"today's knowledge (events up to {found.decision_time}, as known at {found.known_at}):",
    ]
    if not found.restated:
        lines.append("no input restated since")
        return "\n".join(lines)
    changed = found.now[found.now["feature"].isin(found.restated)]
    lines += [
        f"restated inputs ({len(found.restated)}): {', '.join(found.restated)}",
        _table(changed),
        f"prediction with today's knowledge: {found.now_prediction!r}",
    ]
    return "\n".join(lines)


def _rows_text(used) -> str:
    """The rows table, then each marker with the raw parts it names."""
    lines = [f"{used.node} on {used.day}: {len(used.rows)} feature rows used", _table(used.rows), ""]
    lines.append(f"raw sources ({len(used.sources)} input markers):")
    for marker, parts in used.sources.items():
        lines.append(f"  {marker}: {len(parts)} raw part(s)")
        lines += [f"    {p}" for p in parts]
    return "\n".join(lines)
