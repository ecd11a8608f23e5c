"""Signal metrics, defined once (DESIGN.md, "Metrics"): IC, rank IC, ICIR, hit rate."""

from __future__ import annotations

import numpy as np
import pandas as pd


def daily_ic(
    frame: pd.DataFrame, pred: str = "prediction", label: str = "label", by: str = "date", method: str = "pearson"
) -> pd.Series:
    """Per-date cross-sectional correlation of prediction and realised label (NaN where undefined).

    Vectorised over dates: both sides are pivoted wide, masked to the names
    that have both values, ranked per row for Spearman, and correlated row-wise.
    """
    p = frame.pivot(index=by, columns="entity_key", values=pred).sort_index()
    y = frame.pivot(index=by, columns="entity_key", values=label).reindex_like(p)
    return wide_ic(p, y, method)


def wide_ic(p: pd.DataFrame, y: pd.DataFrame, method: str = "pearson") -> pd.Series:
    """Row-wise correlation of two aligned wide frames (rows: dates, columns: names)."""
    valid = p.notna() & y.notna()
    p, y = p.where(valid), y.where(valid)
    if method == "spearman":
        p, y = p.rank(axis=1), y.rank(axis=1)
    elif method != "pearson":
        raise ValueError(f"unknown correlation method {method!r}")
    pm, ym = p.sub(p.mean(axis=1), axis=0), y.sub(y.mean(axis=1), axis=0)
    denom = np.sqrt((pm**2).sum(axis=1) * (ym**2).sum(axis=1))
    ic = (pm * ym).sum(axis=1) / denom.where(denom > 1e-300)
    return ic.where(valid.sum(axis=1) >= 3).astype(float)


def icir(ic: pd.Series) -> float:
    ic = ic.dropna()
    return float(ic.mean() / ic.std(ddof=1)) if len(ic) > 1 and ic.std(ddof=1) > 0 else np.nan


def hit_rate(frame: pd.DataFrame, pred: str = "prediction", label: str = "label") -> float:
    """Share of rows where the sign of the cross-sectionally demeaned prediction matches the label's."""
    p = frame[pred] - frame.groupby("date")[pred].transform("mean")
    y = frame[label] - frame.groupby("date")[label].transform("mean")
    valid = (p != 0) & (y != 0) & p.notna() & y.notna()
    return float((np.sign(p[valid]) == np.sign(y[valid])).mean()) if valid.any() else np.nan


def signal_metrics(frame: pd.DataFrame, pred: str = "prediction", label: str = "label") -> dict[str, float]:
    ic = daily_ic(frame, pred, label)
    ric = daily_ic(frame, pred, label, method="spearman")
    return {
        "ic": float(ic.mean()),
        "rank_ic": float(ric.mean()),
        "icir": icir(ic),
        "rank_icir": icir(ric),
        "hit_rate": hit_rate(frame, pred, label),
        "days": int(ic.notna().sum()),
    }
