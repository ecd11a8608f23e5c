"""``quant.drift_metrics`` (one row per date and model, upserted) and ``quant.run_failures`` in Postgres.

Each drift row keeps the fingerprint of what it was computed from (``inputs``: core.monitoring.inputs), so a rerun
reads back the rows whose inputs have not changed (``rows``) instead of computing them again.
"""

from __future__ import annotations

import json

import pandas as pd

from quant_assets.core.registry import lineage

COLUMNS = [
    "date",
    "model",
    "prediction_date",
    "n_names",
    "ic",
    "rank_ic",
    "ic_mean_5",
    "hit_rate",
    "net_return",
    "sharpe_5",
    "sharpe_20",
    "psi_mean",
    "psi_max",
    "psi_max_feature",
    "prediction_psi",
    "psi_n",
    "psi_noise",
    "psi",
    "levels",
    "level",
    "actions",
    "reasons",
    "inputs",  # the fingerprint of what the row was computed from (None: stored before rows had one)
    "run_id",
]
_JSON = ("psi", "levels", "reasons")


def upsert(conn, rows: list[dict], run_id: str | None = None) -> int:
    """Insert or replace each (date, model) row; a replaced row gets a new ``seq`` so readers see it again."""
    with conn.cursor() as cur:
        for row in rows:
            values = [json.dumps(row[c]) if c in _JSON else row.get(c) for c in COLUMNS[:-1]] + [run_id]
            cur.execute(
                f"""INSERT INTO quant.drift_metrics ({", ".join(COLUMNS)})
                    VALUES ({", ".join(["%s"] * len(COLUMNS))})
                    ON CONFLICT (date, model) DO UPDATE SET
                    {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[2:])},
                    seq = nextval('quant.drift_seq'), computed_at = now()""",
                values,
            )
    lineage.add_edges(conn, [(r["model"], lineage.drift_node(r["model"], r["date"])) for r in rows])
    return len(rows)


def read(conn, model: str | None = None, since_seq: int = 0, start=None, end=None) -> pd.DataFrame:
    """Drift rows in date order (optionally one model's, newer than a ``seq``, within [start, end])."""
    return pd.DataFrame(_select(conn, model, since_seq, start, end), columns=[*COLUMNS, "seq"])


def rows(conn, model: str, start, end) -> dict:
    """``model``'s stored rows of [start, end] by date, each as the dict ``upsert`` was given: the values as they
    were computed (Postgres gives the numbers back as stored), the JSON objects' keys in name order (``jsonb``
    keeps its own), no ``run_id`` or ``seq``. Read for the days a rerun does not compute again."""
    out = {}
    for record in _select(conn, model, 0, start, end):
        row = dict(zip(COLUMNS[:-1], record, strict=False))
        out[row["date"]] = {**row, **{c: dict(sorted(row[c].items())) for c in _JSON}}
    return out


def _select(conn, model: str | None, since_seq: int, start, end) -> list[tuple]:
    """The stored rows (``COLUMNS`` and ``seq``) matching the filters, in date then model order."""
    where, params = ["seq > %s"], [since_seq]
    if model is not None:
        where.append("model = %s")
        params.append(model)
    if start is not None:
        where.append("date >= %s")
        params.append(start)
    if end is not None:
        where.append("date <= %s")
        params.append(end)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(COLUMNS)}, seq FROM quant.drift_metrics "
            f"WHERE {' AND '.join(where)} ORDER BY date, model",
            params,
        )
        return cur.fetchall()


def last_date(conn, model: str):
    """The date of ``model``'s newest drift row, or None."""
    with conn.cursor() as cur:
        cur.execute("SELECT max(date) FROM quant.drift_metrics WHERE model = %s", (model,))
        return cur.fetchone()[0]


def record_run_failure(conn, run_id: str, job_name: str, partition_key: str | None, tags: dict, error: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO quant.run_failures (run_id, job_name, partition_key, tags, error)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING""",
            (run_id, job_name, partition_key, json.dumps(tags), error),
        )


def summary(conn, first_days: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each model's first ``first_days`` drift rows, and its rows by month: how drift moved after it went live."""
    rows = read(conn)
    if rows.empty:
        return rows, rows
    rows["model"] = rows["model"].str.removeprefix("model:")
    shown = ["date", "model", "ic", "ic_mean_5", "psi_mean", "psi_noise", "psi_max_feature", "prediction_psi"]
    shown += ["sharpe_20", "level"]
    daily = rows.groupby("model", group_keys=False).head(first_days)[shown]
    rows["month"] = pd.to_datetime(rows["date"]).dt.strftime("%Y-%m")
    monthly = (
        rows.groupby(["model", "month"])
        .agg(
            sessions=("date", "count"),
            ic=("ic", "mean"),
            psi_mean=("psi_mean", "mean"),
            prediction_psi=("prediction_psi", "mean"),
            sharpe_20=("sharpe_20", "last"),
            critical_days=("level", lambda s: int((s == "critical").sum())),
        )
        .reset_index()
    )
    return daily, monthly


def promotions(conn) -> pd.DataFrame:
    """Every promotion decision: the model, on which session's information, from when, and why (both models'
    numbers are in the reason)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.name || ':v' || m.version AS model, p.decision, p.as_of AS decided_on, p.effective,
                      p.reason FROM quant.model_promotions p JOIN quant.models m USING (model_id)
               ORDER BY p.promotion_id"""
        )
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
