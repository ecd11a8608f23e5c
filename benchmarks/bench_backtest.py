"""Backtest throughput on one core: 500 assets x 2,520 days, on a prepared panel and from the long frame, against
a plain NumPy floor of the same long-short rule measured in the same run.

Run: .venv/bin/python benchmarks/bench_backtest.py [--assets 500] [--days 2520] [--configs 20]

Measures core.backtest on a random panel with a weak planted signal, in this one process (NumPy's element-wise
operations are single-threaded):

- prepare: the long frame pivoted, ranked (long-short), ordered (top-k), IC and quantile returns, once per panel;
- configurations per second of ``run`` on the prepared panel, long-short (quantiles 0.1..0.28) and top-k (k 20..55,
  drop 2..6), each with its own costs: weights, trades, costs, P&L, net and gross metrics, the result frames;
- the floor: the same long-short rule (same ranks and labels, names x dates) as the fewest NumPy passes a script
  would write, ending in the net Sharpe, nothing else; the ratio engine / floor;
- configurations per second of ``run`` on the long frame (prepare each time: what a caller that does not share a
  panel pays; the pandas engine before the panel cost about 1.8 s per configuration here).

Figures are CPU seconds (time.process_time) unless marked wall; the machine is shared, so each section prints the
load average, and the ratio to the floor, measured minutes apart in the same process, is the figure to compare.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
from _common import arguments, load_text, print_table, ratio, report, section

from quant_assets.core.research import backtest


def make_frame(n_assets: int, n_days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_days, n_assets))
    label = 0.01 * (0.05 * signal + rng.normal(size=(n_days, n_assets)))
    days = pd.bdate_range("2015-01-01", periods=n_days).date
    names = [f"N{i:04d}" for i in range(n_assets)]
    return pd.DataFrame(
        {
            "date": np.repeat(days, n_assets),
            "entity_key": np.tile(names, n_days),
            "prediction": signal.ravel(),
            "label": label.ravel(),
        }
    )


def configs(kind: str, n: int) -> list[tuple[backtest.PortfolioRule, backtest.Costs]]:
    """``n`` configurations of one rule, each with its own costs (a minimum ticket on every other one)."""
    out = []
    for i in range(n):
        rule = (
            backtest.PortfolioRule("long_short", quantile=0.1 + 0.02 * (i % 10))
            if kind == "long_short"
            else backtest.PortfolioRule("topk", k=20 + 5 * (i % 8), n_drop=2 + i % 5)
        )
        out.append((rule, backtest.Costs(cost_bps=2 + i % 7, slippage_bps=3, min_cost=float(i % 2))))
    return out


def floor(panel: backtest.Panel, rule: backtest.PortfolioRule, costs: backtest.Costs) -> float:
    """The long-short rule's net Sharpe in as few plain NumPy passes as it takes, over the panel's ranks and labels
    (names x dates), in place where it can be: no frames, no other metric."""
    pct, q = panel.signals.pct, rule.quantile
    top, bottom = pct > 1 - q, pct <= q
    n_top, n_bottom = np.count_nonzero(top, axis=0), np.count_nonzero(bottom, axis=0)
    live = (panel.signals.count >= 2) & (n_top > 0) & (n_bottom > 0)
    with np.errstate(divide="ignore"):
        w = top * np.where(live, 1.0 / n_top * 0.5, 0.0)
        w -= bottom * np.where(live, 1.0 / n_bottom * 0.5, 0.0)
    trades = np.empty_like(w)
    trades[:, 0] = w[:, 0]
    np.subtract(w[:, 1:], w[:, :-1], out=trades[:, 1:])
    np.abs(trades, out=trades)
    cost = trades * (costs.cost_bps + costs.slippage_bps)
    cost /= 1e4
    np.maximum(cost, costs.min_cost / costs.capital, out=cost)
    cost *= trades > 0
    w *= panel.labels
    net = w.sum(axis=0) - cost.sum(axis=0)
    return float(net.mean() / net.std(ddof=1) * np.sqrt(252))


def cpu_each(fn, items, rounds: int) -> tuple[float, list]:
    """The median CPU seconds of ``fn`` on each item over ``rounds`` rounds, and the results of the last round."""
    times, out = [], []
    for _ in range(rounds):
        out = []
        for item in items:
            c0 = time.process_time()
            out.append(fn(*item))
            times.append(time.process_time() - c0)
    return statistics.median(times), out


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--assets", type=int, default=500, help="names in the random panel (default 500)")
    parser.add_argument("--days", type=int, default=2520, help="sessions in the panel (default 2520)")
    parser.add_argument("--configs", type=int, default=10, help="configurations of each rule (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over them, engine and floor in turn (default 5)")
    args = parser.parse_args()
    with report("bench_backtest", detail=f"{args.assets} assets x {args.days} days"):
        frame = make_frame(args.assets, args.days)
        section("prepare (once per panel; every configuration below shares it)")
        c0, t0 = time.process_time(), time.perf_counter()
        panel = backtest.prepare(frame)
        built = panel.signals.pct, panel.signals.orders  # what the two rules read, built on first use
        assert built[0].shape == built[1].pos.T.shape
        print(f"  prepare: {time.process_time() - c0:.2f} s CPU ({time.perf_counter() - t0:.2f} s wall)")
        section(f"on the prepared panel: {args.configs} configurations of each rule x {args.rounds} rounds")
        long_short = [(panel, rule, cost) for rule, cost in configs("long_short", args.configs)]
        topk = [(panel, rule, cost) for rule, cost in configs("topk", args.configs)]
        engine, floor_s, each = [], [], {}
        for _ in range(args.rounds):  # the engine and the floor in turn, so both see the same load
            engine.append(cpu_each(backtest.run, long_short, 1)[0])
            floor_s.append(cpu_each(floor, long_short, 1)[0])
        each["long_short"], each["floor"] = statistics.median(engine), statistics.median(floor_s)
        each["topk"], _ = cpu_each(backtest.run, topk, max(1, args.rounds // 2))
        sharpes = [backtest.run(*item).metrics["sharpe"] for item in long_short[:3]]
        assert np.allclose(sharpes, [floor(*item) for item in long_short[:3]], rtol=1e-9)  # the floor computes the same
        rows = [[name, f"{1 / sec:.1f}", f"{1000 * sec:.1f}"] for name, sec in each.items()]
        print_table("rule|configs/s|ms CPU each (median)", rows)
        print(f"  engine / floor (long-short, CPU per configuration): {ratio(each['long_short'], each['floor'])}")
        section("from the long frame (prepare + run each time), 2 configurations of each rule")
        items = [(frame, rule, cost) for kind in ("long_short", "topk") for rule, cost in configs(kind, 2)]
        cpu, _ = cpu_each(backtest.run, items, 1)
        print(f"  {1 / cpu:6.2f} configs/s ({cpu:.2f} s CPU each, median); {load_text()}")


if __name__ == "__main__":
    main()
