"""Accounts: leads of one company rolled up to an account score, and the buying-centre roles
its engaged leads cover.

A B2B deal is bought by a buying centre, not a person (DOMAIN.md: "role in the buying
centre"). Three leads at one firm that each look lukewarm can together be a hot account, and
a rep wants to know whether the person who signs, the person who pays and the people who will
use the product are all talking to us.

Privacy: an e-mail address is only ever looked at for its domain (``features.build.email_domain``);
no key, summary or message here carries the local part.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from leadscore.features.build import email_domain
from leadscore.features.titles import FUNCTION_PATTERNS, seniority
from leadscore.models.decision import Lang, score_from_probability

RollUp = Literal["noisy_or", "max"]
ROLL_UPS: tuple[str, ...] = ("noisy_or", "max")

# ---------------------------------------------------------------------------------------
# Account key

# Legal forms, written as they usually appear; matched letter by letter with optional dots,
# spaces or slashes between the letters, so "S.L.", "SL" and "S. L." are one form, and only as
# whole trailing words ("Verlag" keeps its "ag"). Longer forms first.
LEGAL_FORMS: tuple[str, ...] = (
    "sp z oo", "gmbh", "ggmbh", "mbh", "kgaa", "ag", "se", "kg", "ohg", "gbr", "ug haftungsbeschraenkt", "ug",
    "ek", "ev", "eg", "ltd", "limited", "plc", "llp", "llc", "inc", "incorporated", "corp", "corporation", "co",
    "pty", "pvt", "sarl", "sas", "sa", "spa", "srl", "sl", "slu", "sro", "as", "aps", "ab", "oy", "oyj", "bv",
    "nv", "cv", "kft", "doo",
)
_LETTERS_APART = r"[\s./]*"
_FORM_PATTERNS = (_LETTERS_APART.join(re.escape(ch) for ch in form.replace(" ", "")) for form in LEGAL_FORMS)
_TRAILING_FORM = re.compile(r"(?:^|\s)(?:" + "|".join(_FORM_PATTERNS) + r")[\s.]*$")
# What joins legal forms ("GmbH & Co. KG", "Müller und Co"): dropped once a form behind it went.
_TRAILING_JOINER = re.compile(r"(?:^|\s)(?:&|\+|und|and)\s*$|[\s,&+]+$")
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def normalize_company(company: object) -> str | None:
    """A company name reduced to what identifies the firm: lower case, umlauts folded (ä → ae, so
    "Müller" and "Mueller" meet), accents dropped, trailing legal forms ("GmbH", "GmbH & Co. KG",
    "Sp. z o.o.", "S.A.", "Inc.", …) stripped, punctuation turned into spaces, spaces collapsed.

    None when nothing is left (empty, not text, or only a legal form)."""
    if not isinstance(company, str):
        return None
    text = unicodedata.normalize("NFKC", company).lower().translate(_FOLD)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = re.sub(r"[(),;]", " ", text).strip()
    while True:  # "gmbh & co. kg" goes from the end: kg, co., &, gmbh
        shorter = _TRAILING_JOINER.sub("", _TRAILING_FORM.sub("", text)).strip()
        if shorter == text:
            break
        text = shorter
    text = " ".join(re.sub(r"[^\w]+", " ", text).replace("_", " ").split())
    return text or None


def account_key(email: object, company: object, free_mail_domains: Collection[str]) -> str | None:
    """Which account a lead belongs to, or None when it stands alone.

    The e-mail domain when it is a company domain (not in ``free_mail_domains``, e.g.
    ``params.features.free_mail_domains``), else the normalised company name
    (``normalize_company``), else None. A domain key always contains a dot and a name key never
    does, so the two kinds cannot collide.

    Known limits, by design: one firm with two mail domains (``acme.de``, ``acme.com``), or a
    sub-domain (``de.acme.com``), gives two accounts; nothing here knows they belong together.
    A lead with a free-mail address joins the name account, not its colleagues' domain account.
    """
    free = {d.lower() for d in free_mail_domains}
    domain = email_domain(email)
    if domain:
        domain = domain.rstrip(".")
        if "." in domain and " " not in domain and domain not in free:
            return domain
    return normalize_company(company)


# ---------------------------------------------------------------------------------------
# Roll-up


def account_score(probabilities: Iterable[float], method: RollUp = "noisy_or", max_leads: int | None = None) -> float:
    """The account's probability (0–1) from its leads' probabilities; its 1–99 score is
    ``models.base.score_from_probability`` of it.

    - ``noisy_or``: 1 − Π(1 − pᵢ), the chance that at least one lead converts *if the leads
      convert independently*. Leads of one firm usually share a buying decision, so this
      overstates the account's chance when they are correlated (five leads at 0.3 give 0.83).
    - ``max``: the best lead's probability; never overstates, ignores breadth.

    ``max_leads`` counts only the most probable leads (default: all), which bounds how far many
    weak leads can lift a noisy-OR.
    """
    if method not in ROLL_UPS:
        raise ValueError(f"method must be one of {', '.join(ROLL_UPS)}, found {method!r}")
    if max_leads is not None and (isinstance(max_leads, bool) or not isinstance(max_leads, int) or max_leads < 1):
        raise ValueError(f"max_leads must be a whole number of at least 1 or None, found {max_leads!r}")
    p = np.asarray(list(probabilities), dtype="float64")
    if p.size == 0:
        raise ValueError("an account needs at least one lead probability, found none")
    bad = ~((p >= 0.0) & (p <= 1.0))  # NaN fails both
    if bad.any():
        raise ValueError(f"probabilities must lie in [0, 1], found {p[bad][0]!r} at position {int(np.argmax(bad))}")
    p = np.sort(p)[::-1][:max_leads]
    if method == "max":
        return float(p[0])
    return float(1.0 - math.prod(1.0 - x for x in p.tolist()))


# ---------------------------------------------------------------------------------------
# Buying-centre roles

DECISION_MAKER, BUDGET_HOLDER, USER, INFLUENCER = "decision_maker", "budget_holder", "user", "influencer"
BUYING_ROLES: tuple[str, ...] = (DECISION_MAKER, BUDGET_HOLDER, USER, INFLUENCER)
# The roles a deal needs engaged; an influencer helps but is not missing when absent.
REQUIRED_ROLES: tuple[str, ...] = (DECISION_MAKER, BUDGET_HOLDER, USER)
ROLE_LABELS: dict[str, dict[str, str]] = {
    "en": {DECISION_MAKER: "decision maker", BUDGET_HOLDER: "budget holder", USER: "user",
           INFLUENCER: "influencer"},
    "de": {DECISION_MAKER: "Entscheider", BUDGET_HOLDER: "Budgetverantwortlicher", USER: "Anwender",
           INFLUENCER: "Beeinflusser"},
}

# Heads of a department decide; team, group, project and shift leads, and "X Manager" titles
# (seniority ``head_manager`` too), work in the operation and are users.
_HEAD_OF = re.compile(r"head of|\bhead\b|leiter|leitung", re.IGNORECASE)
_NOT_HEAD = re.compile(r"team|gruppe|group|projekt|project|schicht|shift", re.IGNORECASE)
_FUNCTIONS = dict(FUNCTION_PATTERNS)
# titles.py's finance and purchasing patterns, searched on their own: job_function() names one
# function ("Head of Accounting" is sales there, as "account" comes first), a role needs all.
_BUDGET = re.compile(
    "|".join((_FUNCTIONS["finance"], _FUNCTIONS["purchasing"], r"kaufm[äa]nnisch|treasur|budget")), re.IGNORECASE)
# Not titles.py's "it" pattern: its bare "cto" also matches "Director".
_IT = re.compile(
    r"\bit\b|\bit-|-it\b|\bedv\b|informati|software|engineer|entwickl|developer|devops|\bcto\b|\bcio\b|\bciso\b|"
    r"technolog|system|\bdata\b|daten|administrator", re.IGNORECASE)
_ASSISTANT = re.compile(r"assist|sekret[äa]r|secretary|office manage|empfang|reception", re.IGNORECASE)
# "owner" makes a title c-level in titles.py; these owners own a product or process, not the firm.
_NOT_OWNER = re.compile(r"(product|process|prozess|produkt)[- ]?owner", re.IGNORECASE)


def buying_roles(job_title: object) -> set[str]:
    """The buying-centre roles a job title (German or English) suggests; a lead may fill several.

    - ``decision_maker``: C-level, owner/Inhaber, Geschäftsführer, managing director, Vorstand,
      VP, director, Prokurist, and heads of a department ("Head of Sales", "Leiterin Einkauf",
      "IT-Leiter"), per ``features.titles.seniority``.
    - ``budget_holder``: finance and purchasing at any level (CFO, Finanz, Controlling,
      Buchhaltung, Einkauf/Einkäufer, purchasing, procurement, buyer) and kaufmännische
      Leitung. A CFO or "Head of Purchasing" is both decision maker and budget holder. In small
      firms the Geschäftsführer usually holds the budget too; a title alone does not say so.
    - ``user``: everyone working in the operation: specialists, engineers, Sachbearbeiter,
      analysts, consultants, team leads and "X Manager" titles without a department to head.
      Finance and purchasing staff below head level are budget holders, not users.
    - ``influencer`` (influencer or gatekeeper): IT at any level ("CTO" decides *and*
      influences), assistants (Assistenz der Geschäftsführung: a gatekeeper, not a decider),
      and freelancers, who advise a buying centre from outside.

    Students, Werkstudenten, interns, and empty titles fill no role: they are not part of a
    buying centre (DOMAIN.md's negative persona).
    """
    if not isinstance(job_title, str) or not job_title.strip():
        return set()
    title = job_title.strip()
    if _ASSISTANT.search(title):
        return {INFLUENCER}
    level = seniority(title)
    if level in ("student", "intern", "unknown"):
        return set()
    if level == "freelancer":
        return {INFLUENCER}
    if level == "c_level" and _NOT_OWNER.search(title):
        level = "head_manager"
    roles: set[str] = set()
    budget = bool(_BUDGET.search(title))
    if level in ("c_level", "vp_director") or (_HEAD_OF.search(title) and not _NOT_HEAD.search(title)):
        roles.add(DECISION_MAKER)
    elif not budget:
        roles.add(USER)
    if budget:
        roles.add(BUDGET_HOLDER)
    if _IT.search(title):
        roles.add(INFLUENCER)
    return roles


def _join(words: list[str], conjunction: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def coverage_sentence(covered: Collection[str], lang: Lang = "en") -> str:
    """Which required roles (decision maker, budget holder, user) are engaged and which are not,
    as one sentence for a rep: "Decision maker and user engaged; no budget holder yet"."""
    labels = ROLE_LABELS["de" if lang == "de" else "en"]
    have = [labels[r] for r in REQUIRED_ROLES if r in covered]
    lack = [labels[r] for r in REQUIRED_ROLES if r not in covered]
    if lang == "de":
        if not have:
            return f"Noch kein {_join(lack, 'oder')} aktiv"
        text = f"{_join(have, 'und')} aktiv"
        return text + (f"; noch kein {' und kein '.join(lack)}" if lack else "")
    if not have:
        return f"No {_join(lack, 'or')} engaged yet"
    text = f"{_join(have, 'and')} engaged"
    text = text[0].upper() + text[1:]
    return text + (f"; no {_join(lack, 'or')} yet" if lack else "")


# ---------------------------------------------------------------------------------------
# Account summary


@dataclass(frozen=True)
class AccountSummary:
    """One account: its leads (most probable first), the rolled-up probability and 1–99 score,
    its best lead, and the buying-centre roles its *engaged* leads cover (``roles_covered``, in
    ``BUYING_ROLES`` order) or leave open (``roles_missing``, of ``REQUIRED_ROLES``).

    ``key`` is None for a lead without any account (no company domain, no company name): it is
    summarised on its own so that no lead goes missing."""

    key: str | None
    lead_ids: list[str]
    n_leads: int
    n_engaged: int
    probability: float
    score: int
    best_lead_id: str
    best_lead_score: int
    roles_covered: list[str]
    roles_missing: list[str]
    coverage_text: str

    def to_dict(self) -> dict:
        return asdict(self)


LEAD_KEYS: tuple[str, ...] = ("lead_id", "email", "company", "job_title", "probability", "score", "engaged")


def _checked(leads: Sequence[Mapping]) -> None:
    seen: set[str] = set()
    for i, lead in enumerate(leads):
        missing = [k for k in LEAD_KEYS if k not in lead]
        if missing:
            raise ValueError(f"lead {i} ({lead.get('lead_id', 'no lead_id')}): missing {', '.join(missing)}; "
                             f"each lead needs {', '.join(LEAD_KEYS)}")
        lead_id = str(lead["lead_id"])
        if lead_id in seen:
            raise ValueError(f"lead {i}: lead_id {lead_id} appears more than once; an account counts each lead once")
        seen.add(lead_id)
        p = lead["probability"]
        if isinstance(p, bool) or not isinstance(p, (int, float, np.number)) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"lead {i} ({lead_id}): probability must be a number in [0, 1], found {p!r}; "
                             "leave out leads that were not scored (e.g. objected to profiling)")
        score = lead["score"]
        if isinstance(score, bool) or not isinstance(score, (int, np.integer)) or not 1 <= score <= 99:
            raise ValueError(f"lead {i} ({lead_id}): score must be a whole number from 1 to 99, found {score!r}")


def summarize_accounts(
    leads: Sequence[Mapping],
    free_mail_domains: Collection[str],
    method: RollUp = "noisy_or",
    max_leads: int | None = None,
    lang: Lang = "en",
) -> list[AccountSummary]:
    """Group scored leads into accounts (``account_key``) and summarise each, best account first.

    Each lead is a mapping with ``lead_id``, ``email``, ``company``, ``job_title``,
    ``probability`` (0–1), ``score`` (1–99) and ``engaged`` (the caller decides, e.g. an
    interest activity in the last 90 days). Only engaged leads cover roles. Leads that were
    not scored must be left out by the caller; a missing probability is an error, not a zero.
    The e-mail address is read for its domain only and appears nowhere in the result.
    """
    _checked(leads)
    free = frozenset(d.lower() for d in free_mail_domains)
    groups: dict[object, list[Mapping]] = {}
    for lead in leads:
        key = account_key(lead["email"], lead["company"], free)
        # A lead without a key stands alone: group it under its own id, never with other loners.
        groups.setdefault(key if key is not None else ("alone", str(lead["lead_id"])), []).append(lead)
    out = []
    for key, members in groups.items():
        members = sorted(members, key=lambda lead: (-float(lead["probability"]), str(lead["lead_id"])))
        probability = account_score([float(m["probability"]) for m in members], method=method, max_leads=max_leads)
        covered = set().union(*(buying_roles(m["job_title"]) for m in members if bool(m["engaged"])))
        out.append(AccountSummary(
            key=key if isinstance(key, str) else None,
            lead_ids=[str(m["lead_id"]) for m in members],
            n_leads=len(members),
            n_engaged=sum(bool(m["engaged"]) for m in members),
            probability=probability,
            score=int(score_from_probability(probability)),
            best_lead_id=str(members[0]["lead_id"]),
            best_lead_score=int(members[0]["score"]),
            roles_covered=[r for r in BUYING_ROLES if r in covered],
            roles_missing=[r for r in REQUIRED_ROLES if r not in covered],
            coverage_text=coverage_sentence(covered, lang),
        ))
    return sorted(out, key=lambda a: (-a.probability, a.key is None, a.key or "", a.best_lead_id))
