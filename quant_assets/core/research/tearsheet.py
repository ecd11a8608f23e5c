"""The one-page tear sheet of a candidate feature (core/research/feature_research.py) as PNG bytes.

matplotlib (Agg, no display) is imported on the first plot, never with the module: the Dagster definitions load
this module, and every code location load, CLI call and step process would otherwise pay for it
(benchmarks/RESULTS.md, import cost). ``pyplot`` is that import for every plot of the project (defs/plots.py too).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from quant_assets.core.research.feature_research import Report

CORRELATIONS_SHOWN = 14


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render(report: Report) -> bytes:
    """IC decay, cumulative IC, quantile returns, coverage, the correlation table and the guards, on one page."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), dpi=80)
    f = report.feature
    verdict = "passed" if report.lookahead_passed else "FAILED"
    fig.suptitle(
        f"{f.name}@{f.version} ({f.family}, lookback {f.lookback}): decisions {report.start}..{report.end}, "
        f"{len(report.values)} sessions; lookahead guards {verdict}",
        fontsize=13,
    )
    _ic_decay(axes[0, 0], report)
    _cumulative_ic(axes[0, 1], report)
    _quantiles(axes[0, 2], report)
    _coverage(axes[1, 0], report)
    _correlations(axes[1, 1], report)
    _summary(axes[1, 2], report)
    # fixed margins, not tight_layout: measuring every label to place them cost as much as drawing the page twice
    fig.subplots_adjust(left=0.045, right=0.875, bottom=0.075, top=0.87, wspace=0.2, hspace=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _ic_decay(ax, report: Report) -> None:
    summary = report.ic_summary()
    x = np.arange(len(summary))
    ax.bar(x - 0.2, summary["ic_mean"], 0.4, label="IC")
    ax.bar(x + 0.2, summary["rank_ic_mean"], 0.4, label="rank IC")
    for i, (t, v) in enumerate(zip(summary["rank_ic_t"], summary["rank_ic_mean"], strict=True)):
        ax.annotate(f"t={t:.1f}", (i + 0.2, v), ha="center", va="bottom" if v >= 0 else "top", fontsize=8)
    ax.set_xticks(x, [f"{h}d" for h in summary.index])
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title("IC decay: mean daily IC by horizon (Newey-West t of rank IC)")
    ax.legend()


def _cumulative_ic(ax, report: Report) -> None:
    x = pd.to_datetime(pd.Series(report.ic.index))
    for h in report.ic.columns[:2]:
        ax.plot(x, report.ic[h].fillna(0).cumsum().to_numpy(), label=f"IC {h}d")
        ax.plot(x, report.rank_ic[h].fillna(0).cumsum().to_numpy(), ls="--", label=f"rank IC {h}d")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title("cumulative daily IC")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=30)


def _quantiles(ax, report: Report) -> None:
    q = report.quantiles.drop("spread") * 1e4
    ax.bar([str(k) for k in q.index], q.to_numpy(), color="tab:green")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title(f"mean 1-day return by quantile (bps; top - bottom {report.quantiles['spread'] * 1e4:.1f})")
    ax.set_xlabel("quantile of the candidate (1 lowest)")


def _coverage(ax, report: Report) -> None:
    x = pd.to_datetime(pd.Series(report.coverage.index))
    ax.plot(x, report.coverage.to_numpy(), color="tab:purple")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"coverage: share of the universe with a value (overall {report.overall_coverage:.1%})", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30)


def _correlations(ax, report: Report) -> None:
    ax.axis("off")
    top = report.correlations.head(CORRELATIONS_SHOWN)
    ax.set_title(f"mean daily rank corr. with stored features (top {len(top)})", fontsize=10)
    if top.empty:
        ax.text(0.5, 0.5, "no stored feature to compare with", ha="center", va="center")
        return
    cells = [[name, f"{row.rank_corr:+.3f}", str(int(row.days))] for name, row in top.iterrows()]
    table = ax.table(cellText=cells, colLabels=["feature", "rank corr", "days"], loc="center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.2)


def _summary(ax, report: Report) -> None:
    ax.axis("off")
    lines = [f"{k}: {v:.3f}" for k, v in report.persistence.items()]
    for name, guard in report.guards.items():
        state = "passed" if guard.passed else f"FAILED ({len(guard.failures)} shown)"
        lines.append(f"{name}: {state}, {guard.checked} rows checked")
        lines += [f"  {m[:70]}" for m in guard.failures[:3]]
    lines.append(f"description: {report.feature.description[:70]}")
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=9)
    ax.set_title("persistence and guards")
