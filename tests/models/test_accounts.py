"""Accounts: keys, roll-up, buying-centre roles, coverage sentences and summaries (models/accounts.py)."""

from __future__ import annotations

import pytest

from leadscore.models.accounts import (
    AccountSummary,
    account_key,
    account_score,
    buying_roles,
    coverage_sentence,
    normalize_company,
    summarize_accounts,
)

FREE = ("gmail.com", "gmx.de", "web.de", "t-online.de")
DM, BH, USER, INF = "decision_maker", "budget_holder", "user", "influencer"


@pytest.mark.parametrize(("email", "company", "key"), [
    # A company domain wins over the name, and only the domain is kept (never the local part).
    ("anna.schmidt@mueller-maschinenbau.de", "Müller Maschinenbau GmbH", "mueller-maschinenbau.de"),
    ("A.Schmidt@Mueller-Maschinenbau.DE", None, "mueller-maschinenbau.de"),
    # Free mail → the normalised company name; legal forms, umlauts, punctuation and case go.
    ("anna.schmidt77@gmail.com", "Müller Maschinenbau GmbH", "mueller maschinenbau"),
    (None, "Müller Maschinenbau", "mueller maschinenbau"),
    ("", "  Mueller   Maschinenbau GmbH & Co. KG ", "mueller maschinenbau"),
    ("x@web.de", "Alpentec Digital Sp. z o.o.", "alpentec digital"),
    ("x@gmx.de", "Rheinsoft S.L.", "rheinsoft"),
    ("x@gmx.de", "Acme, Inc.", "acme"),
    ("x@gmx.de", "Nordlab B.V.", "nordlab"),
    ("x@gmx.de", "Sonnenwerk S.A.", "sonnenwerk"),
    ("x@gmx.de", "Zenit Group SE", "zenit group"),
    ("x@gmx.de", "Hamburger Verlag", "hamburger verlag"),  # "Verlag" keeps its "ag"
    # Not a usable domain (no dot) → the name; no domain and no name → the lead stands alone.
    ("someone@localhost", "Quellnet Ltd", "quellnet"),
    ("someone@t-online.de", None, None),
    ("not an address", "   ", None),
    (float("nan"), float("nan"), None),  # what pandas hands over for empty cells
    ("x@gmail.com", "GmbH", None),  # only a legal form names no firm
])
def test_account_key(email, company, key):
    assert account_key(email, company, FREE) == key


def test_account_key_keeps_two_domains_of_one_firm_apart():
    # By design: nothing says acme.de and acme.com are one firm, so they are two accounts.
    assert account_key("a@acme.de", "Acme GmbH", FREE) != account_key("b@acme.com", "Acme GmbH", FREE)


def test_free_mail_list_comes_from_params_and_is_case_insensitive(params):
    assert account_key("x@GoogleMail.com", "Acme AG", params.features.free_mail_domains) == "acme"
    assert account_key("x@googlemail.com", "Acme AG", ["GOOGLEMAIL.COM"]) == "acme"


def test_normalize_company_is_idempotent():
    once = normalize_company("Café Crème S.à r.l.")
    assert once == "cafe creme" and normalize_company(once) == once


def test_noisy_or_max_and_cap():
    assert account_score([0.2, 0.5]) == 0.6
    assert account_score([0.2, 0.5], method="max") == 0.5
    assert account_score([0.3]) == pytest.approx(0.3)
    # The cap counts the most probable leads: 1 − 0.5·0.8 from [0.5, 0.2], not the 0.1.
    assert account_score([0.1, 0.5, 0.2], max_leads=2) == 0.6
    assert account_score([0.1, 0.5, 0.2], max_leads=1) == 0.5
    assert account_score([0.1, 0.5, 0.2], max_leads=10) == pytest.approx(1 - 0.9 * 0.5 * 0.8)
    assert account_score([0.0, 1.0]) == 1.0


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ([], {}, "at least one"),
    ([0.2, 1.2], {}, r"\[0, 1\].*1\.2"),
    ([0.2, float("nan")], {}, r"\[0, 1\]"),
    ([0.2], {"method": "mean"}, "noisy_or, max"),
    ([0.2], {"max_leads": 0}, "max_leads"),
])
def test_account_score_refuses_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        account_score(args, **kwargs)


@pytest.mark.parametrize(("title", "roles"), [
    ("Geschäftsführer", {DM}),
    ("Geschäftsführerin", {DM}),
    ("Managing Director", {DM}),
    ("Inhaber", {DM}),
    ("VP Sales", {DM}),
    ("Head of Marketing", {DM}),
    # A head of purchasing decides and holds the budget; so does a CFO.
    ("Leiterin Einkauf", {DM, BH}),
    ("Head of Purchasing", {DM, BH}),
    ("CFO", {DM, BH}),
    ("Kaufmännischer Leiter", {DM, BH}),
    ("Einkäuferin", {BH}),
    ("Controller", {BH}),
    ("CTO", {DM, INF}),
    ("IT-Leiter", {DM, INF}),
    ("Software Engineer", {USER, INF}),
    ("Sachbearbeiter", {USER}),
    ("Marketing Specialist", {USER}),
    ("Teamleiterin Innendienst", {USER}),  # a team lead works in the operation
    ("Marketing Manager", {USER}),
    ("Product Owner", {USER}),  # owns a product, not the firm
    ("Assistenz der Geschäftsführung", {INF}),  # the gatekeeper, not the decider
    ("Executive Assistant to the CEO", {INF}),
    ("Freelance Consultant", {INF}),
    # Students, Werkstudenten and interns are not part of a buying centre.
    ("Werkstudent Vertrieb", set()),
    ("Praktikantin Marketing", set()),
    ("", set()),
    (None, set()),
])
def test_buying_roles(title, roles):
    assert buying_roles(title) == roles


@pytest.mark.parametrize(("covered", "en", "de"), [
    ({DM, USER}, "Decision maker and user engaged; no budget holder yet",
     "Entscheider und Anwender aktiv; noch kein Budgetverantwortlicher"),
    ({DM, BH, USER, INF}, "Decision maker, budget holder and user engaged",
     "Entscheider, Budgetverantwortlicher und Anwender aktiv"),
    ({BH}, "Budget holder engaged; no decision maker or user yet",
     "Budgetverantwortlicher aktiv; noch kein Entscheider und kein Anwender"),
    ({INF}, "No decision maker, budget holder or user engaged yet",
     "Noch kein Entscheider, Budgetverantwortlicher oder Anwender aktiv"),
    (set(), "No decision maker, budget holder or user engaged yet",
     "Noch kein Entscheider, Budgetverantwortlicher oder Anwender aktiv"),
])
def test_coverage_sentence(covered, en, de):
    assert coverage_sentence(covered) == en
    assert coverage_sentence(covered, "de") == de


def _lead(lead_id, email, company, title, p, engaged=True):
    return {"lead_id": lead_id, "email": email, "company": company, "job_title": title,
            "probability": p, "score": max(1, min(99, round(p * 100))), "engaged": engaged}


LEADS = [
    _lead("L1", "anna@mueller-maschinenbau.de", "Müller Maschinenbau GmbH", "Geschäftsführer", 0.2),
    _lead("L2", "ben@mueller-maschinenbau.de", "Müller Maschinenbau GmbH", "Sachbearbeiter", 0.5),
    _lead("L3", "cem@mueller-maschinenbau.de", "Müller Maschinenbau", "Leiterin Einkauf", 0.9, engaged=False),
    _lead("L4", "dora77@gmail.com", "Rheinsoft AG", "Software Engineer", 0.3),
    _lead("L5", "emil@gmx.de", "Rheinsoft", "CFO", 0.1),
    _lead("L6", "fritz@web.de", None, "Marketing Manager", 0.4),
]


def test_summary_over_two_accounts_and_a_lone_lead():
    out = summarize_accounts(LEADS, FREE)
    assert [a.key for a in out] == ["mueller-maschinenbau.de", None, "rheinsoft"]
    mueller, alone, rheinsoft = out
    assert isinstance(mueller, AccountSummary)
    assert mueller.lead_ids == ["L3", "L2", "L1"] and mueller.n_leads == 3 and mueller.n_engaged == 2
    assert mueller.probability == pytest.approx(1 - 0.1 * 0.5 * 0.8) and mueller.score == 96
    assert (mueller.best_lead_id, mueller.best_lead_score) == ("L3", 90)
    # L3 holds the budget but is not engaged: the account still misses a budget holder.
    assert mueller.roles_covered == [DM, USER] and mueller.roles_missing == [BH]
    assert mueller.coverage_text == "Decision maker and user engaged; no budget holder yet"
    assert rheinsoft.lead_ids == ["L4", "L5"] and rheinsoft.probability == pytest.approx(1 - 0.7 * 0.9)
    assert rheinsoft.roles_covered == [DM, BH, USER, INF] and rheinsoft.roles_missing == []
    assert alone.lead_ids == ["L6"] and alone.probability == 0.4 and alone.score == 40
    assert alone.roles_missing == [DM, BH]
    as_dict = rheinsoft.to_dict()
    assert as_dict["key"] == "rheinsoft" and as_dict["roles_covered"] == [DM, BH, USER, INF]
    assert "@" not in repr([a.to_dict() for a in out])  # no address, no local part


def test_summary_max_cap_and_german():
    out = {a.key: a for a in summarize_accounts(LEADS, FREE, method="max", lang="de")}
    assert out["mueller-maschinenbau.de"].probability == 0.9
    assert out["rheinsoft"].coverage_text == "Entscheider, Budgetverantwortlicher und Anwender aktiv"
    capped = {a.key: a for a in summarize_accounts(LEADS, FREE, max_leads=1)}
    assert capped["mueller-maschinenbau.de"].probability == 0.9


def test_lone_leads_are_never_merged():
    out = summarize_accounts([_lead("A", None, None, "CEO", 0.3), _lead("B", "b@gmx.de", "", "CFO", 0.2)], FREE)
    assert [a.lead_ids for a in out] == [["A"], ["B"]] and all(a.key is None for a in out)


@pytest.mark.parametrize(("change", "message"), [
    ({"probability": None}, "L1.*probability.*not scored"),
    ({"probability": 1.5}, "L1.*probability"),
    ({"score": 0}, "L1.*score"),
    ({"lead_id": "L2"}, "L2 appears more than once"),
])
def test_summary_refuses_bad_leads(change, message):
    leads = [dict(LEADS[0], **change), LEADS[1]]
    with pytest.raises(ValueError, match=message):
        summarize_accounts(leads, FREE)


def test_summary_names_a_missing_field():
    lead = {k: v for k, v in LEADS[0].items() if k != "engaged"}
    with pytest.raises(ValueError, match="lead 0 \\(L1\\): missing engaged"):
        summarize_accounts([lead], FREE)


def test_demo_export_has_multi_lead_accounts_and_titles_with_roles(tmp_path, params):
    from leadscore.demo import write_demo_export
    from leadscore.features.contract import read_export

    write_demo_export(tmp_path / "d", n_leads=800, seed=2)
    leads = read_export(tmp_path / "d").leads
    free = params.features.free_mail_domains
    keys = [account_key(e, c, free) for e, c in zip(leads["email"], leads["company"])]
    assert len(keys) == len(leads) and all(k is None or (isinstance(k, str) and k) for k in keys)
    assert not any("@" in k for k in keys if k)
    sizes: dict[str, int] = {}
    for k in keys:
        if k:
            sizes[k] = sizes.get(k, 0) + 1
    assert sum(n >= 2 for n in sizes.values()) > 50  # the demo's firms send several contacts
    titled = leads["job_title"].dropna()
    with_role = sum(bool(buying_roles(t)) for t in titled) / len(titled)
    assert with_role > 0.85  # only students and interns (about 5 % in the demo) fill no role
