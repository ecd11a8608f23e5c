"""Matplotlib figures as markdown images for materialisation metadata: every plot the assets show.

matplotlib is imported on the first plot, not with the definitions: loading the code location (every CLI call,
code server and step process) does not pay for it.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

if TYPE_CHECKING:
    import matplotlib.pyplot as plt


def _pyplot():
    from quant_assets.core.research.tearsheet import pyplot

    return pyplot()


def figure() -> tuple[plt.Figure, plt.Axes]:
    return _pyplot().subplots(figsize=(7, 3.5), dpi=90)


def as_markdown(fig: plt.Figure, title: str) -> dg.MetadataValue:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    _pyplot().close(fig)
    return png_markdown(buf.getvalue(), title)


def png_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """PNG bytes as a markdown image the UI renders inline (a figure drawn elsewhere, e.g. a tear sheet)."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def daily_ic(ic: pd.Series, title: str) -> dg.MetadataValue:
    """A daily IC series (core/research/metrics.daily_ic) as bars by date with its 20-day mean."""
    fig, ax = figure()
    x = pd.to_datetime(pd.Series(ic.index))
    ax.bar(x, ic.to_numpy(), width=1.0)
    ax.plot(x, ic.rolling(20, min_periods=5).mean().to_numpy(), color="black")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(f"{title} (bars) and its 20-day mean")
    return as_markdown(fig, title)


def equity_and_drawdown(daily: pd.DataFrame) -> tuple[dg.MetadataValue, dg.MetadataValue]:
    """Compounded gross and net equity curves, and the drawdown of net wealth (columns gross, net)."""
    x = pd.to_datetime(pd.Series(daily.index))
    fig, ax = figure()
    for col in ("gross", "net"):
        ax.plot(x, (1 + daily[col]).cumprod().to_numpy(), label=col)
    ax.legend()
    ax.set_title("equity curve (compounded), gross and net of costs")
    equity = as_markdown(fig, "equity curve")
    wealth = (1 + daily["net"]).cumprod()
    fig, ax = figure()
    ax.fill_between(x, (wealth / wealth.cummax() - 1).to_numpy(), 0, color="firebrick")
    ax.set_title("drawdown of net wealth")
    return equity, as_markdown(fig, "drawdown")


def equity_curves(net: pd.DataFrame, best: str) -> dg.MetadataValue:
    """Net equity of every configuration of a sweep, only the best one labelled."""
    fig, ax = figure()
    x = pd.to_datetime(pd.Series(net.index))
    for name in net.columns:
        ax.plot(x, (1 + net[name].fillna(0)).cumprod().to_numpy(), lw=0.8, label=name if name == best else None)
    ax.legend()
    ax.set_title(f"net equity of {len(net.columns)} configurations (best labelled)")
    return as_markdown(fig, "sweep equity")


def importance(values: pd.Series) -> dg.MetadataValue:
    """The 15 most important features as horizontal bars."""
    fig, ax = figure()
    top = values.head(15)[::-1]
    ax.barh(top.index, top.to_numpy())
    ax.set_title("feature importance (mean gain over ensemble members)")
    return as_markdown(fig, "feature importance")


STATE_COLOURS = {"live": "green", "de-risked": "orange", "paused": "red", "retired": "grey", "shadow": "blue"}


def series(
    frame: pd.DataFrame,
    columns: list[str],
    title: str,
    lines: dict[str, float],
    changes: pd.DataFrame | None = None,
) -> dg.MetadataValue:
    """Columns of a per-date table (the stored history, not only a run's sessions) as lines, with labelled
    horizontal thresholds (critical in red), the critical sessions shaded (``level``) and the model's changes
    of state (``changes``: effective, to_state) marked where they took effect."""
    fig, ax = figure()
    x = pd.to_datetime(frame["date"])
    for col in columns:
        ax.plot(x, frame[col].astype(float).to_numpy(), label=col, marker=".", lw=1)
    for label, y in lines.items():
        ax.axhline(y, color="firebrick" if "critical" in label else "orange", lw=0.8, ls="--", label=label)
    if "level" in frame:
        for day in x[(frame["level"] == "critical").to_numpy()]:
            ax.axvspan(day - pd.Timedelta(hours=12), day + pd.Timedelta(hours=12), color="firebrick", alpha=0.08, lw=0)
    _mark_states(ax, changes if changes is not None else pd.DataFrame(columns=["effective", "to_state"]))
    ax.legend(fontsize=7)
    ax.set_title(title + " (critical sessions shaded, state changes marked)")
    return as_markdown(fig, title)


def _mark_states(ax, changes: pd.DataFrame) -> None:
    for change in changes.itertuples():
        day = pd.Timestamp(change.effective)
        ax.axvline(day, color=STATE_COLOURS.get(change.to_state, "grey"), ls="--", lw=1)
        ax.annotate(change.to_state, (day, 1.0), xycoords=("data", "axes fraction"), rotation=90, va="top", fontsize=7)


def book_equity(rows: pd.DataFrame) -> dg.MetadataValue:
    """The live book's compounded net equity over its realised sessions (rows: date, net, state), with each
    change of state marked where it took effect and the exposure below."""
    realised = rows.dropna(subset=["net"])
    fig, ax = figure()
    x = pd.to_datetime(realised["date"])
    ax.plot(x, (1 + realised["net"]).cumprod().to_numpy(), color="black", label="net equity")
    changes = rows[rows["state"].ne(rows["state"].shift())].iloc[1:]
    _mark_states(ax, changes.rename(columns={"date": "effective", "state": "to_state"}))
    ax.set_title("live book: net equity (compounded), state changes marked")
    return as_markdown(fig, "live book equity")
