"""The features of one lead in plain Python: what the live API needs, in well under a millisecond.

``OnlineFeatures(spec).features(profile, activities, as_of_us)`` gives exactly what
``encode_matrix(compute_features(...), spec)`` gives for that lead (and the raw values reasons are
phrased from), bit for bit: the batch path stays the definition, and the parsing rules (levels,
seniority, job function, region, bands, e-mail domain, decay table) are the ones in
``features.build`` and ``features.titles``, called here one value at a time.

What is restated here, because ``features.build`` computes it inline on whole columns: the
free-mail / competitor test, the numeric coercion of ``pd.to_numeric(errors="coerce")`` (see
``to_number``), the window / engagement / decayed-count / trend arithmetic of ``interest_numpy``
and ``_interest_features``. ``tests/features/test_online.py`` holds each of them to the batch path.

pandas is only touched for numeric profile text that is not a plain decimal (parsed by pandas
itself, once per distinct text) and by the helpers at the end that turn tables into inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from leadscore.features.build import _as_level, email_domain
from leadscore.features.spec import (
    DAY_US,
    ENGAGEMENT_SCALE,
    NEVER_DAYS,
    SALES_PREFIX,
    FeatureSpec,
    decay_pairs,
    decay_table,
    decayed_name,
    micros,
)
from leadscore.features.titles import EMPLOYEE_BANDS, REVENUE_BANDS, band, job_function, region, seniority

Activity = tuple[int, str, str | None]  # (occurred_at in µs since the epoch, lower-cased type, channel)

_NAN = math.nan
# Only the ASCII spaces pandas' parser skips; Python's float() would also skip "\xa0" and "\x1c".
_ASCII_SPACE = " \t\n\r\v\f"
# Plain decimals of at most 15 digits: pandas' parser builds the digits exactly and applies one power
# of ten (exact up to 1e22) with one rounding, which is the correctly rounded value float() gives.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
_EXACT_DIGITS = 15


def _coerced_by_pandas(value: object) -> float:
    # The batch path's own call on a one-cell column: the parser of record for anything unusual.
    return float(pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").astype("float64").iloc[0])


@lru_cache(maxsize=4096)
def _text_by_pandas(text: str) -> float:
    # ~0.2 ms once per distinct text; profile columns repeat their values, so later leads pay nothing.
    return _coerced_by_pandas(text)


def to_number(value: object) -> float:
    """``value`` as ``pd.to_numeric(..., errors="coerce").astype("float64")`` turns a one-cell
    object column holding it: None / unparseable → NaN, bools → 1.0 / 0.0, text parsed as pandas does."""
    if value is None:
        return _NAN
    if isinstance(value, (int, float, np.integer, np.floating, np.bool_)):  # bool is an int
        return float(value)
    if isinstance(value, str):
        text = value.strip(_ASCII_SPACE)
        if _PLAIN_NUMBER.fullmatch(text) and len(text) - (text[0] in "+-") - ("." in text) <= _EXACT_DIGITS:
            number = float(text)
            # Without a point pandas reads an integer first, so "-0" is 0.0, not -0.0.
            return number if "." in text else number + 0.0
        return _text_by_pandas(value)  # exponents, inf/nan words, long mantissas: pandas' rules
    return _coerced_by_pandas(value)  # bytes, Decimal, pd.NA, dates, …: rare, so not worth a rule


def _level(value: object, to_level=_as_level) -> str | None:
    """One value as ``features.build._levels`` turns it: ``to_level(_as_level(value))``."""
    return to_level(_as_level(value))


# Titles and countries repeat across leads; the regexes need not run again for one already seen.
_seniority = lru_cache(maxsize=8192)(seniority)
_job_function = lru_cache(maxsize=8192)(job_function)
_region = lru_cache(maxsize=1024)(region)


def _micros_of(value: object) -> int:
    """``micros`` of one timestamp (a Timestamp, datetime64, datetime or ISO text)."""
    if isinstance(value, pd.Timestamp):
        return value.value // 1000  # .value is nanoseconds whatever the unit: what micros() computes
    if value is None or value is pd.NaT:
        value = np.datetime64("NaT")
    return int(micros(np.array([value], dtype="datetime64[ns]"))[0])


class OnlineFeatures:
    """The raw and encoded features of one lead at one moment, as the batch path computes them.

    Everything that depends on the spec only (levels, type and window tables, decay weights) is
    prepared once here; ``features`` then does one pass over the lead's activities.
    """

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self._names = spec.names
        self._encoders = [
            {level: float(i) for i, level in enumerate(f.categories or [])} if f.kind == "category" else None
            for f in spec.features
        ]
        self._profile_columns = [(col, kind == "numeric") for col, kind in spec.profile_columns.items()]
        self._free_mail = frozenset(spec.free_mail_domains)
        self._competitors = tuple(spec.competitor_domains)
        self._competitor_suffixes = tuple("." + c for c in self._competitors)
        self._types = list(spec.activity_types)
        self._type_index = {t: j for j, t in enumerate(self._types)}
        self._windows = [(w, w * DAY_US) for w in spec.windows_days]
        self._longest = spec.longest_window
        self._longest_us = self._longest * DAY_US
        self._sales = frozenset(spec.sales_activity_types)
        self._hand_raisers = frozenset(spec.counted_hand_raisers)
        self._channels = frozenset(spec.channels)
        self._decay = decay_table(spec).tolist()  # Python ints: sums stay exact, as in every engine
        self._type_weights = [spec.engagement_weight(t) for t in self._types]
        # Decayed counts a consumer asks for (the SLA rules): one integer table per (window, half-life).
        pairs = decay_pairs(spec)
        self._pairs = [(w * DAY_US, decay_table(spec, h).tolist()) for w, h in pairs]
        self._decayed = [
            (decayed_name(t, w, h), pairs.index((int(w), float(h))), self._type_index.get(t))
            for t, w, h in spec.decayed_counts
        ]
        self._counts_unsubscribe = "unsubscribe" in self._type_index
        self._counts_bounce = "email_bounce" in self._type_index
        if 30 in spec.windows_days and 90 in spec.windows_days:
            self._trend = None
        else:
            self._trend = (min(spec.windows_days), max(spec.windows_days))

    def features(
        self, profile: Mapping[str, object], activities: Sequence[Activity], as_of_us: int
    ) -> tuple[dict[str, object], np.ndarray]:
        """(raw values by feature name, the encoded float64 row) of one lead at ``as_of_us``.

        ``profile`` is the lead's row of the normalised leads table (``features.contract``), each
        value as ``Series.tolist()`` gives it, ``created_at`` included; ``activities`` are
        ``(occurred_at µs, lower-cased type, channel or None)``, in any order. Equal to
        ``compute_features`` (raw) and ``encode_matrix`` (row) on the same lead.
        """
        values = self._fit(profile)
        values |= self._interest(profile.get("created_at"), activities, int(as_of_us))
        raw = {name: values[name] for name in self._names}
        # encode_matrix: a category becomes its index in the training levels, NaN if unseen or missing.
        row = np.array(
            [
                v if index is None else index.get(v, _NAN) if isinstance(v, str) else _NAN
                for v, index in zip((values[name] for name in self._names), self._encoders)
            ],
            dtype="float64",
        )
        return raw, row

    def _fit(self, profile: Mapping[str, object]) -> dict[str, object]:
        """``_fit_features`` for one lead, in its order (a later key overwrites an earlier one there too)."""
        get = profile.get
        out: dict[str, object] = {}
        for col, bands in (("employees", EMPLOYEE_BANDS), ("annual_revenue", REVENUE_BANDS)):
            out[col] = number = to_number(get(col))
            out[f"{col}_band"] = band(number, bands)
        for col in ("industry", "country", "lead_source"):
            out[col] = _level(get(col))
        out["region"] = _level(get("country"), _region)
        out["seniority"] = _level(get("job_title"), _seniority)
        out["job_function"] = _level(get("job_title"), _job_function)
        domain = email_domain(get("email"))
        if domain is None:
            out["is_free_mail"] = out["is_competitor"] = _NAN
        else:
            out["is_free_mail"] = 1.0 if domain in self._free_mail else 0.0
            competitor = bool(domain) and (domain in self._competitors or domain.endswith(self._competitor_suffixes))
            out["is_competitor"] = 1.0 if competitor else 0.0
        for col, numeric in self._profile_columns:
            out[col] = to_number(get(col)) if numeric else _level(get(col))
        return out

    def _interest(self, created_at: object, activities: Sequence[Activity], as_of_us: int) -> dict[str, float]:
        """``interest_numpy`` + ``_interest_features`` for one lead, in one pass over its activities."""
        n_types, windows = len(self._types), self._windows
        type_index, sales, longest_us = self._type_index, self._sales, self._longest_us
        by_type = [[0] * n_types for _ in windows]
        totals = [0] * len(windows)
        decayed = [0] * n_types
        decay, hand_raisers, channels, longest = self._decay, self._hand_raisers, self._channels, self._longest
        pairs = self._pairs
        pair_sums = [[0] * n_types for _ in pairs]
        raised, seen_channels = 0, set()
        youngest = oldest = None
        unsubscribed = bounced = False
        for occurred_us, kind, channel in activities:
            # Only what was known before as_of, and never what sales logs.
            if occurred_us >= as_of_us or kind in sales or kind.startswith(SALES_PREFIX):  # is_sales_type
                continue
            age = as_of_us - occurred_us
            if youngest is None:
                youngest = oldest = age
            elif age < youngest:
                youngest = age
            elif age > oldest:
                oldest = age
            if kind == "unsubscribe":
                unsubscribed = True
            elif kind == "email_bounce":
                bounced = True
            j = type_index.get(kind, -1)
            if pairs and j >= 0:
                # interest_numpy's rule: the pair's own window, the day clamped to the longest window.
                day = min(age // DAY_US, longest)
                for p, (limit, table) in enumerate(pairs):
                    if age <= limit:
                        pair_sums[p][j] += table[day]
            if age > longest_us:
                continue
            for k, (_, limit) in enumerate(windows):
                if age <= limit:
                    totals[k] += 1
                    if j >= 0:
                        by_type[k][j] += 1
            if j >= 0:
                decayed[j] += decay[age // DAY_US]
            if kind in hand_raisers:
                raised += 1
            if channel in channels:
                seen_channels.add(channel)
        out: dict[str, float] = {}
        for k, (w, _) in enumerate(windows):
            counts = by_type[k]
            for j, t in enumerate(self._types):
                out[f"{t}_{w}d"] = float(counts[j])
            out[f"activities_{w}d"] = float(totals[k])
        out[f"hand_raisers_{self._longest}d"] = float(raised)
        # engagement_from's order: type weights applied one type after the other, then scaled.
        engagement = 0.0
        for j, weight in enumerate(self._type_weights):
            engagement += float(decayed[j]) * weight
        out["engagement"] = engagement / ENGAGEMENT_SCALE
        for name, p, j in self._decayed:
            out[name] = 0.0 if j is None else float(pair_sums[p][j]) / ENGAGEMENT_SCALE
        out[f"channels_{self._longest}d"] = float(len(seen_channels))
        # float() first: numpy divides int64 ages as float64, so must we. No interaction yet: "never"
        # and no history, as _interest_features fills them.
        out["days_since_last_activity"] = NEVER_DAYS if youngest is None else float(youngest) / DAY_US
        out["days_since_first_activity"] = 0.0 if oldest is None else float(oldest) / DAY_US
        out["has_unsubscribed"] = 1.0 if unsubscribed and self._counts_unsubscribe else 0.0
        out["has_bounced"] = 1.0 if bounced and self._counts_bounce else 0.0
        out["lead_age_days"] = float(as_of_us - _micros_of(created_at)) / DAY_US
        if self._trend is None:
            a30, a90 = out["activities_30d"], out["activities_90d"]
            out["activity_trend"] = a30 - (a90 - a30) / 2
        else:
            short, long_ = self._trend
            out["activity_trend"] = out[f"activities_{short}d"] / short - out[f"activities_{long_}d"] / long_
        return out


# --- Turning tables into the inputs of ``OnlineFeatures.features`` (tests, benches; not the hot path)


def profile_dicts(leads: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Each lead's row of a normalised leads table as a profile dict (the first row of a repeated id,
    as ``compute_features`` takes it), every value as ``Series.tolist()`` gives it."""
    columns = {col: leads[col].tolist() for col in leads.columns}
    out: dict[str, dict[str, object]] = {}
    for i, lead_id in enumerate(columns["lead_id"]):
        if lead_id not in out:
            out[lead_id] = {col: values[i] for col, values in columns.items()}
    return out


def activity_lists(activities: pd.DataFrame) -> dict[str, list[Activity]]:
    """A normalised activity table as ``(occurred_at µs, type, channel or None)`` lists per lead."""
    channel = activities["channel"] if "channel" in activities.columns else pd.Series(None, index=activities.index)
    channel = channel.astype(object).where(channel.notna(), None)
    out: dict[str, list[Activity]] = {}
    rows = zip(
        activities["lead_id"].tolist(),
        micros(activities["occurred_at"]).tolist(),
        activities["activity_type"].tolist(),
        channel.tolist(),
    )
    for lead_id, occurred_us, kind, chan in rows:
        out.setdefault(lead_id, []).append((occurred_us, kind, chan))
    return out


def as_of_micros(as_of: object) -> int:
    """A scoring moment (naive UTC) as µs since the epoch, as the batch path reads ``as_of``."""
    return _micros_of(as_of)
