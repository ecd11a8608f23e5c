"""The whole core path on real data: StockNet 2014-2015 -> features -> snapshot -> walk-forward model.

Real markets hold no planted signal; the test states the honest out-of-sample
figure and fails only if it is implausibly good (leakage) or broken.
"""

import numpy as np

from quant_assets.core.features import store
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.research import snapshots
from quant_assets.core.research.training import TrainConfig, train_walk_forward


def test_stocknet_end_to_end_honest_out_of_sample_ic(stocknet_lake, capsys):
    fs = store.FeatureStore(stocknet_lake, ALL_FEATURES)
    data, manifest = snapshots.build(stocknet_lake, fs, "2014-04-01", "2015-12-31", "2015-12-31", list(ALL_FEATURES), 1)
    assert manifest["row_count"] == len(data) > 25_000 and len(manifest["universe"]) >= 60
    result = train_walk_forward(data, list(ALL_FEATURES), TrainConfig())
    overall = result.fold_metrics.set_index("fold").loc["overall"]
    with capsys.disabled():
        print(f"\nStockNet 2014-04..2015-12 walk-forward out-of-sample: {result.fold_metrics.round(4).to_string()}")
    assert np.isfinite(overall["rank_ic"]) and overall["days"] > 200
    assert abs(overall["rank_ic"]) < 0.05  # large-cap daily returns: anything bigger would smell of leakage
