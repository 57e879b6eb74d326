"""Plain-English sentences for reasons, in the terms a sales rep uses."""

from __future__ import annotations

import re

ACTIVITY_PHRASES = {
    "email_open": "Opened {n} e-mail(s)",
    "email_click": "Clicked {n} e-mail link(s)",
    "page_view": "Viewed {n} web page(s)",
    "pricing_page_view": "Visited the pricing page {n}×",
    "whitepaper_download": "Downloaded {n} whitepaper(s)",
    "webinar_attendance": "Attended {n} webinar(s)",
    "demo_request": "Requested a demo {n}×",
    "contact_form": "Sent the contact form {n}×",
    "trial_signup": "Signed up for a trial {n}×",
    "unsubscribe": "Unsubscribed {n}×",
    "email_bounce": "{n} e-mail(s) bounced",
}
FEATURE_PHRASES = {
    "employees": "Company size: {v} employees",
    "annual_revenue": "Annual revenue: {v} EUR",
    "industry": "Industry: {v}",
    "country": "Country: {v}",
    "region": "Region: {v}",
    "lead_source": "Lead source: {v}",
    "seniority": "Seniority: {v}",
    "lead_age_days": "Lead is {v} days old",
    "days_since_last_activity": "Last activity {v} days ago",
    "days_since_first_activity": "First activity {v} days ago",
}
_WINDOW = re.compile(r"^(?P<what>.+)_(?P<days>\d+)d$")


def _fmt(value: object) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"
    return str(value).replace("_", " ")


def describe(feature: str, value: object) -> str:
    """A sentence for one feature value, e.g. ``Visited the pricing page 3× in the last 30 days``."""
    if feature == "is_free_mail":
        return "Uses a free-mail address" if value else "Uses a company e-mail domain"
    if feature == "is_competitor":
        return "E-mail domain belongs to a competitor" if value else "Not a competitor"
    if feature == "has_unsubscribed":
        return "Has unsubscribed from e-mails" if value else "Still subscribed to e-mails"
    match = _WINDOW.match(feature)
    if match:
        what, days, n = match["what"], match["days"], _fmt(value)
        if what == "activities":
            return f"{n} marketing interaction(s) in the last {days} days"
        if what == "hand_raisers":
            return f"{n} hand-raiser(s) (demo, contact form, trial) in the last {days} days"
        phrase = ACTIVITY_PHRASES.get(what, what.replace("_", " ").capitalize() + ": {n}×")
        return phrase.format(n=n) + f" in the last {days} days"
    template = FEATURE_PHRASES.get(feature)
    if template:
        return template.format(v=_fmt(value))
    return f"{feature.replace('_', ' ').capitalize()}: {_fmt(value)}"
