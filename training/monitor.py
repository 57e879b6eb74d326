"""Are the served scores still right? Served scores joined with the outcomes of a newer export.

Every score the API served is in the ledger under a keyed pseudonym of its lead; a batch scores
file (``leadscore score --out``) may be added. A newer CRM export tells what happened since. For
each score:

- its lead is found by computing ``pseudonym(lead_id, key)`` for every lead of the export (the raw
  id is never in the ledger). A score whose lead is not in the export is ``unknown_lead``: counted
  and reported, never dropped silently. A wrong key makes every score unknown; the summary says so.
- its outcome is the label the training snapshots would give that (lead, as_of):
  :func:`features.snapshots.training_snapshots` is asked about a one-snapshot copy of the lead
  created at the score's as_of, with the export's end, so the rule (first opportunity within
  the label horizon of the model that served the score — its ``info["horizon_days"]`` — later won; censored while the horizon or the deal is still open) is
  the one the model was trained on, not a copy of it. ``positive`` and ``negative`` are labelled;
  ``censored`` is counted and left out of every metric; ``after_hand_over`` (scored when the lead's
  first opportunity already existed, which training never does) likewise.

Per source (``api``: the ledger, ``batch``: a scores file), scorer (``model`` or ``rules``, never
mixed), model version and month of as_of — and over all versions (``model_version`` "all") and
all months (``month`` "all") — :func:`monitor_table` gives the counts, ROC AUC (None when one class
is absent), mean predicted probability vs observed win rate, and ECE (equal-count bins,
:func:`models.calibration.expected_calibration_error`); :func:`grade_table` the win rate per grade.
:func:`write_monitor` writes the CSVs, ``reliability.png``, ``win_rate_by_grade.png``,
``monitor.json`` and ``monitor.html`` (one self-contained page: inline CSS, plots as data URIs).

Sales' feedback (the export's optional ``lead_status``, given as ``write_monitor(lead_status=...)``)
is an outcome, never an input: for each score of a lead found in the export, sales' *first*
verdict (``accepted``, ``rejected``, ``disqualified`` or ``recycled``) at or after the score's
as_of — the same "first verdict" rule as the SLA report, counted from the score rather than from
the rules' hand-over. :func:`feedback_table` gives per source, scorer, month and grade the share
of scores whose lead sales then rejected or disqualified (``rejected_share``, of all scores of
known leads) and the rejection rate among those with a verdict. Counted per score, like every
other table here: a lead scored twice counts twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadscore.config.params import FeatureParams
from leadscore.features.contract import LEAD_STATUSES, Export, first_verdicts, parse_timestamps, verdict_counts
from leadscore.features.snapshots import first_opportunities, resolve_horizon, training_snapshots
from leadscore.models.calibration import expected_calibration_error, reliability_table
from leadscore.models.decision import grades_seen
from leadscore.training import report_html
from leadscore.training.plots import GRADES, win_rate_by_grade_table

API, BATCH = "api", "batch"
ALL = "all"
POSITIVE, NEGATIVE, CENSORED, AFTER_HAND_OVER, UNKNOWN_LEAD = (
    "positive", "negative", "censored", "after_hand_over", "unknown_lead")
OUTCOMES = (POSITIVE, NEGATIVE, CENSORED, AFTER_HAND_OVER, UNKNOWN_LEAD)
GROUP = ("source", "scorer", "model_version", "month")
COLUMNS = (*GROUP, "scores", "unknown_lead", "after_hand_over", "censored", "labelled", "positives",
           "mean_predicted", "observed_rate", "roc_auc", "ece")
GRADE_COLUMNS = (*GROUP, "grade", "labelled", "wins", "win_rate", "mean_predicted")
SCORE_COLUMNS = ("source", "scorer", "model_version", "as_of", "probability", "grade")
BATCH_REQUIRED = ("lead_id", "as_of", "probability", "grade", "scorer", "model_version")
MAX_CURVES = 6  # reliability lines in one plot; the JSON has every group's bins
FEEDBACK_GROUP = ("source", "scorer", "month", "grade")
FEEDBACK_COLUMNS = (*FEEDBACK_GROUP, "scores", "with_feedback", *LEAD_STATUSES, "rejected_share", "rejection_rate")


# ---------------------------------------------------------------------------------------------
# Reading the scores
# ---------------------------------------------------------------------------------------------


def read_ledger(url: str) -> pd.DataFrame:
    """Every served score in the ledger at ``url``: lead_key, source "api", scorer, model_version,
    as_of (naive UTC), probability, grade. A SQLite file that does not exist holds no scores (it is
    not created). Raises LedgerError when the database cannot be read."""
    from leadscore.serving.ledger import Ledger

    ledger = Ledger(url, timeout_s=5.0)
    try:
        rows = ledger.scores()
    finally:
        ledger.close()
    table = _frame(rows, ("lead_key", "scorer", "model_version", "as_of", "probability", "grade"))
    table.insert(1, "source", API)
    table["as_of"] = parse_timestamps(pd.Series(table["as_of"], dtype="object"))
    table.attrs["ledger"] = ledger.describe()
    return table


def read_scores_file(path: Path | str) -> pd.DataFrame:
    """A ``leadscore score --out`` CSV as lead_id, source "batch", scorer, model_version, as_of,
    probability, grade. Rows with an unreadable as_of or probability are dropped and counted in
    ``table.attrs["dropped"]``. Raises ValueError naming the file and the missing columns."""
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in BATCH_REQUIRED if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: expected the columns of `leadscore score --out` ({', '.join(BATCH_REQUIRED)}); "
                         f"missing {', '.join(missing)}")
    table = pd.DataFrame({
        "lead_id": raw["lead_id"],
        "source": BATCH,
        "scorer": raw["scorer"],
        "model_version": raw["model_version"],
        "as_of": parse_timestamps(raw["as_of"]),
        "probability": pd.to_numeric(raw["probability"], errors="coerce"),
        "grade": raw["grade"],
    })
    bad = table["as_of"].isna() | ~table["probability"].between(0, 1) | table["lead_id"].isna()
    table = table.loc[~bad].reset_index(drop=True)
    table.attrs["dropped"] = int(bad.sum())
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header is line 1
        table.attrs["first_dropped_line"] = first
    return table


def _frame(rows: list[dict], columns) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------


@dataclass
class _Probe(Export):
    """An export whose end is fixed, whatever its tables hold (see :func:`outcomes_at`)."""

    end: pd.Timestamp | None = None

    @property
    def data_end(self) -> pd.Timestamp:
        return self.end


def outcomes_at(export: Export, pairs: pd.DataFrame, cfg: FeatureParams, horizon_days: int | None = None) -> pd.Series:
    """The outcome of each (lead_id, as_of) row of ``pairs`` (leads of ``export``): positive,
    negative, censored or after_hand_over, indexed like ``pairs``; labelled with ``horizon_days``
    (else ``cfg.horizon_days``, ``auto`` resolved from the export).

    The label is what :func:`training_snapshots` gives: each distinct pair becomes a lead of its own,
    created at the as_of, with the real lead's opportunities, asked for exactly one snapshot (at
    creation) against the real export's end. A pair it leaves out was censored, unless the lead's
    first opportunity was created before the as_of (training never snapshots a lead after that).
    """
    if pairs.empty:
        return pd.Series([], index=pairs.index, dtype="object")
    distinct = pairs[["lead_id", "as_of"]].drop_duplicates().reset_index(drop=True)
    distinct["probe"] = "p" + distinct.index.astype(str)
    leads = distinct.rename(columns={"probe": "lead_id", "lead_id": "real", "as_of": "created_at"})
    opps = export.opportunities.merge(distinct[["lead_id", "probe"]], on="lead_id")
    opps = opps.drop(columns="lead_id").rename(columns={"probe": "lead_id"})
    probe = _Probe(leads=leads[["lead_id", "created_at"]], activities=export.activities.iloc[:0],
                   opportunities=opps, end=export.data_end)
    # max age < snapshot spacing: one snapshot per probe lead, at its creation (= the score's as_of).
    one = cfg.model_copy(update={"snapshot_every_days": 2, "max_snapshot_age_days": 1})
    days = horizon_days if horizon_days is not None else (
        cfg.horizon_days if cfg.horizon_days != "auto" else resolve_horizon(export, cfg).days)
    snaps, _ = training_snapshots(probe, one, horizon_days=int(days))
    label = distinct["probe"].map(snaps.set_index("lead_id")["label"])
    first = first_opportunities(export.opportunities).set_index("lead_id")["created_at"]
    handed_over = distinct["lead_id"].map(first) < distinct["as_of"]
    outcome = np.where(label == 1, POSITIVE, np.where(label == 0, NEGATIVE,
                                                      np.where(handed_over, AFTER_HAND_OVER, CENSORED)))
    distinct["outcome"] = outcome
    merged = pairs[["lead_id", "as_of"]].merge(distinct[["lead_id", "as_of", "outcome"]], on=["lead_id", "as_of"],
                                               how="left")
    return pd.Series(merged["outcome"].to_numpy(), index=pairs.index, dtype="object")


def label_scores(scores: pd.DataFrame, export: Export, cfg: FeatureParams, key: bytes | None = None,
                 horizons: dict[str, int] | None = None) -> pd.DataFrame:
    """``scores`` (from :func:`read_ledger` and/or :func:`read_scores_file`) with lead_id, month
    (YYYY-MM of as_of), outcome (see the module docstring), label (1/0, NaN unless labelled) and
    horizon_days: the serving model's horizon (``horizons``: model version → days, from each
    model's ``info["horizon_days"]``), else ``cfg.horizon_days`` (``auto``: resolved from the export).

    Ledger rows (lead_key) are matched by ``pseudonym(lead_id, key)`` of every lead of the export;
    batch rows carry their lead_id. Raises ValueError when ledger rows are given without a key.
    """
    table = scores.copy().reset_index(drop=True)
    table["as_of"] = pd.to_datetime(table["as_of"])
    if "lead_id" not in table.columns:
        table["lead_id"] = None
    if "lead_key" in table.columns and table["lead_key"].notna().any():
        if not key:
            raise ValueError("LEADSCORE_PSEUDONYM_KEY is not set: the ledger stores leads under a keyed pseudonym, "
                             "so it is needed to find them in the export (use the key the service ran with)")
        from leadscore.serving.ledger import pseudonym

        by_key = {pseudonym(str(lead_id), key): lead_id for lead_id in export.leads["lead_id"]}
        from_ledger = table["lead_key"].notna()
        table.loc[from_ledger, "lead_id"] = table.loc[from_ledger, "lead_key"].map(by_key)
    known = table["lead_id"].isin(set(export.leads["lead_id"]))
    table["model_version"] = table["model_version"].fillna("(none)").astype(str)
    fallback = cfg.horizon_days if cfg.horizon_days != "auto" else resolve_horizon(export, cfg).days
    table["horizon_days"] = table["model_version"].map(horizons or {}).fillna(fallback).astype("int64")
    table["outcome"] = UNKNOWN_LEAD
    for days, rows in table.loc[known].groupby("horizon_days"):
        table.loc[rows.index, "outcome"] = outcomes_at(export, rows[["lead_id", "as_of"]], cfg, int(days))
    table["label"] = table["outcome"].map({POSITIVE: 1.0, NEGATIVE: 0.0})
    table["month"] = table["as_of"].dt.strftime("%Y-%m")
    table["grade"] = table["grade"].astype(str)
    return table


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _groups(labelled: pd.DataFrame):
    """(source, scorer, model_version, month) and the rows of every group, including the "all"
    version and "all" month roll-ups of each source and scorer (never across scorers)."""
    for (source, scorer), part in labelled.groupby(["source", "scorer"], sort=True):
        for version in [*sorted(part["model_version"].unique()), ALL]:
            rows_v = part if version == ALL else part.loc[part["model_version"] == version]
            for month in [*sorted(rows_v["month"].unique()), ALL]:
                rows = rows_v if month == ALL else rows_v.loc[rows_v["month"] == month]
                yield (source, scorer, version, month), rows


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def group_metrics(rows: pd.DataFrame) -> dict:
    """Counts and metrics of one group of labelled scores (metrics on the labelled rows only)."""
    counts = rows["outcome"].value_counts()
    done = rows.loc[rows["label"].notna()]
    y, p = done["label"].to_numpy(dtype="int64"), done["probability"].to_numpy(dtype="float64")
    return {
        "scores": int(len(rows)),
        "unknown_lead": int(counts.get(UNKNOWN_LEAD, 0)),
        "after_hand_over": int(counts.get(AFTER_HAND_OVER, 0)),
        "censored": int(counts.get(CENSORED, 0)),
        "labelled": int(len(done)),
        "positives": int(y.sum()),
        "mean_predicted": float(p.mean()) if len(p) else None,
        "observed_rate": float(y.mean()) if len(y) else None,
        "roc_auc": _auc(y, p),
        "ece": expected_calibration_error(y, p) if len(p) else None,
    }


def monitor_table(labelled: pd.DataFrame) -> pd.DataFrame:
    """One row per group (see :func:`_groups`) with :func:`group_metrics`; columns :data:`COLUMNS`."""
    rows = [{**dict(zip(GROUP, key)), **group_metrics(part)} for key, part in _groups(labelled)]
    return _frame(rows, COLUMNS)


def grade_table(labelled: pd.DataFrame) -> pd.DataFrame:
    """Per group and grade (A–D, then any other grade seen): labelled scores, wins, win rate and
    mean predicted probability (NaN for a grade without labelled scores)."""
    out = []
    for key, part in _groups(labelled):
        done = part.loc[part["label"].notna()]
        y = done["label"].to_numpy(dtype="int64")
        table = win_rate_by_grade_table(y, {"g": done["grade"].to_numpy()})
        means = done.groupby("grade")["probability"].mean()
        for row in table.itertuples(index=False):
            out.append({**dict(zip(GROUP, key)), "grade": row.grade, "labelled": row.rows, "wins": row.wins,
                        "win_rate": row.win_rate, "mean_predicted": means.get(row.grade, np.nan)})
    return _frame(out, GRADE_COLUMNS)


def reliability_bins(labelled: pd.DataFrame) -> dict[str, list[dict]]:
    """Equal-count reliability bins (rows, mean predicted, observed rate) over all months of every
    (source, scorer, model version) with labelled scores, by :func:`group_name`."""
    out = {}
    for (source, scorer, version, month), part in _groups(labelled):
        done = part.loc[part["label"].notna()]
        if month == ALL and version != ALL and len(done):
            out[group_name(source, scorer, version)] = reliability_table(done["label"].to_numpy(),
                                                                         done["probability"].to_numpy())
    return out


def group_name(source: str, scorer: str, version: str) -> str:
    """How a group is named in plots and the JSON: "served model v3", "batch rules rules:1"."""
    who = "served" if source == API else "batch"
    shown = version if version.startswith(scorer) else f"v{version}" if scorer == "model" else version
    return f"{who} {scorer} {shown}"


def score_verdicts(labelled: pd.DataFrame, lead_status: pd.DataFrame) -> pd.Series:
    """Sales' first verdict (one of ``LEAD_STATUSES``) on each score's lead at or after its as_of,
    indexed like ``labelled``; NaN without one (and for a lead not in the export). Ties in time:
    the order of ``lead_status``."""
    out = pd.Series(np.nan, index=labelled.index, dtype="object")
    moments = pd.DataFrame({"row": labelled.index, "lead_id": labelled["lead_id"].to_numpy(),
                            "at": labelled["as_of"].to_numpy()}).dropna(subset=["lead_id"])
    first = first_verdicts(moments, lead_status)
    out.loc[first["row"].to_numpy()] = first["status"].to_numpy()
    return out


def _feedback_row(verdict: pd.Series) -> dict:
    counts = verdict_counts(verdict)
    row = {"scores": counts.pop("n"), **counts}
    row["rejected_share"] = row["turned_down"] / row["scores"] if row["scores"] else np.nan
    return row


def feedback_table(labelled: pd.DataFrame, lead_status: pd.DataFrame) -> pd.DataFrame:
    """Per source, scorer, month of as_of ("all" too) and grade served (A–D, others, "all"): scores
    of leads found in the export, those with a verdict after the score, each verdict,
    ``rejected_share`` = (rejected + disqualified) / scores and ``rejection_rate`` = the same / with
    a verdict. Columns :data:`FEEDBACK_COLUMNS`; scores of unknown leads are left out (the main
    table counts them)."""
    known = labelled.loc[labelled["outcome"] != UNKNOWN_LEAD]
    verdict = score_verdicts(known, lead_status)
    rows = []
    for (source, scorer), part in known.groupby(["source", "scorer"], sort=True):
        grades = grades_seen(part["grade"])
        for month in [*sorted(part["month"].unique()), ALL]:
            rows_m = part if month == ALL else part.loc[part["month"] == month]
            for grade in [*grades, ALL]:
                rows_g = rows_m if grade == ALL else rows_m.loc[rows_m["grade"] == grade]
                if len(rows_g):
                    rows.append({"source": source, "scorer": scorer, "month": month, "grade": grade,
                                 **_feedback_row(verdict.loc[rows_g.index])})
    return _frame(rows, FEEDBACK_COLUMNS)


def feedback_summary(feedback: pd.DataFrame | None) -> dict:
    """The ``feedback`` entry of the summary: ``{"recorded": False}`` without a lead-status table,
    else every all-months row (per source, scorer and grade, "all" included) and one sentence."""
    if feedback is None:
        return {"recorded": False}
    overall = feedback.loc[feedback["month"] == ALL]
    sentences = []
    for (source, scorer), part in overall.groupby(["source", "scorer"], sort=True):
        total = part.loc[part["grade"] == ALL].iloc[0]
        by_grade = [f"{g.grade} {report_html.percent(g.rejected_share)}" for g in part.itertuples() if g.grade != ALL]
        who = "served" if source == API else "batch"
        sentences.append(
            f"Sales rejected or disqualified the lead after {report_html.percent(total.rejected_share)} of the "
            f"{int(total.scores):,} {who} {scorer} scores (a verdict followed {int(total.with_feedback):,} of them); "
            "by grade served " + ", ".join(by_grade) + ".")
    if not sentences:
        sentences.append("Sales' lead-status history is in the export, but no score is of a lead in it.")
    return {"recorded": True, "all_months": _records(overall), "sentences": sentences}


# ---------------------------------------------------------------------------------------------
# Summary in words
# ---------------------------------------------------------------------------------------------


def horizon_text(labelled: pd.DataFrame) -> str:
    """The label horizon(s) of labelled scores in days: "126", or "126 (version 4), 90 (version 2)"."""
    if "horizon_days" not in labelled.columns or labelled.empty:
        return "?"
    by_version = labelled.groupby("model_version")["horizon_days"].first()
    if by_version.nunique() == 1:
        return str(int(by_version.iloc[0]))
    return ", ".join(f"{int(d)} (version {v})" for v, d in by_version.items())


def summarize(labelled: pd.DataFrame, table: pd.DataFrame, grades: pd.DataFrame, *, data_end: pd.Timestamp,
              horizon_days: int | str) -> dict:
    """Counts per outcome and source, the plain-language sentences of the report (one on the counts,
    then one per source, scorer and month), and the headline: the counts and each latest month."""
    counts = {source: {o: int((part["outcome"] == o).sum()) for o in OUTCOMES} | {"scores": int(len(part))}
              for source, part in labelled.groupby("source")}
    sentences = []
    served = labelled.loc[labelled["source"] == API]
    if len(served):
        by_scorer = served["scorer"].value_counts()
        c = counts[API]
        sentences.append(
            f"The ledger holds {len(served):,} served scores ("
            + ", ".join(f"{n:,} from the {s}" for s, n in by_scorer.items())
            + f") with as_of from {served['as_of'].min():%Y-%m-%d} to {served['as_of'].max():%Y-%m-%d}. "
            f"Labelled: {c[POSITIVE] + c[NEGATIVE]:,}; censored: {c[CENSORED]:,} (the {horizon_days}-day horizon or "
            f"the deal still open at the export's end, {data_end:%Y-%m-%d}); lead not in this export: "
            f"{c[UNKNOWN_LEAD]:,}; scored after the lead's first opportunity: {c[AFTER_HAND_OVER]:,}.")
        if c[UNKNOWN_LEAD] == len(served):
            sentences.append("None of the served scores matched a lead of this export: is LEADSCORE_PSEUDONYM_KEY "
                             "the key the service ran with, and is this export from the same CRM?")
    elif not len(labelled):
        sentences.append("There are no scores to check: the ledger is empty and no scores file was given.")
    headline = sentences[:1]
    for (source, scorer), _ in labelled.groupby(["source", "scorer"], sort=True):
        rows = table.loc[(table["source"] == source) & (table["scorer"] == scorer) & (table["model_version"] == ALL)
                         & (table["month"] != ALL) & (table["labelled"] > 0)]
        who = "served" if source == API else "batch"
        for row in rows.itertuples(index=False):
            g = grades.loc[(grades["source"] == source) & (grades["scorer"] == scorer) & (grades["model_version"] == ALL)
                           & (grades["month"] == row.month) & (grades["labelled"] > 0)].set_index("grade")
            present = [gr for gr in GRADES if gr in g.index]
            graded = [f"grade {gr} leads won {report_html.percent(g.at[gr, 'win_rate'])} of the time" if i == 0
                      else f"{gr} {report_html.percent(g.at[gr, 'win_rate'])}" for i, gr in enumerate(present)]
            auc = f"AUC {row.roc_auc:.2f}" if row.roc_auc is not None and pd.notna(row.roc_auc) else "AUC not defined (one outcome only)"
            sentences.append(
                f"In {row.month}, {row.labelled:,} {who} {scorer} scores were labelled ({row.positives:,} won); {auc}; "
                + (", ".join(graded) + "; " if graded else "")
                + f"the {scorer} predicted a win rate of {report_html.percent(row.mean_predicted)}, {report_html.percent(row.observed_rate)} "
                f"won (ECE {row.ece:.3f}).")
        if len(rows):
            headline.append(sentences[-1])  # the latest month of each source and scorer
    return {"counts": counts, "sentences": sentences, "headline": headline}


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def write_monitor(labelled: pd.DataFrame, out_dir: Path | str, *, data_end: pd.Timestamp, horizon_days: int | str,
                  meta: dict | None = None, lead_status: pd.DataFrame | None = None) -> dict:
    """Write monitor.csv, monitor_grades.csv, reliability.png, win_rate_by_grade.png, monitor.json
    and monitor.html into ``out_dir``, and with ``lead_status`` (the export's sales feedback, None
    when it has none) monitor_feedback.csv (:func:`feedback_table`); returns the summary (what
    monitor.json holds), whose ``feedback`` is ``{"recorded": False}`` without ``lead_status``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, grades = monitor_table(labelled), grade_table(labelled)
    feedback = feedback_table(labelled, lead_status) if lead_status is not None else None
    names = ["monitor.csv", "monitor_grades.csv", "reliability.png", "win_rate_by_grade.png", "monitor.html"]
    if feedback is not None:
        feedback.to_csv(out / "monitor_feedback.csv", index=False)
        names.insert(2, "monitor_feedback.csv")
    bins = reliability_bins(labelled)
    table.to_csv(out / "monitor.csv", index=False)
    grades.to_csv(out / "monitor_grades.csv", index=False)
    _reliability_png(table, bins, out / "reliability.png")
    _grades_png(grades, out / "win_rate_by_grade.png")
    summary = {**(meta or {}), "data_end": str(data_end), "horizon_days": horizon_days,
               **summarize(labelled, table, grades, data_end=data_end, horizon_days=horizon_days),
               "months": _records(table.loc[table["model_version"] == ALL]),
               "reliability": bins,
               "feedback": feedback_summary(feedback),
               "files": {name: str(out / name) for name in names}}
    (out / "monitor.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "monitor.html").write_text(render_html(summary, table, grades, out, feedback), encoding="utf-8")
    return summary


def _records(table: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def _reliability_png(table: pd.DataFrame, bins: dict[str, list[dict]], path: Path) -> Path:
    from leadscore.training.plots import _colours, _figure, _save

    overall = table.loc[(table["month"] == ALL) & (table["model_version"] != ALL) & (table["labelled"] > 0)]
    overall = overall.sort_values("labelled", ascending=False, kind="stable").head(MAX_CURVES)
    names = [group_name(r.source, r.scorer, r.model_version) for r in overall.itertuples()]
    colours = _colours(names)
    fig, axes = _figure(figsize=(6.0, 5.0))
    ax = axes[0, 0]
    top = max([max(b["mean_predicted"], b["observed_rate"]) for n in names for b in bins[n]] or [1.0]) * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for i, (name, row) in enumerate(zip(names, overall.itertuples())):
        part = bins[name]
        ax.plot([b["mean_predicted"] for b in part], [b["observed_rate"] for b in part], marker="os^DvP"[i % 6],
                color=colours[name], label=f"{name} (n {row.labelled:,}, ECE {row.ece:.3f})")
    if not names:
        ax.text(0.5, 0.5, "no labelled scores yet", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted probability (equal-count bins)",
           ylabel="observed win rate")
    ax.set_title("Reliability of the scores served", fontsize=11)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _grades_png(grades: pd.DataFrame, path: Path) -> Path:
    from leadscore.training.plots import _colours, _figure, _percent, _save

    shown = grades.loc[(grades["month"] == ALL) & (grades["model_version"] == ALL)]
    groups = [(s, sc) for (s, sc), part in shown.groupby(["source", "scorer"], sort=True) if part["labelled"].sum() > 0]
    names = [f"{'served' if s == API else 'batch'} {sc}" for s, sc in groups]
    colours = _colours(names)
    order = list(dict.fromkeys(shown["grade"])) or list(GRADES)
    fig, axes = _figure(figsize=(6.5, 4.5))
    ax = axes[0, 0]
    x = np.arange(len(order))
    width = 0.8 / max(1, len(groups))
    for i, ((source, scorer), name) in enumerate(zip(groups, names)):
        part = shown.loc[(shown["source"] == source) & (shown["scorer"] == scorer)].set_index("grade").reindex(order)
        rates = part["win_rate"].fillna(0.0).to_numpy()
        bars = ax.bar(x - 0.4 + width * (i + 0.5), rates, width, color=colours[name], label=name)
        ax.bar_label(bars, labels=[f"{r:.1%}\nn {int(n):,}" if n else "" for r, n in
                                   zip(rates, part["labelled"].fillna(0))], fontsize=7, padding=2)
    if not groups:
        ax.text(0.5, 0.5, "no labelled scores yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(x, order)
    ax.set(xlabel="grade served", ylabel="win rate (labelled scores)")
    ax.set_ylim(0, float(np.nan_to_num(shown["win_rate"].max(skipna=True))) * 1.3 or 1.0)
    ax.yaxis.set_major_formatter(_percent())
    ax.set_title("Win rate by grade, all months", fontsize=11)
    if groups:
        ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

def _for_reading(frame: pd.DataFrame) -> pd.DataFrame:
    """The page's view of a table: "served" for the API, and no "all versions" rows where a scorer
    had one version only (they would repeat it; the CSVs keep them)."""
    single = frame.loc[frame["model_version"] != ALL].groupby(["source", "scorer"])["model_version"].nunique()
    one = {key for key, n in single.items() if n == 1}
    redundant = [(s, sc) in one and v == ALL for s, sc, v in zip(frame["source"], frame["scorer"], frame["model_version"])]
    shown = frame.loc[~np.asarray(redundant, dtype=bool)].copy()
    shown["source"] = shown["source"].replace({API: "served"})
    return shown


def _all_row(row: dict) -> str:
    return "all" if row.get("month") == ALL else ""


def _feedback_html(feedback: pd.DataFrame, sentences: list[str]) -> str:
    shown = feedback.copy()
    shown["source"] = shown["source"].replace({API: "served"})
    columns = [("source", "source", ""), ("scorer", "scorer", ""), ("month", "month", ""), ("grade", "grade", ""),
               ("scores", "scores", ""), ("with_feedback", "verdict after", ""),
               *[(v, v, "") for v in LEAD_STATUSES], ("rejected_share", "rejected or disqualified", "pct"),
               ("rejection_rate", "of those with a verdict", "pct")]
    notes = "".join(f'<p class="note">{report_html.cell(s)}</p>' for s in sentences)
    return ("<h2>Sales' feedback after the score</h2>" + notes
            + report_html.table(shown, columns, "feedback-table", lambda row: "all" if row["grade"] == ALL else "")
            + '<p class="note">Sales\' first verdict on the lead at or after the score\'s as_of, from the export\'s '
            "lead-status history (an outcome, never a feature). Rejected or disqualified: share of the scores of "
            "leads in the export; the last column: of the scores a verdict followed. Recycled is not a rejection.</p>")


def render_html(summary: dict, table: pd.DataFrame, grades: pd.DataFrame, out_dir: Path,
                feedback: pd.DataFrame | None = None) -> str:
    """One self-contained page: inline CSS, the PNGs as data URIs, no script, nothing fetched."""
    table, grades = _for_reading(table), _for_reading(grades)
    group = [("source", "source", ""), ("scorer", "scorer", ""), ("model_version", "version", ""), ("month", "month", "")]
    main = report_html.table(table, [*group, ("scores", "scores", ""), ("labelled", "labelled", ""),
                               ("positives", "won", ""), ("censored", "censored", ""),
                               ("unknown_lead", "lead not in export", ""), ("after_hand_over", "after hand-over", ""),
                               ("roc_auc", "ROC AUC", "f3"), ("mean_predicted", "predicted", "pct"),
                               ("observed_rate", "observed", "pct"), ("ece", "ECE", "f3")], "monitor-table", _all_row)
    grade_order = list(dict.fromkeys(grades["grade"]))
    rows = []
    for key, part in grades.groupby(list(GROUP), sort=False):
        rec = dict(zip(GROUP, key))
        for g in part.itertuples(index=False):
            rec[g.grade] = f"{report_html.percent(g.win_rate)} of {int(g.labelled):,}" if g.labelled else "–"
        rows.append(rec)
    grade_html = report_html.table(pd.DataFrame(rows, columns=[*GROUP, *grade_order]),
                                   [*group, *[(g, f"grade {g}: won", "") for g in grade_order]], "grade-table", _all_row)
    labels = {"export": "export", "data_end": "export ends", "horizon_days": "horizon (days)", "ledger": "ledger",
              "scores_file": "batch scores"}
    body = f"""<h2>Per month and model version</h2>
{main}
<p class="note">Labelled = positive or negative by the training label: the lead's first opportunity created within
{summary['horizon_days']} days of the score's as_of and won. Censored scores (horizon or deal still open at the
export's end), scores of leads not in the export and scores given after the lead's first opportunity are counted
but not measured. ROC AUC is empty when a group has only one outcome. "all" rows sum the months or versions of one
source and scorer; the model and the rules are never mixed.</p>
<h2>Win rate by grade</h2>
{grade_html}
{_feedback_html(feedback, summary["feedback"]["sentences"]) if feedback is not None else ""}
<h2>Plots</h2>
<div class="plots">
{report_html.image(out_dir / 'reliability.png', 'Reliability of the scores served')}
{report_html.image(out_dir / 'win_rate_by_grade.png', 'Win rate by grade')}
</div>"""
    return report_html.page("Are the served scores still right?",
                            {label: summary.get(k) for k, label in labels.items()}, summary["sentences"], body)
