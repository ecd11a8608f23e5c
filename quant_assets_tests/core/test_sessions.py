import datetime as dt

import pandas as pd
import pytest

from quant_assets.core import sessions


def test_holidays_and_weekends_are_not_sessions():
    assert sessions.is_session("2024-07-03")
    assert not sessions.is_session("2024-07-04")  # Independence Day
    assert not sessions.is_session("2024-03-29")  # Good Friday
    assert not sessions.is_session("2024-03-30")  # Saturday
    assert len(sessions.sessions_between("2024-01-01", "2024-12-31")) == 252


def test_early_close_and_decision_time_in_utc():
    assert sessions.session_close("2024-11-29") == pd.Timestamp("2024-11-29 18:00", tz="UTC")  # 13:00 ET
    assert sessions.session_close("2024-11-27") == pd.Timestamp("2024-11-27 21:00", tz="UTC")
    assert sessions.decision_time("2024-01-02") == pd.Timestamp("2024-01-02 14:00", tz="UTC")  # EST
    assert sessions.decision_time("2024-07-01") == pd.Timestamp("2024-07-01 13:00", tz="UTC")  # EDT


def test_monday_owns_the_weekend_and_a_holiday_folds_forward():
    assert sessions.owned_calendar_days("2024-03-04") == [dt.date(2024, 3, 2), dt.date(2024, 3, 3), dt.date(2024, 3, 4)]
    assert sessions.owned_calendar_days("2024-07-05") == [dt.date(2024, 7, 4), dt.date(2024, 7, 5)]
    assert sessions.owned_calendar_days("2024-03-05") == [dt.date(2024, 3, 5)]


def test_neighbours_and_errors():
    assert sessions.previous_session("2024-07-05") == dt.date(2024, 7, 3)
    assert sessions.next_session("2024-07-03") == dt.date(2024, 7, 5)
    assert sessions.session_on_or_after("2024-03-30") == dt.date(2024, 4, 1)
    with pytest.raises(sessions.CalendarError, match="not an XNYS trading session"):
        sessions.require_session("2024-07-04")
    with pytest.raises(sessions.CalendarError, match="outside the XNYS calendar horizon"):
        sessions.is_session("1990-01-02")
