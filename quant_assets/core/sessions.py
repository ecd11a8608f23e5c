"""NYSE trading calendar, decision times and the calendar days a session owns.

Every timestamp leaving this module is timezone-aware UTC. The calendar is
built once per process from exchange_calendars (holidays and early closes
included) and answered with vectorised ``searchsorted`` lookups.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

import numpy as np
import pandas as pd

EXCHANGE = "XNYS"
EXCHANGE_TZ = "America/New_York"
CALENDAR_START = "2000-01-03"
DECISION_LOCAL_TIME = dt.time(9, 0)


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class CalendarError(ValueError):
    """A date outside the calendar's horizon, or not a trading session."""


class NotASession(CalendarError):
    """A date inside the calendar that is no session; carries the nearest sessions so a caller can suggest them."""

    def __init__(self, day: dt.date, before: dt.date | None, after: dt.date | None) -> None:
        super().__init__(f"{day} is not an {EXCHANGE} trading session")
        self.day, self.before, self.after = day, before, after


class MalformedDate(ValueError):
    """Text that is not a real calendar date written as YYYY-MM-DD (the only form partition keys take)."""

    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} is not a date of the form YYYY-MM-DD")
        self.text = text


class ReversedRange(ValueError):
    """A session range whose start lies after its end: it would select nothing, so it is refused."""

    def __init__(self, start: dt.date, end: dt.date) -> None:
        super().__init__(f"the range {start}...{end} is reversed: its start is after its end")
        self.start, self.end = start, end


class _Calendar:
    def __init__(self) -> None:
        import exchange_calendars as xc

        cal = xc.get_calendar(EXCHANGE, start=CALENDAR_START)
        self.sessions = cal.sessions.values.astype("datetime64[D]")
        self.opens = cal.opens.values.astype("datetime64[ns]")
        self.closes = cal.closes.values.astype("datetime64[ns]")
        self.first = self.sessions[0].astype(object)
        self.last = self.sessions[-1].astype(object)


@lru_cache(maxsize=1)
def calendar() -> _Calendar:
    return _Calendar()


def as_date(value: dt.date | str | pd.Timestamp) -> dt.date:
    """Parse ``YYYY-MM-DD`` strings and timestamps into a plain date."""
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _check_horizon(day: dt.date) -> None:
    cal = calendar()
    if not cal.first <= day <= cal.last:
        raise CalendarError(f"{day} is outside the {EXCHANGE} calendar horizon {cal.first}..{cal.last}")


def _index(day: dt.date) -> int:
    """Index of the first session on or after ``day``."""
    cal = calendar()
    return int(np.searchsorted(cal.sessions, np.datetime64(day, "D"), side="left"))


def exchange_dates(times: pd.Series) -> np.ndarray:
    """The exchange's local date (a ``datetime.date``) of each of ``times`` (timezone-aware): converted once per
    distinct time, as a lake's rows hold a few hundred distinct event times among many thousand rows."""
    code, distinct = pd.factorize(times)
    return pd.DatetimeIndex(distinct).tz_convert(EXCHANGE_TZ).date[code] if len(code) else np.array([], dtype=object)


def is_session(value) -> bool:
    day = as_date(value)
    _check_horizon(day)
    cal = calendar()
    i = _index(day)
    return i < len(cal.sessions) and cal.sessions[i].astype(object) == day


def are_sessions(days: np.ndarray) -> np.ndarray:
    """``is_session`` of each of ``days`` (datetime64 values), where a day outside the horizon, or NaT, is no
    session instead of an error: the vectorised test of a batch of offered dates."""
    days = np.asarray(days).astype("datetime64[D]")
    known = calendar().sessions
    at = np.minimum(np.searchsorted(known, days), len(known) - 1)  # sorted: a binary search, not np.isin's sort
    return known[at] == days


def require_session(value) -> dt.date:
    day = as_date(value)
    if not is_session(day):
        raise NotASession(day, *nearest_sessions(day))
    return day


def nearest_sessions(day: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The last session before and the first after a day (None past either end of the calendar)."""
    cal = calendar()
    i = _index(day)
    before = cal.sessions[i - 1].astype(object) if i > 0 else None
    j = i + 1 if i < len(cal.sessions) and cal.sessions[i].astype(object) == day else i
    after = cal.sessions[j].astype(object) if j < len(cal.sessions) else None
    return before, after


def parse_date(text: str) -> dt.date:
    """A date given by a person: exactly ``YYYY-MM-DD`` and a real day, else ``MalformedDate``.

    Stricter than ``date.fromisoformat``, which also takes ``20240304``: partition keys are always written with
    dashes, so any other form would name no partition.
    """
    if not ISO_DATE.fullmatch(text):
        raise MalformedDate(text)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise MalformedDate(text) from None


def parse_session(text: str) -> dt.date:
    """A partition key given by a person: a well-formed date that is an NYSE session."""
    return require_session(parse_date(text))


def parse_session_range(start: str, end: str) -> tuple[dt.date, dt.date]:
    """Both ends of a session range, checked in order: well-formed, sessions, start not after end."""
    first, last = parse_session(start), parse_session(end)
    if first > last:
        raise ReversedRange(first, last)
    return first, last


def session_index(value) -> int:
    """Position of a session in the calendar (0 = first session of 2000)."""
    return _index(require_session(value))


def session_at(index: int) -> dt.date:
    cal = calendar()
    if not 0 <= index < len(cal.sessions):
        raise CalendarError(f"session index {index} outside the calendar")
    return cal.sessions[index].astype(object)


def sessions_between(start, end) -> list[dt.date]:
    """Trading sessions in the closed interval [start, end]."""
    a, b = as_date(start), as_date(end)
    _check_horizon(a)
    _check_horizon(b)
    cal = calendar()
    lo = _index(a)
    hi = int(np.searchsorted(cal.sessions, np.datetime64(b, "D"), side="right"))
    return [d.astype(object) for d in cal.sessions[lo:hi]]


def session_on_or_after(value) -> dt.date:
    day = as_date(value)
    _check_horizon(day)
    return session_at(_index(day))


def previous_session(value) -> dt.date:
    """The last session strictly before ``value``."""
    day = as_date(value)
    _check_horizon(day)
    return session_at(_index(day) - 1)


def next_session(value) -> dt.date:
    """The first session strictly after ``value``."""
    return session_on_or_after(as_date(value) + dt.timedelta(days=1))


def session_close(value) -> pd.Timestamp:
    """UTC close of a session (13:00 ET on early-close days)."""
    return pd.Timestamp(calendar().closes[session_index(value)], tz="UTC")


def session_open(value) -> pd.Timestamp:
    return pd.Timestamp(calendar().opens[session_index(value)], tz="UTC")


def decision_time(value) -> pd.Timestamp:
    """When the day's decisions are made: 09:00 ET, before the open."""
    day = require_session(value)
    local = pd.Timestamp(dt.datetime.combine(day, DECISION_LOCAL_TIME), tz=EXCHANGE_TZ)
    return local.tz_convert("UTC")


def decision_times(days) -> pd.DatetimeIndex:
    """``decision_time`` of each of ``days`` (a column of a panel's rows: a few hundred distinct days, repeated),
    asked of the calendar once per distinct day."""
    code, distinct = pd.factorize(pd.Index(days, dtype=object))
    return pd.DatetimeIndex([decision_time(d) for d in distinct], tz="UTC")[code]


def owned_calendar_days(value) -> list[dt.date]:
    """Calendar days (previous session, session] that a session's partition owns.

    Alternative data arrives on every calendar day; weekends and holidays are
    folded into the next session so that no day is dropped and none is counted
    twice.
    """
    day = require_session(value)
    prev = previous_session(day)
    return [prev + dt.timedelta(days=k) for k in range(1, (day - prev).days + 1)]


def utc_day_end(day: dt.date) -> pd.Timestamp:
    """End of a UTC calendar day: the event time of a daily aggregate."""
    return pd.Timestamp(day + dt.timedelta(days=1), tz="UTC")


def non_session_weekdays(start, end) -> list[dt.date]:
    """Weekday holidays in [start, end], for excluding them from partitions."""
    a, b = as_date(start), as_date(end)
    days = pd.bdate_range(a, b).date
    sessions = set(sessions_between(a, b))
    return [d for d in days if d not in sessions]


def session_offset(value, k: int) -> dt.date:
    """The session ``k`` sessions after (k < 0: before) a session."""
    return session_at(session_index(value) + k)


def label_maturity(value, horizon: int) -> pd.Timestamp:
    """When the open-to-open label of session t with horizon h is known: the open of t+h."""
    return session_open(session_offset(value, horizon))
