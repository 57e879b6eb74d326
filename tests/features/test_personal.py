"""Personal data by header and by content, German and English: e-mail addresses, phone numbers,
names, street addresses — and the look-alikes that are not (amounts, dates, ids, companies)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore.config.params import load_params
from leadscore.features.build import infer_spec
from leadscore.features.contract import read_export
from leadscore.features.personal import PERSONAL_KINDS, classify, kind_by_content, kind_by_header, personal_columns
from tests.helpers import tiny_export

PARAMS = load_params()


@pytest.mark.parametrize("header, kind", [
    ("E-Mail", "email"), ("e_mail", "email"), ("Email", "email"), ("Email Address", "email"),
    ("E-Mail-Adresse", "email"), ("Work Email", "email"), ("emailaddress1", "email"),
    ("Telefon", "phone"), ("Telefonnummer", "phone"), ("Mobile Phone", "phone"), ("Handy", "phone"),
    ("Mobilnummer", "phone"), ("Rufnummer", "phone"), ("phone", "phone"), ("Tel.", "phone"), ("telephone1", "phone"),
    ("First Name", "name"), ("firstname", "name"), ("Vorname", "name"), ("Nachname", "name"), ("Last Name", "name"),
    ("lastname", "name"), ("Full Name", "name"), ("Contact Name", "name"), ("Ansprechpartner", "name"),
    ("Straße", "address"), ("Strasse", "address"), ("Street", "address"), ("Address Line 1", "address"),
    ("Anschrift", "address"), ("Postal Address", "address"), ("Straße und Hausnummer", "address"),
])
def test_personal_headers(header, kind):
    assert kind_by_header(header) == kind
    assert classify(header, ["basic", "pro"]) == (kind, "header")


@pytest.mark.parametrize("header", [
    "company_name", "campaign_name", "account_name", "email_opens", "emails_sent", "n_emails", "email_domain",
    "job_title", "domain", "lead_source", "phone_calls", "address_country", "address1_country", "country", "city",
    "zip", "PLZ", "Firma", "Record ID", "has_phone", "email_opt_in",
])
def test_look_alike_headers_are_not_personal(header):
    assert kind_by_header(header) is None


@pytest.mark.parametrize("values, kind", [
    (["anna@acme.de", "john@example.com", "x.y@beta.co.uk", ""], "email"),
    (["Anna Müller <anna@acme.de>", "john@example.com", "n/a"], "email"),
    (["+49 30 1234567", "030/1234567", "0171-1234567", "+49 (0)89 123456"], "phone"),
    (["0049 30 1234567", "030 1234567", "089 / 12 34 56", "01711234567"], "phone"),
    (["(555) 123-4567", "555-123-4567", "+1 212 555 0100", "555.123.4567"], "phone"),
    (["Anna Müller", "John Smith", "Maria Schmidt", "Peter"], "name"),
    (["Müller, Anna", "Dr. Thomas Weber", "Anna-Lena Schmidt", "O'Brien"], "name"),
    (["Julia", "Thomas", "Sarah", "Michael", "Laura"], "name"),  # first names alone
    (["Müller", "Schmidt", "Wagner", "Hoffmann"], "name"),  # last names alone
    (["Hauptstraße 5", "Musterstr. 12a", "Am Markt 3", "Berliner Allee 20, 10115 Berlin"], "address"),
    (["Lindenweg 7", "Marktplatz 1", "Kirchgasse 4", "Ostring 9", "Unter den Linden 77"], "address"),
    (["221B Baker Street", "10 Downing St", "1600 Pennsylvania Avenue NW", "12 Elm Rd"], "address"),
    (["5th Ave", "Apt 4B, 12 Elm Rd", "Suite 100", "350 Fifth Avenue"], "address"),
])
def test_personal_content(values, kind):
    assert kind_by_content(values) == kind
    assert classify("kontakt", values) == (kind, "content")


@pytest.mark.parametrize("values", [
    ["12000", "250", "5000000", "42"],  # amounts and counts
    ["1.234,56", "12,5", "1.000.000", "1,234.56", "1 234 567", "12.5"],  # amounts, both conventions
    ["2024-03-01", "01.03.2024", "3/1/2024", "2024-03-01 10:00", "2024/03/01", "20240301"],  # dates
    ["2023", "2024", "2025"],  # years
    ["10115", "20095", "80331", "01067"],  # postcodes
    ["1234567", "ORD-123456", "0000123456", "0000987654"],  # ids, zero-padded too
    ["Acme GmbH", "Example Inc", "Beta AG", "Müller GmbH & Co. KG", "Weber Consulting", "Baker Industries"],
    ["Software", "Retail", "Manufacturing", "Consulting", "Green Energy"],  # industries
    ["CTO", "Head of IT", "Einkauf", "Geschäftsführer", "Sales Manager"],  # job titles
    ["Germany", "USA", "Deutschland", "Österreich"],  # countries
    ["Berlin", "München", "Hamburg", "New York"],  # cities
    ["Klein", "Mittel", "Groß", "Klein"],  # sizes: "Klein" is a surname only beside a first name
    ["White", "Green", "Brown", "Black", "Red"],  # colours
    ["Webinar", "Trade Show", "Paid Search", "Referral"],  # lead sources
    ["Spring 2024", "Office Suite", "Webinar 3", "Platz 1 im Ranking", "Q1 2024"],  # campaigns
    ["Peter", "Software", "Retail"],  # one first name among words is no name column
    ["yes", "no", "yes"],
    ["demo_request", "page_view", "email_open"],
])
def test_look_alike_content_is_not_personal(values):
    assert kind_by_content(values) is None


def test_a_numeric_column_is_a_phone_only_by_header():
    numbers = pd.Series(np.arange(3012345670, 3012345770))
    assert kind_by_content(numbers) is None
    assert classify("wert", numbers) is None
    assert classify("Telefon", numbers) == ("phone", "header")


def test_too_few_distinct_names_are_not_a_name_column():
    assert kind_by_content(["Peter", "Peter", "Peter"]) is None


def test_the_share_decides():
    mails = [f"p{i}@acme.de" for i in range(4)]
    assert kind_by_content(mails + ["-"] * 10 + ["x"] * 4) == "email"  # placeholders are not values
    assert kind_by_content(mails + ["x"] * 5) is None  # 4 of 9


def test_personal_columns_skips_and_names_how():
    frame = pd.DataFrame({"lead_id": ["a@b.de"] * 3, "E-Mail": ["x"] * 3, "kontakt": ["a@b.de", "c@d.com", "e@f.org"],
                          "plan": ["basic", "pro", "pro"]})
    assert personal_columns(frame, skip={"lead_id"}) == {"E-Mail": ("email", "header"), "kontakt": ("email", "content")}


def test_a_large_column_is_sampled():
    n = 100_000
    frame = pd.DataFrame({"a": [f"user{i}@example.com" for i in range(n)], "plan": "pro",
                          "score": np.arange(n), "tel": [f"+49 30 {1000000 + i}" for i in range(n)]})
    assert personal_columns(frame) == {"a": ("email", "content"), "tel": ("phone", "header")}


@pytest.fixture()
def export(tmp_path):
    return read_export(tiny_export(tmp_path / "x"))


def test_infer_spec_never_makes_personal_data_a_feature(export):
    leads = export.leads.assign(
        kontakt=["p1@firma1.de", "p2@firma2.de", "p3@beispiel.com"],
        Rufnummer=["+49 30 1234567", "0171-1234567", "(555) 123-4567"],
        ansprechpartner=["Anna Weber", "Thomas Becker", "Julia Koch"],
        wer=["Anna Weber", "Thomas Becker", "Julia Koch"],
        plan=["basic", "pro", "pro"],
    )
    forced = {"kontakt": "category", "Rufnummer": "numeric", "wer": "category"}  # no column type lets one in
    spec = infer_spec(leads, export.activities, PARAMS.features.model_copy(update={"column_types": forced}))
    assert spec.profile_columns["plan"] == "category"
    assert "plan" in spec.names
    personal = {"kontakt", "Rufnummer", "ansprechpartner", "wer"}
    assert personal.isdisjoint(spec.profile_columns) and personal.isdisjoint(spec.names)
    assert spec.excluded["kontakt"] == f"personal data: {PERSONAL_KINDS['email']['en']} (by content)"
    assert spec.excluded["Rufnummer"] == "personal data: phone numbers (by header)"
    assert spec.excluded["ansprechpartner"] == "personal data: personal names (by header)"
    assert spec.excluded["wer"] == "personal data: personal names (by content)"
    assert "plan" not in spec.excluded
    assert spec.to_dict()["excluded"] == spec.excluded  # what the model card and the dataset summary list


def test_a_team_reason_for_a_personal_column_is_kept(export):
    leads = export.leads.assign(kontakt=["p1@firma1.de", "p2@firma2.de", "p3@beispiel.com"])
    cfg = PARAMS.features.model_copy(update={"exclude": {"kontakt": "DSGVO: never profile"}})
    spec = infer_spec(leads, export.activities, cfg)
    assert spec.excluded["kontakt"] == "DSGVO: never profile"
    assert "kontakt" not in spec.profile_columns
