"""What a person types, checked before anything runs: one line that says what to do instead of a traceback.

The rules (what a session is, a well-formed date, a range in order) live in ``core.sessions``; this module only turns
their exceptions into sentences for the terminal.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable

import click

from quant_assets.core import sessions

RANGE_SEPARATOR = "..."


class InputError(click.ClickException):
    """A user's mistake: printed as one ``Error: ...`` line on stderr, exit code 2 like click's usage errors."""

    exit_code = 2


def _say(exc: ValueError, what: str, separator: str = RANGE_SEPARATOR) -> InputError:
    if isinstance(exc, sessions.MalformedDate):
        hint = f" (a range is START{RANGE_SEPARATOR}END, three dots)" if ".." in exc.text else ""
        return InputError(f"{what} {exc.text!r} is not a valid date: write it as YYYY-MM-DD, e.g. 2024-07-01{hint}")
    if isinstance(exc, sessions.NotASession):
        near = " and ".join(f"{day} ({side})" for side, day in (("before", exc.before), ("after", exc.after)) if day)
        return InputError(f"{what} {exc.day} is not an NYSE session (weekend or holiday); nearest sessions: {near}")
    if isinstance(exc, sessions.ReversedRange):
        reversed_, right = f"{exc.start}{separator}{exc.end}", f"{exc.end}{separator}{exc.start}"
        return InputError(f"the range {reversed_} is reversed: write it as {right}")
    return InputError(f"{what} {exc}")


def session(text: str, what: str = "partition key") -> dt.date:
    """A single NYSE session, or an InputError naming the mistake."""
    try:
        return sessions.parse_session(text)
    except ValueError as exc:
        raise _say(exc, what) from None


def session_range(
    start: str, end: str, names: tuple[str, str] = ("range start", "range end"), separator: str = RANGE_SEPARATOR
) -> tuple[dt.date, dt.date]:
    """Two sessions in order, or an InputError naming the end that is wrong (by ``names``) or saying it is reversed
    (in the syntax the command takes: ``separator`` between the two)."""
    first, last = session(start, names[0]), session(end, names[1])
    try:
        return sessions.parse_session_range(first.isoformat(), last.isoformat())
    except sessions.ReversedRange as exc:
        raise _say(exc, "range", separator) from None


def within_partitions(first: dt.date, last: dt.date) -> None:
    """Sessions the daily partitions hold (from their start to today's session), or an InputError: a run for a
    key outside them would fail inside Dagster, or quarantine a session that has not happened."""
    from quant_assets.defs.partitions import trading_days

    earliest = dt.date.fromisoformat(trading_days.get_first_partition_key())
    latest = dt.date.fromisoformat(trading_days.get_last_partition_key())
    if first < earliest:
        raise InputError(f"{first} is before the first partition, {earliest}: the partitions start there")
    if last > latest:
        raise InputError(f"{last} is after the last partition, {latest} (today's session): it has not happened yet")


def partitions(text: str) -> tuple[dt.date, dt.date]:
    """``KEY`` or ``START...END`` as (first, last) session; a single key is a range of one."""
    if RANGE_SEPARATOR not in text:
        day = session(text)
        return day, day
    start, _, end = text.partition(RANGE_SEPARATOR)
    return session_range(start, end)


def known_names(given: str, known: Iterable[str], kind: str) -> list[str]:
    """The comma-separated names, each checked against the known ones; an unknown one gets the close names."""
    known = sorted(known)
    names = [n.strip() for n in given.split(",") if n.strip()]
    if not names:
        raise InputError(f"name at least one {kind}; known: {', '.join(known)}")
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise InputError(f"unknown {kind} {name!r}: {hint}")
    return names
