"""What every feature means, for people: a label in English and German and how to phrase a value
("Visited the pricing page 3× in the last 14 days" / "Hat die Preisseite in den letzten 14 Tagen 3×
besucht"). Explanations, the SLA rules' reasons and the lead card read it from here.

Two kinds of text, each in one place:

- **Names** of fields and of their values ("Branche", "Finanzdienstleistungen", "Kaufzeitraum",
  "3–6 Monate") live in the glossary, ``features/glossary.yaml`` (package data of
  ``leadscore.features``), together with the values that mean "not given" ("unknown", "Select", …).
- **Sentences** (activity counts, yes/no flags, ages, engagement, trend) are the templates below.

A team extends the glossary in its params file (``glossary: {fields: …, values: …}``, validated by
``leadscore.config.params.GlossaryParams``), merged over the packaged one. How catalog gets it
without passing params through every call: ``active_glossary()`` builds the merged glossary once,
lazily, from ``load_params(get_settings().params_path)`` — the file the CLI and the service read
when no ``--params`` is given — and caches it. A caller that loaded other params (the CLI after
``--params``, a test) calls ``use_glossary(params)``; ``use_glossary(None)`` drops the cache.

Rules that keep the texts true:

- A missing value (None, NaN, a glossary "missing" token) is said as missing ("Budget bestätigt:
  nicht angegeben", "Keine E-Mail-Adresse angegeben"), never as the "no" branch of a flag;
  ``is_missing(feature, value)`` lets the explanation code decide whether to show such a reason.
- A value the glossary does not know is shown quoted as the CRM's own value: ``Branche: „Bergbau“``,
  ``Industry: "Mining"`` (``_`` codes become words in English only). A field the glossary does not
  know is shown quoted by its column name in German (``„seats_booked“: 12``), humanised in English.
  ``glossary_gaps`` lists both, so a team knows what to add to its params glossary.
- Engagement (interactions of the longest window, each halved every half-life, hand-raisers weigh
  more: 1 ≈ one ordinary interaction today) is said as a level, not as its number: none, low (< 1),
  moderate (1 to < 5), high (≥ 5, e.g. a demo request in the last few days). The cut points are
  ``ENGAGEMENT_LEVELS``; nothing new is derived.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Iterable, Literal, Mapping

import yaml

if TYPE_CHECKING:
    from leadscore.config.params import Params

Lang = Literal["en", "de"]
LANGS: tuple[Lang, ...] = ("en", "de")
MISSING = "missing"  # a value entry of the glossary that marks a placeholder for "not given"

# activity type → ((zero, one, many) en, (zero, one, many) de); {n} count, {days} window
ACTIVITIES: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "email_open": (("Opened no e-mails in the last {days} days", "Opened 1 e-mail in the last {days} days",
                    "Opened {n} e-mails in the last {days} days"),
                   ("Hat in den letzten {days} Tagen keine E-Mail geöffnet", "Hat in den letzten {days} Tagen 1 E-Mail geöffnet",
                    "Hat in den letzten {days} Tagen {n} E-Mails geöffnet")),
    "email_click": (("Clicked no e-mail links in the last {days} days", "Clicked 1 e-mail link in the last {days} days",
                     "Clicked {n} e-mail links in the last {days} days"),
                    ("Hat in den letzten {days} Tagen in keiner E-Mail geklickt",
                     "Hat in den letzten {days} Tagen 1× in einer E-Mail geklickt",
                     "Hat in den letzten {days} Tagen {n}× in E-Mails geklickt")),
    "page_view": (("Viewed no web pages in the last {days} days", "Viewed 1 web page in the last {days} days",
                   "Viewed {n} web pages in the last {days} days"),
                  ("Hat in den letzten {days} Tagen keine Seite der Website aufgerufen",
                   "Hat in den letzten {days} Tagen 1 Seite der Website aufgerufen",
                   "Hat in den letzten {days} Tagen {n} Seiten der Website aufgerufen")),
    "pricing_page_view": (("Did not visit the pricing page in the last {days} days",
                           "Visited the pricing page 1× in the last {days} days",
                           "Visited the pricing page {n}× in the last {days} days"),
                          ("Hat die Preisseite in den letzten {days} Tagen nicht besucht",
                           "Hat die Preisseite in den letzten {days} Tagen 1× besucht",
                           "Hat die Preisseite in den letzten {days} Tagen {n}× besucht")),
    "whitepaper_download": (("Downloaded no whitepapers in the last {days} days",
                             "Downloaded 1 whitepaper in the last {days} days",
                             "Downloaded {n} whitepapers in the last {days} days"),
                            ("Hat in den letzten {days} Tagen kein Whitepaper heruntergeladen",
                             "Hat in den letzten {days} Tagen 1 Whitepaper heruntergeladen",
                             "Hat in den letzten {days} Tagen {n} Whitepaper heruntergeladen")),
    "webinar_attendance": (("Attended no webinars in the last {days} days", "Attended 1 webinar in the last {days} days",
                            "Attended {n} webinars in the last {days} days"),
                           ("Hat in den letzten {days} Tagen an keinem Webinar teilgenommen",
                            "Hat in den letzten {days} Tagen an 1 Webinar teilgenommen",
                            "Hat in den letzten {days} Tagen an {n} Webinaren teilgenommen")),
    "demo_request": (("No demo request in the last {days} days", "Requested a demo 1× in the last {days} days",
                      "Requested a demo {n}× in the last {days} days"),
                     ("Hat in den letzten {days} Tagen keine Demo angefragt",
                      "Hat in den letzten {days} Tagen 1× eine Demo angefragt",
                      "Hat in den letzten {days} Tagen {n}× eine Demo angefragt")),
    "contact_form": (("Did not send the contact form in the last {days} days",
                      "Sent the contact form 1× in the last {days} days",
                      "Sent the contact form {n}× in the last {days} days"),
                     ("Hat in den letzten {days} Tagen das Kontaktformular nicht abgeschickt",
                      "Hat in den letzten {days} Tagen 1× das Kontaktformular abgeschickt",
                      "Hat in den letzten {days} Tagen {n}× das Kontaktformular abgeschickt")),
    "trial_signup": (("No trial sign-up in the last {days} days", "Signed up for a trial 1× in the last {days} days",
                      "Signed up for a trial {n}× in the last {days} days"),
                     ("Hat sich in den letzten {days} Tagen nicht für einen Test registriert",
                      "Hat sich in den letzten {days} Tagen 1× für einen Test registriert",
                      "Hat sich in den letzten {days} Tagen {n}× für einen Test registriert")),
    "unsubscribe": (("Did not unsubscribe in the last {days} days", "Unsubscribed 1× in the last {days} days",
                     "Unsubscribed {n}× in the last {days} days"),
                    ("Hat sich in den letzten {days} Tagen nicht abgemeldet",
                     "Hat sich in den letzten {days} Tagen 1× abgemeldet",
                     "Hat sich in den letzten {days} Tagen {n}× abgemeldet")),
    "email_bounce": (("No bounced e-mails in the last {days} days", "1 e-mail bounced in the last {days} days",
                      "{n} e-mails bounced in the last {days} days"),
                     ("Keine unzustellbaren E-Mails in den letzten {days} Tagen",
                      "1 E-Mail war in den letzten {days} Tagen unzustellbar",
                      "{n} E-Mails waren in den letzten {days} Tagen unzustellbar")),
}
DERIVED: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "activities": (("No marketing interactions in the last {days} days",
                    "1 marketing interaction in the last {days} days",
                    "{n} marketing interactions in the last {days} days"),
                   ("Keine Marketing-Interaktion in den letzten {days} Tagen",
                    "1 Marketing-Interaktion in den letzten {days} Tagen",
                    "{n} Marketing-Interaktionen in den letzten {days} Tagen")),
    "hand_raisers": (("No demo request, contact form or trial sign-up in the last {days} days",
                      "1 demo request, contact form or trial sign-up in the last {days} days",
                      "{n} demo requests, contact forms or trial sign-ups in the last {days} days"),
                     ("Keine aktive Anfrage (Demo, Kontaktformular, Test) in den letzten {days} Tagen",
                      "1 aktive Anfrage (Demo, Kontaktformular, Test) in den letzten {days} Tagen",
                      "{n} aktive Anfragen (Demo, Kontaktformular, Test) in den letzten {days} Tagen")),
    "channels": (("Not active on any channel in the last {days} days", "Active on 1 channel in the last {days} days",
                  "Active on {n} channels in the last {days} days"),
                 ("In den letzten {days} Tagen auf keinem Kanal aktiv", "In den letzten {days} Tagen auf 1 Kanal aktiv",
                  "In den letzten {days} Tagen auf {n} Kanälen aktiv")),
}
# An activity type (or a team's own) without a template above: its glossary name and the count.
_WINDOW_OTHER = ("{what} in the last {days} days: {n}", "{what} in den letzten {days} Tagen: {n}")
# yes/no features → ((yes en, yes de), (no en, no de)); their names and "missing" sentences are in the glossary.
FLAGS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "is_free_mail": (("Uses a free-mail address", "Nutzt eine Freemail-Adresse"),
                     ("Uses a company e-mail address", "Nutzt eine Firmen-E-Mail-Adresse")),
    "is_competitor": (("E-mail domain belongs to a competitor", "E-Mail-Domain gehört einem Wettbewerber"),
                      ("E-mail domain is not a competitor's", "E-Mail-Domain gehört keinem Wettbewerber")),
    "has_unsubscribed": (("Has unsubscribed from e-mails", "Hat sich von E-Mails abgemeldet"),
                         ("Has not unsubscribed from e-mails", "Hat sich nicht von E-Mails abgemeldet")),
    "has_bounced": (("An e-mail to this lead bounced", "Eine E-Mail an diesen Lead war unzustellbar"),
                    ("No e-mail to this lead has bounced", "Bisher keine unzustellbare E-Mail an diesen Lead")),
}
# Values that mean "nothing happened yet" rather than a number (features.spec.NEVER_DAYS).
NOTHING_YET: dict[str, tuple[float, tuple[str, str]]] = {
    "days_since_last_activity": (3650.0, ("No activity yet", "Noch keine Aktivität")),
}
# Day counts: (under a day, one day, {v} days) per language.
DAYS: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "lead_age_days": (("Lead created today", "Lead known for 1 day", "Lead known for {v} days"),
                      ("Lead seit heute bekannt", "Lead seit 1 Tag bekannt", "Lead seit {v} Tagen bekannt")),
    "days_since_last_activity": (("Last activity less than a day ago", "Last activity 1 day ago", "Last activity {v} days ago"),
                                 ("Letzte Aktivität vor weniger als einem Tag", "Letzte Aktivität vor 1 Tag",
                                  "Letzte Aktivität vor {v} Tagen")),
    # 0 exactly: no interaction yet (features.build fills it so); activities are strictly before as_of.
    "days_since_first_activity": (("No activity yet", "First activity 1 day ago", "First activity {v} days ago"),
                                  ("Noch keine Aktivität", "Erste Aktivität vor 1 Tag", "Erste Aktivität vor {v} Tagen")),
}
# Engagement as a level: (lower bound, en, de), highest first; 0 is "none".
ENGAGEMENT_LEVELS: tuple[tuple[float, str, str], ...] = (
    (5.0, "High recent activity", "Zuletzt hohe Aktivität"),
    (1.0, "Moderate recent activity", "Zuletzt mittlere Aktivität"),
    (0.0, "Low recent activity", "Zuletzt geringe Aktivität"),
)
ENGAGEMENT_NONE = ("No recent activity", "Zuletzt keine Aktivität")
# activity_trend: this month's interactions minus the monthly average of the two months before.
TREND: tuple[tuple[str, str, str, str, str], tuple[str, str, str, str, str]] = (
    ("As active in the last 30 days as in the months before",
     "1 more interaction in the last 30 days than the monthly average before",
     "{v} more interactions in the last 30 days than the monthly average before",
     "1 fewer interaction in the last 30 days than the monthly average before",
     "{v} fewer interactions in the last 30 days than the monthly average before"),
    ("In den letzten 30 Tagen so aktiv wie in den Monaten davor",
     "In den letzten 30 Tagen 1 Interaktion mehr als im Monatsdurchschnitt davor",
     "In den letzten 30 Tagen {v} Interaktionen mehr als im Monatsdurchschnitt davor",
     "In den letzten 30 Tagen 1 Interaktion weniger als im Monatsdurchschnitt davor",
     "In den letzten 30 Tagen {v} Interaktionen weniger als im Monatsdurchschnitt davor"),
)
# What a lead (or marketing) can do, phrased as an action: {n} is the count.
ACTIONS: dict[str, tuple[str, str]] = {
    "demo_request": ("{n}× demo request", "{n}× Demo-Anfrage"),
    "contact_form": ("{n}× contact form", "{n}× Kontaktformular"),
    "trial_signup": ("{n}× trial sign-up", "{n}× Test-Registrierung"),
    "pricing_page_view": ("{n}× pricing page visit", "{n}× Besuch der Preisseite"),
    "webinar_attendance": ("{n}× webinar attended", "{n}× Webinar besucht"),
    "whitepaper_download": ("{n}× whitepaper download", "{n}× Whitepaper-Download"),
    "email_click": ("{n}× e-mail click", "{n}× Klick in einer E-Mail"),
    "email_open": ("{n}× e-mail opened", "{n}× E-Mail geöffnet"),
    "page_view": ("{n}× website visit", "{n}× Website-Besuch"),
}
_NOT_GIVEN = ("not given", "nicht angegeben")
_LAST = (("last", "days"), ("letzte", "Tage"))
_WINDOW = re.compile(r"^(?P<what>.+)_(?P<days>\d+)d$")
_DECAYED = re.compile(r"^(?P<what>.+)_(?P<days>\d+)d_hl(?P<half>[0-9.]+)$")
_DECAY_NOTE = ("each counts half as much every {half} days", "jede Aktion zählt alle {half} Tage nur noch halb so viel")


# ---------------------------------------------------------------------------------------
# The glossary


class GlossaryError(ValueError):
    """The glossary file or a params glossary is malformed; the message names the entry."""


@dataclass(frozen=True)
class FieldName:
    names: tuple[str, str]  # en, de
    missing: tuple[str, str] | None = None  # the whole sentence for a missing value
    verbatim: bool = False  # identifiers: values shown as they are, never a glossary gap


@dataclass(frozen=True)
class Glossary:
    """Field names, value names per field, and the tokens that mean "not given" (case-folded)."""

    fields: dict[str, FieldName] = field(default_factory=dict)
    values: dict[str, dict[str, tuple[str, str] | None]] = field(default_factory=dict)  # None: missing
    missing: frozenset[str] = frozenset()

    def value(self, feature: str, value: str) -> tuple[str, str] | None | Literal[False]:
        """The names of a value ((en, de)), None when it marks "not given", False when unknown."""
        table = self.values.get(feature, {})
        if value in table:
            return table[value]
        folded = {k.casefold(): v for k, v in table.items()}
        key = value.strip().casefold()
        if key in folded:
            return folded[key]
        return None if key in self.missing else False


def _texts(entry: object, where: str) -> tuple[str, str]:
    if not isinstance(entry, Mapping) or not all(isinstance(entry.get(lang), str) and entry.get(lang) for lang in LANGS):
        raise GlossaryError(f"{where}: expected {{en: ..., de: ...}} (both non-empty), found {entry!r}")
    return str(entry["en"]), str(entry["de"])


def _key(key: object, where: str) -> str:
    if not isinstance(key, str):
        raise GlossaryError(f"{where}: key {key!r} is not text; quote it in YAML (\"yes\", \"no\", \"NO\", \"1\")")
    return key


def _merge_into(fields: dict, values: dict, raw: Mapping, source: str) -> None:
    for name, entry in (raw.get("fields") or {}).items():
        where = f"{source}: fields.{_key(name, f'{source}: fields')}"
        if not isinstance(entry, Mapping):
            raise GlossaryError(f"{where}: expected {{en: ..., de: ...}}, found {entry!r}")
        unknown = set(entry) - {"en", "de", "missing", "verbatim"}
        if unknown:
            raise GlossaryError(f"{where}: unknown keys {sorted(unknown)} (allowed: en, de, missing, verbatim)")
        missing = entry.get("missing")
        fields[name] = FieldName(_texts(entry, where), _texts(missing, f"{where}.missing") if missing is not None else None,
                                 bool(entry.get("verbatim", False)))
    for name, table in (raw.get("values") or {}).items():
        where = f"{source}: values.{_key(name, f'{source}: values')}"
        if not isinstance(table, Mapping):
            raise GlossaryError(f"{where}: expected a mapping of value → {{en, de}} or 'missing', found {table!r}")
        out = values.setdefault(name, {})
        for value, entry in table.items():
            at = f"{where}.{_key(value, where)}"
            out[value] = None if entry == MISSING else _texts(entry, at)


def packaged_glossary_text() -> str:
    """The packaged glossary file's text (``leadscore.features/glossary.yaml``)."""
    return resources.files("leadscore.features").joinpath("glossary.yaml").read_text(encoding="utf-8")


def load_glossary(*extra: Mapping | None) -> Glossary:
    """The packaged glossary with each of ``extra`` (``{fields: …, values: …}``) merged over it, in order."""
    raw = yaml.safe_load(packaged_glossary_text()) or {}
    fields: dict[str, FieldName] = {}
    values: dict[str, dict[str, tuple[str, str] | None]] = {}
    _merge_into(fields, values, raw, "glossary.yaml")
    for i, more in enumerate(extra):
        if more:
            _merge_into(fields, values, more, f"params glossary #{i + 1}" if len(extra) > 1 else "params glossary")
    missing = frozenset(str(m).strip().casefold() for m in raw.get("missing", []))
    return Glossary(fields, values, missing)


def _params_glossary(params: "Params") -> dict:
    return params.glossary.model_dump(mode="json", exclude_none=True)


@lru_cache(maxsize=1)
def active_glossary() -> Glossary:
    """The glossary every text uses: packaged, with the team's ``glossary:`` section of the params file
    the CLI and service read by default (``LEADSCORE_PARAMS_PATH``, else ./params.yaml, else packaged)."""
    if _chosen:
        return _chosen[0]
    from leadscore.config.params import load_params
    from leadscore.config.settings import get_settings

    return load_glossary(_params_glossary(load_params(get_settings().params_path)))


_chosen: list[Glossary] = []


def use_glossary(params: "Params | Mapping | None") -> Glossary | None:
    """Make the texts use the glossary of these params (a ``Params`` or a ``{fields, values}`` mapping);
    ``None``: forget any choice, the next text reads the default params again. Returns the glossary."""
    _chosen.clear()
    active_glossary.cache_clear()
    if params is None:
        return None
    extra = params if isinstance(params, Mapping) else _params_glossary(params)
    _chosen.append(load_glossary(extra))
    return _chosen[0]


def glossary_gaps(columns: Mapping[str, Iterable[object]]) -> dict[str, list[str]]:
    """What the glossary cannot name in German: ``{field: [values…]}`` for category values it does not
    know, and ``{field: []}`` for a field without a name. Numbers and missing values are never gaps.
    Add the entries to the ``glossary:`` section of the params file (see features/glossary.yaml)."""
    g = active_glossary()
    gaps: dict[str, list[str]] = {}
    for name, values in columns.items():
        if _names_of(_base_name(name, g), g) is None:
            gaps[name] = []
        entry = g.fields.get(name)
        if entry is not None and entry.verbatim:
            continue
        unknown = sorted({str(v) for v in values if isinstance(v, str) and not is_missing(name, v)
                          and g.value(name, v) is False})
        if unknown:
            gaps.setdefault(name, []).extend(unknown)
    return gaps


# ---------------------------------------------------------------------------------------
# Values


def is_missing(feature: str, value: object) -> bool:
    """True when ``value`` says nothing: None, NaN, pandas NA, an empty text or a glossary "missing"
    token ("unknown", "Select", a team's own placeholder). A reason about such a value may only say
    that it is not given."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(value, str):
        return active_glossary().value(feature, value) is None
    try:
        return bool(value != value)  # numpy floats
    except (TypeError, ValueError):
        return False


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(value: float, lang: Lang) -> str:
    """1,234.5 / 1.234,5: whole numbers without decimals, others to one decimal (two below 0.1)."""
    value = float(value)
    if value == round(value):
        text = f"{value:,.0f}"
    elif abs(value) < 0.1:
        text = f"{value:,.2f}"
    else:
        text = f"{value:,.1f}"
    if text in ("-0", "-0.0", "-0.00"):
        text = text[1:]
    return text.translate(str.maketrans(",.", ".,")) if lang == "de" else text


def _quoted(text: str, lang: Lang) -> str:
    return f"„{text}“" if lang == "de" else f'"{text.replace("_", " ")}"'


def _value(feature: str, value: object, lang: Lang) -> str:
    """A value as a rep reads it: its glossary name, a number in the language's format, "not given"
    for a missing value, else quoted as the CRM's own value."""
    i = LANGS.index(lang)
    if is_missing(feature, value):
        return _NOT_GIVEN[i]
    if _is_number(value):
        return _number(float(value), lang)
    text = str(value)
    names = active_glossary().value(feature, text)
    return names[i] if names else _quoted(text.strip(), lang)


def _names_of(name: str, g: Glossary) -> tuple[str, str] | None:
    entry = g.fields.get(name)
    if entry is not None:
        return entry.names
    return g.values.get("activity_type", {}).get(name) or None


def _base_name(feature: str, g: Glossary) -> str:
    """The name a feature's label is made of: the activity type of a windowed count, else itself."""
    if feature in g.fields:
        return feature
    match = _DECAYED.match(feature) or _WINDOW.match(feature)
    return match["what"] if match else feature


def _humanise(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def _name(name: str, lang: Lang) -> str:
    """A field's (or an activity type's) name; not in the glossary: humanised (en), quoted (de)."""
    names = _names_of(name, active_glossary())
    if names:
        return names[LANGS.index(lang)]
    return f"„{name}“" if lang == "de" else _humanise(name)


def label(feature: str, lang: Lang = "en") -> str:
    """A short name for the feature, e.g. 'Pricing page visits, last 30 days'."""
    i = LANGS.index(lang)
    last, days = _LAST[i]
    decayed = _DECAYED.match(feature)
    if decayed:
        note = _DECAY_NOTE[i].format(half=decayed["half"].replace(".", "," if lang == "de" else "."))
        return f"{_name(decayed['what'], lang)}, {last} {decayed['days']} {days} ({note})"
    match = _WINDOW.match(feature)
    if match and feature not in active_glossary().fields:
        return f"{_name(match['what'], lang)}, {last} {match['days']} {days}"
    return _name(feature, lang)


def _count_form(n: float) -> int:
    return 0 if n == 0 else 1 if n == 1 else 2


def _missing_sentence(feature: str, lang: Lang) -> str:
    i = LANGS.index(lang)
    entry = active_glossary().fields.get(feature)
    if entry is not None and entry.missing:
        return entry.missing[i]
    return f"{label(feature, lang)}: {_NOT_GIVEN[i]}"


def describe(feature: str, value: object, lang: Lang = "en") -> str:
    """A sentence for one feature value that a sales rep reads without a glossary."""
    i = LANGS.index(lang)
    if is_missing(feature, value):
        return _missing_sentence(feature, lang)
    number = float(value) if _is_number(value) else None
    if feature in FLAGS:
        yes, no = FLAGS[feature]
        truthy = bool(number) if number is not None else str(value).strip().casefold() in ("1", "true", "yes", "ja")
        return (yes if truthy else no)[i]
    if number is not None:
        if feature in NOTHING_YET and number >= NOTHING_YET[feature][0]:
            return NOTHING_YET[feature][1][i]
        if feature in DAYS:
            forms = DAYS[feature][i]
            if feature == "lead_age_days":  # whole days: "known for 12 days"
                number = float(math.floor(number))
            text = forms[0] if number < 1 else forms[1] if number == 1 else forms[2].format(v=_number(number, lang))
            return text
        if feature == "engagement":
            if number <= 0:
                return ENGAGEMENT_NONE[i]
            return next(level[1 + i] for level in ENGAGEMENT_LEVELS if number >= level[0])
        if feature == "activity_trend":
            forms, size = TREND[i], abs(number)
            if number == 0:
                return forms[0]
            k = (1 if size == 1 else 2) + (0 if number > 0 else 2)
            return forms[k].format(v=_number(size, lang))
        if feature == "employees" and number == 1:
            return ("One-person company", "Ein-Personen-Unternehmen")[i]
        if feature == "employees":
            return (f"Company size: {_number(number, 'en')} employees",
                    f"Unternehmensgröße: {_number(number, 'de')} Mitarbeitende")[i]
        if feature == "annual_revenue":
            return f"{label(feature, lang)}: {_money(number, lang)}"
        decayed = _DECAYED.match(feature)
        if decayed:
            return f"{label(feature, lang)}: {_number(number, lang)}"
        match = _WINDOW.match(feature)
        if match and feature not in active_glossary().fields:
            what, days = match["what"], match["days"]
            n = _number(number, lang)
            templates = DERIVED.get(what) or ACTIVITIES.get(what)
            if templates:
                return templates[i][_count_form(number)].format(n=n, days=days)
            return _WINDOW_OTHER[i].format(what=_name(what, lang), days=days, n=n)
    return f"{label(feature, lang)}: {_value(feature, value, lang)}"


def _money(value: float, lang: Lang) -> str:
    """EUR 1.2 million / 1,2 Mio. EUR; below a million the full amount."""
    for size, en, de in ((1e9, "billion", "Mrd."), (1e6, "million", "Mio.")):
        if abs(value) >= size:
            n = _number(round(value / size, 1), lang)
            return f"EUR {n} {en}" if lang == "en" else f"{n} {de} EUR"
    n = _number(round(value), lang)
    return f"EUR {n}" if lang == "en" else f"{n} EUR"


def signal_label(signal: str, lang: Lang = "en") -> str:
    """The name of a business signal (all windows of one activity type, a feature and its band)."""
    return label(signal, lang)


def action(activity_type: str, count: int, lang: Lang = "en") -> str:
    """'2× pricing page visit' / '2× Besuch der Preisseite'."""
    entry = ACTIONS.get(activity_type)
    if entry:
        return entry[LANGS.index(lang)].format(n=count)
    return f"{count}× {_name(activity_type, lang)}"
