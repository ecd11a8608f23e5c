"""Daily partitions on NYSE trading sessions only."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from quant_assets.core import sessions

PARTITIONS_START = "2012-09-04"  # first StockNet price day; the synthetic market serves any session


def _holiday_exclusions() -> list[dt.datetime]:
    """Weekday holidays up to the calendar horizon (exchange_calendars looks about a year ahead)."""
    return [
        dt.datetime.combine(d, dt.time())
        for d in sessions.non_session_weekdays(PARTITIONS_START, sessions.calendar().last)
    ]


# Weekdays minus exchange holidays: exactly the NYSE sessions. end_offset=1 makes
# today's session a partition, so the daily schedule can run it after the close.
trading_days = dg.TimeWindowPartitionsDefinition(
    start=PARTITIONS_START,
    fmt="%Y-%m-%d",
    cron_schedule="0 0 * * 1-5",
    timezone=sessions.EXCHANGE_TZ,
    end_offset=1,
    exclusions=_holiday_exclusions(),
)
