"""A reviewer's sample of German reasons, with the English beside them: docs/reasons_de.md.

A small demo export is scored at its data end by the SLA rules (models/default_sla.yaml), and the
features of the same leads are phrased by ``features.catalog`` (what the model's reasons say). No
model is trained. Run from the repository root:

    .venv/bin/python scripts/reason_sample.py [--out docs/reasons_de.md] [--leads 600] [--seed 7]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.config.params import load_params
from leadscore.demo import write_demo_export
from leadscore.features.build import compute_features, infer_spec
from leadscore.features.catalog import describe, is_missing
from leadscore.features.contract import read_export
from leadscore.models.base import score_leads
from leadscore.models.rules import RuleScorer, load_rules

RULE_REASONS = 10  # the rest are feature sentences
TOTAL = 30


def _rule_rows(export, scorer, snaps) -> list[dict]:
    """One reason per rule feature (the first lead that has it), German and English side by side."""
    de = score_leads(scorer, snaps, export.leads, export.activities, top_k=3, lang="de")
    en = score_leads(scorer, snaps, export.leads, export.activities, top_k=3, lang="en")
    rows, seen = [], set()
    for a, b in zip(de, en):
        for r_de, r_en in zip(a.reasons, b.reasons):
            if r_de.feature in seen:
                continue
            seen.add(r_de.feature)
            rows.append({"lead": a.lead_id, "source": "SLA-Regel", "de": r_de.text, "en": r_en.text})
    return rows[:RULE_REASONS]


# (feature, what to show): a value a rep would see, or a missing one (said as missing, never as "no").
SHOWN: tuple[tuple[str, str], ...] = (
    ("engagement", "value"), ("activity_trend", "value"), ("lead_age_days", "value"),
    ("days_since_last_activity", "value"), ("pricing_page_view_30d", "value"), ("hand_raisers_90d", "value"),
    ("channels_90d", "value"), ("employees", "value"), ("annual_revenue", "missing"), ("seniority", "missing"),
    ("region", "value"), ("crm_system", "value"), ("crm_system", "missing"), ("purchase_timeframe", "value"),
    ("purchase_timeframe", "missing"), ("budget_confirmed", "value"), ("budget_confirmed", "missing"),
    ("is_free_mail", "value"), ("is_free_mail", "missing"), ("industry", "missing"), ("employees", "missing"),
    ("annual_revenue", "value"), ("webinar_attendance_90d", "value"), ("job_function", "value"),
)


def _feature_rows(raw: pd.DataFrame, snaps: pd.DataFrame, rng: np.random.Generator, n: int) -> list[dict]:
    """Feature sentences in the order of ``SHOWN``: the first lead (in a seeded random order) with a
    non-zero value, or with a missing one; a feature the export never leaves empty is skipped."""
    rows = []
    order = rng.permutation(len(raw))
    for feature, want in SHOWN:
        if feature not in raw.columns:
            continue
        values = raw[feature]
        for j in order:
            value = values.iat[j]
            missing = is_missing(feature, value)
            if (want == "missing") == missing and (missing or value != 0):
                value = None if missing else value
                rows.append({"lead": snaps["lead_id"].iat[j], "source": f"Merkmal `{feature}`",
                             "de": describe(feature, value, "de"), "en": describe(feature, value, "en")})
                break
        if len(rows) == n:
            break
    return rows


def sample(n_leads: int = 600, seed: int = 7) -> list[dict]:
    params = load_params()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "demo"
        write_demo_export(folder, n_leads=n_leads, seed=seed)
        export = read_export(folder)
    # Leads of the last half year: those a rep still works (older ones are mostly cold).
    recent = export.leads.loc[export.leads["created_at"] >= export.data_end - pd.Timedelta(days=180), ["lead_id"]]
    snaps = recent.assign(as_of=export.data_end).reset_index(drop=True)
    rules = _rule_rows(export, RuleScorer(load_rules(), params.features), snaps)
    spec = infer_spec(export.leads, export.activities, params.features)
    raw = compute_features(snaps, export.leads, export.activities, spec)
    return rules + _feature_rows(raw, snaps, np.random.default_rng(seed), TOTAL - len(rules))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(rows: list[dict], n_leads: int, seed: int) -> str:
    lines = [
        "# Begründungen auf Deutsch: eine Stichprobe",
        "",
        f"{len(rows)} Begründungen, wie ein Vertriebsmitarbeiter sie liest, mit dem englischen Text daneben. "
        f"Erzeugt von `scripts/reason_sample.py` aus einem Demo-Export ({n_leads} Leads, Seed {seed}), "
        "bewertet am Datenende: die ersten Zeilen von den SLA-Regeln (`models/default_sla.yaml`), "
        "die übrigen sind Merkmalssätze aus `features/catalog.py`, wie die Begründungen des Modells sie verwenden "
        "(auch mit fehlenden Werten, um zu zeigen, dass „nicht angegeben“ nie als „nein“ erscheint).",
        "",
        "Namen von Feldern und Werten stehen in `features/glossary.yaml`; ein Team ergänzt eigene im Abschnitt "
        "`glossary:` seiner params-Datei.",
        "",
        "| # | Lead | Quelle | Deutsch | English |",
        "|---|------|--------|---------|---------|",
    ]
    for i, row in enumerate(rows, 1):
        lines.append(f"| {i} | {row['lead']} | {row['source']} | {_cell(row['de'])} | {_cell(row['en'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/reasons_de.md"))
    parser.add_argument("--leads", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = sample(args.leads, args.seed)
    args.out.write_text(render(rows, args.leads, args.seed), encoding="utf-8")
    print(f"{args.out}: {len(rows)} reasons")


if __name__ == "__main__":
    main()
