"""Seniority from German and English job titles, and the region of a country."""

from __future__ import annotations

import re

# Order matters: "Werkstudent Marketing Manager" is a student, "Head of" beats "Manager".
SENIORITY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("student", r"werkstudent|\bstudent|studentin|studierende|doktorand|phd candidate"),
    ("intern", r"praktikant|\bintern\b|internship|trainee|azubi|auszubildende|apprentice"),
    ("freelancer", r"freelance|freiberuf|selbstst[äa]ndig|self[- ]employed"),
    (
        "c_level",
        r"\bc[eftoim]o\b|chief|gesch[äa]ftsf[üu]hrer|geschaeftsfuehrer|vorstand|managing director|"
        r"founder|gr[üu]nder|inhaber|owner|\bpresident|partner\b",
    ),
    ("vp_director", r"\bvp\b|vice president|director|direktor|bereichsleiter|prokurist"),
    ("head_manager", r"head of|leiter|leitung|\blead\b|manager|teamlead|abteilungsleiter"),
)
_COMPILED = tuple((label, re.compile(pattern, re.IGNORECASE)) for label, pattern in SENIORITY_PATTERNS)
SENIORITY_LEVELS = ("c_level", "vp_director", "head_manager", "individual_contributor",
                    "student", "intern", "freelancer", "unknown")


def _first_match(job_title: str | None, patterns, otherwise: str) -> str:
    """The label of the first pattern the title matches; ``unknown`` for an empty title."""
    if not job_title or not str(job_title).strip():
        return "unknown"
    return next((label for label, pattern in patterns if pattern.search(str(job_title))), otherwise)


def seniority(job_title: str | None) -> str:
    """The seniority level a title states; ``individual_contributor`` when it states none."""
    return _first_match(job_title, _COMPILED, "individual_contributor")


FUNCTION_PATTERNS: tuple[tuple[str, str], ...] = (
    ("marketing", r"marketing|brand|kommunikation|communication|content|seo|growth|demand"),
    ("sales", r"sales|vertrieb|verkauf|account|business development|key account|kundenberater"),
    ("it", r"\bit\b|it-|informati|software|engineer|entwickl|developer|cto|cio|tech|daten|data|digital"),
    ("finance", r"financ|finanz|cfo|controll|buchhalt|accounting"),
    ("purchasing", r"einkauf|purchas|procure|beschaffung|buyer|einkäufer"),
    ("hr", r"\bhr\b|human resources|personal|recruit|people"),
    ("operations", r"operations|betrieb|logisti|produktion|production|supply"),
    ("management", r"\bceo\b|gesch[äa]ftsf[üu]hr|managing director|vorstand|inhaber|owner|founder|gr[üu]nder|general manager"),
)
_FUNCTIONS = tuple((label, re.compile(pattern, re.IGNORECASE)) for label, pattern in FUNCTION_PATTERNS)


def job_function(job_title: str | None) -> str:
    """The business function a title names (marketing, sales, it, …), ``other`` or ``unknown``."""
    return _first_match(job_title, _FUNCTIONS, "other")


EMPLOYEE_BANDS = ((0, "1-9"), (10, "10-49"), (50, "50-199"), (200, "200-999"), (1000, "1000-4999"), (5000, "5000+"))
REVENUE_BANDS = ((0, "<1M"), (1e6, "1M-10M"), (1e7, "10M-50M"), (5e7, "50M-250M"), (2.5e8, "250M+"))


def band(value: float | None, bands: tuple[tuple[float, str], ...]) -> str | None:
    """The band a number falls in (each band from its lower bound up to the next one)."""
    if value is None or value != value:
        return None
    chosen = None
    for lower, name in bands:
        if value >= lower:
            chosen = name
    return chosen


DACH = frozenset({"DE", "AT", "CH"})
EU = frozenset({
    "BE", "BG", "CZ", "DK", "EE", "IE", "GR", "ES", "FR", "HR", "IT", "CY", "LV", "LT", "LU",
    "HU", "MT", "NL", "PL", "PT", "RO", "SI", "SK", "FI", "SE", "LI", "NO", "IS",
})


def region(country: str | None) -> str:
    """DACH, EU (with EEA), other, or unknown for an ISO-2 country code."""
    if not country or not str(country).strip():
        return "unknown"
    code = str(country).strip().upper()
    if code in DACH:
        return "DACH"
    if code in EU:
        return "EU"
    return "other"
