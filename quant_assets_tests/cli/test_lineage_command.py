"""``quant-assets lineage`` on a real registry: the upstream of any node, the downstream by kind, and what it says
for an id that is not in the graph."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

from quant_assets.cli import cli
from quant_assets.core.registry import lineage
from quant_assets.core.storage import pg


def test_lineage_of_a_prediction_day_its_downstream_and_unknown_nodes(pg_db):
    day = dt.date(2024, 6, 4)
    with pg.connect(pg_db) as conn:
        edges = lineage.feature_partition_edges("price/fv=u", dt.date(2024, 6, 3), {"ret_1": "a"}, "raw_prices",
                                                [dt.date(2024, 5, 31), dt.date(2024, 6, 3)], "p")  # fmt: skip
        read = ["features/price/fv=u/date=2024-06-03/part-1.parquet", "newest in features/price/fv=u: 2024-06-03"]
        edges += lineage.prediction_edges("model:m:v1", day, "c", read)
        lineage.add_edges(conn, edges + lineage.book_edges(day, "model:m:v1", ["raw_prices/date=2024-06-04/p.parquet"]))
    run = lambda *args: CliRunner().invoke(cli, ["lineage", *args, "--pg-url", pg_db])  # noqa: E731

    tree = run("prediction:m:v1:2024-06-04")
    assert tree.exit_code == 0, tree.output
    assert tree.output.splitlines() == [
        "prediction:m:v1:2024-06-04",
        "├── code:c",
        "├── model:m:v1",
        "└── features:price/fv=u:2024-06-03",
        "    ├── code:p",
        "    ├── feature:ret_1@a",
        "    └── source:raw_prices:2024-05-31..2024-06-03 (2 partitions)",
    ]
    down = run("--downstream", "source:raw_prices:2024-05-31")
    assert down.exit_code == 0, down.output
    assert "  prediction days (1):\n    prediction:m:v1: 1 on 2024-06-04\n" in down.output
    assert "  book sessions (1):\n    book: 1 on 2024-06-04\n" in down.output and "  models (0)\n" in down.output

    missing = run("prediction:m:v1:2024-06-05")
    assert missing.exit_code == 2
    assert "unknown lineage node 'prediction:m:v1:2024-06-05'" in missing.output
    assert "1 stored id(s) start with 'prediction:m:v1:': prediction:m:v1:2024-06-04 .. prediction:m:v1:2024-06-04" in (
        missing.output.replace("\n", " ")
    )
    wrong = run("--downstream", "raw_prices:2024-05-31")
    assert wrong.exit_code == 2 and "a node id starts with one of source, family" in wrong.output
