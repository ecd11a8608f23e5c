"""Signal metrics, defined once (DESIGN.md, "Metrics"): IC, rank IC, ICIR, hit rate."""

from __future__ import annotations

import numpy as np
import pandas as pd


def daily_ic(
    frame: pd.DataFrame, pred: str = "prediction", label: str = "label", by: str = "date", method: str = "pearson"
) -> pd.Series:
    """Per-date cross-sectional correlation of prediction and realised label (NaN where undefined)."""

    def corr(g: pd.DataFrame) -> float:
        if len(g) < 3 or g[pred].nunique() < 2 or g[label].nunique() < 2:
            return np.nan
        return g[pred].corr(g[label], method=method)

    return frame.groupby(by, sort=True)[[pred, label]].apply(corr).astype(float)


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
