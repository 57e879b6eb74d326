"""What every feature means, for people: a group (fit or interest), a label in English and German,
and how to phrase a value ("Visited the pricing page 3× in the last 14 days" / "Hat die Preisseite
in den letzten 14 Tagen 3× besucht"). Explanations and the lead card read it from here.
"""

from __future__ import annotations

import re
from typing import Literal

Lang = Literal["en", "de"]
LANGS: tuple[Lang, ...] = ("en", "de")

# activity type → (label en, label de, sentence en, sentence de); {n} count, {days} window
ACTIVITIES: dict[str, tuple[str, str, str, str]] = {
    "email_open": ("E-mail opens", "E-Mail-Öffnungen",
                   "Opened {n} e-mail(s) in the last {days} days", "Hat in den letzten {days} Tagen {n} E-Mail(s) geöffnet"),
    "email_click": ("E-mail clicks", "Klicks in E-Mails",
                    "Clicked {n} e-mail link(s) in the last {days} days", "Hat in den letzten {days} Tagen {n}× in E-Mails geklickt"),
    "page_view": ("Website visits", "Website-Besuche",
                  "Viewed {n} web page(s) in the last {days} days", "Hat in den letzten {days} Tagen {n} Webseite(n) aufgerufen"),
    "pricing_page_view": ("Pricing page visits", "Besuche der Preisseite",
                          "Visited the pricing page {n}× in the last {days} days", "Hat die Preisseite in den letzten {days} Tagen {n}× besucht"),
    "whitepaper_download": ("Whitepaper downloads", "Whitepaper-Downloads",
                            "Downloaded {n} whitepaper(s) in the last {days} days", "Hat in den letzten {days} Tagen {n} Whitepaper heruntergeladen"),
    "webinar_attendance": ("Webinars attended", "Besuchte Webinare",
                           "Attended {n} webinar(s) in the last {days} days", "Hat in den letzten {days} Tagen an {n} Webinar(en) teilgenommen"),
    "demo_request": ("Demo requests", "Demo-Anfragen",
                     "Requested a demo {n}× in the last {days} days", "Hat in den letzten {days} Tagen {n}× eine Demo angefragt"),
    "contact_form": ("Contact requests", "Kontaktanfragen",
                     "Sent the contact form {n}× in the last {days} days", "Hat in den letzten {days} Tagen {n}× das Kontaktformular geschickt"),
    "trial_signup": ("Trial sign-ups", "Test-Registrierungen",
                     "Signed up for a trial {n}× in the last {days} days", "Hat sich in den letzten {days} Tagen {n}× für einen Test registriert"),
    "unsubscribe": ("Unsubscribes", "Abmeldungen",
                    "Unsubscribed {n}× in the last {days} days", "Hat sich in den letzten {days} Tagen {n}× abgemeldet"),
    "email_bounce": ("Bounced e-mails", "Unzustellbare E-Mails",
                     "{n} e-mail(s) bounced in the last {days} days", "{n} E-Mail(s) in den letzten {days} Tagen unzustellbar"),
}
DERIVED: dict[str, tuple[str, str, str, str]] = {
    "activities": ("Marketing interactions", "Marketing-Interaktionen",
                   "{n} marketing interaction(s) in the last {days} days", "{n} Marketing-Interaktion(en) in den letzten {days} Tagen"),
    "hand_raisers": ("Hand-raisers (demo, contact, trial)", "Aktive Anfragen (Demo, Kontakt, Test)",
                     "{n} hand-raiser(s) (demo, contact form, trial) in the last {days} days",
                     "{n} aktive Anfrage(n) (Demo, Kontaktformular, Test) in den letzten {days} Tagen"),
    "channels": ("Distinct channels", "Verschiedene Kanäle",
                 "Active on {n} channel(s) in the last {days} days", "In den letzten {days} Tagen auf {n} Kanal/Kanälen aktiv"),
}
# feature → (label en, label de, sentence en, sentence de); {v} the value
PLAIN: dict[str, tuple[str, str, str, str]] = {
    "employees": ("Employees", "Mitarbeitende", "Company size: {v} employees", "Unternehmensgröße: {v} Mitarbeitende"),
    "annual_revenue": ("Annual revenue", "Jahresumsatz", "Annual revenue: {v} EUR", "Jahresumsatz: {v} EUR"),
    "industry": ("Industry", "Branche", "Industry: {v}", "Branche: {v}"),
    "country": ("Country", "Land", "Country: {v}", "Land: {v}"),
    "region": ("Region", "Region", "Region: {v}", "Region: {v}"),
    "lead_source": ("Lead source", "Lead-Quelle", "Lead source: {v}", "Lead-Quelle: {v}"),
    "seniority": ("Seniority", "Hierarchieebene", "Seniority: {v}", "Hierarchieebene: {v}"),
    "job_function": ("Function", "Funktion", "Function: {v}", "Funktion: {v}"),
    "employees_band": ("Company size band", "Größenklasse", "Company size: {v} employees", "Unternehmensgröße: {v} Mitarbeitende"),
    "annual_revenue_band": ("Revenue band", "Umsatzklasse", "Annual revenue: {v} EUR", "Jahresumsatz: {v} EUR"),
    "activity_trend": ("Activity trend (last 30 days vs the 60 before)", "Aktivitätstrend (letzte 30 Tage gegenüber den 60 davor)",
                       "Activity trend: {v} interactions vs the monthly average before",
                       "Aktivitätstrend: {v} Interaktionen gegenüber dem Monatsmittel davor"),
    "engagement": ("Engagement (recent interactions count more)", "Engagement (jüngere Interaktionen zählen mehr)",
                   "Engagement score {v} (recent and hand-raising interactions count more)",
                   "Engagement-Wert {v} (jüngere und aktive Anfragen zählen mehr)"),
    "lead_age_days": ("Lead age (days)", "Alter des Leads (Tage)", "Lead is {v} days old", "Lead ist {v} Tage alt"),
    "days_since_last_activity": ("Days since last activity", "Tage seit der letzten Aktivität",
                                 "Last activity {v} days ago", "Letzte Aktivität vor {v} Tagen"),
    "days_since_first_activity": ("Days since first activity", "Tage seit der ersten Aktivität",
                                  "First activity {v} days ago", "Erste Aktivität vor {v} Tagen"),
}
# yes/no features → (label en, label de, (yes en, yes de), (no en, no de))
FLAGS: dict[str, tuple[str, str, tuple[str, str], tuple[str, str]]] = {
    "is_free_mail": ("Free-mail address", "Freemail-Adresse",
                     ("Uses a free-mail address", "Nutzt eine Freemail-Adresse"),
                     ("Uses a company e-mail domain", "Nutzt eine Firmen-E-Mail-Domain")),
    "is_competitor": ("Competitor domain", "Domain eines Wettbewerbers",
                      ("E-mail domain belongs to a competitor", "E-Mail-Domain gehört einem Wettbewerber"),
                      ("Not a competitor", "Kein Wettbewerber")),
    "has_unsubscribed": ("Unsubscribed", "Abgemeldet",
                         ("Has unsubscribed from e-mails", "Hat sich von E-Mails abgemeldet"),
                         ("Still subscribed to e-mails", "Erhält weiterhin E-Mails")),
    "has_bounced": ("E-mail bounced", "E-Mail unzustellbar",
                    ("An e-mail to this lead bounced", "Eine E-Mail an diesen Lead war unzustellbar"),
                    ("E-mails are delivered", "E-Mails werden zugestellt")),
}
VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "seniority": {
        "c_level": ("C-level / managing director", "Geschäftsführung / C-Level"),
        "vp_director": ("VP / director", "Bereichsleitung / Direktor"),
        "head_manager": ("head of / manager", "Leitung / Manager"),
        "individual_contributor": ("specialist", "Fachkraft"),
        "student": ("student", "Student/in"),
        "intern": ("intern", "Praktikant/in"),
        "freelancer": ("freelancer", "Freiberufler/in"),
        "unknown": ("unknown", "unbekannt"),
    },
    "region": {"DACH": ("DACH", "DACH"), "EU": ("EU", "EU"), "other": ("outside the EU", "außerhalb der EU"),
               "unknown": ("unknown", "unbekannt")},
}
_WINDOW = re.compile(r"^(?P<what>.+)_(?P<days>\d+)d$")
# "None in the last N days", where "No" + the label does not read right (German plural adjectives).
ZERO: dict[str, tuple[str, str]] = {
    "webinar_attendance": ("No webinars attended", "Keine besuchten Webinare"),
    "email_bounce": ("No bounced e-mails", "Keine unzustellbaren E-Mails"),
    "activities": ("No marketing interactions", "Keine Marketing-Interaktionen"),
    "hand_raisers": ("No hand-raisers (demo, contact, trial)", "Keine aktiven Anfragen (Demo, Kontakt, Test)"),
    "channels": ("Not active on any channel", "Auf keinem Kanal aktiv"),
}
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


def _number(value: float, lang: Lang) -> str:
    text = f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"
    return text.translate(str.maketrans(",.", ".,")) if lang == "de" else text


def _value(feature: str, value: object, lang: Lang) -> str:
    if value is None:
        return "unbekannt" if lang == "de" else "unknown"
    if isinstance(value, (int, float)):
        return _number(float(value), lang)
    names = VALUES.get(feature, {}).get(str(value))
    return names[LANGS.index(lang)] if names else str(value).replace("_", " ")


def _humanise(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def label(feature: str, lang: Lang = "en") -> str:
    """A short name for the feature, e.g. 'Pricing page visits, last 30 days'."""
    i = LANGS.index(lang)
    match = _WINDOW.match(feature)
    if match:
        entry = DERIVED.get(match["what"]) or ACTIVITIES.get(match["what"])
        name = entry[i] if entry else _humanise(match["what"])
        return f"{name}, {'letzte' if lang == 'de' else 'last'} {match['days']} {'Tage' if lang == 'de' else 'days'}"
    for table in (PLAIN, FLAGS):
        if feature in table:
            return table[feature][i]
    return _humanise(feature)


# Values that mean "nothing happened yet" rather than a number (features.build.NEVER_DAYS, 0 days of history).
NOTHING_YET: dict[str, tuple[float, tuple[str, str]]] = {
    "days_since_last_activity": (3650.0, ("No activity yet", "Noch keine Aktivität")),
}


def describe(feature: str, value: object, lang: Lang = "en") -> str:
    """A sentence for one feature value that a sales rep reads without a glossary."""
    i = LANGS.index(lang)
    if feature in NOTHING_YET and isinstance(value, (int, float)) and value >= NOTHING_YET[feature][0]:
        return NOTHING_YET[feature][1][i]
    if feature in FLAGS:
        yes, no = FLAGS[feature][2], FLAGS[feature][3]
        return (yes if value else no)[i]
    match = _WINDOW.match(feature)
    if match:
        n, days = _value(feature, value, lang), match["days"]
        entry = DERIVED.get(match["what"]) or ACTIVITIES.get(match["what"])
        if value == 0 and (entry or match["what"] in ZERO):
            zero = ZERO.get(match["what"])
            head = zero[i] if zero else ("Keine " + entry[i] if lang == "de" else "No " + entry[i][0].lower() + entry[i][1:])
            return f"{head} in den letzten {days} Tagen" if lang == "de" else f"{head} in the last {days} days"
        if entry:
            return entry[2 + i].format(n=n, days=days)
        what = _humanise(match["what"])
        return f"{what}: {n}× in den letzten {days} Tagen" if lang == "de" else f"{what}: {n}× in the last {days} days"
    if feature in PLAIN:
        return PLAIN[feature][2 + i].format(v=_value(feature, value, lang))
    return f"{_humanise(feature)}: {_value(feature, value, lang)}"


def signal_label(signal: str, lang: Lang = "en") -> str:
    """The name of a business signal (all windows of one activity type, a feature and its band)."""
    entry = DERIVED.get(signal) or ACTIVITIES.get(signal)
    return entry[LANGS.index(lang)] if entry else label(signal, lang)


def action(activity_type: str, count: int, lang: Lang = "en") -> str:
    """'2× pricing page visit' / '2× Besuch der Preisseite'."""
    entry = ACTIONS.get(activity_type)
    if entry:
        return entry[LANGS.index(lang)].format(n=count)
    return f"{count}× {activity_type.replace('_', ' ')}"
