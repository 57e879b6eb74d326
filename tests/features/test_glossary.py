"""Every reason text in German is German, and every reason is true.

The walk: every feature the demo export's spec and the SLA rules can produce, with every value seen
in a small demo export and in the three real datasets (when ../shared/data is there), plus None, NaN
and 0, in both languages, through ``describe``, ``label``, ``signal_label`` and ``action``.
"""

from __future__ import annotations

import math
import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import yaml

from leadscore.config.params import ParamsError, load_params
from leadscore.features import catalog
from leadscore.features.build import compute_features, infer_spec
from leadscore.features.catalog import (
    ACTIONS,
    LANGS,
    action,
    active_glossary,
    describe,
    glossary_gaps,
    is_missing,
    label,
    signal_label,
    use_glossary,
)
from leadscore.features.contract import read_export
from leadscore.features.snapshots import training_snapshots
from tests.conftest import ROOT, SHARED_DATA

FLAT_SPECS = ("x_education", "olist_funnel", "bank_marketing")
SLA_FILES = [ROOT / "models" / "default_sla.yaml"] + [ROOT / "specs" / f"{n}_sla.yaml" for n in FLAT_SPECS]

# English words and codes that must never reach a German text: every example the demo export showed
# ("Purchase timeframe", "Budget confirmed", "Crm system", "trade fair", "financial services",
# "unknown", "no", "Log-Odds", "Engagement-Wert", "unbekannt Mitarbeitende", …) and their kin.
ENGLISH_WORDS = frozenset("""
    unknown yes no none not given the a and or of with without on at to for from by is are were has
    have had been this that these those last first days day weeks week months month years year
    employee employees company size revenue annual visit visits visited page pages views viewed score
    scores points log-odds odds logit engagement engagement-index engagement-wert activity activities
    interaction interactions source lead_source industry country seniority
    function purchase timeframe confirmed budget_confirmed crm_system trade fair financial services
    services retail healthcare manufacturing consulting education construction hospitality media
    public sector logistics organic search paid referral syndication content specialist director
    intern freelancer other others opened clicked downloaded attended requested signed
    unsubscribed bounced bounce click clicks open opens sign-up sign-ups request requests form forms
    contact trial whitepapers webinars demos free-mail free mail competitor delivered still
    subscribed subscription unbekannt monatsmittel nan null true false select
""".split())
# Phrases checked as a whole (a word each is German or not listed).
ENGLISH_PHRASES = ("crm system", "purchase timeframe", "budget confirmed", "trade fair", "financial services",
                   "log-odds", "engagement-wert", "engagement-index", "e-mail domain", "company e-mail")
# German (or German business usage) although they look English: the list above must allow them.
GERMAN_LOANWORDS = frozenset("""
    Test Demo Demo-Anfrage Demo-Anfragen Webinar Webinaren Whitepaper Whitepaper-Downloads Manager Lead
    Leads Lead-Quelle Marketing Marketing-Interaktion Marketing-Interaktionen Software IT CRM CRM-System
    E-Mail E-Mails Freemail-Adresse Online Website Website-Besuche Budget Region Handel Mumbai Live-Chat
    Blog Landingpage Euribor Management Start Team Service Domain
""".split())
_TOKEN = re.compile(r"[^\s()\[\]{},.:;!?/„“\"'–+×%]+")
_QUOTED = re.compile(r"„[^“]*“")
_ENGLISH_NUMBER = re.compile(r"\d,\d{3}(?!\d)|\d\.\d{1,2}(?!\d)")  # 1,288 or 12.5 in a German text


def german_problems(text: str) -> list[str]:
    """Why ``text`` is not what a German rep would write (empty: fine)."""
    problems = []
    lower = text.casefold()
    problems += [f"English phrase {p!r}" for p in ENGLISH_PHRASES if p in lower]
    for token in _TOKEN.findall(_QUOTED.sub(" ", text)):
        word = token.strip("-").casefold()
        if "_" in token:
            problems.append(f"code {token!r}")
        elif word in ENGLISH_WORDS:
            problems.append(f"English word {token!r}")
    if _ENGLISH_NUMBER.search(text):
        problems.append("English number format")
    for m in re.finditer("Mitarbeitende", text):
        if not re.search(r"[\d(]\s*$", text[: m.start()]):
            problems.append("'Mitarbeitende' without a number")
    if "(s)" in text or "(en)" in text or "(n)" in text:
        problems.append("plural in brackets")
    return problems


def english_problems(text: str) -> list[str]:
    problems = [f"code {t!r}" for t in _TOKEN.findall(text) if "_" in t]
    if "(s)" in text:
        problems.append("plural in brackets")
    return problems


# ---------------------------------------------------------------------------------------
# What is walked


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory):
    """Raw features of a small demo export's training snapshots, and the export's spec."""
    from leadscore.demo import write_demo_export

    params = load_params()
    folder = tmp_path_factory.mktemp("glossary") / "demo"
    write_demo_export(folder, n_leads=400, seed=5)
    export = read_export(folder)
    snaps, _ = training_snapshots(export, params.features)
    spec = infer_spec(export.leads, export.activities, params.features)
    return spec, compute_features(snaps, export.leads, export.activities, spec)


def _values_of(column: pd.Series) -> list[object]:
    """Every category value; for numbers every distinct value up to 60 of them (with min and max)."""
    present = column.dropna()
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    if present.map(lambda v: isinstance(v, str)).any():
        return sorted({str(v) for v in present})
    distinct = np.unique(present.to_numpy(dtype=float))
    if len(distinct) > 60:
        distinct = np.unique(np.concatenate([distinct[:: max(1, len(distinct) // 58)], distinct[[0, -1]]]))
    return [float(v) for v in distinct]


EDGES: tuple[object, ...] = (None, float("nan"), 0.0, np.float64("nan"), pd.NA)


def _rule_features() -> set[str]:
    from leadscore.models.rules import load_rules, rules_spec

    names = set()
    cfg = load_params().features
    for path in SLA_FILES:
        config = load_rules(path)
        names |= {r.feature for r in config.rules}
        if path.name == "default_sla.yaml":
            names |= set(rules_spec(config, cfg).names)
    return names


@pytest.fixture(scope="module")
def walk(demo_raw) -> dict[str, list[object]]:
    """feature → the values to render (demo export, rules, real datasets, edges)."""
    spec, raw = demo_raw
    values: dict[str, list[object]] = {name: _values_of(raw[name]) for name in spec.names}
    for name in _rule_features():
        values.setdefault(name, [1.0, 2.0, 5.0])
    for name in list(values):
        values[name] = [*values[name], *EDGES]
    return values


@pytest.fixture(scope="module")
def flat_walk() -> dict[str, list[object]]:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: the real datasets are not walked")
    from leadscore.features.flat import load_flat

    values: dict[str, list[object]] = {}
    for name in FLAT_SPECS:
        data = load_flat(ROOT / "specs" / f"{name}.yaml", SHARED_DATA)
        for col in data.features.columns:
            values[col] = [*_values_of(data.features[col]), *EDGES]
        # Placeholders the spec turns into NaN: still rendered as missing if they get through.
        for col, tokens in _spec_missing(ROOT / "specs" / f"{name}.yaml").items():
            values.setdefault(col, []).extend(tokens)
    return values


def _spec_missing(path) -> dict[str, list[object]]:
    spec = yaml.safe_load(path.read_text())
    missing = spec.get("missing_values") or {}
    if isinstance(missing, list):
        return {col: list(missing) for col in (spec.get("fit") or []) + (spec.get("interest") or [])}
    return {col: [v for v in tokens if isinstance(v, str)] for col, tokens in missing.items()}


def _texts(feature: str, value: object, lang) -> list[str]:
    return [describe(feature, value, lang), label(feature, lang), signal_label(feature, lang)]


def _check_walk(values: dict[str, list[object]]) -> list[str]:
    bad = []
    verbatim = {name for name, f in active_glossary().fields.items() if f.verbatim}
    for feature, seen in values.items():
        for value in seen:
            de, en = _texts(feature, value, "de"), _texts(feature, value, "en")
            for text in de:
                bad += [f"{feature}={value!r}: {text!r}: {p}" for p in german_problems(text)]
                if "„" in text and feature not in verbatim:
                    bad.append(f"{feature}={value!r}: {text!r}: not in the glossary")
            for text in en:
                bad += [f"{feature}={value!r}: {text!r}: {p}" for p in english_problems(text)]
    return bad


# ---------------------------------------------------------------------------------------
# The walk


def test_every_demo_and_rule_reason_is_german_in_german_and_free_of_codes_in_english(walk):
    assert {"employees", "budget_confirmed", "purchase_timeframe", "crm_system", "engagement", "activity_trend",
            "is_free_mail", "pricing_page_view_30d", "hand_raisers_90d", "lead_age_days"} <= set(walk)
    bad = _check_walk(walk)
    assert not bad, "\n".join(bad[:40])


def test_every_real_dataset_reason_is_german_in_german(flat_walk):
    bad = _check_walk(flat_walk)
    assert not bad, "\n".join(bad[:40])


def test_the_glossary_names_every_field_and_value_of_the_data(walk, flat_walk):
    assert glossary_gaps({k: v for k, v in walk.items()}) == {}
    assert glossary_gaps(flat_walk) == {}


def test_actions_and_signals_read_in_both_languages(demo_raw):
    spec, _ = demo_raw
    for t in [*spec.activity_types, *ACTIONS]:
        for n in (1, 2):
            assert not german_problems(action(t, n, "de")), action(t, n, "de")
            assert not english_problems(action(t, n, "en"))
        assert not german_problems(signal_label(t, "de")) and "„" not in signal_label(t, "de"), t
    for signal in ("activities", "hand_raisers", "channels", "employees", "engagement"):
        assert not german_problems(signal_label(signal, "de")), signal


def test_the_rule_scorers_reasons_are_german(demo_raw, tmp_path):
    from leadscore.demo import write_demo_export
    from leadscore.models.base import score_leads
    from leadscore.models.rules import RuleScorer, load_rules

    write_demo_export(tmp_path / "x", n_leads=150, seed=9)
    export = read_export(tmp_path / "x")
    snaps = export.leads[["lead_id"]].assign(as_of=export.data_end)
    scorer = RuleScorer(load_rules(), load_params().features)
    texts = [r.text for s in score_leads(scorer, snaps, export.leads, export.activities, top_k=5, lang="de")
             for r in s.reasons]
    assert len(texts) > 100
    bad = [f"{t!r}: {p}" for t in texts for p in german_problems(t)]
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("path", SLA_FILES, ids=lambda p: p.name)
def test_every_sla_rule_has_a_german_label(path):
    rules = yaml.safe_load(path.read_text())["rules"]
    for rule in rules:
        de = rule["label"].get("de") if isinstance(rule["label"], dict) else None
        assert de, f"{path.name}: {rule['feature']}: no German label"
        assert not german_problems(de), (de, german_problems(de))
        assert de != rule["label"]["en"] or de in GERMAN_LOANWORDS


# ---------------------------------------------------------------------------------------
# The checker itself: it catches what users found and lets German loanwords through


@pytest.mark.parametrize("text", [
    "Purchase timeframe: 3–6 Monate", "Budget confirmed: ja", "Crm system: Salesforce", "Lead-Quelle: trade fair",
    "Branche: financial services", "Budget bestätigt: unknown", "Budget bestätigt: no",
    "Engagement-Wert 0,1 (jüngere und aktive Anfragen zählen mehr)", "Effekt +0,3 Log-Odds",
    "Unternehmensgröße: unbekannt Mitarbeitende", "Lead-Quelle: trade_fair", "Unternehmensgröße: 1,288 Mitarbeitende",
    "Hat in den letzten 14 Tagen 2 E-Mail(s) geöffnet", "Aktivitätstrend: 3 Interaktionen gegenüber dem Monatsmittel davor",
])
def test_the_checker_catches_every_reported_example(text):
    assert german_problems(text)


def test_german_loanwords_are_allowed():
    assert not {w.casefold() for w in GERMAN_LOANWORDS} & ENGLISH_WORDS
    assert not german_problems(" ".join(sorted(GERMAN_LOANWORDS)))
    assert not german_problems("Hat in den letzten 30 Tagen 1× eine Demo angefragt und am Webinar teilgenommen")


# ---------------------------------------------------------------------------------------
# True sentences about missing values


@pytest.mark.parametrize("value", [None, float("nan"), np.float64("nan"), pd.NA])
def test_a_missing_e_mail_is_never_a_company_address(value):
    for flag in ("is_free_mail", "is_competitor"):
        assert is_missing(flag, value)
        assert describe(flag, value, "de") == "Keine E-Mail-Adresse angegeben"
        assert describe(flag, value, "en") == "No e-mail address given"
    assert describe("is_free_mail", 0.0, "de") == "Nutzt eine Firmen-E-Mail-Adresse"


@pytest.mark.parametrize("feature, value, de, en", [
    ("budget_confirmed", None, "Budget bestätigt: nicht angegeben", "Budget confirmed: not given"),
    ("budget_confirmed", "unknown", "Budget bestätigt: nicht angegeben", "Budget confirmed: not given"),
    ("budget_confirmed", "no", "Budget bestätigt: nein", "Budget confirmed: no"),
    ("purchase_timeframe", "3-6 months", "Kaufzeitraum: 3–6 Monate", "Purchase timeframe: 3–6 months"),
    ("employees", float("nan"), "Unternehmensgröße nicht angegeben", "Company size not given"),
    ("employees_band", None, "Unternehmensgröße nicht angegeben", "Company size not given"),
    ("seniority", "unknown", "Keine Berufsbezeichnung angegeben", "No job title given"),
    ("Specialization", "Select", "Fachrichtung: nicht angegeben", "Specialisation: not given"),
    ("pdays", float("nan"), "In keiner früheren Kampagne angerufen", "Not called in an earlier campaign"),
    ("lead_source", "trade_fair", "Lead-Quelle: Messe", "Lead source: Trade fair"),
    ("industry", "financial services", "Branche: Finanzdienstleistungen", "Industry: Financial services"),
    ("crm_system", "none", "CRM-System: kein CRM", "CRM in use: no CRM"),
    ("activities_90d", 0.0, "Keine Marketing-Interaktion in den letzten 90 Tagen",
     "No marketing interactions in the last 90 days"),
    ("lead_age_days", 12.6, "Lead seit 12 Tagen bekannt", "Lead known for 12 days"),
    ("engagement", 0.1, "Zuletzt geringe Aktivität", "Low recent activity"),
    ("engagement", 7.5, "Zuletzt hohe Aktivität", "High recent activity"),
    ("activity_trend", -3.0, "In den letzten 30 Tagen 3 Interaktionen weniger als im Monatsdurchschnitt davor",
     "3 fewer interactions in the last 30 days than the monthly average before"),
    ("annual_revenue", 12_500_000.0, "Jahresumsatz: 12,5 Mio. EUR", "Annual revenue: EUR 12.5 million"),
])
def test_sentences_a_rep_can_use(feature, value, de, en):
    assert describe(feature, value, "de") == de
    assert describe(feature, value, "en") == en


def test_is_missing_knows_placeholders_but_not_answers():
    assert is_missing("industry", None) and is_missing("industry", float("nan")) and is_missing("industry", "  ")
    assert is_missing("Country", "unknown") and is_missing("Lead Source", "Select") and is_missing("x", "N/A")
    assert not is_missing("crm_system", "none")  # "no CRM in use" is an answer
    assert not is_missing("has_bounced", 0.0) and not is_missing("industry", "software")
    assert not is_missing("days_since_last_activity", 3650.0)  # "no activity yet" is a fact


# ---------------------------------------------------------------------------------------
# Values and fields the glossary does not know


def test_an_unknown_value_is_quoted_as_the_crms_own():
    assert describe("industry", "Bergbau", "de") == "Branche: „Bergbau“"
    assert describe("industry", "Mining", "en") == 'Industry: "Mining"'
    assert describe("lead_source", "partner_portal", "en") == 'Lead source: "partner portal"'
    assert describe("lead_source", "partner_portal", "de") == "Lead-Quelle: „partner_portal“"


def test_an_unknown_field_is_quoted_in_german():
    assert label("seats_booked", "de") == "„seats_booked“"
    assert describe("seats_booked", 12.0, "de") == "„seats_booked“: 12"
    assert describe("seats_booked", 12.0, "en") == "Seats booked: 12"
    assert glossary_gaps({"seats_booked": [12.0], "industry": ["software", "Bergbau", None]}) == {
        "seats_booked": [], "industry": ["Bergbau"]}


# ---------------------------------------------------------------------------------------
# The team's glossary


TEAM = {
    "fields": {"seats_booked": {"en": "Seats booked", "de": "Gebuchte Plätze"},
               "industry": {"en": "Sector", "de": "Sektor"}},
    "values": {"industry": {"Bergbau": {"en": "Mining", "de": "Bergbau"}, "n.a.": "missing"},
               "activity_type": {"event_checkin": {"en": "Event check-ins", "de": "Event-Check-ins"}}},
}


@pytest.fixture()
def team_glossary(tmp_path, monkeypatch):
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({"glossary": TEAM}, allow_unicode=True), encoding="utf-8")
    yield load_params(path)
    use_glossary(None)


def test_a_team_glossary_from_params_is_merged_over_the_packaged_one(team_glossary):
    assert describe("industry", "Bergbau", "de") == "Branche: „Bergbau“"  # not active yet
    use_glossary(team_glossary)
    assert describe("industry", "Bergbau", "de") == "Sektor: Bergbau"
    assert describe("industry", "Bergbau", "en") == "Sector: Mining"
    assert describe("industry", "software", "de") == "Sektor: Software"  # packaged values stay
    assert describe("industry", "n.a.", "de") == "Sektor: nicht angegeben" and is_missing("industry", "n.a.")
    assert describe("seats_booked", 12.0, "de") == "Gebuchte Plätze: 12"
    assert label("event_checkin_30d", "de") == "Event-Check-ins, letzte 30 Tage"
    assert describe("event_checkin_30d", 3.0, "de") == "Event-Check-ins in den letzten 30 Tagen: 3"
    assert action("event_checkin", 2, "en") == "2× Event check-ins"
    assert glossary_gaps({"industry": ["Bergbau"], "seats_booked": [1.0]}) == {}
    use_glossary(None)
    assert describe("industry", "Bergbau", "de") == "Branche: „Bergbau“"


def test_the_default_glossary_reads_the_params_file_of_the_settings(tmp_path, monkeypatch):
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({"glossary": TEAM}, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("LEADSCORE_PARAMS_PATH", str(path))
    from leadscore.config import settings

    if hasattr(settings.get_settings, "cache_clear"):
        settings.get_settings.cache_clear()
    use_glossary(None)
    try:
        assert describe("industry", "Bergbau", "en") == "Sector: Mining"
    finally:
        monkeypatch.delenv("LEADSCORE_PARAMS_PATH")
        if hasattr(settings.get_settings, "cache_clear"):
            settings.get_settings.cache_clear()
        use_glossary(None)
    assert describe("industry", "Bergbau", "en") == 'Industry: "Bergbau"'


@pytest.mark.parametrize("glossary, where", [
    ({"fields": {"seats": {"en": "Seats"}}, "values": {}}, "glossary.fields.seats.de"),
    ({"fields": {}, "values": {"industry": {"mining": {"en": "Mining", "de": ""}}}}, "glossary.values.industry.mining"),
    ({"fields": {}, "values": {"budget_confirmed": {True: {"en": "yes", "de": "ja"}}}}, "glossary.values.budget_confirmed"),
    ({"fields": {}, "values": {}, "colour": {}}, "glossary.colour"),
])
def test_a_bad_team_glossary_names_the_key(tmp_path, glossary, where):
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({"glossary": glossary}), encoding="utf-8")
    with pytest.raises(ParamsError, match=re.escape(where)):
        load_params(path)


def test_the_glossary_is_package_data_with_both_languages_everywhere():
    text = resources.files("leadscore.features").joinpath("glossary.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    assert set(raw) == {"missing", "fields", "values"}
    g = catalog.load_glossary()
    assert all(all(n) for f in g.fields.values() for n in [f.names])
    for field, table in g.values.items():
        for value, names in table.items():
            assert isinstance(value, str) and (names is None or all(names)), (field, value)
            if names:
                assert not german_problems(names[1]), (field, value, names[1], german_problems(names[1]))
                assert "_" not in names[0], (field, value)
    for name, f in g.fields.items():
        assert not german_problems(f.names[1]), (name, f.names[1])
        if f.missing:
            assert not german_problems(f.missing[1]), (name, f.missing[1])
    assert math.isnan(float("nan")) and LANGS == ("en", "de")
