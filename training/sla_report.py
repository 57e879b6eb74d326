"""The SLA report: is marketing delivering the qualified leads it committed to, and is sales
following them up as fast as it committed to? Derived from a CRM export.

The funnel moments are *derived* from the export (an export's optional ``lead_status`` history is
sales' verdict after the hand-over and is read for that verdict only, never for a moment):

- The SLA rules (the packaged default or ``LEADSCORE_RULES_PATH``, via ``rule_scorer``) are
  evaluated for each lead at its creation and one second after each of its marketing activities
  (``as_of = occurred_at + 1 s``, so the activity counts), only for activities strictly before
  the lead's first opportunity (after that it is sales' data). Every moment lies within the
  export, which ends at its latest timestamp. All evaluations go through one
  ``compute_features`` call.
- **MQL moment**: the first evaluation with total points ≥ ``thresholds.mql``.
- **SQL moment** (the hand-over): the first evaluation with points ≥ ``thresholds.sql`` and no
  exclusion rule firing.
- **SAL moment**: the first sales activity (``features.sales_activity_types``) at or after the
  SQL moment — sales accepted the lead by working it. No SQL moment, no SAL moment.
- **Opportunity**: the first opportunity's ``created_at``; **won**: its stage is ``won``, with
  its ``amount``.
- **Grade**: the rules' grade (A–D by total points, D when an exclusion fires) at the MQL
  moment; a lead that never became an MQL gets the grade of its last evaluation.
- **Week**: the ISO week (its Monday) of the lead's creation; delivered and follow-up weeks are
  those of the SQL moment.
- **Sales' feedback** (only when the export has ``lead_status``; without it "rejected by sales" is
  reported as "not recorded", never guessed): for each lead with an SQL moment (the hand-over), its
  *first* verdict — the first ``accepted``, ``rejected``, ``disqualified`` or ``recycled`` row at or
  after the SQL moment (ties in time: the file's order). The first, not the latest, because the
  SLA judges the lead marketing handed over, not what it became after sales sent it back and it
  was worked again. Status rows of leads the rules never handed over, rows before the hand-over,
  other statuses (e.g. ``working``) and later verdicts are not counted, but counted as such.
  Per grade (as above) and ISO week of the SQL moment: handed over, with feedback, each verdict,
  and the **rejection rate** = (rejected + disqualified) / with feedback — both say sales should
  not have got the lead; recycled (back to nurturing: not yet) is shown apart and not a rejection.
  Reasons of the rejections are counted per grade, free text grouped ignoring case and spacing.
  The funnel's ``rejected_by_sales`` is then that count (rejected + disqualified) per group.

Why evaluating only at those moments finds the first crossing: between two activities of a lead
nothing but time passes, and with the default rules time can only *lower* points — fit is
static, windowed and decayed counts only fall as actions age, and the only time-based rule
(no activity for 60+ days) subtracts. (It would give its 10 points back after 3,650 silent days,
ignored here.) So a threshold is first reached at the creation or just after an activity.
:func:`rules_rising_with_time` checks this for any rules file; a rule it names (for example
points for lead age) could cross a threshold between activities, which this report would then
see only at the lead's next activity — the report says so.

Funnel stages are counted independently: a lead can reach a later stage without an earlier one
(an opportunity created by sales for a lead that never reached MQL). A conversion is "reached
both / reached the previous stage".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadscore.features.build import compute_features
from leadscore.features.contract import LEAD_STATUSES, REJECTIONS, first_verdicts, verdict_counts
from leadscore.features.snapshots import first_opportunities
from leadscore.features.spec import NEVER_DAYS, sales_rows
from leadscore.models.decision import GRADES, at_or_above, grades_seen
from leadscore.models.rules import RuleScorer
from leadscore.training.plots import _figure, _save

STAGES = ("lead", "mql", "sql", "sal", "opportunity", "won")
ALL = "all"
STAGE_NAMES = {"lead": "Lead", "mql": "MQL", "sql": "SQL", "sal": "SAL", "opportunity": "Opportunity", "won": "Won"}
NOT_RECORDED = "not recorded"
SECOND = pd.Timedelta(seconds=1)
WEEKS_SHOWN = 12  # weeks per table on the page
DERIVED = ("Funnel moments are derived from the export, not read from it: the export has no lead-status history, "
           "so MQL and SQL are the first moments the SLA rules' points crossed their thresholds, and SAL is the "
           "first sales activity after the SQL moment.")
DERIVED_WITH_STATUS = ("Funnel moments are derived from the export, not read from it: MQL and SQL are the first moments "
                       "the SLA rules' points crossed their thresholds, and SAL is the first sales activity after the SQL "
                       "moment; the lead-status history is read for sales' verdict after the hand-over only.")
# Sales' verdicts on a handed-over lead; the two that say sales should not have got it are rejections.
VERDICTS = LEAD_STATUSES
FEEDBACK_COUNTS = ("handed_over", "with_feedback", *VERDICTS)
FEEDBACK_COLUMNS = ("grade", "week", *FEEDBACK_COUNTS, "feedback_share", "rejection_rate")
REASON_COLUMNS = ("grade", "status", "reason", "count")
NO_REASON = "(no reason given)"
TOP_REASONS = 5  # in the summary and the sentence; the CSV has them all

# How a feature moves while no activity happens: fit features and "ever" flags stay, counts of
# actions in a window (and their decayed forms) fall, ages rise; the trend can go either way.
_RISING = {"days_since_last_activity", "days_since_first_activity", "lead_age_days"}
_EITHER = {"activity_trend"}


def _direction(feature: str, scorer: RuleScorer) -> int:
    """+1 rises with time alone, -1 falls, 0 static, 2 either way."""
    if feature in _RISING:
        return 1
    if feature in _EITHER:
        return 2
    group = {f.name: f.group for f in scorer.spec.features}.get(feature)
    if group == "interest" and feature not in ("has_unsubscribed", "has_bounced"):
        return -1
    return 0


def rules_rising_with_time(scorer: RuleScorer) -> list[str]:
    """Labels of the rules whose points could rise while a lead does nothing (empty for the default
    rules). With such a rule a threshold may be crossed between two activities, and this report
    only sees it at the next activity."""
    out = []
    for rule in scorer.config.rules:
        d = _direction(rule.counted, scorer)
        if d == 0:
            continue
        if rule.per_unit is not None:
            rises = d == 2 or (d == 1 and rule.per_unit > 0) or (d == -1 and rule.per_unit < 0)
        elif rule.in_ is not None or rule.equals is not None or d == 2:
            rises = rule.points != 0
        else:  # a range [min, max) on a feature moving one way: entered at one end, left at the other
            entered_at, left_at = (rule.min, rule.max) if d == 1 else (rule.max, rule.min)
            # Leaving at 3,650 days of silence (the "never active" value) is ten years away.
            left_at = None if d == 1 and left_at is not None and left_at >= NEVER_DAYS else left_at
            rises = (rule.points > 0 and entered_at is not None) or (rule.points < 0 and left_at is not None)
        if rises:
            out.append(rule.label.en)
    return out


# ---------------------------------------------------------------------------------------------
# Moments per lead
# ---------------------------------------------------------------------------------------------


def evaluation_moments(export, sales_activity_types) -> pd.DataFrame:
    """``lead_id, as_of``: each lead's creation and one second after each of its marketing
    activities before its first opportunity (duplicates dropped), sorted by lead and time."""
    sales = {str(t).lower() for t in sales_activity_types}
    leads = export.leads[["lead_id", "created_at"]]
    opp = first_opportunities(export.opportunities)[["lead_id", "created_at"]].rename(columns={"created_at": "opp_at"})
    acts = export.activities.loc[~sales_rows(export.activities["activity_type"], sales), ["lead_id", "occurred_at"]]
    acts = acts.merge(opp, on="lead_id", how="left")
    acts = acts.loc[acts["opp_at"].isna() | (acts["occurred_at"] < acts["opp_at"])]
    moments = pd.concat([leads.rename(columns={"created_at": "as_of"}),
                         pd.DataFrame({"lead_id": acts["lead_id"].to_numpy(), "as_of": acts["occurred_at"] + SECOND})],
                        ignore_index=True)
    moments = moments.loc[moments["lead_id"].isin(leads["lead_id"])].drop_duplicates()
    return moments.sort_values(["lead_id", "as_of"], kind="stable").reset_index(drop=True)


def lead_moments(export, params, scorer: RuleScorer) -> pd.DataFrame:
    """One row per lead: ``lead_id, created_at, week, grade, points, mql_at, sql_at, sal_at,
    opportunity_at, won, amount`` (moments NaT when not reached; ``points`` at the MQL moment, else
    at the last evaluation)."""
    cfg = scorer.config
    evals = evaluation_moments(export, params.features.sales_activity_types)
    raw = compute_features(evals, export.leads, export.activities, scorer.spec)
    total, _, excluded = scorer.points(raw)
    evals["points"] = total
    evals["grade"] = scorer.grades(total, excluded)
    mql = evals.loc[at_or_above(total, cfg.thresholds.mql)].groupby("lead_id", sort=False).head(1)
    sql = evals.loc[scorer.sales_ready(total, excluded)].groupby("lead_id", sort=False).head(1)
    last = evals.groupby("lead_id", sort=False).tail(1)
    graded = pd.concat([mql, last]).drop_duplicates("lead_id")  # the MQL moment wins where there is one

    out = export.leads[["lead_id", "created_at"]].copy()
    out["week"] = out["created_at"].dt.to_period("W-SUN").dt.start_time
    out = out.merge(graded[["lead_id", "grade", "points"]], on="lead_id", how="left")
    out = out.merge(mql[["lead_id", "as_of"]].rename(columns={"as_of": "mql_at"}), on="lead_id", how="left")
    out = out.merge(sql[["lead_id", "as_of"]].rename(columns={"as_of": "sql_at"}), on="lead_id", how="left")
    sales = {str(t).lower() for t in params.features.sales_activity_types}
    calls = export.activities.loc[sales_rows(export.activities["activity_type"], sales), ["lead_id", "occurred_at"]]
    calls = calls.merge(out[["lead_id", "sql_at"]].dropna(), on="lead_id", how="inner")
    sal = calls.loc[calls["occurred_at"] >= calls["sql_at"]].groupby("lead_id")["occurred_at"].min().rename("sal_at")
    out = out.merge(sal, on="lead_id", how="left")
    opps = first_opportunities(export.opportunities)
    amount = opps["amount"] if "amount" in opps.columns else pd.Series(np.nan, index=opps.index)
    opp = pd.DataFrame({"lead_id": opps["lead_id"].to_numpy(), "opportunity_at": opps["created_at"].to_numpy(),
                        "won": (opps["stage"] == "won").to_numpy(),
                        "amount": pd.to_numeric(amount, errors="coerce").to_numpy(dtype="float64")})
    out = out.merge(opp, on="lead_id", how="left")
    out["won"] = out["won"].astype("boolean").fillna(False).astype(bool)
    return out


def _reached(moments: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"lead": True, "mql": moments["mql_at"].notna(), "sql": moments["sql_at"].notna(),
                         "sal": moments["sal_at"].notna(), "opportunity": moments["opportunity_at"].notna(),
                         "won": moments["won"]}, index=moments.index)


# ---------------------------------------------------------------------------------------------
# The four tables
# ---------------------------------------------------------------------------------------------


def funnel_table(moments: pd.DataFrame, rejected: pd.Series | None = None) -> pd.DataFrame:
    """Counts per stage and conversions (reached both / reached the previous), overall ("all"),
    per grade and per week of creation: ``by, group, lead … won, rejected_by_sales, conv_* ``.

    ``rejected`` (bool per row of ``moments``: sales' first verdict after the hand-over was a
    rejection) fills ``rejected_by_sales`` with counts; without it the column says "not recorded"."""
    reached = _reached(moments)
    rows = []
    for by, keys in (("all", pd.Series("all", index=moments.index)), ("grade", moments["grade"]),
                     ("week", moments["week"].dt.strftime("%Y-%m-%d"))):
        for group, part in reached.groupby(keys.to_numpy(), sort=True):
            row: dict[str, Any] = {"by": by, "group": group}
            row |= {s: int(part[s].sum()) for s in STAGES}
            row["rejected_by_sales"] = NOT_RECORDED if rejected is None else int(rejected.loc[part.index].sum())
            for prev, stage in zip(STAGES, STAGES[1:]):
                base = int(part[prev].sum())
                row[f"conv_{stage}"] = float((part[prev] & part[stage]).sum() / base) if base else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def weekly_table(moments: pd.DataFrame, committed: int, data_end: pd.Timestamp) -> pd.DataFrame:
    """Qualified leads delivered (SQL moments) per ISO week, from the first lead's week to the
    export's last: ``week, delivered, committed, difference, complete`` (the last week is
    incomplete unless the export runs to its end)."""
    first = moments["created_at"].min().to_period("W-SUN")
    weeks = pd.period_range(first, data_end.to_period("W-SUN"), freq="W-SUN")
    delivered = moments["sql_at"].dropna().dt.to_period("W-SUN").value_counts()
    out = pd.DataFrame({"week": weeks.start_time.strftime("%Y-%m-%d"),
                        "delivered": delivered.reindex(weeks, fill_value=0).to_numpy(dtype=int)})
    out["committed"] = int(committed)
    out["difference"] = out["delivered"] - out["committed"]
    out["complete"] = weeks.end_time <= data_end
    return out


def followup_table(moments: pd.DataFrame) -> pd.DataFrame:
    """Speed from SQL moment to SAL moment for SQL leads, overall ("all") and per week of the SQL
    moment: ``week, sql_leads, within_30min, within_1day`` (includes within 30 minutes)``, later,
    never, median_hours`` (of those contacted). "Never" means not by the end of the export."""
    sql = moments.loc[moments["sql_at"].notna()]
    hours = (sql["sal_at"] - sql["sql_at"]).dt.total_seconds() / 3600
    frame = pd.DataFrame({"week": sql["sql_at"].dt.to_period("W-SUN").dt.start_time.dt.strftime("%Y-%m-%d"),
                          "hours": hours})
    rows = []
    for week, part in [("all", frame), *frame.groupby("week", sort=True)]:
        h, n = part["hours"], len(part)
        rows.append({"week": week, "sql_leads": n,
                     "within_30min": float((h <= 0.5).sum() / n) if n else np.nan,
                     "within_1day": float((h <= 24).sum() / n) if n else np.nan,
                     "later": float((h > 24).sum() / n) if n else np.nan,
                     "never": float(h.isna().sum() / n) if n else np.nan,
                     "median_hours": float(h.median()) if h.notna().any() else np.nan})
    return pd.DataFrame(rows)


def value_table(moments: pd.DataFrame) -> pd.DataFrame:
    """What a lead at each stage is worth: ``stage, reached, won, win_rate, avg_won_amount,
    value_per_lead`` (win rate among those that reached it × average amount of their won deals;
    won deals without an amount are left out of the average)."""
    reached = _reached(moments)
    amount = moments["amount"].where(moments["won"])
    rows = []
    for stage in STAGES:
        at = reached[stage]
        n, won = int(at.sum()), int((at & moments["won"]).sum())
        avg = float(amount[at].mean()) if amount[at].notna().any() else np.nan
        rate = won / n if n else np.nan
        rows.append({"stage": STAGE_NAMES[stage], "reached": n, "won": won, "win_rate": rate,
                     "avg_won_amount": avg, "value_per_lead": rate * avg if n and won else (0.0 if n else np.nan)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Sales' feedback (the export's lead_status, when it has one)
# ---------------------------------------------------------------------------------------------


def sales_verdicts(moments: pd.DataFrame, lead_status: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sales' first verdict on each handed-over lead (see the module docstring): one row per lead
    with an SQL moment, ``lead_id, grade, sql_at, week`` (ISO week of the SQL moment), ``verdict,
    verdict_at, reason`` (NaN without feedback); and what was not counted: ``status_rows``,
    ``not_handed_over``, ``before_hand_over``, ``later_verdicts`` (rows) and ``other_statuses``
    (status → rows)."""
    handed = moments.loc[moments["sql_at"].notna(), ["lead_id", "grade", "sql_at"]].reset_index(drop=True)
    rows = lead_status.merge(handed[["lead_id", "sql_at"]], on="lead_id", how="left")
    not_handed = rows["sql_at"].isna()
    before = ~not_handed & (rows["changed_at"] < rows["sql_at"])
    after = rows.loc[~not_handed & ~before]
    is_verdict = after["status"].isin(VERDICTS)
    first = first_verdicts(handed.rename(columns={"sql_at": "at"}).assign(row=handed.index), lead_status)
    first = first.rename(columns={"status": "verdict", "changed_at": "verdict_at"}).set_index("row")
    out = handed.join(first[["verdict", "verdict_at", "reason"]])
    out["week"] = out["sql_at"].dt.to_period("W-SUN").dt.start_time.dt.strftime("%Y-%m-%d")
    not_counted = {
        "status_rows": int(len(rows)),
        "not_handed_over": int(not_handed.sum()),
        "before_hand_over": int(before.sum()),
        "later_verdicts": int(is_verdict.sum() - len(first)),
        "other_statuses": {str(k): int(v) for k, v in after.loc[~is_verdict, "status"].value_counts().items()},
    }
    return out, not_counted


def _feedback_counts(part: pd.DataFrame) -> dict[str, Any]:
    counts = verdict_counts(part["verdict"])
    row: dict[str, Any] = {"handed_over": counts.pop("n"), **counts}
    row["feedback_share"] = row["with_feedback"] / row["handed_over"] if row["handed_over"] else np.nan
    return row


def feedback_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per grade and ISO week of the hand-over, then "all" weeks per grade and "all" grades per
    week: :data:`FEEDBACK_COLUMNS` (``feedback_share`` = with feedback / handed over,
    ``rejection_rate`` = (rejected + disqualified) / with feedback, NaN without feedback)."""
    rows = []
    for grade in [*grades_seen(verdicts["grade"]), ALL]:
        part_g = verdicts if grade == ALL else verdicts.loc[verdicts["grade"] == grade]
        for week in [*sorted(part_g["week"].unique()), ALL]:
            part = part_g if week == ALL else part_g.loc[part_g["week"] == week]
            rows.append({"grade": grade, "week": week, **_feedback_counts(part)})
    return pd.DataFrame(rows, columns=list(FEEDBACK_COLUMNS))


def reasons_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Reasons of the rejections (first verdict rejected or disqualified) per grade and "all":
    :data:`REASON_COLUMNS`, most frequent first. Reasons are free text: grouped ignoring case and
    spacing, shown in their most frequent spelling; an empty reason is "(no reason given)"."""
    rejected = verdicts.loc[verdicts["verdict"].isin(REJECTIONS)].copy()
    text = rejected["reason"].map(lambda r: " ".join(str(r).split()) if isinstance(r, str) and r.strip() else NO_REASON)
    rejected["key"], rejected["text"] = text.str.casefold(), text
    spelling = rejected.groupby("key")["text"].agg(lambda t: t.value_counts().index[0])
    rows = []
    for grade in [*grades_seen(rejected["grade"]), ALL]:
        part = rejected if grade == ALL else rejected.loc[rejected["grade"] == grade]
        counts = part.groupby(["verdict", "key"]).size().reset_index(name="count")
        counts = counts.sort_values(["count", "verdict", "key"], ascending=[False, True, True], kind="stable")
        rows += [{"grade": grade, "status": r["verdict"], "reason": spelling[r["key"]], "count": int(r["count"])}
                 for r in counts.to_dict("records")]
    return pd.DataFrame(rows, columns=list(REASON_COLUMNS))


def _rate(x: float) -> float | None:
    return None if pd.isna(x) else float(x)


def feedback_summary(table: pd.DataFrame, reasons: pd.DataFrame, not_counted: dict[str, Any]) -> dict[str, Any]:
    """The ``feedback`` entry of the report's summary: the overall counts and rejection rate, the
    same per grade (all weeks), the top reasons over all grades and what was not counted."""
    by_week_all = table.loc[table["week"] == ALL].set_index("grade")
    overall = by_week_all.loc[ALL]
    counts = lambda row: {k: int(row[k]) for k in FEEDBACK_COUNTS}  # noqa: E731
    top = reasons.loc[reasons["grade"] == ALL].head(TOP_REASONS)
    return {
        "recorded": True,
        **counts(overall),
        "rejection_rate": _rate(overall["rejection_rate"]),
        "by_grade": {g: {**counts(r), "rejection_rate": _rate(r["rejection_rate"])}
                     for g, r in by_week_all.iterrows() if g != ALL},
        "top_reasons": [{"status": r["status"], "reason": r["reason"], "count": int(r["count"])}
                        for r in top.to_dict("records")],
        "not_counted": not_counted,
    }


# ---------------------------------------------------------------------------------------------
# Plots and files
# ---------------------------------------------------------------------------------------------


def _funnel_png(funnel: pd.DataFrame, path: Path) -> Path:
    colours = {"A": "#2f855a", "B": "#68d391", "C": "#f6ad55", "D": "#c53030"}
    fig, axes = _figure(figsize=(6.4, 4.0))
    ax = axes[0, 0]
    x, bottom = np.arange(len(STAGES)), np.zeros(len(STAGES))
    for grade in GRADES:
        row = funnel.loc[(funnel["by"] == "grade") & (funnel["group"] == grade)]
        counts = row[list(STAGES)].to_numpy(dtype=float)[0] if len(row) else np.zeros(len(STAGES))
        ax.bar(x, counts, bottom=bottom, color=colours[grade], label=f"grade {grade}")
        bottom += counts
    for xi, total in zip(x, bottom):
        ax.text(xi, total, f"{int(total):,}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [STAGE_NAMES[s] for s in STAGES])
    ax.set_ylabel("leads that reached the stage")
    ax.set_title("Funnel by grade (at the MQL moment)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _weekly_png(weekly: pd.DataFrame, path: Path) -> Path:
    fig, axes = _figure(figsize=(6.4, 4.0))
    ax = axes[0, 0]
    weeks = pd.to_datetime(weekly["week"])
    ax.plot(weeks, weekly["delivered"], marker=".", color="#2b6cb0", label="delivered (SQL moments)")
    ax.plot(weeks, weekly["committed"], linestyle="--", color="#c05621", label="committed")
    ax.set_ylabel("qualified leads per week")
    ax.set_title("Qualified leads delivered vs committed", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def write_sla_report(export, params, out_dir: Path | str, scorer: RuleScorer | None = None) -> dict[str, Any]:
    """Write ``sla_funnel.csv``, ``sla_weekly.csv``, ``sla_followup.csv``, ``sla_value.csv``,
    ``sla_funnel.png``, ``sla_weekly.png`` and ``sla.html`` into ``out_dir``, and when the export
    has a ``lead_status`` table ``sla_feedback.csv`` (grade × week of hand-over, see
    :func:`feedback_table`) and ``sla_feedback_reasons.csv`` (:func:`reasons_table`).

    ``scorer`` defaults to the SLA rules (``rule_scorer(params.features)``). Returns a summary:
    ``leads``, ``funnel`` (counts per stage), ``delivered`` / ``committed`` per complete week on
    average, ``weeks_below_commitment``, ``followup`` (the overall row), ``value_per_lead`` per
    stage, ``rules_rising_with_time``, ``data_end``, ``feedback`` (:func:`feedback_summary`, or
    ``{"recorded": False}`` without a lead_status table) and ``files``.
    """
    if scorer is None:
        from leadscore.models.policy import rule_scorer

        scorer = rule_scorer(params.features)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    moments = lead_moments(export, params, scorer)
    # An export read without the table has an empty lead_status, and "lead_status" not in dropped.
    recorded = "lead_status" in getattr(export, "dropped", {})
    feedback = reasons = None
    rejected = None
    if recorded:
        verdicts, not_counted = sales_verdicts(moments, export.lead_status)
        feedback, reasons = feedback_table(verdicts), reasons_table(verdicts)
        rejected = moments["lead_id"].map(verdicts.set_index("lead_id")["verdict"]).isin(REJECTIONS)
    funnel = funnel_table(moments, rejected)
    weekly = weekly_table(moments, params.thresholds.capacity_per_week, export.data_end)
    followup = followup_table(moments)
    value = value_table(moments)
    files = {}
    for name, frame in (("funnel", funnel), ("weekly", weekly), ("followup", followup), ("value", value)):
        files[name] = out / f"sla_{name}.csv"
        frame.to_csv(files[name], index=False)
    if recorded:
        files["feedback"] = out / "sla_feedback.csv"
        feedback.to_csv(files["feedback"], index=False)
        files["feedback_reasons"] = out / "sla_feedback_reasons.csv"
        reasons.to_csv(files["feedback_reasons"], index=False)
    files["funnel_png"] = _funnel_png(funnel, out / "sla_funnel.png")
    files["weekly_png"] = _weekly_png(weekly, out / "sla_weekly.png")
    overall = funnel.loc[funnel["by"] == "all"].iloc[0]
    complete = weekly.loc[weekly["complete"]]
    summary: dict[str, Any] = {
        "leads": len(moments),
        "funnel": {s: int(overall[s]) for s in STAGES},
        "weeks": len(complete),
        "delivered_per_week": float(complete["delivered"].mean()) if len(complete) else np.nan,
        "committed_per_week": int(params.thresholds.capacity_per_week),
        "weeks_below_commitment": int((complete["difference"] < 0).sum()),
        "followup": followup.iloc[0].to_dict(),
        "value_per_lead": dict(zip(value["stage"], value["value_per_lead"])),
        "rules": f"{scorer.config.name} (version {scorer.config.version})",
        "thresholds": {"mql": scorer.config.thresholds.mql, "sql": scorer.config.thresholds.sql},
        "rules_rising_with_time": rules_rising_with_time(scorer),
        "data_end": export.data_end,
        "feedback": feedback_summary(feedback, reasons, not_counted) if recorded else {"recorded": False},
    }
    files["html"] = out / "sla.html"
    files["html"].write_text(_sla_html(summary, funnel, weekly, followup, value, out, feedback, reasons))
    summary["files"] = {k: str(v) for k, v in files.items()}
    return summary


def _sentences(summary: dict) -> list[str]:
    f, fu, t = summary["funnel"], summary["followup"], summary["thresholds"]
    fb = summary["feedback"]
    sentences = [
        DERIVED_WITH_STATUS if fb["recorded"] else DERIVED,
        f"{summary['leads']:,} leads: {f['mql']:,} reached MQL (≥ {t['mql']:g} points), {f['sql']:,} SQL "
        f"(≥ {t['sql']:g} points, no exclusion), {f['sal']:,} were worked by sales after it, {f['opportunity']:,} "
        f"got an opportunity and {f['won']:,} were won. Stages are counted independently: a lead can reach a later "
        "stage without an earlier one.",
    ]
    if summary["weeks"]:
        sentences.append(
            f"Marketing delivered {summary['delivered_per_week']:.1f} qualified leads per complete week against "
            f"{summary['committed_per_week']} committed; {summary['weeks_below_commitment']} of {summary['weeks']} "
            "weeks fell short.")
    if fu["sql_leads"]:
        median = "–" if pd.isna(fu["median_hours"]) else f"{fu['median_hours']:.1f} h"
        sentences.append(
            f"Sales followed up {fu['within_30min']:.0%} of the {fu['sql_leads']:,} SQL leads within 30 minutes and "
            f"{fu['within_1day']:.0%} within a day; {fu['later']:.0%} later and {fu['never']:.0%} never by the end of "
            f"the export (median {median} for those contacted).")
    if summary["rules_rising_with_time"]:
        sentences.append("Limitation: these rules can raise points without an activity, so a threshold crossed between "
                         "activities is seen only at the next one: " + "; ".join(summary["rules_rising_with_time"]) + ".")
    if fb["recorded"]:
        sentences.append(_feedback_sentence(fb))
    else:
        sentences.append("Rejected by sales: not recorded in the export, so not reported.")
    return sentences


def _feedback_sentence(fb: dict) -> str:
    from leadscore.training.report_html import percent as pct

    if not fb["handed_over"]:
        text = "Sales' feedback: no lead was handed over (no SQL moment), so no verdict is counted."
    elif not fb["with_feedback"]:
        text = f"Sales gave no verdict on any of the {fb['handed_over']:,} leads handed over."
    else:
        grades = [f"{g} {pct(r['rejection_rate'])}" for g, r in fb["by_grade"].items() if r["with_feedback"]]
        text = (f"Sales gave a verdict on {fb['with_feedback']:,} of the {fb['handed_over']:,} leads handed over "
                f"({pct(fb['with_feedback'] / fb['handed_over'])}): {fb['accepted']:,} accepted, {fb['rejected']:,} "
                f"rejected, {fb['disqualified']:,} disqualified, {fb['recycled']:,} recycled. Rejection rate (rejected "
                f"or disqualified, of those with a verdict) {pct(fb['rejection_rate'])}; by grade "
                + ", ".join(grades) + ".")
        if fb["top_reasons"]:
            text += " Most given reasons: " + "; ".join(f"“{r['reason']}” ({r['count']:,})"
                                                       for r in fb["top_reasons"]) + "."
    nc = fb["not_counted"]
    left = [(nc["not_handed_over"], "for leads the SLA rules never handed over"),
            (nc["before_hand_over"], "before the hand-over"), (nc["later_verdicts"], "later verdicts"),
            (sum(nc["other_statuses"].values()), "other statuses (" + ", ".join(nc["other_statuses"]) + ")")]
    left = [f"{n:,} {why}" for n, why in left if n]
    if left:
        text += f" Not counted, of {nc['status_rows']:,} status rows: " + "; ".join(left) + "."
    return text


def _feedback_html(feedback: pd.DataFrame, reasons: pd.DataFrame) -> str:
    """Sales' verdicts by grade and by week of hand-over, and the reasons of the rejections (free text
    typed by reps: every cell goes through ``html.escape`` in :func:`report_html.cell`)."""
    from leadscore.training import report_html

    counts = [("handed_over", "handed over (SQL)", ""), ("with_feedback", "with a verdict", ""),
              *[(v, v, "") for v in VERDICTS], ("feedback_share", "verdict given", "pct"),
              ("rejection_rate", "rejection rate", "pct")]
    mark = lambda row: "all" if row["grade"] == ALL and row["week"] == ALL else ""  # noqa: E731
    by_grade = feedback.loc[feedback["week"] == ALL]
    weeks = feedback.loc[(feedback["grade"] == ALL) & (feedback["week"] != ALL)].tail(WEEKS_SHOWN)
    by_week = pd.concat([feedback.loc[(feedback["grade"] == ALL) & (feedback["week"] == ALL)], weeks])
    shown_reasons = reasons.groupby("grade", sort=False).head(TOP_REASONS)
    return (
        "<h2>Sales' feedback by grade</h2><p class=\"note\">Sales' first verdict at or after the hand-over (the SQL "
        "moment), from the export's lead-status history. Rejection rate: (rejected + disqualified) / leads with a "
        "verdict; recycled (back to nurturing) is not a rejection. Grade: the rules' grade at the MQL moment.</p>"
        + report_html.table(by_grade, [("grade", "grade", ""), *counts], "feedback-grade", mark)
        + f'<h2>Sales\' feedback by week of hand-over</h2><p class="note">The last {WEEKS_SHOWN} weeks; every grade and '
        "week in sla_feedback.csv.</p>"
        + report_html.table(by_week, [("week", "week (Monday)", ""), *counts], "feedback-week", mark)
        + f'<h2>Why sales rejected leads</h2><p class="note">Reasons given with a rejection or disqualification, '
        f"the {TOP_REASONS} most frequent per grade (as typed, grouped ignoring case and spacing); all in "
        "sla_feedback_reasons.csv.</p>"
        + (report_html.table(shown_reasons, [("grade", "grade", ""), ("status", "verdict", ""), ("reason", "reason", ""),
                                             ("count", "leads", "")], "feedback-reasons",
                             lambda row: "all" if row["grade"] == ALL else "")
           if len(shown_reasons) else '<p class="note">No lead handed over was rejected.</p>')
    )


def _sla_html(summary: dict, funnel: pd.DataFrame, weekly: pd.DataFrame, followup: pd.DataFrame,
              value: pd.DataFrame, out: Path, feedback: pd.DataFrame | None = None,
              reasons: pd.DataFrame | None = None) -> str:
    from leadscore.training import report_html

    stages = [(s, STAGE_NAMES[s], "") for s in STAGES]
    conv = [(f"conv_{s}", f"→ {STAGE_NAMES[s]}", "pct") for s in STAGES[1:]]
    cols = [("group", "", ""), *stages, ("rejected_by_sales", "rejected by sales", ""), *conv]
    by_grade = funnel.loc[funnel["by"].isin(["all", "grade"])]
    # The page shows the last weeks; the CSVs hold them all.
    by_week = pd.concat([funnel.loc[funnel["by"] == "all"], funnel.loc[funnel["by"] == "week"].tail(WEEKS_SHOWN)])
    followup = pd.concat([followup.head(1), followup.iloc[1:].tail(WEEKS_SHOWN)])
    mark = lambda row: "all" if row.get("group", row.get("week")) == "all" else ""  # noqa: E731
    shown_weekly = weekly.tail(WEEKS_SHOWN)
    shown_weekly = shown_weekly.assign(complete=np.where(shown_weekly["complete"], "yes", "no (export ends)"))
    whole = lambda s: [None if pd.isna(v) else int(round(v)) for v in s]  # noqa: E731
    money = value.assign(avg_won_amount=whole(value["avg_won_amount"]), value_per_lead=whole(value["value_per_lead"]))
    body = (
        '<h2>Plots</h2><div class="plots">'
        + report_html.image(out / "sla_funnel.png", "Funnel by grade")
        + report_html.image(out / "sla_weekly.png", "Qualified leads delivered vs committed") + "</div>"
        + '<h2>Funnel by grade</h2><p class="note">Grade: the rules\' grade at the MQL moment (never MQL: at the last '
        "evaluation). Conversion: leads that reached both stages / leads that reached the previous one.</p>"
        + report_html.table(by_grade, cols, "funnel-grade", mark)
        + f'<h2>Funnel by week of creation</h2><p class="note">The last {WEEKS_SHOWN} weeks; all weeks in sla_funnel.csv.</p>' + report_html.table(by_week, [("group", "week", ""), *cols[1:]], "funnel-week", mark)
        + f'<h2>Qualified leads delivered vs committed</h2><p class="note">Last {WEEKS_SHOWN} weeks; all in sla_weekly.csv.</p>'
        + report_html.table(shown_weekly, [("week", "week (Monday)", ""), ("delivered", "delivered (SQL)", ""),
                                           ("committed", "committed", ""), ("difference", "difference", ""),
                                           ("complete", "complete week", "")], "weekly")
        + '<h2>Follow-up speed</h2><p class="note">From the SQL moment to the first sales activity; "within a day" '
        f"includes within 30 minutes; median of those contacted; per week of the SQL moment (last {WEEKS_SHOWN}).</p>"
        + report_html.table(followup, [("week", "week", ""), ("sql_leads", "SQL leads", ""),
                                       ("within_30min", "≤ 30 min", "pct"), ("within_1day", "≤ 1 day", "pct"),
                                       ("later", "later", "pct"), ("never", "never", "pct"),
                                       ("median_hours", "median hours", "f2")], "followup", mark)
        + (_feedback_html(feedback, reasons) if feedback is not None else "")
        + '<h2>What a lead is worth at each stage</h2><p class="note">Win rate among leads that reached the stage × '
        "average amount of their won deals: what acquiring a lead at that stage may cost at most.</p>"
        + report_html.table(money, [("stage", "stage", ""), ("reached", "reached", ""), ("won", "won", ""),
                                    ("win_rate", "win rate", "pct"), ("avg_won_amount", "avg won amount", ""),
                                    ("value_per_lead", "value per lead", "")], "value")
    )
    meta = {"rules": summary["rules"], "export ends": f"{summary['data_end']:%Y-%m-%d %H:%M}"}
    return report_html.page("SLA report: delivered, followed up, worth", meta, _sentences(summary), body)
