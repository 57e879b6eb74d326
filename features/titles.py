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


def seniority(job_title: str | None) -> str:
    """The seniority level a title states; ``individual_contributor`` when it states none."""
    if not job_title or not str(job_title).strip():
        return "unknown"
    for label, pattern in _COMPILED:
        if pattern.search(str(job_title)):
            return label
    return "individual_contributor"


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
