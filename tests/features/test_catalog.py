from leadscore.features.build import infer_spec
from leadscore.features.catalog import describe, label
from leadscore.features.contract import read_export
from tests.helpers import tiny_export


def test_the_sentences_a_rep_reads_in_both_languages():
    assert describe("pricing_page_view_14d", 3.0) == "Visited the pricing page 3× in the last 14 days"
    assert describe("pricing_page_view_14d", 3.0, "de") == "Hat die Preisseite in den letzten 14 Tagen 3× besucht"
    assert describe("employees", 1288.0, "en") == "Company size: 1,288 employees"
    assert describe("employees", 1288.0, "de") == "Unternehmensgröße: 1.288 Mitarbeitende"
    assert describe("seniority", "c_level", "de") == "Hierarchieebene: Geschäftsführung / C-Level"
    assert describe("is_free_mail", 1.0, "de") == "Nutzt eine Freemail-Adresse"
    assert describe("days_since_last_activity", 12.5, "de") == "Letzte Aktivität vor 12,5 Tagen"
    assert describe("budget_confirmed", "yes") == "Budget confirmed: yes"
    assert label("demo_request_90d", "de") == "Demo-Anfragen, letzte 90 Tage"
    assert describe("channels_90d", 3.0) == "Active on 3 channels in the last 90 days"
    assert describe("days_since_last_activity", 3650.0) == "No activity yet"
    assert describe("has_bounced", 1.0, "de") == "Eine E-Mail an diesen Lead war unzustellbar"
    assert describe("engagement", 2.267765, "de") == "Zuletzt mittlere Aktivität"
    assert describe("budget_confirmed", "no", "de") == "Budget bestätigt: nein"
    assert describe("lead_age_days", 12.4, "de") == "Lead seit 12 Tagen bekannt"


def test_every_feature_of_an_export_has_group_and_labels_in_english_and_german(tmp_path, params):
    export = read_export(tiny_export(tmp_path / "x"))
    spec = infer_spec(export.leads, export.activities, params.features)
    for f in spec.features:
        assert f.group in ("fit", "interest")
        assert set(f.label) == {"en", "de"} and all(f.label.values()), f.name
    by_name = {f.name: f for f in spec.features}
    assert by_name["seniority"].group == "fit" and by_name["pricing_page_view_30d"].group == "interest"
    assert by_name["pricing_page_view_30d"].label == {"en": "Pricing page visits, last 30 days",
                                                      "de": "Besuche der Preisseite, letzte 30 Tage"}
