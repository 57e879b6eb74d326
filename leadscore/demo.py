"""A synthetic but plausible CRM export: leads, activities and opportunities.

The data follow DOMAIN.md. Each lead has two hidden qualities: *fit* (who the lead is:
company size, industry, country, seniority, BANT, CRM in use, lead source) and *intent*
(how keen it is, which drives its activity stream). Opportunities come from fit × intent,
mostly just after a hand-raiser or a burst of activity; whether they are won depends mostly
on fit. A negative persona (students, interns, freelancers, competitors, free-mail
addresses) almost never wins. Sales activities are logged only after the hand-over, so a
pipeline that uses them leaks the label; ours must not.

Some of the truth is deliberately *not* what the default SLA points say (a size sweet spot,
healthcare fits, the CRM in use and the lead source matter, bursts and going cold matter),
so a trained model has something real to learn over the rule-based baseline.

Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order: the same
seed gives identical frames. Time is handled as float days since the start of the history
and turned into minute-resolution timestamps at the end (flooring keeps every ordering).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COMPETITOR_DOMAINS: tuple[str, ...] = ("leadrival.com", "scorely.io")
FREE_MAIL_DOMAINS: tuple[str, ...] = ("gmail.com", "gmx.de", "web.de", "yahoo.com", "outlook.com", "t-online.de")
TABLES: tuple[str, ...] = ("leads", "activities", "opportunities")
HAND_RAISER_TYPES: tuple[str, ...] = ("demo_request", "contact_form", "trial_signup")
SALES_ACTIVITY_TYPES: tuple[str, ...] = ("sales_call", "meeting", "proposal_sent")
MARKETING_ACTIVITY_TYPES: tuple[str, ...] = (
    "email_open", "email_click", "page_view", "pricing_page_view", "whitepaper_download",
    "webinar_attendance", "demo_request", "contact_form", "trial_signup", "unsubscribe", "email_bounce",
)
ACTIVITY_TYPES: tuple[str, ...] = MARKETING_ACTIVITY_TYPES + SALES_ACTIVITY_TYPES
STAGES: tuple[str, ...] = ("open", "won", "lost")
HISTORY_DAYS = 730  # two years of leads up to the data end, unless a start is given
MIN_HISTORY_DAYS = 60  # shorter, no lead could age into a deal and close within the export
DEFAULT_END = "2026-06-30"  # a fixed end by default: the same seed gives the same export on any day


def _naive(moment: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp  # the export is naive UTC

_CODE = {t: i for i, t in enumerate(ACTIVITY_TYPES)}
_EMAIL_TYPES = np.array([_CODE[t] for t in ("email_open", "email_click")])

# ---------------------------------------------------------------------------------------
# Vocabularies: (value, share, effect on fit). Effects are in logit units of the win odds.

_INDUSTRIES = (
    ("software", 0.14, 0.7), ("it services", 0.10, 0.5), ("manufacturing", 0.18, 0.6),
    ("financial services", 0.09, 0.5), ("logistics", 0.07, 0.3), ("retail", 0.08, 0.1),
    # Healthcare fits although the default SLA does not list it: something for the model to find.
    ("healthcare", 0.07, 0.4), ("consulting", 0.07, -0.1), ("media", 0.05, -0.3),
    ("construction", 0.04, 0.0), ("hospitality", 0.04, -0.6), ("education", 0.04, -0.9),
    ("public sector", 0.03, -0.9),
)
# (ISO-2, share, region effect, legal form, top-level domain)
_COUNTRIES = (
    ("DE", 0.38, 0.5, "GmbH", "de"), ("AT", 0.08, 0.5, "GmbH", "at"), ("CH", 0.08, 0.5, "AG", "ch"),
    ("NL", 0.06, 0.0, "B.V.", "nl"), ("FR", 0.05, 0.0, "SAS", "fr"), ("PL", 0.04, 0.0, "Sp. z o.o.", "pl"),
    ("IT", 0.03, 0.0, "S.r.l.", "it"), ("ES", 0.03, 0.0, "S.L.", "es"), ("BE", 0.02, 0.0, "NV", "be"),
    ("SE", 0.02, 0.0, "AB", "se"), ("DK", 0.02, 0.0, "A/S", "dk"), ("CZ", 0.02, 0.0, "s.r.o.", "cz"),
    ("GB", 0.07, -0.6, "Ltd", "co.uk"), ("US", 0.07, -0.6, "Inc.", "com"), ("IN", 0.01, -0.6, "Pvt Ltd", "in"),
    ("CA", 0.01, -0.6, "Inc.", "ca"), ("AU", 0.01, -0.6, "Pty Ltd", "com.au"),
)
# (CRM in use, base logit, logit per log10(employees), fit effect): big firms run Salesforce/SAP,
# small ones Excel or nothing. Integration-ready CRMs fit better: not in the SLA, true here.
_CRMS = (
    ("Salesforce", -1.0, 0.6, 0.3), ("HubSpot", 0.6, 0.0, 0.4), ("Microsoft Dynamics", -1.2, 0.5, 0.2),
    ("SAP CRM", -2.6, 0.8, -0.1), ("Pipedrive", 0.8, -0.4, 0.1), ("Zoho CRM", 0.4, -0.4, 0.0),
    ("Excel", 1.6, -0.7, -0.3), ("none", 1.4, -0.8, -0.5), ("other", 0.0, 0.0, 0.0),
)
# (lead source, share, fit effect, intent effect)
_SOURCES = (
    ("organic_search", 0.25, 0.0, 0.1), ("paid_search", 0.16, -0.1, 0.0), ("webinar", 0.14, 0.1, 0.2),
    ("trade_fair", 0.10, 0.3, 0.2), ("referral", 0.08, 0.5, 0.3), ("linkedin", 0.15, -0.1, -0.1),
    ("content_syndication", 0.12, -0.5, -0.4),
)
_TIMEFRAMES = ("<3 months", "3-6 months", "6-12 months", ">12 months")

# Job titles by seniority (German and English, as CRM exports mix them), with the fit effect.
_TITLES = {
    "c_level": (0.6, ("Geschäftsführer", "Geschäftsführerin", "CEO", "CTO", "CFO", "CMO", "Managing Director",
                      "Inhaber", "Vorstand Vertrieb")),
    "vp_director": (0.6, ("VP Engineering", "VP Sales", "VP Marketing", "Director Marketing", "Sales Director",
                          "Bereichsleiter Vertrieb", "Bereichsleiterin IT", "Prokurist")),
    "head_manager": (0.4, ("Leiter Marketing", "Leiterin Vertrieb", "Head of Sales", "Head of Marketing", "IT-Leiter",
                           "Abteilungsleiter", "Marketing Manager", "Teamleiter", "Teamleiterin Innendienst",
                           "Product Manager", "Sales Manager", "Head of Operations", "CRM Manager")),
    "individual_contributor": (-0.3, ("Einkäufer", "Einkäuferin", "Sachbearbeiter", "Sachbearbeiterin", "Berater",
                                      "Consultant", "Marketing Specialist", "Referent Marketing", "Data Analyst",
                                      "Software Engineer", "Buyer", "Account Executive", "Vertriebsmitarbeiter")),
}
_SENIORITY_SHARES = {"c_level": 0.12, "vp_director": 0.10, "head_manager": 0.36, "individual_contributor": 0.42}
_STUDENT_TITLES = ("Student", "Studentin", "Werkstudent", "Werkstudentin Marketing", "Werkstudent Vertrieb")
_INTERN_TITLES = ("Praktikant", "Praktikantin Marketing", "Intern", "Marketing Intern", "Sales Intern")
_FREELANCER_TITLES = ("Freelancer", "Freiberufler", "Freiberuflicher Berater", "Freelance Consultant", "Selbstständig")
_COMPETITOR_TITLES = ("Marketing Manager", "Product Manager", "Head of Growth", "Sales Manager", "CEO")

# Personas: buyers, and the negative persona that almost never wins.
_PERSONAS = (("buyer", 0.905), ("student", 0.035), ("intern", 0.02), ("freelancer", 0.03), ("competitor", 0.01))
_FREE_MAIL_SHARE = {"buyer": 0.035, "student": 0.65, "intern": 0.3, "freelancer": 0.55, "competitor": 0.0}
_NEGATIVE_FIT = 4.0  # logit penalty of the negative persona: its odds of a deal and a win collapse

# Synthetic company names: stem + core + descriptor, e.g. "Alpentec Digital GmbH".
_STEMS = (
    "Alpen", "Rhein", "Nord", "Süd", "Elb", "Isar", "Main", "Hansa", "Berg", "Stahl", "Wald", "Licht", "Blau", "Grün",
    "Falken", "Adler", "Kristall", "Sonnen", "Wind", "Stern", "Fluss", "Brücken", "Turm", "Eichen", "Linden", "Quell",
    "Nova", "Vega", "Orbit", "Helio", "Terra", "Aqua", "Vertex", "Zenit", "Pixel", "Quant", "Data", "Cloud", "Info",
    "Medi", "Fin", "Agri", "Tek", "Opti", "Proto", "Syn", "Kobalt", "Saphir",
)
_CORES = (
    "tec", "werk", "soft", "systems", "tronic", "logistik", "consult", "plan", "vision", "form", "net", "works",
    "lab", "trade", "mechanik", "wave", "line", "point", "sphere", "gate", "hub", "base", "flow", "link", "mind",
    "cube", "motion", "graph", "sens", "port",
)
_DESCRIPTORS = ("", " Digital", " Solutions", " Industrie", " Group", " Technologies", " Services", " Partners",
                " International", " Engineering")
_PLACE_ENDINGS = ("stadt", "hafen", "burg", "feld", "heim", "au", "tal", "brück")
_COMPETITORS = (  # name, domain, country, employees, CRM
    ("LeadRival GmbH", "leadrival.com", "DE", 140, "HubSpot"),
    ("Scorely Ltd", "scorely.io", "GB", 60, "Salesforce"),
)

# People's names exist only inside e-mail addresses (personal data stays in one column).
_FIRST_NAMES = (
    "Anna", "Lukas", "Maria", "Jonas", "Laura", "Felix", "Sophie", "Paul", "Lena", "Maximilian", "Julia", "Leon",
    "Hannah", "Tim", "Sarah", "Jan", "Katharina", "Niklas", "Lisa", "Tobias", "Johanna", "Florian", "Emma", "Moritz",
    "Clara", "Sebastian", "Marie", "David", "Nina", "Thomas", "Sandra", "Michael", "Claudia", "Stefan", "Petra",
    "Andreas", "Sabine", "Markus", "Jürgen", "Özlem", "Mehmet", "Agnieszka", "Piotr", "Pierre", "Camille", "Sanne",
    "Daan", "James", "Emily", "Olivia", "Noah", "Luca", "Elena", "Marco", "Giulia",
)
_LAST_NAMES = (
    "Schmidt", "Müller", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann", "Koch",
    "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann",
    "Hartmann", "Lange", "Werner", "Krause", "Lehmann", "Köhler", "Huber", "Gruber", "Steiner", "Brunner", "Keller",
    "Yilmaz", "Kowalski", "Nowak", "Dubois", "Martin", "de Vries", "Jansen", "Smith", "Johnson", "Brown", "Rossi",
    "Garcia",
)

# Campaign vocabularies.
_WHITEPAPERS = ("Lead Scoring Leitfaden", "CRM-Integration Checkliste", "Marketing-Sales SLA Vorlage",
                "Predictive Scoring Guide", "Vergleich: Scoring-Tools", "Closed-Loop Reporting")
_WEBINAR_TOPICS = ("KI im Vertrieb", "Lead Nurturing", "MQL to SQL", "Scoring live", "Sales & Marketing Alignment")
_FAIRS = ("DMEXCO", "Hannover Messe", "it-sa", "OMR Festival", "Zukunft Personal")

_INDUSTRY_INDEX = {x[0]: i for i, x in enumerate(_INDUSTRIES)}
_COUNTRY_INDEX = {x[0]: i for i, x in enumerate(_COUNTRIES)}
_CRM_INDEX = {x[0]: i for i, x in enumerate(_CRMS)}
_PERSONA_INDEX = {x[0]: i for i, x in enumerate(_PERSONAS)}
# Students read a lot and competitors snoop on pricing: interest without any chance to buy.
_PERSONA_INTENT = {"buyer": 0.0, "student": 0.3, "intern": 0.0, "freelancer": 0.0, "competitor": 0.8}

# Activity streams: per-type (base logit, logit per unit of intent). The order is the column
# order of the sampled type, a prefix of MARKETING_ACTIVITY_TYPES.

_NURTURE_LOGITS = np.array([  # slow, decaying engagement with newsletters and content
    (2.0, 0.0), (0.8, 0.5), (1.5, 0.3), (-1.2, 0.7), (-0.8, 0.4), (-1.8, 0.4), (-5.0, 0.9), (-5.2, 0.7), (-5.5, 0.8),
])
_BURST_LOGITS = np.array([  # a buying window: research, pricing, comparisons (hand-raisers drawn apart)
    (0.6, 0.0), (0.9, 0.3), (1.6, 0.2), (0.9, 0.4), (0.2, 0.2), (-0.6, 0.2), (-30, 0), (-30, 0), (-30, 0),
])


def _slug(text: str) -> str:
    """Lower-case ASCII for domains and e-mail local parts (ä → ae, ß → ss, spaces dropped)."""
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "Ä": "ae", "Ö": "oe",
                           "Ü": "ue", " ": "", "&": "", ".": "", "'": ""})
    return text.translate(table).lower()


def _choice(rng: np.random.Generator, n_values: int, shares, size: int) -> np.ndarray:
    """``size`` indices in ``range(n_values)`` drawn with the given (renormalised) shares."""
    p = np.asarray(shares, dtype=float)
    return rng.choice(n_values, size=size, p=p / p.sum())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row of a (rows × categories) probability matrix."""
    cum = probs.cumsum(axis=1)
    return (rng.random((probs.shape[0], 1)) * cum[:, -1:] < cum).argmax(axis=1)


def _softmax_types(rng: np.random.Generator, logits: np.ndarray, intent: np.ndarray) -> np.ndarray:
    """Activity type codes for events whose lead has the given intent (higher → deeper actions)."""
    z = logits[:, 0][None, :] + intent[:, None] * logits[:, 1][None, :]
    return _sample_rows(rng, np.exp(z - z.max(axis=1, keepdims=True)))


@dataclass(frozen=True)
class _Timeline:
    """The export's clock: float days since ``start``; ``end_days`` is the data end."""

    start: pd.Timestamp
    end_days: float

    @classmethod
    def ending(cls, end: str | pd.Timestamp, start: str | pd.Timestamp | None = None) -> "_Timeline":
        stop = _naive(end)
        # Start at midnight so that whole days are calendar days (office hours, weekends).
        first = (_naive(start) if start is not None else stop - pd.Timedelta(days=HISTORY_DAYS)).normalize()
        days = (stop - first) / pd.Timedelta(days=1)
        if days < MIN_HISTORY_DAYS:
            raise ValueError(f"start: expected at least {MIN_HISTORY_DAYS} days before end ({stop:%Y-%m-%d}), "
                             f"found {first:%Y-%m-%d} ({days:.0f} days)")
        return cls(start=first, end_days=days)

    def office_hours(self, rng: np.random.Generator, t: np.ndarray, lo: np.ndarray | float) -> np.ndarray:
        """Move times to plausible office hours, mostly off weekends, within [lo, end].

        Callers pass times already within [lo, end]; a move that would leave that range keeps
        the original time, so every ordering the callers rely on survives.
        """
        day = np.floor(t)
        # Most B2B activity happens 8-18h; a tail comes at night (newsletter opens, time zones).
        daytime = np.clip(rng.normal(12.5, 2.6, t.size), 7, 20)
        hour = np.where(rng.random(t.size) < 0.85, daytime, rng.uniform(0, 24, t.size))
        weekday = (day + self.start.weekday()) % 7
        weekend = (weekday >= 5) & (rng.random(t.size) < 0.75)
        moved = day - np.where(weekend, weekday - 4, 0) + hour / 24.0  # weekend work mostly happened Friday
        moved = np.where((moved < lo) | (moved > self.end_days), t, moved)
        return np.clip(moved, lo, self.end_days)

    def minutes(self, days: np.ndarray) -> np.ndarray:
        """Whole minutes since start (flooring is monotone, so orderings survive); NaN stays NaN."""
        return np.floor(np.asarray(days, dtype=float) * 1440.0)

    def timestamps(self, minutes: np.ndarray) -> np.ndarray:
        """Naive ``datetime64[ns]`` from minutes since start; NaN → NaT."""
        return (self.start + pd.to_timedelta(minutes, unit="min")).to_numpy(dtype="datetime64[ns]")


@dataclass
class _Population:
    """Per-lead arrays: what the export shows (``frame``) plus the hidden truth behind it."""

    created: np.ndarray        # float days
    fit: np.ndarray            # latent fit incl. the negative-persona penalty (students, ...)
    intent: np.ndarray         # latent intent, roughly standard normal
    has_budget: np.ndarray     # the truth behind budget_confirmed
    urgent: np.ndarray         # the truth behind purchase_timeframe "<3 months"
    source: np.ndarray         # index into _SOURCES
    frame: pd.DataFrame        # the leads table without lead_id


@dataclass
class _Events:
    """Activities under construction; ``channel``/``campaign`` None means 'derive from the type'."""

    lead: np.ndarray
    t: np.ndarray
    code: np.ndarray
    channel: np.ndarray | None = None
    campaign: np.ndarray | None = None

    @staticmethod
    def concat(parts: list["_Events"]) -> "_Events":
        def column(name: str) -> np.ndarray:
            return np.concatenate([
                getattr(p, name) if getattr(p, name) is not None else np.full(p.lead.size, None, dtype=object)
                for p in parts
            ])
        return _Events(
            lead=np.concatenate([p.lead for p in parts]).astype(np.int64),
            t=np.concatenate([p.t for p in parts]),
            code=np.concatenate([p.code for p in parts]).astype(np.int64),
            channel=column("channel"),
            campaign=column("campaign"),
        )

    def keep(self, mask: np.ndarray) -> "_Events":
        pick = (lambda a: a[mask] if a is not None else None)
        return _Events(self.lead[mask], self.t[mask], self.code[mask], pick(self.channel), pick(self.campaign))


# ---------------------------------------------------------------------------------------
# Leads


def _creation_days(rng: np.random.Generator, n: int, clock: _Timeline) -> np.ndarray:
    """Sorted creation times: a uniform flow plus a rising share (mild growth over two years)."""
    growing = rng.random(n) < 0.35
    t = np.where(growing, rng.triangular(0, clock.end_days, clock.end_days, n), rng.uniform(0, clock.end_days, n))
    return np.sort(clock.office_hours(rng, t, 0.0))


def _company_names(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct synthetic company names (repeats only once the name space is exhausted)."""
    space = len(_STEMS) * len(_CORES) * len(_DESCRIPTORS)
    idx = rng.choice(space, size=n, replace=n > space)
    stem, rest = np.divmod(idx, len(_CORES) * len(_DESCRIPTORS))
    core, desc = np.divmod(rest, len(_DESCRIPTORS))
    return [_STEMS[s] + _CORES[c] + _DESCRIPTORS[d] for s, c, d in zip(stem, core, desc)]


def _companies(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Firms: legal name, web domain, country, industry, employees, revenue, CRM in use."""
    names = _company_names(rng, n)
    country = _choice(rng, len(_COUNTRIES), [c[1] for c in _COUNTRIES], n)
    industry = _choice(rng, len(_INDUSTRIES), [i[1] for i in _INDUSTRIES], n)
    log_emp = np.clip(rng.normal(2.1, 0.75, n), 0.3, 5.0)
    employees = np.maximum(1, np.round(10**log_emp)).astype(np.int64)
    revenue = np.round(employees * np.exp(rng.normal(np.log(160_000), 0.45, n)), -3)
    crm_table = np.array([c[1:3] for c in _CRMS])
    crm_logits = crm_table[:, 0][None, :] + (log_emp[:, None] - 2.0) * crm_table[:, 1][None, :]
    crm = _sample_rows(rng, np.exp(crm_logits))
    dot_com = rng.random(n) < 0.2  # plenty of European firms use .com
    german_form = rng.choice(["GmbH", "AG", "GmbH & Co. KG", "SE"], size=n, p=[0.7, 0.1, 0.15, 0.05])
    legal, domain = [], []
    for i, name in enumerate(names):
        code, _, _, form, tld = _COUNTRIES[country[i]]
        legal.append(f"{name} {german_form[i] if code == 'DE' else form}")
        # "Alpentec Digital" → alpentec-digital.de
        domain.append("-".join(_slug(word) for word in name.split(" ")) + "." + ("com" if dot_com[i] else tld))
    return pd.DataFrame({"company": legal, "domain": domain, "country": country, "industry": industry,
                         "employees": employees, "revenue": revenue, "crm": crm, "kind": "firm"})


def _universities(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Where students (not Werkstudenten) come from: education, DACH, no revenue."""
    places = [_STEMS[i] + _PLACE_ENDINGS[j]
              for i, j in zip(rng.integers(0, len(_STEMS), n), rng.integers(0, len(_PLACE_ENDINGS), n))]
    kinds = rng.choice(["Universität", "Hochschule", "TU"], size=n)
    prefix = {"Universität": "uni", "Hochschule": "hs", "TU": "tu"}
    return pd.DataFrame({
        "company": [f"{k} {p}" for k, p in zip(kinds, places)],
        "domain": [f"stud.{prefix[k]}-{_slug(p)}.de" for k, p in zip(kinds, places)],
        "country": _choice(rng, 3, [0.7, 0.15, 0.15], n),  # DE, AT, CH: the first three countries
        "industry": _INDUSTRY_INDEX["education"],
        "employees": np.round(10 ** rng.uniform(2.7, 3.8, n)).astype(np.int64),
        "revenue": np.nan, "crm": _CRM_INDEX["other"], "kind": "university",
    })


def _freelance_shops(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """One-person businesses: the freelancer persona (needs 10+ staff to use the product)."""
    names = [f"{_STEMS[i]}{_CORES[j]}{s}" for i, j, s in zip(
        rng.integers(0, len(_STEMS), n), rng.integers(0, len(_CORES), n),
        rng.choice([" Studio", " Consulting", " Design", " IT-Beratung"], size=n))]
    trades = [_INDUSTRY_INDEX[x] for x in ("consulting", "media", "software", "it services")]
    return pd.DataFrame({
        "company": names,
        "domain": [_slug(x.split(" ")[0]) + ".de" for x in names],
        "country": _choice(rng, len(_COUNTRIES), [c[1] for c in _COUNTRIES], n),
        "industry": rng.choice(trades, size=n),
        "employees": rng.choice([1, 1, 1, 2, 3], size=n).astype(np.int64),
        "revenue": np.round(rng.uniform(40_000, 180_000, n), -3),
        "crm": rng.choice([_CRM_INDEX[c] for c in ("Excel", "none", "HubSpot")], size=n),
        "kind": "freelance",
    })


def _competitor_staff(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """People from the rival vendors (see COMPETITOR_DOMAINS)."""
    rows = [_COMPETITORS[i] for i in rng.integers(0, len(_COMPETITORS), n)]
    return pd.DataFrame({
        "company": [r[0] for r in rows], "domain": [r[1] for r in rows],
        "country": [_COUNTRY_INDEX[r[2]] for r in rows], "industry": _INDUSTRY_INDEX["software"],
        "employees": np.array([r[3] for r in rows], dtype=np.int64),
        "revenue": [r[3] * 120_000.0 for r in rows], "crm": [_CRM_INDEX[r[4]] for r in rows], "kind": "competitor",
    })


def _assign_companies(rng: np.random.Generator, persona: np.ndarray) -> pd.DataFrame:
    """One company row per lead. Buyers, Werkstudenten and interns share real firms (bigger
    firms send more contacts); half the students sit at universities, freelancers at their own
    shops, competitors at the rival vendors."""
    n = persona.size
    firms = _companies(rng, max(20, int(n * 0.6)))
    weights = firms["employees"].to_numpy() ** 0.3
    rows = firms.iloc[rng.choice(len(firms), size=n, p=weights / weights.sum())].reset_index(drop=True)
    at_university = (persona == _PERSONA_INDEX["student"]) & (rng.random(n) < 0.5)
    for mask, make in (
        (at_university, _universities),
        (persona == _PERSONA_INDEX["freelancer"], _freelance_shops),
        (persona == _PERSONA_INDEX["competitor"], _competitor_staff),
    ):
        if mask.any():
            rows.loc[mask, :] = make(rng, int(mask.sum()))[rows.columns].to_numpy()
    return rows.astype({"country": np.int64, "industry": np.int64, "employees": np.int64,
                        "revenue": float, "crm": np.int64})


def _job_titles(rng: np.random.Generator, persona: np.ndarray, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A title per lead and its fit effect. Students at universities say 'Student(in)', those
    at firms are Werkstudenten. The negative persona's penalty is applied elsewhere, once."""
    n = persona.size
    levels = list(_SENIORITY_SHARES)
    level = _choice(rng, len(levels), list(_SENIORITY_SHARES.values()), n)
    titles = np.empty(n, dtype=object)
    effect = np.zeros(n)
    for i, name in enumerate(levels):
        mask = level == i
        titles[mask] = rng.choice(_TITLES[name][1], size=int(mask.sum()))
        effect[mask] = _TITLES[name][0]
    student = persona == _PERSONA_INDEX["student"]
    pools = (
        (student & (kind == "university"), _STUDENT_TITLES[:2]),
        (student & (kind != "university"), _STUDENT_TITLES[2:]),
        (persona == _PERSONA_INDEX["intern"], _INTERN_TITLES),
        (persona == _PERSONA_INDEX["freelancer"], _FREELANCER_TITLES),
        (persona == _PERSONA_INDEX["competitor"], _COMPETITOR_TITLES),
    )
    for mask, pool in pools:
        titles[mask] = rng.choice(pool, size=int(mask.sum()))
        effect[mask] = 0.0
    return titles, effect


def _emails(rng: np.random.Generator, domains: np.ndarray, free_mail: np.ndarray) -> list[str]:
    """first.last@domain (or f.last@; first.last<nn>@ at free-mail), unique within the export."""
    n = domains.size
    first = rng.integers(0, len(_FIRST_NAMES), n)
    last = rng.integers(0, len(_LAST_NAMES), n)
    style = rng.random(n)
    number = rng.integers(1, 99, n)
    free_domain = rng.choice(FREE_MAIL_DOMAINS, size=n, p=[0.3, 0.2, 0.15, 0.1, 0.15, 0.1])
    seen: dict[str, int] = {}
    out = []
    for i in range(n):
        f, la = _slug(_FIRST_NAMES[first[i]]), _slug(_LAST_NAMES[last[i]])
        if free_mail[i]:
            local, domain = (f"{f}.{la}{number[i]}" if style[i] < 0.6 else f"{f}{la}"), free_domain[i]
        else:
            local, domain = (f"{f}.{la}" if style[i] < 0.8 else f"{f[0]}.{la}"), domains[i]
        address = f"{local}@{domain}"
        while address in seen:  # a namesake at the same domain gets a number, as mail admins do
            seen[f"{local}@{domain}"] += 1
            address = f"{local}{seen[f'{local}@{domain}']}@{domain}"
        seen[address] = 1
        out.append(address)
    return out


def _with_gaps(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """Blank a share of cells, as CRM fields are often left empty."""
    out = np.asarray(values).astype(object)
    out[rng.random(out.size) < share] = None
    return out


def _draw_population(rng: np.random.Generator, n: int, clock: _Timeline) -> _Population:
    """Leads with company, title, source and BANT answers, and the latent fit and intent."""
    created = _creation_days(rng, n, clock)
    persona = _choice(rng, len(_PERSONAS), [p[1] for p in _PERSONAS], n)
    comp = _assign_companies(rng, persona)
    titles, seniority_fit = _job_titles(rng, persona, comp["kind"].to_numpy())
    free_mail = rng.random(n) < np.array([_FREE_MAIL_SHARE[p[0]] for p in _PERSONAS])[persona]
    source = _choice(rng, len(_SOURCES), [s[1] for s in _SOURCES], n)
    negative = (persona != _PERSONA_INDEX["buyer"]) | free_mail

    employees = comp["employees"].to_numpy()
    industry, country, crm = (comp[c].to_numpy() for c in ("industry", "country", "crm"))
    log_emp = np.log10(employees)
    # Mid-size firms are the sweet spot: fit grows with size, then sags for huge enterprises.
    size_fit = np.clip(0.9 * (log_emp - 2.0), -1.5, 1.0) - 0.6 * np.maximum(0.0, log_emp - 3.7)
    fit_core = (
        size_fit
        + np.array([i[2] for i in _INDUSTRIES])[industry]
        + np.array([c[2] for c in _COUNTRIES])[country]
        + seniority_fit
        + np.array([c[3] for c in _CRMS])[crm]
        + np.array([s[2] for s in _SOURCES])[source]
        + rng.normal(0, 0.5, n)  # need that nobody recorded: no feature can explain it
    )
    persona_intent = np.array([_PERSONA_INTENT[p[0]] for p in _PERSONAS])[persona]
    intent = (0.95 * rng.normal(0, 1, n) + 0.2 * (fit_core - fit_core.mean())
              + np.array([s[3] for s in _SOURCES])[source] + persona_intent)
    has_budget = rng.random(n) < _sigmoid(-0.6 + 0.8 * fit_core + 0.4 * intent - 2.0 * negative)
    urgency = 0.8 * intent + rng.normal(0, 1, n)
    timeframe = np.select([urgency > 1.0, urgency > 0.2, urgency > -0.6], [0, 1, 2], 3)

    # What the lead told us: BANT answers are self-reported, a little noisy, often missing.
    said_budget = np.where(has_budget ^ (rng.random(n) < 0.1), "yes", "no")
    frame = pd.DataFrame({
        "email": _emails(rng, comp["domain"].to_numpy(), free_mail),
        "company": comp["company"].to_numpy(),
        "industry": _with_gaps(rng, np.array([i[0] for i in _INDUSTRIES])[industry], 0.02),
        "employees": employees.astype(np.int64),
        "annual_revenue": np.where(rng.random(n) < 0.25, np.nan, comp["revenue"].to_numpy()),
        "country": _with_gaps(rng, np.array([c[0] for c in _COUNTRIES])[country], 0.01),
        "job_title": _with_gaps(rng, titles, 0.02),
        "lead_source": np.array([s[0] for s in _SOURCES])[source],
        "budget_confirmed": _with_gaps(rng, said_budget, 0.45),
        "purchase_timeframe": _with_gaps(rng, np.array(_TIMEFRAMES)[timeframe], 0.5),
        "crm_system": _with_gaps(rng, np.array([c[0] for c in _CRMS])[crm], 0.3),
    })
    return _Population(created=created, fit=fit_core - _NEGATIVE_FIT * negative,
                       intent=intent, has_budget=has_budget, urgent=timeframe == 0, source=source, frame=frame)


# ---------------------------------------------------------------------------------------
# Marketing activity


@dataclass
class _Triggers:
    """Moments that can start an opportunity, per lead (NaN when there is none)."""

    acquisition_hand_raise: np.ndarray
    hand_raise: np.ndarray
    burst_end: np.ndarray
    outbound: np.ndarray  # sales prospecting a well-fitting account, no marketing signal before it


def _acquisition(rng: np.random.Generator, pop: _Population, clock: _Timeline) -> _Events:
    """The action that created the lead, at ``created_at``: a download, a webinar, a booth visit."""
    n = pop.created.size
    source = np.array([s[0] for s in _SOURCES])[pop.source]
    asked = rng.random(n)
    kind = np.full(n, "whitepaper_download", dtype=object)
    kind[source == "webinar"] = "webinar_attendance"
    kind[(source == "trade_fair") & (asked < 0.35)] = "contact_form"
    kind[(source == "referral") & (asked < 0.4)] = "contact_form"
    kind[(source == "referral") & (asked >= 0.4)] = "page_view"
    channel = np.select([source == "trade_fair", source == "webinar", source == "linkedin"],
                        ["event", "event", "social"], "web").astype(object)
    stamp = pd.to_datetime(clock.timestamps(clock.minutes(pop.created)))
    quarter = stamp.year.astype(str) + "-Q" + stamp.quarter.astype(str)
    fair = np.array(_FAIRS)[rng.integers(0, len(_FAIRS), n)]
    ads = np.where(rng.random(n) < 0.5, "Google Ads Brand", "Google Ads Generic")
    campaign = np.select(
        [source == "paid_search", source == "trade_fair", source == "referral",
         source == "linkedin", source == "content_syndication"],
        [ads, "Messe " + stamp.year.astype(str) + ": " + fair, np.full(n, "Empfehlung"),
         np.full(n, "LinkedIn Ads DACH"), "Syndication Partner " + quarter],
        None,
    ).astype(object)
    code = np.array([_CODE[k] for k in kind])
    return _Events(np.arange(n), pop.created.copy(), code, channel, campaign)


def _nurture(rng: np.random.Generator, pop: _Population, active_until: np.ndarray, clock: _Timeline) -> _Events:
    """A Poisson stream per lead whose rate decays from creation (interest fades) and stops
    when the lead goes cold. Higher intent → more events and deeper ones."""
    n = pop.created.size
    tau = rng.uniform(60, 180, n)
    rate = 0.25 * np.exp(0.55 * pop.intent)
    span = np.maximum(active_until - pop.created, 0.0)
    mass = 1.0 - np.exp(-span / tau)
    counts = rng.poisson(rate * tau * mass)
    lead = np.repeat(np.arange(n), counts)
    # Truncated exponential by inversion: the rate is highest right after creation.
    t = pop.created[lead] - tau[lead] * np.log1p(-rng.random(lead.size) * mass[lead])
    code = _softmax_types(rng, _NURTURE_LOGITS, pop.intent[lead])
    return _Events(lead, clock.office_hours(rng, t, pop.created[lead]), code)


def _bursts(rng: np.random.Generator, pop: _Population, active_until: np.ndarray,
            clock: _Timeline) -> tuple[_Events, np.ndarray, np.ndarray]:
    """Buying windows: a few weeks of intense research, often ending in a hand-raiser.

    Keen leads have them more often and act more in them; a lead that went cold first never
    has one. Returns the events, the hand-raiser time and the window's end per lead (NaN if none).
    """
    n = pop.created.size
    has = rng.random(n) < _sigmoid(-0.9 + 1.3 * pop.intent)
    start = pop.created + 3 + rng.gamma(2.0, 25.0, n)
    length = rng.uniform(7, 28, n)
    has &= (start < active_until) & (start < clock.end_days)
    counts = np.where(has, rng.poisson(3 + 8 * _sigmoid(pop.intent)), 0)
    lead = np.repeat(np.arange(n), counts)
    t = start[lead] + rng.random(lead.size) * length[lead]
    code = _softmax_types(rng, _BURST_LOGITS, pop.intent[lead])
    seen = t <= clock.end_days
    lead, t, code = lead[seen], t[seen], code[seen]
    research = _Events(lead, clock.office_hours(rng, t, pop.created[lead]), code)

    raised = has & (rng.random(n) < _sigmoid(-0.3 + 1.0 * pop.intent))
    t_raise = start + length * rng.uniform(0.3, 1.0, n)
    raised &= t_raise <= clock.end_days
    hand_raise = np.full(n, np.nan)
    hand_raise[raised] = clock.office_hours(rng, t_raise[raised], pop.created[raised])
    kind = _choice(rng, len(HAND_RAISER_TYPES), [0.45, 0.35, 0.2], int(raised.sum()))
    raisers = _Events(np.flatnonzero(raised), hand_raise[raised],
                      np.array([_CODE[HAND_RAISER_TYPES[k]] for k in kind], dtype=np.int64))
    burst_end = np.where(has, np.minimum(start + length, clock.end_days), np.nan)
    return _Events.concat([research, raisers]), hand_raise, burst_end


def _mail_stops(rng: np.random.Generator, pop: _Population, active_until: np.ndarray,
                clock: _Timeline) -> tuple[_Events, np.ndarray]:
    """Unsubscribes (likelier for uninterested leads) and hard bounces, and per lead the time
    after which no e-mail is opened or clicked any more (inf while mail keeps flowing)."""
    n = pop.created.size
    span = np.maximum(active_until - pop.created, 0.0)
    unsub = rng.random(n) < _sigmoid(-2.6 - 0.7 * pop.intent)
    t_unsub = pop.created + rng.random(n) * span
    bounce = rng.random(n) < 0.015
    t_bounce = pop.created + rng.exponential(20.0, n)
    bounce &= t_bounce <= clock.end_days
    unsub &= ~bounce | (t_unsub < t_bounce)  # nobody unsubscribes from mail that no longer arrives
    t_unsub[unsub] = clock.office_hours(rng, t_unsub[unsub], pop.created[unsub])
    t_bounce[bounce] = clock.office_hours(rng, t_bounce[bounce], pop.created[bounce])
    stop = np.minimum(np.where(unsub, t_unsub, np.inf), np.where(bounce, t_bounce, np.inf))
    events = _Events.concat([
        _Events(np.flatnonzero(unsub), t_unsub[unsub], np.full(int(unsub.sum()), _CODE["unsubscribe"])),
        _Events(np.flatnonzero(bounce), t_bounce[bounce], np.full(int(bounce.sum()), _CODE["email_bounce"])),
    ])
    return events, stop


def _marketing(rng: np.random.Generator, pop: _Population, clock: _Timeline) -> tuple[_Events, _Triggers]:
    """All marketing activity, and the moments that can start an opportunity."""
    n = pop.created.size
    # Some leads go cold: their activity simply stops (likelier for the uninterested).
    cold = rng.random(n) < _sigmoid(-0.6 - 0.5 * pop.intent)
    active_until = np.where(cold, np.minimum(pop.created + 7 + rng.exponential(60.0, n), clock.end_days),
                            clock.end_days)
    first = _acquisition(rng, pop, clock)
    stream = _nurture(rng, pop, active_until, clock)
    burst, hand_raise, burst_end = _bursts(rng, pop, active_until, clock)
    stops, mail_stop = _mail_stops(rng, pop, active_until, clock)
    events = _Events.concat([first, stream, burst])
    still_mailed = ~np.isin(events.code, _EMAIL_TYPES) | (events.t <= mail_stop[events.lead])
    events = _Events.concat([events.keep(still_mailed), stops])
    asked_at_creation = np.where(first.code == _CODE["contact_form"], pop.created, np.nan)
    outbound = pop.created + rng.exponential(120.0, n)
    return events, _Triggers(asked_at_creation, hand_raise, burst_end, outbound)


# ---------------------------------------------------------------------------------------
# Opportunities and sales activity


@dataclass
class _Opportunities:
    lead: np.ndarray
    created: np.ndarray
    closed: np.ndarray  # NaN while open
    stage: np.ndarray
    amount: np.ndarray


def _opportunities(rng: np.random.Generator, pop: _Population, triggers: _Triggers,
                   clock: _Timeline) -> _Opportunities:
    """At most one opportunity per lead: the earliest trigger that sales acts on.

    Sales follows a hand-raiser within days if the lead fits (that is the SLA); after a burst
    without one, only sometimes; and now and then prospects a well-fitting account with no
    signal at all (outbound). Deals close 2-12 weeks later, won mostly on fit;
    a deal that would close after the data end is still open.
    """
    n = pop.created.size
    fit, intent, urgent = pop.fit, pop.intent, pop.urgent.astype(float)
    candidates = (
        (triggers.acquisition_hand_raise, rng.exponential(2.0, n), -0.8 + 1.0 * fit + 0.3 * intent),
        (triggers.hand_raise, rng.exponential(1.5, n), 0.3 + 1.0 * fit + 0.3 * intent + 0.5 * urgent),
        (triggers.burst_end, rng.exponential(5.0, n), -2.2 + 0.9 * fit + 0.4 * intent),
        (triggers.outbound, np.zeros(n), -4.5 + 1.0 * fit),
    )
    created = np.full(n, np.inf)
    trigger_at = np.full(n, np.nan)
    for at, delay, logit in candidates:
        fires = ~np.isnan(at) & (rng.random(n) < _sigmoid(logit)) & (at + delay <= clock.end_days)
        earlier = fires & (at + delay < created)
        created[earlier] = (at + delay)[earlier]
        trigger_at[earlier] = at[earlier]
    lead = np.flatnonzero(np.isfinite(created))
    t = clock.office_hours(rng, created[lead], trigger_at[lead])

    m = lead.size
    won = rng.random(m) < _sigmoid(-3.3 + 1.4 * fit[lead] + 0.3 * intent[lead]
                                   + 0.7 * pop.has_budget[lead] + 0.4 * urgent[lead])
    duration = np.where(won, rng.uniform(21, 84, m), rng.uniform(14, 84, m))
    closes = t + duration
    is_open = closes > clock.end_days
    closed = np.full(m, np.nan)
    closed[~is_open] = clock.office_hours(rng, closes[~is_open], t[~is_open])
    stage = np.where(is_open, "open", np.where(won, "won", "lost"))
    employees = pop.frame["employees"].to_numpy()[lead]
    amount = np.round(np.clip(6_000 * (employees / 100) ** 0.4 * np.exp(rng.normal(0, 0.4, m)), 1_500, 400_000), -2)
    return _Opportunities(lead, t, closed, stage, amount)


def _sales_activity(rng: np.random.Generator, opps: _Opportunities, clock: _Timeline) -> _Events:
    """Calls, meetings and proposals logged by sales between hand-over and close (or the data end).

    Won deals get more of them, so these rows predict the label perfectly well and must never
    reach a feature: they only exist once the opportunity does.
    """
    m = opps.lead.size
    until = np.where(np.isnan(opps.closed), clock.end_days, opps.closed)
    window = until - opps.created
    won = opps.stage == "won"
    first_call = np.minimum(opps.created + rng.exponential(0.3, m), until)  # the SLA: call fast
    calls = rng.poisson(1.0 + 1.5 * won)
    meetings = rng.poisson(0.7 + 1.8 * won)
    proposal = rng.random(m) < np.select([won, opps.stage == "lost"], [0.95, 0.5], 0.3)
    parts = [_Events(opps.lead, first_call, np.full(m, _CODE["sales_call"]))]
    for counts, kind in ((calls, "sales_call"), (meetings, "meeting")):
        idx = np.repeat(np.arange(m), counts)
        parts.append(_Events(opps.lead[idx], opps.created[idx] + rng.random(idx.size) * window[idx],
                             np.full(idx.size, _CODE[kind])))
    idx = np.flatnonzero(proposal)
    parts.append(_Events(opps.lead[idx], opps.created[idx] + rng.uniform(0.4, 1.0, idx.size) * window[idx],
                         np.full(idx.size, _CODE["proposal_sent"])))
    events = _Events.concat(parts)
    owner = np.searchsorted(opps.lead, events.lead)  # opps.lead is sorted, one deal per lead
    events.t = np.minimum(clock.office_hours(rng, events.t, opps.created[owner]), until[owner])
    return events


# ---------------------------------------------------------------------------------------
# Channels, campaigns, frames


_CHANNEL_BY_TYPE = {
    "email_open": "email", "email_click": "email", "unsubscribe": "email", "email_bounce": "email",
    "page_view": "web", "pricing_page_view": "web", "whitepaper_download": "web", "demo_request": "web",
    "contact_form": "web", "trial_signup": "web", "webinar_attendance": "event",
    "sales_call": "phone", "meeting": "meeting", "proposal_sent": "email",
}


def _describe(rng: np.random.Generator, events: _Events, stamps: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Fill in channel and campaign where the event's origin did not set them."""
    kind = np.array(ACTIVITY_TYPES, dtype=object)[events.code]
    k = events.code.size
    channel = np.array([_CHANNEL_BY_TYPE[t] for t in ACTIVITY_TYPES], dtype=object)[events.code]
    channel[(kind == "page_view") & (rng.random(k) < 0.1)] = "social"  # clicks from LinkedIn posts
    year = stamps.year.astype(str).to_numpy(dtype=object)
    quarter = year + "-Q" + stamps.quarter.astype(str).to_numpy(dtype=object)
    month = stamps.month.to_numpy()
    mailing = np.where(rng.random(k) < 0.6, "Newsletter " + quarter,
                       "Nurture: " + np.array(_WHITEPAPERS, dtype=object)[rng.integers(0, len(_WHITEPAPERS), k)])
    # A whitepaper is promoted for a while: the title follows the half-year, with some spread.
    paper = np.array(_WHITEPAPERS, dtype=object)[((stamps.year.to_numpy() * 2 + (month > 6)) + rng.integers(0, 3, k))
                                                  % len(_WHITEPAPERS)]
    webinar = ("Webinar " + stamps.strftime("%Y-%m").to_numpy(dtype=object) + ": "
               + np.array(_WEBINAR_TOPICS, dtype=object)[month % len(_WEBINAR_TOPICS)])
    campaign = np.select(
        [np.isin(kind, ["email_open", "email_click", "unsubscribe", "email_bounce"]),
         (kind == "page_view") & (rng.random(k) < 0.5), kind == "pricing_page_view",
         kind == "whitepaper_download", kind == "webinar_attendance",
         kind == "demo_request", kind == "contact_form", kind == "trial_signup"],
        [mailing, "Website", "Website", "Whitepaper: " + paper, webinar,
         "Demo-Anfrage Website", "Kontaktformular", "Free Trial 14 Tage"],
        None,
    ).astype(object)
    if events.channel is not None:
        given = np.array([c is not None for c in events.channel])
        channel[given] = events.channel[given]
    if events.campaign is not None:
        given = np.array([c is not None for c in events.campaign])
        campaign[given] = events.campaign[given]
    return channel, campaign


def _text(values) -> pd.Series:
    """pandas' text dtype with missing cells as NaN (written as empty CSV fields)."""
    return pd.Series(values, dtype="str")


def _leads_frame(pop: _Population, lead_ids: np.ndarray, clock: _Timeline) -> pd.DataFrame:
    frame = pop.frame.copy()
    for col in frame.columns:
        if col not in ("employees", "annual_revenue"):
            frame[col] = _text(frame[col].to_numpy())
    frame.insert(0, "created_at", clock.timestamps(clock.minutes(pop.created)))
    frame.insert(0, "lead_id", _text(lead_ids))
    return frame


def _activities_frame(rng: np.random.Generator, events: _Events, lead_ids: np.ndarray,
                      clock: _Timeline) -> pd.DataFrame:
    minutes = clock.minutes(events.t)
    order = np.lexsort((events.code, events.lead, minutes))  # by time, then lead, then type
    events, minutes = events.keep(order), minutes[order]
    stamps = clock.timestamps(minutes)
    channel, campaign = _describe(rng, events, pd.DatetimeIndex(stamps))
    return pd.DataFrame({
        "lead_id": _text(lead_ids[events.lead]),
        "occurred_at": stamps,
        "activity_type": _text(np.array(ACTIVITY_TYPES, dtype=object)[events.code]),
        "channel": _text(channel),
        "campaign": _text(campaign),
    })


def _opportunities_frame(opps: _Opportunities, lead_ids: np.ndarray, clock: _Timeline) -> pd.DataFrame:
    created, closed = clock.minutes(opps.created), clock.minutes(opps.closed)
    order = np.lexsort((opps.lead, created))
    return pd.DataFrame({
        "opportunity_id": _text([f"O{i:06d}" for i in range(1, order.size + 1)]),
        "lead_id": _text(lead_ids[opps.lead[order]]),
        "created_at": clock.timestamps(created[order]),
        "closed_at": clock.timestamps(closed[order]),
        "stage": _text(opps.stage[order]),
        "amount": opps.amount[order].astype("float64"),
    })


# ---------------------------------------------------------------------------------------
# Public API


def make_demo_export(n_leads: int = 5000, seed: int = 42, end: str | pd.Timestamp = DEFAULT_END,
                     start: str | pd.Timestamp | None = None) -> dict[str, pd.DataFrame]:
    """A synthetic CRM export: ``{"leads", "activities", "opportunities"}`` as DataFrames.

    Leads are created from ``start`` (default: two years before ``end``, at least
    ``MIN_HISTORY_DAYS`` before it) up to ``end``; no activity, opportunity creation or
    close happens after ``pd.Timestamp(end)``. Timestamps are naive UTC ``datetime64[ns]``
    at minute resolution; text columns use pandas' ``str`` dtype with NaN for empty cells.
    The same ``seed`` gives identical frames.
    """
    if int(n_leads) < 1:
        raise ValueError(f"n_leads must be at least 1, found {n_leads!r}")
    rng = np.random.default_rng(seed)
    clock = _Timeline.ending(end, start)
    pop = _draw_population(rng, int(n_leads), clock)
    marketing, triggers = _marketing(rng, pop, clock)
    opps = _opportunities(rng, pop, triggers, clock)
    sales = _sales_activity(rng, opps, clock)
    lead_ids = np.array([f"L{i:06d}" for i in range(1, int(n_leads) + 1)], dtype=object)
    return {
        "leads": _leads_frame(pop, lead_ids, clock),
        "activities": _activities_frame(rng, _Events.concat([marketing, sales]), lead_ids, clock),
        "opportunities": _opportunities_frame(opps, lead_ids, clock),
    }


def write_demo_export(out_dir: Path, n_leads: int = 5000, seed: int = 42, fmt: str = "csv",
                      end: str | pd.Timestamp = DEFAULT_END, start: str | pd.Timestamp | None = None) -> dict[str, int]:
    """Write ``leads``, ``activities`` and ``opportunities`` as ``.csv`` or ``.parquet`` into
    ``out_dir`` (created if needed) and return the rows written per table.

    CSV timestamps are ISO 8601 (``2025-03-04T10:15:00``); an open deal's ``closed_at`` and
    any other missing cell is an empty field. A table of the other format left in ``out_dir``
    is removed, so readers never pick up a stale copy.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', found {fmt!r}")
    tables = make_demo_export(n_leads=n_leads, seed=seed, end=end, start=start)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    other = "parquet" if fmt == "csv" else "csv"
    counts = {}
    for name, frame in tables.items():
        path = out_dir / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S")
        else:
            frame.to_parquet(path, index=False)
        (out_dir / f"{name}.{other}").unlink(missing_ok=True)
        counts[name] = len(frame)
    return counts
