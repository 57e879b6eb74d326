"""The one reading of a date a person or a CRM typed: ISO 8601 always, German ``dd.mm.yyyy`` on request.

``parse_datetime(text, date_format, field)`` gives a naive datetime in UTC, the form every
timestamp takes inside leadscore:

- ISO 8601 calendar dates, ``2026-06-03``, or date and time, ``2026-06-03T14:05``,
  ``2026-06-03T14:05:00.250`` (``T`` or one space between; up to 9 fractional digits, cut to µs as
  the API always did).
- With an offset (``Z``, ``+02:00``, ``+0200``, ``+02``) the moment is converted to UTC and the
  offset dropped; without one it is read as UTC already. That is what the API did with
  ``as_of``/``created_at``/``occurred_at`` before this module, and what the export contract does.
- Only when ``date_format`` is ``"de"`` (``LEADSCORE_DATE_FORMAT=de``): ``dd.mm.yyyy``, optionally
  with `` HH:MM`` or `` HH:MM:SS``, read as UTC like any time without an offset.

Anything else is a ``DateError`` naming the field, the input and what is expected: ``03.06.2026``
under ``iso`` (3 June or March 6?), ``06/03/2026``, two-digit years, Unix timestamps, words. Never
a guess. Imports nothing of leadscore.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Literal

DateFormat = Literal["iso", "de"]
DATE_FORMATS: tuple[DateFormat, ...] = ("iso", "de")
# What the batch path's nanosecond timestamps hold; outside it pandas cannot represent the date.
EARLIEST, LATEST = datetime(1678, 1, 1), datetime(2261, 12, 31)

_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?"
)
_DE = re.compile(r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})(?: (?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?")
_DE_SHORT_YEAR = re.compile(r"\d{1,2}\.\d{1,2}\.\d{2}(?:\s.*)?")
_SLASHED = re.compile(r"\d{1,4}/\d{1,2}/\d{1,4}(?:\s.*)?")
_DE_SHAPE = re.compile(r"\d{1,2}\.\d{1,2}\.\d{4}(?:\s.*)?")

ISO_EXPECTED = "an ISO 8601 date or time such as 2026-06-03, 2026-06-03T14:05:00 or 2026-06-03T14:05:00+02:00"
DE_EXPECTED = "a German date dd.mm.yyyy, optionally with HH:MM[:SS] (03.06.2026, 03.06.2026 14:05)"


class DateError(ValueError):
    """A date that cannot be read without guessing; the message says which, and what would do."""


def expected(date_format: DateFormat = "iso") -> str:
    """What ``parse_datetime`` accepts under ``date_format``, as a phrase for messages and help."""
    if date_format == "de":
        return f"{ISO_EXPECTED}, or {DE_EXPECTED}"
    return f"{ISO_EXPECTED} (German dd.mm.yyyy dates are read when LEADSCORE_DATE_FORMAT=de)"


def _shown(text: str) -> str:
    # Enough of the input to recognise it, never a whole pasted paragraph.
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def _hint(text: str, date_format: DateFormat) -> str:
    if _SLASHED.fullmatch(text):
        return "; dates with slashes are read month-first in some countries and day-first in others, so never guessed"
    if _DE_SHORT_YEAR.fullmatch(text):
        return "; a two-digit year is not read (which century?): write the year with four digits"
    if date_format == "iso" and _DE_SHAPE.fullmatch(text):
        return "; day first (Germany) or month first (US) cannot be told from the text, so it is not guessed"
    return ""


def parse_datetime(text: str, date_format: DateFormat = "iso", field: str = "date") -> datetime:
    """``text`` as a naive UTC datetime (offsets converted, no offset read as UTC), or ``DateError``.

    Accepts ISO 8601 dates and times, and ``dd.mm.yyyy [HH:MM[:SS]]`` only when ``date_format`` is
    ``"de"``; years 1678–2261. ``field`` names the input in the message.
    """
    if date_format not in DATE_FORMATS:
        raise DateError(f"date format: expected one of {', '.join(DATE_FORMATS)}, found {date_format!r}")
    if not isinstance(text, str):
        raise DateError(f"{field}: expected {expected(date_format)} as text, found {type(text).__name__} "
                        f"{_shown(str(text))}")
    value = text.strip()
    match = _ISO.fullmatch(value)
    if match is None and date_format == "de":
        match = _DE.fullmatch(value)
    if match is None:
        raise DateError(f"{field}: expected {expected(date_format)}, found {_shown(value)}{_hint(value, date_format)}")
    if match.re is _ISO:
        # The C parser is 5× faster and agrees on every text the pattern lets through; the fields are
        # built by hand only where it refuses (lower-case t/z, impossible dates: for the message).
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = _fields(match, field)
    else:
        moment = _fields(match, field)
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise DateError(f"{field}: expected a date between 1678 and 2261, found {_shown(value)}") from None
    if not EARLIEST <= moment <= LATEST:
        raise DateError(f"{field}: expected a date between 1678 and 2261, found {_shown(value)}")
    return moment


def _fields(match: re.Match, field: str) -> datetime:
    g = match.groupdict()
    try:
        moment = datetime(int(g["y"]), int(g["m"]), int(g["d"]), int(g["H"] or 0), int(g["M"] or 0),
                          int(g["S"] or 0), int((g.get("f") or "0").ljust(6, "0")[:6]))
        return moment.replace(tzinfo=_offset(g["tz"])) if g.get("tz") else moment
    except ValueError as exc:
        raise DateError(f"{field}: expected a real date and time, found {_shown(match.string)} ({exc})") from None


def _offset(tz: str) -> timezone:
    if tz in ("Z", "z"):
        return timezone.utc
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"UTC offset {tz} is out of range")
    sign = -1 if tz[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
