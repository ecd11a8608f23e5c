"""The signal metrics on frames small enough to work out by hand (the comments show the arithmetic)."""

import math

import numpy as np
import pandas as pd
import pytest

from quant_assets.core.research.metrics import daily_ic, hit_rate, icir, signal_metrics, wide_ic

# Day 1, names A, B, C: prediction 1, 2, 3 against label 1, 2, 4.
#   Pearson: demeaned prediction (-1, 0, 1), demeaned label (-4/3, -1/3, 5/3);
#   covariance sum 4/3 + 5/3 = 3, squares 2 and 42/9, IC = 3 / sqrt(2 * 42/9) = 3 * sqrt(3/28).
#   Spearman: ranks (1, 2, 3) against (1, 2, 3): 1.
# Day 2, names A..D: prediction 4, 3, 2, 1 against label 1, 2, 3, 4: exactly reversed, -1 either way.
DAY1_IC = 3 * math.sqrt(3 / 28)
TWO_DAYS = pd.DataFrame(
    {
        "date": [1, 1, 1, 2, 2, 2, 2],
        "entity_key": ["A", "B", "C", "A", "B", "C", "D"],
        "prediction": [1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0],
        "label": [1.0, 2.0, 4.0, 1.0, 2.0, 3.0, 4.0],
    }
)


def test_daily_ic_pearson_and_spearman_per_date():
    assert daily_ic(TWO_DAYS).to_dict() == pytest.approx({1: DAY1_IC, 2: -1.0})
    assert daily_ic(TWO_DAYS, method="spearman").to_dict() == pytest.approx({1: 1.0, 2: -1.0})


def test_daily_ic_is_nan_below_three_names_or_without_dispersion():
    frame = pd.DataFrame(
        {
            "date": [3, 3, 3, 4, 4, 4],
            "entity_key": ["A", "B", "C", "A", "B", "C"],
            # day 3: C has no label, two names left; day 4: the prediction does not vary
            "prediction": [1.0, 2.0, 3.0, 5.0, 5.0, 5.0],
            "label": [1.0, 2.0, np.nan, 1.0, 2.0, 3.0],
        }
    )
    assert daily_ic(frame).isna().all() and list(daily_ic(frame).index) == [3, 4]


def test_daily_ic_reads_the_named_columns():
    renamed = TWO_DAYS.rename(columns={"prediction": "p", "label": "y", "date": "day"})
    assert daily_ic(renamed, pred="p", label="y", by="day").to_dict() == pytest.approx({1: DAY1_IC, 2: -1.0})


def test_wide_ic_masks_each_side_to_the_names_with_both_values():
    # the 100 has no label: it must leave the prediction's mean too, so the row is (1, 2, 3) against (1, 2, 3)
    p = pd.DataFrame({"A": [1.0], "B": [2.0], "C": [3.0], "D": [100.0]})
    y = pd.DataFrame({"A": [1.0], "B": [2.0], "C": [3.0], "D": [np.nan]})
    assert wide_ic(p, y).tolist() == pytest.approx([1.0])
    # Spearman ranks after masking: (1, 3, 2) against (1, 2, 3), sum d^2 = 2, rho = 1 - 6*2/(3*8) = 0.5
    p = pd.DataFrame({"A": [10.0], "B": [30.0], "C": [20.0], "D": [-5.0]})
    assert wide_ic(p, y, method="spearman").tolist() == pytest.approx([0.5])
    with pytest.raises(ValueError, match="kendall"):
        wide_ic(p, y, method="kendall")


def test_icir_is_mean_over_sample_std():
    # (0.1, 0.3): mean 0.2, std(ddof=1) = sqrt(((-0.1)^2 + 0.1^2) / 1) = sqrt(0.02)
    assert icir(pd.Series([0.1, 0.3, np.nan])) == pytest.approx(0.2 / math.sqrt(0.02))
    assert math.isnan(icir(pd.Series([0.1, np.nan])))  # one value: no dispersion to divide by
    assert math.isnan(icir(pd.Series([0.2, 0.2])))


def test_hit_rate_counts_sign_agreement_of_demeaned_values():
    # day 1: demeaned prediction (-1, 0, 1), label (-4/3, -1/3, 5/3): B sits on its mean and is skipped, A and C agree;
    # day 2: prediction (1.5, 0.5, -0.5, -1.5), label (-1.5, -0.5, 0.5, 1.5): all four disagree. 2 hits of 6.
    assert hit_rate(TWO_DAYS) == pytest.approx(2 / 6)


def test_signal_metrics_gathers_the_daily_series():
    two = [DAY1_IC, -1.0]
    ic_std = abs(two[0] - two[1]) / math.sqrt(2)  # sample std of two values
    assert signal_metrics(TWO_DAYS) == pytest.approx(
        {
            "ic": (DAY1_IC - 1.0) / 2,
            "rank_ic": 0.0,  # (1 + -1) / 2
            "icir": ((DAY1_IC - 1.0) / 2) / ic_std,
            "rank_icir": 0.0,  # mean 0 over std sqrt(2)
            "hit_rate": 2 / 6,
            "days": 2,
        }
    )
