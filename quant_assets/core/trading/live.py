"""The live book's records: each session's positions in the lake, its figures in ``quant.live_book``.

    <root>/live_book/date=D/part-<sha>.parquet   POSITIONS + model, state, exposure: what was traded at D's open

``quant.live_book`` holds a row per session: the model that traded, its state and exposure, the turnover and
costs at the open, the book's gross and net exposure, the run and code version that traded it, and (``gross``,
``net``, NULL until then) the day's P&L, filled in once its labels have matured (the next session's run). A traded
session is never rewritten: running it again must give the same positions (written once, content-addressed) and the
same figures, else it is refused, so the record of what was traded cannot change after the fact.

A session's run is a function of the champion on the day, its state and that state's exposure, the portfolio
rule and costs, the code, the day's predictions parts, the positions file recorded for the session before, and
the raw_prices parts of the session before and of the day (the labels it realises the session before with).
Lake parts are content-addressed, so their names are their content: the row keeps the hash of all of that
(``inputs``), written once the session is traded or verified. A rerun whose inputs hash the same, and whose
previous session's P&L is stored (or cannot be yet: no prices of the day), reads nothing but the rows and the
listings and writes nothing: the session is rebuilt from its row (``unchanged``). Any other hash (a restated
part, another state or champion, rule, costs or code; a row from before rows had one) trades the session again,
refused as always if it would differ, and records the new hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from quant_assets.core import sessions
from quant_assets.core.features.files import day_names, months_between, partition_day
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.registry import states
from quant_assets.core.registry.models import ModelRef
from quant_assets.core.research import scoring, snapshots
from quant_assets.core.research.backtest import Costs, PortfolioRule, sharpe
from quant_assets.core.research.backtest import run as backtest_run
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location
from quant_assets.core.storage.hashing import code_hash, lines_hash
from quant_assets.core.trading import book

DATASET = "live_book"
PRICES = "raw_prices"
_CORE = Path(sessions.__file__).parent
# the code a session's run executes: the book, the backtest steps it shares, the labels, scoring's layout, the
# lake, the calendar and the price lag
CODE = tuple(
    _CORE / p
    for p in ("trading", "research/backtest.py", "research/snapshots.py", "research/scoring.py", "storage",
              "sessions.py", "ingest/sources/base.py")
)  # fmt: skip
TABLE = """
CREATE TABLE IF NOT EXISTS quant.live_book (
    date            date PRIMARY KEY,
    model           text NOT NULL,
    state           text NOT NULL,
    exposure        double precision NOT NULL,
    n_names         integer NOT NULL,
    long_exposure   double precision NOT NULL,
    short_exposure  double precision NOT NULL,
    turnover        double precision NOT NULL,
    cost            double precision NOT NULL,
    gross           double precision,
    net             double precision,
    positions       text NOT NULL,
    run_id          text,
    traded_at       timestamptz NOT NULL DEFAULT now(),
    realised_at     timestamptz
);
"""
# The hash of what each session's run read (``fingerprint``): a rerun whose inputs hash the same skips the session.
# Rows stored before it have none, and are verified once more.
INPUTS = "ALTER TABLE quant.live_book ADD COLUMN IF NOT EXISTS inputs text;"
# The code version that traded each session (its run: ``run_id``), in the row that names its positions file: the file
# holds what was traded alone, so a session verified under a later commit gives the same bytes. NULL: traded before.
CODE_VERSION = "ALTER TABLE quant.live_book ADD COLUMN IF NOT EXISTS code_version text;"
_SCHEMA = pa.schema(
    [("entity_key", pa.string())]
    + [(c, pa.float64()) for c in book.POSITIONS[1:]]
    + [("model", pa.string()), ("state", pa.string()), ("exposure", pa.float64())]
)


class BookError(RuntimeError):
    """A session the book cannot trade as asked: a gap before it, no predictions, or a rewrite of a traded day."""


@dataclass(frozen=True)
class Session:
    """One traded session as recorded, and the P&L of the session before it if that matured now. ``unchanged``:
    rebuilt from its row, its inputs the same as when it was traded or last verified (nothing read or written)."""

    date: dt.date
    model: str
    state: str
    exposure: float
    names: int  # names held (a weight other than 0)
    turnover: float
    cost: float
    path: Location
    realised: dict | None  # the previous session's P&L (date, gross, cost, net, turnover), filled in by this run
    unchanged: bool = False


def previous_positions(conn, root: Location, day: dt.date) -> pd.DataFrame | None:
    """The positions after the previous session's trades; None when the book starts at ``day`` (nothing
    recorded before it). A book with an earlier session but not the previous one has a gap: refused."""
    with conn.cursor() as cur:
        cur.execute("SELECT max(date) FROM quant.live_book WHERE date < %s", (day,))
        last = cur.fetchone()[0]
    if last is None:
        return None
    before = sessions.previous_session(day)
    if last < before:
        raise BookError(
            f"live_book {day}: the book's last session is {last}, not {before}; trade the sessions between in order"
        )
    stored = _stored(conn, before)
    return lake.read_part(fs.location(stored[-1])).to_pandas()[book.POSITIONS]


def _predictions(root: Location, ref: ModelRef, day: dt.date) -> pd.Series:
    mine = scoring.stored(root, ref.node, [day]).get(day)
    if mine is None:
        raise BookError(f"live_book {day}: no predictions of {ref.node} (materialise predictions for {day} first)")
    return mine.set_index("entity_key")["prediction"]


def input_parts(root: Location, days: list[dt.date]) -> dict[dt.date, list[str]]:
    """The lake parts each session's run reads, by name relative to ``root``: its predictions parts, then the
    raw_prices parts of the session before and of itself (``_realise_previous``'s labels). One listing per month
    of each dataset, whatever the number of days; no part is read."""
    months = months_between(sessions.previous_session(min(days)), max(days))
    listed: dict[tuple[str, str], list[str]] = {}
    for name in (scoring.DATASET, PRICES):
        for part in day_names(lake.under(root, name), months):
            listed.setdefault((name, partition_day(part)), []).append(f"{name}/{part}")
    keys = lambda d: [(scoring.DATASET, d), (PRICES, sessions.previous_session(d)), (PRICES, d)]  # noqa: E731
    return {d: [p for name, on in keys(d) for p in listed.get((name, on.isoformat()), [])] for d in days}


def fingerprint(
    day: dt.date, node: str, state: str, exposure: float, rule: PortfolioRule, costs: Costs, before: dict | None,
    parts: list[str],
) -> str:  # fmt: skip
    """The hash of what session ``day``'s run depends on: the code, rule and costs, the champion, its state and
    exposure, the book's row before (its date and positions file; ``before``: None when the book starts at
    ``day``) and the names of the parts it reads (``input_parts``)."""
    settings = {"code": code_hash(*CODE), "rule": dataclasses.asdict(rule), "costs": dataclasses.asdict(costs),
                "model": node, "state": state, "exposure": exposure}  # fmt: skip
    previous = "" if before is None else f"{before['date'].isoformat()} {before['positions']}"
    return lines_hash([json.dumps(settings, sort_keys=True), day.isoformat(), previous, *parts])


def trade_session(
    conn,
    root: Location,
    name: str,
    day: dt.date,
    rule: PortfolioRule,
    costs: Costs,
    exposure_of: Callable[[str], float],
    parts: dict[dt.date, list[str]],
    run_id: str | None = None,
    code_version: str | None = None,
) -> Session:
    """Trade session ``day`` for model ``name``'s champion on that day, in the state in force then (its
    multiplier: ``exposure_of(state)``), record it (with the ``run_id`` and ``code_version`` that traded it), and
    realise the previous session's P&L from labels known by ``day``'s close; ``parts``: ``input_parts`` of the run's
    sessions. A session whose row holds the hash of the same inputs is rebuilt from the rows instead (``unchanged``);
    one verified again keeps the run and code version that traded it."""
    ref = states.champion_on(conn, name, day)
    state = states.state_on(conn, ref, day)
    exposure = exposure_of(state)
    mine, before = _rows(conn, day)
    key = fingerprint(day, ref.node, state, exposure, rule, costs, before, parts[day])
    if mine is not None and mine["inputs"] == key and _realised(day, before, parts[day]):
        return _recorded(mine, before)
    session = _trade(conn, root, ref, state, day, rule, costs, exposure, (run_id, code_version))
    with conn.cursor() as cur:  # traded or verified: only the hash of its inputs is (re)recorded
        cur.execute("UPDATE quant.live_book SET inputs = %s WHERE date = %s", (key, day))
    return session


def _rows(conn, day: dt.date) -> tuple[dict | None, dict | None]:
    """Session ``day``'s row and the book's last row before it (None where there is none), as dicts."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT date, model, state, exposure, n_names, turnover, cost, positions, gross, net, inputs "
            "FROM quant.live_book WHERE date = %s OR date = (SELECT max(date) FROM quant.live_book WHERE date < %s)",
            (day, day),
        )
        rows = {r[0]: dict(zip([c.name for c in cur.description], r, strict=True)) for r in cur.fetchall()}
    return rows.pop(day, None), next(iter(rows.values()), None)


def _realised(day: dt.date, before: dict | None, parts: list[str]) -> bool:
    """Whether the run of ``day`` has nothing left to realise: the book starts at ``day``, or the previous
    session's P&L is stored, or ``day``'s prices (its label's end) are not in yet. A gap is never skipped."""
    if before is None:
        return True
    if before["date"] != sessions.previous_session(day):
        return False  # traded again, so the gap is refused as always
    return before["gross"] is not None or not any(p.startswith(f"{PRICES}/date={day.isoformat()}/") for p in parts)


def _recorded(mine: dict, before: dict | None) -> Session:
    """A session as its run recorded it: its row, and the previous session's P&L as that run realised it."""
    realised = None
    if before is not None and before["gross"] is not None:
        realised = {"date": before["date"].isoformat(), "gross": float(before["gross"]), "cost": float(before["cost"]),
                    "net": float(before["net"]), "turnover": float(before["turnover"])}  # fmt: skip
    figures = (float(mine["exposure"]), int(mine["n_names"]), float(mine["turnover"]), float(mine["cost"]))
    path = fs.location(mine["positions"])
    return Session(mine["date"], mine["model"], mine["state"], *figures, path, realised, unchanged=True)


def _trade(conn, root: Location, ref: ModelRef, state: str, day: dt.date, rule: PortfolioRule, costs: Costs,
           exposure: float, producer: tuple[str | None, str | None]) -> Session:  # fmt: skip
    """Trade and record session ``day`` (or verify it against its row), and realise the session before; a new row
    records ``producer`` (run id, code version)."""
    previous = previous_positions(conn, root, day)
    traded = book.trade(day, _predictions(root, ref, day), previous, exposure, rule, costs)
    weights = traded.positions["weight"]
    figures = (ref.node, state, traded.exposure, int((weights != 0).sum()), float(weights[weights > 0].sum()),
               float(-weights[weights < 0].sum()), traded.turnover, traded.cost)  # fmt: skip
    stored = _stored(conn, day)
    if stored is not None and stored[:-1] != figures:
        raise BookError(f"live_book {day}: already traded as {stored[:-1]}, now {figures}; a traded session is "
                        "never rewritten")  # fmt: skip
    frame = traded.positions.assign(model=ref.node, state=state, exposure=traded.exposure)
    path = lake.write_part(lake.partition_dir(root, DATASET, day), lake.canonical_table(frame, ["entity_key"], _SCHEMA))
    if stored is None:
        with conn.cursor() as cur:
            cur.execute(
                """INSERT INTO quant.live_book (date, model, state, exposure, n_names, long_exposure, short_exposure,
                       turnover, cost, positions, run_id, code_version)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (day, *figures, str(path), *producer),
            )
    elif stored[-1] != str(path):
        raise BookError(f"live_book {day}: already traded with positions {stored[-1]}, now {path}")
    realised = None if previous is None else _realise_previous(conn, root, day, previous)
    return Session(day, ref.node, state, traded.exposure, figures[3], traded.turnover, traded.cost, path, realised)


def _stored(conn, day: dt.date) -> tuple | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT model, state, exposure, n_names, long_exposure, short_exposure, turnover, cost, positions "
            "FROM quant.live_book WHERE date = %s",
            (day,),
        )
        row = cur.fetchone()
    return None if row is None else tuple(row)


def _realise_previous(conn, root: Location, day: dt.date, positions: pd.DataFrame) -> dict | None:
    """The previous session's P&L (``positions``: its positions, as traded): its label matures at ``day``'s
    open, read as known by ``day``'s close; None while ``day``'s prices are not in."""
    before = sessions.previous_session(day)
    labels = snapshots.labels(root, [before], 1, known_by_close(day))
    returns = labels.set_index("entity_key")["label"].dropna() if len(labels) else pd.Series(dtype=float)
    if returns.empty:
        return None
    _, _, exposure, _, _, _, turnover, cost, _ = _stored(conn, before)
    pnl = book.realise(book.BookDay(before, positions, float(exposure), float(turnover), float(cost)), returns)
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE quant.live_book SET gross = %s, net = %s, realised_at = coalesce(realised_at, now()) "
            "WHERE date = %s",
            (pnl["gross"], pnl["net"], before),
        )
    return {"date": before.isoformat(), **pnl}


def history(conn, since: dt.date | None = None) -> pd.DataFrame:
    """The book's rows in date order (for the equity curve and the summary)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT date, model, state, exposure, n_names, long_exposure, short_exposure, turnover, cost, gross, net "
            "FROM quant.live_book WHERE date >= coalesce(%s, '-infinity'::date) ORDER BY date",
            (since,),
        )
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def last_session(conn) -> dt.date | None:
    """The book's newest traded session, or None: a change decided later applies only after it."""
    with conn.cursor() as cur:
        cur.execute("SELECT max(date) FROM quant.live_book")
        return cur.fetchone()[0]


def managed_vs_unmanaged(conn, root: Location, rule: PortfolioRule, costs: Costs) -> pd.DataFrame:
    """The book as traded (its states' exposures) against the same predictions traded at full exposure
    throughout, over the sessions whose P&L has matured: net return, annualised Sharpe and max drawdown."""
    rows = history(conn).dropna(subset=["net"])
    if rows.empty:
        return pd.DataFrame()
    days = list(rows["date"])
    frames = [
        f for model, traded in rows.groupby("model") for f in scoring.stored(root, model, list(traded["date"])).values()
    ]
    if not frames:  # a registry beside another lake: nothing of its sessions here
        return pd.DataFrame()
    labels = snapshots.labels(root, days, 1, known_by_close(sessions.next_session(days[-1])))
    frame = pd.concat(frames, ignore_index=True).merge(labels, on=["date", "entity_key"], how="left")
    unmanaged = backtest_run(frame, rule, costs).daily["net"]
    out = {"managed (as traded)": rows.set_index("date")["net"].astype(float), "unmanaged (exposure 1)": unmanaged}
    return pd.DataFrame({name: _figures(net) for name, net in out.items()}).T


def _figures(net: pd.Series) -> dict:
    wealth = (1 + net.fillna(0.0)).cumprod()
    return {"sessions": len(net), "net_return": float(wealth.iloc[-1] - 1), "sharpe": sharpe(net),
            "max_drawdown": float((wealth / wealth.cummax().clip(lower=1.0) - 1).min())}  # fmt: skip
