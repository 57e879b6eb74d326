"""What would change it: the levers someone can pull, and what each would reach, scored by the model.

A **lever** is something marketing, the lead or the rep can do — never who the lead is:

- an *action*: one more activity of a type in ``explain.actionable_types`` (a demo request, a
  pricing page visit, a webinar …), which marketing can invite and the lead can take;
- a *confirmation*: a BANT answer the rep can confirm in a call (``explain.confirmable``: profile
  column → the answer tried, e.g. ``budget_confirmed`` → ``yes``). Offered only for a column the
  model has as a profile feature (``spec.profile_columns``) with that answer among its training
  levels, and only when the lead's current value is a different one.

Fit — company size, industry, country, title, free-mail, the lead's age — is never a lever: such
columns are not in ``actionable_types`` and not profile columns, so nothing here can try them.

Every candidate is *scored by the model*: an action is added to the lead's history just before
``as_of``, a confirmation replaces the profile value, the features are recomputed by the same code
the live API uses, and the calibrated probability decides. Each lever is tried alone; those that
raise the probability by at least one score point are offered, best first (at most
``MAX_LEVERS``), with the score and grade they would reach. Separately, the smallest set of at most
``max_actions`` actions that lifts the lead over the sales threshold is searched, fewest first; among
the smallest sets that cross, the one with the highest probability wins. Nothing that moves the
lead means no answer at all — none is invented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement

import numpy as np

from leadscore.features.catalog import action, describe, label
from leadscore.features.online import OnlineFeatures
from leadscore.models.decision import Lang, Lever, WhatIf, at_or_above, grades_of, score_from_probability

# An added action happens this long before as_of (strictly before: as_of itself is not yet known).
LEAD_TIME_US = 60_000_000
# A lever must raise the probability by one score point (a percentage point) to be worth a rep's time.
MIN_GAIN = 0.01
# The card shows a few levers, not a menu.
MAX_LEVERS = 4
# How a rep confirms a BANT field in a call: field → (en, de). The answer's wording comes from
# features.catalog; a field not named here reads "Confirm <label> in the call".
CONFIRM_PHRASES: dict[str, tuple[str, str]] = {
    "budget_confirmed": ("Confirm the budget in the call", "Budget im Gespräch bestätigen"),
    "purchase_timeframe": ("Confirm the purchase timeframe", "Kaufzeitraum bestätigen"),
}


def candidate_actions(types: Sequence[str], max_actions: int) -> list[dict[str, int]]:
    """Every multiset of 1 … max_actions actions over ``types``, fewest first."""
    out = []
    for size in range(1, max_actions + 1):
        for combo in combinations_with_replacement(types, size):
            counts: dict[str, int] = {}
            for t in combo:
                counts[t] = counts.get(t, 0) + 1
            out.append(counts)
    return out


def action_types(model) -> list[str]:
    """The actionable activity types the model knows (a type it never saw cannot move it)."""
    settings = model.explain
    return [t for t in settings.actionable_types if t in model.spec.activity_types] if settings else []


def confirmations(model, raw: Mapping[str, object]) -> list[tuple[str, str]]:
    """(field, answer) pairs a rep could confirm for a lead whose raw feature values are ``raw``:
    the field is one of the model's profile features, the answer one of its training levels (an
    unseen one would score as missing), and the lead's value is not that answer already."""
    settings = model.explain
    if settings is None:
        return []
    features = {f.name: f for f in model.spec.features}
    out = []
    for name, answer in settings.confirmable.items():
        f = features.get(name)
        if name not in model.spec.profile_columns or f is None or f.kind != "category":
            continue
        if f.categories is not None and answer not in f.categories:
            continue
        if raw.get(name) != answer:
            out.append((name, answer))
    return out


def confirm_text(name: str, answer: str, lang: Lang = "en") -> str:
    """'Budget im Gespräch bestätigen: ja' / 'Confirm the budget in the call: yes'."""
    i = 1 if lang == "de" else 0
    phrase = CONFIRM_PHRASES.get(name)
    if phrase is None:
        field = label(name, lang)
        phrase = (f"Confirm {field[:1].lower() + field[1:]} in the call", f"{field} im Gespräch bestätigen")
    # describe() says "<field>: <answer>" in the catalog's words (features/glossary.yaml)
    worded = describe(name, answer, lang).rsplit(": ", 1)[-1]
    return f"{phrase[i]}: {worded}"


def what_would_change(
    model,
    online: OnlineFeatures,
    profile: Mapping[str, object],
    activities: Sequence[tuple[int, str, str | None]],
    as_of_us: int,
    *,
    lang: Lang = "en",
) -> WhatIf | None:
    """The levers that each raise the lead's probability by a score point (best first), and the
    smallest action set that brings it to ``model.sales_ready``; None if there is neither (or the
    model has no explanation settings)."""
    if model.explain is None:
        return None
    history = list(activities)
    raw, now = online.features(profile, history, as_of_us)
    when = as_of_us - LEAD_TIME_US
    types = action_types(model)
    confirms = confirmations(model, raw)
    combos = candidate_actions(types, model.explain.max_actions)
    rows = [now]
    rows += [online.features(profile, history + [(when, t, None)], as_of_us)[1] for t in types]
    rows += [online.features({**profile, name: answer}, history, as_of_us)[1] for name, answer in confirms]
    for counts in combos:
        added = [(when, t, None) for t, n in counts.items() for _ in range(n)]
        rows.append(online.features(profile, history + added, as_of_us)[1])
    proba = model.probability(model.margin(np.vstack(rows)))
    k = 1 + len(types) + len(confirms)
    singles = [("action", t, action(t, 1, lang), None) for t in types]
    singles += [("confirm", name, confirm_text(name, answer, lang), answer) for name, answer in confirms]
    levers = _levers(model, float(proba[0]), singles, proba[1:k])
    return _answer(model, levers, combos, proba[k:], lang)


def confirm_levers(model, raw: Mapping[str, object], *, lang: Lang = "en") -> list[Lever]:
    """The confirmation levers alone, from recorded raw feature values (a ledger entry's), by the
    model version that scored them: what a rep can still confirm when the lead's activity history
    is not at hand. The same levers ``what_would_change`` offers for that lead."""
    from leadscore.models.change import encode_raw  # the ledger's path back to model rows

    confirms = confirmations(model, raw)
    if not confirms:
        return []
    rows = [dict(raw)] + [{**raw, name: answer} for name, answer in confirms]
    proba = model.probability(model.margin(encode_raw(rows, model.spec)))
    singles = [("confirm", name, confirm_text(name, answer, lang), answer) for name, answer in confirms]
    return _levers(model, float(proba[0]), singles, proba[1:])


def _grade(model, p: np.ndarray) -> list[str]:
    """The grades the model's own cut-offs give (models.decision, tie rule included)."""
    return grades_of(p, model.cutoffs)


def _levers(model, base: float, singles: list[tuple], proba: np.ndarray) -> list[Lever]:
    """Levers that raise the probability by at least MIN_GAIN and a displayed score point, best first."""
    scores = score_from_probability(proba)
    base_score = int(score_from_probability(np.array([base]))[0])
    grades = _grade(model, proba)
    keep = [j for j in range(len(singles)) if proba[j] - base >= MIN_GAIN and scores[j] > base_score]
    keep.sort(key=lambda j: (-proba[j], j))
    return [Lever(singles[j][0], singles[j][1], singles[j][2], float(proba[j]), int(scores[j]), grades[j], singles[j][3])
            for j in keep[:MAX_LEVERS]]


def _answer(model, levers: list[Lever], combos: list[dict[str, int]], proba: np.ndarray, lang: Lang) -> WhatIf | None:
    crossing = np.flatnonzero(at_or_above(proba, model.sales_ready))
    if not len(crossing):
        return WhatIf({}, None, None, None, levers=levers) if levers else None
    sizes = np.array([sum(c.values()) for c in combos])
    fewest = sizes[crossing].min()
    best = max((k for k in crossing if sizes[k] == fewest), key=lambda k: proba[k])
    counts = combos[best]
    text = " + ".join(action(t, n, lang) for t, n in counts.items())
    p = proba[best:best + 1]
    return WhatIf(dict(counts), text, float(p[0]), int(score_from_probability(p)[0]), levers=levers,
                  grade=_grade(model, p)[0])
