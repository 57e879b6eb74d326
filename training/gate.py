"""The baseline gate: which models may serve at all, judged over the rolling-origin backtest.

The SLA rules answer whenever no model serves, so a model earns its place only by beating them,
and a plain logistic regression on the same rows is the cheapest honest model, so LightGBM must
not be significantly worse than it. Both are judged on the pooled backtest windows
(``training.backtest``), by the 95 % bootstrap interval over leads of the ROC AUC difference:

- beats the rules: the interval of model − rules lies above ``registry.min_auc_gain_over_rules``;
- not worse than logistic regression: the interval of model − logistic reaches
  ``-registry.max_auc_loss_to_logistic``.

Every champion passes it, the first one too (``training.promote``); a model that fails is still
registered (its run is evidence) but not promoted, and the sentence says why with the numbers.
``evaluate`` computes it, ``register`` records it on the version, ``promote`` reads it there.
"""

from __future__ import annotations

from leadscore.config.params import RegisterParams

TAG = "baseline_gate"  # registry tag of a version: "passed" or "failed"
REASON_TAG = "baseline_gate_reason"


def _span(d: dict) -> tuple[float, float, float]:
    value = float(d["value"])
    lo, hi = d["interval"] if d.get("interval") else (value, value)  # no bootstrap: the point is the interval
    return value, float(lo), float(hi)


def _numbers(d: dict) -> str:
    value, lo, hi = _span(d)
    return f"{value:+.3f} ROC AUC (95 % interval {lo:+.3f} to {hi:+.3f})"


def baseline_gate(backtest: dict, registry: RegisterParams, model_label: str = "the model") -> dict:
    """Judge a backtest report (``run_backtest``'s first value) against the SLA rules and logistic
    regression. Returns ``passed``, one ``sentence`` with the numbers, and the ``checks``."""
    overall = backtest["overall"]
    windows = sum(1 for f in backtest["folds"] if "skipped" not in f)
    where = f"over {windows} backtest window{'s' if windows != 1 else ''} ({overall['rows']:,} snapshots, " \
            f"{overall['positives']:,} won)"
    return {**judge(overall["difference"], registry, where, model_label), "windows": windows}


def flat_gate(result: dict, registry: RegisterParams, model_label: str = "LightGBM") -> dict:
    """The same gate for a flat export (``training.flat_eval``): on its time-ordered test when it has
    one (later rows than any it learned from, like a backtest window), else on the pooled
    cross-validation; ``evidence`` says which."""
    timed = (result.get("time_ordered") or {}).get("metrics")
    if timed:
        where, report, evidence = (f"on the time-ordered test ({timed['rows']:,} rows, {timed['positives']:,} "
                                   "positive)"), timed, "time_ordered"
    else:
        report = result["cv"]["pooled"]
        where, evidence = (f"over {result['cv']['folds']}-fold cross-validation ({report['rows']:,} rows, "
                           f"{report['positives']:,} positive; no time order)"), "cv"
    return {**judge(report["difference"], registry, where, model_label), "evidence": evidence}


def judge(difference: dict, registry: RegisterParams, where: str, model_label: str = "the model") -> dict:
    """The two checks on ``compare``'s differences of the model against ``rules`` and ``logistic``."""
    if "rules" not in difference:
        return {"passed": False, "checks": {},
                "sentence": f"{where}, {model_label} has no SLA rules to beat (no rules file for this export)"}
    rules, logistic = difference["rules"]["roc_auc"], difference["logistic"]["roc_auc"]
    _, rules_lo, _ = _span(rules)
    _, _, logistic_hi = _span(logistic)
    beats_rules = rules_lo > registry.min_auc_gain_over_rules
    not_worse = logistic_hi >= -registry.max_auc_loss_to_logistic
    floor = f"{-registry.max_auc_loss_to_logistic:g}" if registry.max_auc_loss_to_logistic else "0"
    checks = {
        "beats_rules": {"passed": beats_rules, "difference": rules, "needed": f"interval above {registry.min_auc_gain_over_rules:g}"},
        "not_worse_than_logistic": {"passed": not_worse, "difference": logistic, "needed": f"interval reaching {floor}"},
    }
    rules_text = (f"beats the SLA rules by {_numbers(rules)}" if beats_rules else
                  f"does not beat the SLA rules: {_numbers(rules)}, the interval must lie above "
                  f"{registry.min_auc_gain_over_rules:g} (registry.min_auc_gain_over_rules)")
    logistic_text = (f"is not significantly worse than logistic regression ({_numbers(logistic)})" if not_worse else
                     f"is significantly worse than logistic regression: {_numbers(logistic)}, the interval must "
                     f"reach {floor} (registry.max_auc_loss_to_logistic)")
    passed = beats_rules and not_worse
    if passed:
        sentence = f"{where}, {model_label} {rules_text} and {logistic_text}"
    else:
        failed = [t for ok, t in ((beats_rules, rules_text), (not_worse, logistic_text)) if not ok]
        sentence = f"{where}, {model_label} " + " and ".join(failed)
    return {"passed": passed, "sentence": sentence, "checks": checks}


def version_gate(tags: dict[str, str]) -> tuple[bool, str]:
    """A registered version's gate from its tags; a version registered without one has not passed."""
    if TAG not in tags:
        return False, ("it was registered without a backtest against the SLA rules and logistic regression "
                       "(no baseline gate recorded): register it with the metrics of `leadscore evaluate`")
    return tags[TAG] == "passed", tags.get(REASON_TAG, "")
