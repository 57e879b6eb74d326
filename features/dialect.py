"""CSV as offices save it: encoding, delimiter, decimal comma and date order, detected and reported.

A CRM export opened and saved in a German Excel is Windows-1252 (or UTF-8 with a BOM), ``;``
separated, with ``1.234,5`` numbers and ``04.12.2026 09:30`` dates. ``read_office_csv`` reads such
a file into the contract's own spelling (text cells, ISO dates, ``.`` decimals), so the checks
after it are the same for every dialect, and says what it found (``Dialect``):

- **Encoding**: a BOM names it; else UTF-8 if the bytes are UTF-8; else charset-normalizer's best
  guess, and Windows-1252 when that guess is one of the Latin code pages German text cannot tell
  apart (what a German Excel writes).
- **Delimiter**: ``,`` ``;`` or tab, whichever splits the first lines into the same number of
  fields most often (the header's count).
- **Decimal comma**: a file is read with ``,`` decimals when some column holds numbers written
  that way (``12,5`` or ``1.234,5``) and none holds ``.`` decimals; then ``.`` groups thousands.
- **Dates**: ``dd.mm.yyyy[ HH:MM[:SS]]`` is always day first (the dotted form is not used month
  first); ``m/d/yyyy`` is read month first only when a value proves it (a second number above 12)
  and day first only when one proves that; a column where no value tells is an error naming the
  column and the setting that resolves it.

Every choice can be set instead of detected (``CsvOptions``, from ``LEADSCORE_CSV_*``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_SAMPLE_LINES = 50

# Numbers as written with a decimal comma: 12,5 · -3,25 · 1.234 · 1.234.567,89
_DE_NUMBER = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$")
_DE_DECIMAL = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+$")
_DOT_DECIMAL = re.compile(r"^[+-]?\d+\.\d+([eE][+-]?\d+)?$")
_DOT_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?)?$")

DateOrder = Literal["dmy", "mdy"]
# charset-normalizer's names of single-byte code pages in which German text has the same bytes as in cp1252
_SINGLE_BYTE_LATIN = frozenset({"cp1252", "cp1250", "cp1257", "cp1254", "latin_1", "iso8859_1", "iso8859_2",
                                "iso8859_15", "iso8859_9", "iso8859_13", "mac_latin2", "cp850"})


class DialectError(ValueError):
    """A file whose dialect cannot be told from its content: the file, the column, expected and found."""

    def __init__(self, file: str, column: str | None, expected: str, found: str) -> None:
        self.file, self.column, self.expected, self.found = file, column, expected, found
        where = f"{file}: column '{column}'" if column else file
        super().__init__(f"{where}: expected {expected}, found {found}")


@dataclass(frozen=True)
class CsvOptions:
    """What to assume instead of detecting (None: detect)."""

    encoding: str | None = None
    delimiter: str | None = None
    decimal: Literal[".", ","] | None = None
    date_order: DateOrder | None = None


@dataclass(frozen=True)
class Dialect:
    """What a CSV file turned out to be, and which columns were rewritten into the contract's spelling."""

    encoding: str
    bom: bool
    delimiter: str
    decimal: str
    number_columns: tuple[str, ...] = ()
    date_columns: tuple[tuple[str, str], ...] = ()  # (column, format) for columns not already ISO

    @property
    def plain(self) -> bool:
        """Whether the file was already in the contract's spelling (UTF-8, commas, ISO dates, decimal points)."""
        return (self.encoding == "utf-8" and not self.bom and self.delimiter == "," and self.decimal == "."
                and not self.number_columns and not self.date_columns)

    def describe(self) -> str:
        parts = [self.encoding + (" with BOM" if self.bom else ""), f"{_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated",
                 "decimal comma" if self.decimal == "," else "decimal point"]
        if self.number_columns:
            parts.append("numbers read in " + ", ".join(self.number_columns))
        if self.date_columns:
            parts.append("dates " + ", ".join(f"{c} ({f})" for c, f in self.date_columns))
        return "; ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)


def decode(raw: bytes, path: Path, encoding: str | None = None) -> tuple[str, str, bool]:
    """(text, encoding, had a BOM)."""
    if encoding:
        try:
            text = raw.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise DialectError(str(path), None, f"text in {encoding} (LEADSCORE_CSV_ENCODING)",
                               f"{type(exc).__name__} at byte {getattr(exc, 'start', '?')}") from None
        bom = text.startswith("\ufeff")
        return text.removeprefix("\ufeff"), encoding, bom
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8", True
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16", True
    try:
        return raw.decode("utf-8"), "utf-8", False
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is not None and best.encoding in _SINGLE_BYTE_LATIN:
        # German text reads the same in several Latin code pages (ä ö ü ß share their bytes), so the
        # detector's pick among them is arbitrary; Windows-1252 is what a Western European Excel writes.
        try:
            return raw.decode("cp1252"), "windows-1252", False
        except UnicodeDecodeError:
            pass
    if best is None:
        raise DialectError(str(path), None, "text in UTF-8, Windows-1252 or another encoding",
                           "bytes no encoding reads; set LEADSCORE_CSV_ENCODING")
    name = {"cp1252": "windows-1252", "iso8859_1": "iso-8859-1", "latin_1": "iso-8859-1"}.get(best.encoding, best.encoding)
    return str(best), name, False


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the sample's lines into the header's field count most consistently."""
    lines = text.splitlines()[:_SAMPLE_LINES]
    if not lines:
        return ","
    best, best_score = ",", -1.0
    for delim in DELIMITERS:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = sum(len(r) == width for r in rows[1:]) / max(1, len(rows) - 1) + width / 1000  # ties: more fields
        if score > best_score:
            best, best_score = delim, score
    return best


def _cells(col: pd.Series) -> pd.Series:
    """Every cell as stripped text, a missing one as "" (same index as ``col``)."""
    text = col.astype("object")
    return text.where(text.notna(), "").astype(str).str.strip()


def _values(col: pd.Series) -> pd.Series:
    """The non-empty cells as stripped text."""
    return _cells(col).loc[lambda v: v != ""]


def detect_decimal(frame: pd.DataFrame) -> str:
    """``,`` when some column is numbers with decimal commas and none has decimal points, else ``.``."""
    comma = point = False
    for name in frame.columns:
        values = _values(frame[name])
        if values.empty:
            continue
        if values.str.match(_DE_NUMBER).all() and values.str.match(_DE_DECIMAL).any():
            comma = True
        if values.str.match(_DOT_DECIMAL).all() and not values.str.match(r"^[+-]?\d{1,3}\.\d{3}$").all():
            point = True
    return "," if comma and not point else "."


def _date_order(values: pd.Series, column: str, path: Path, setting: DateOrder | None) -> DateOrder:
    parts = values.str.extract(_SLASH_DATE)[[0, 1]].dropna().astype(int)
    first_big, second_big = bool((parts[0] > 12).any()), bool((parts[1] > 12).any())
    if setting:
        return setting
    if first_big and not second_big:
        return "dmy"
    if second_big and not first_big:
        return "mdy"
    sample = values.iloc[0]
    raise DialectError(
        str(path), column, "dates whose order a value proves (a first or second number above 12)",
        f"only values such as {sample!r}, which read as day/month and as month/day; set LEADSCORE_CSV_DATE_ORDER "
        f"to dmy (04/12/2026 is 4 December) or mdy (April 12)")


def _iso_from(match: pd.DataFrame, order: DateOrder) -> pd.Series:
    day, month = (match[0], match[1]) if order == "dmy" else (match[1], match[0])
    hour = match[3].fillna("0").astype(int)
    if match.shape[1] > 6:  # 12-hour clock with AM/PM
        pm = match[6].fillna("").str.lower() == "pm"
        am = match[6].fillna("").str.lower() == "am"
        hour = hour.where(~(pm & (hour < 12)), hour + 12).where(~(am & (hour == 12)), 0)
    return (match[2] + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + "T" + hour.astype(str).str.zfill(2) + ":"
            + match[4].fillna("00") + ":" + match[5].fillna("00"))


def normalise(frame: pd.DataFrame, path: Path, decimal: str, options: CsvOptions,
              date_columns: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Rewrite decimal-comma numbers and non-ISO dates into the contract's spelling, cell by cell.

    Only cells that match a pattern are rewritten; anything else stays as it was, so the contract's
    checks report it with its row. ``date_columns`` limits the date rewriting (None: every column).
    """
    out = frame.copy()
    numbers, dates = [], []
    for name in frame.columns:
        values = _values(frame[name])
        if values.empty:
            continue
        cells = _cells(frame[name])
        if date_columns is None or name in date_columns:
            if values.str.match(_DOT_DATE).mean() >= 0.5:
                pattern, order = _DOT_DATE, "dmy"
                shown = "dd.mm.yyyy"
            elif values.str.match(_SLASH_DATE).mean() >= 0.5:
                pattern, order = _SLASH_DATE, _date_order(values, name, path, options.date_order)
                shown = "dd/mm/yyyy" if order == "dmy" else "m/d/yyyy"
            else:
                pattern = None
            if pattern is not None:
                match = cells.str.extract(pattern)
                out[name] = _iso_from(match, order).where(match[0].notna(), frame[name])
                dates.append((name, shown))
                continue
        if decimal == "," and values.str.match(_DE_NUMBER).all() and values.str.contains(r"[.,]").any():
            fits = cells.str.match(_DE_NUMBER)
            out[name] = cells.str.replace(".", "", regex=False).str.replace(",", ".", regex=False).where(fits, frame[name])
            numbers.append(name)
    return out, tuple(numbers), tuple(dates)


def read_office_csv(path: Path, options: CsvOptions | None = None,
                    date_columns: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, Dialect]:
    """A CSV file as text cells in the contract's spelling, and the dialect it was written in."""
    options = options or CsvOptions()
    text, encoding, bom = decode(Path(path).read_bytes(), Path(path), options.encoding)
    delimiter = options.delimiter or sniff_delimiter(text)
    frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_values=[""])
    frame.columns = [str(c).strip() for c in frame.columns]
    decimal = options.decimal or detect_decimal(frame)
    frame, numbers, dates = normalise(frame, Path(path), decimal, options, date_columns)
    return frame, Dialect(encoding=encoding, bom=bom, delimiter=delimiter, decimal=decimal,
                          number_columns=numbers, date_columns=dates)
