"""The whole core path on real data: StockNet 2014-2015 -> features -> snapshot -> walk-forward model.

Real markets hold no planted signal; the test states the honest out-of-sample
figure and fails only if it is implausibly good (leakage) or broken.
"""

import numpy as np

from quant_assets.core import snapshots
from quant_assets.core.features import store
from quant_assets.core.features.backfill import backfill
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.models import TrainConfig, train_walk_forward
from quant_assets.core.sources import make_sources


def test_stocknet_end_to_end_honest_out_of_sample_ic(stocknet_dir, tmp_path, capsys):
    prices, tweets = make_sources("stocknet", stocknet_dir=str(stocknet_dir))
    backfill(tmp_path, prices, tweets, "2014-01-02", "2015-12-31", {"producer": "test"})
    fs = store.FeatureStore(tmp_path, ALL_FEATURES)
    data, manifest = snapshots.build(tmp_path, fs, "2014-04-01", "2015-12-31", "2015-12-31", list(ALL_FEATURES), 1)
    assert manifest["row_count"] == len(data) > 25_000 and len(manifest["universe"]) >= 60
    result = train_walk_forward(data, list(ALL_FEATURES), TrainConfig())
    overall = result.fold_metrics.set_index("fold").loc["overall"]
    with capsys.disabled():
        print(f"\nStockNet 2014-04..2015-12 walk-forward out-of-sample: {result.fold_metrics.round(4).to_string()}")
    assert np.isfinite(overall["rank_ic"]) and overall["days"] > 200
    assert abs(overall["rank_ic"]) < 0.05  # large-cap daily returns: anything bigger would smell of leakage
