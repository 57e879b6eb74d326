"""What would change it: the smallest set of actions that lifts a lead over the sales threshold.

Only actions marketing or the lead can take count (``explain.actionable_types``: a demo
request, pricing page visits, a webinar …); fit — company size, title, industry — is who the
lead is and is never suggested. Every candidate is *scored by the model*: the actions are added
to the lead's history just before ``as_of``, its features are recomputed by the same code the
live API uses, and the calibrated probability decides. Candidates are tried from the fewest
actions up (at most ``max_actions``); among the smallest sets that cross the threshold the one
with the highest probability wins. No candidate crossing means no suggestion — the answer does
not invent one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement

import numpy as np

from leadscore.features.catalog import action
from leadscore.features.online import OnlineFeatures
from leadscore.models.decision import Lang, WhatIf, score_from_probability

# An added action happens this long before as_of (strictly before: as_of itself is not yet known).
LEAD_TIME_US = 60_000_000


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


def what_would_change(
    model,
    online: OnlineFeatures,
    profile: Mapping[str, object],
    activities: Sequence[tuple[int, str, str | None]],
    as_of_us: int,
    *,
    lang: Lang = "en",
) -> WhatIf | None:
    """The smallest action set that brings the lead to ``model.sales_ready``; None if none of at
    most ``max_actions`` actions does (or the model has no explanation settings)."""
    settings = model.explain
    if settings is None:
        return None
    types = [t for t in settings.actionable_types if t in model.spec.activity_types]
    candidates = candidate_actions(types, settings.max_actions)
    if not candidates:
        return None
    when = as_of_us - LEAD_TIME_US
    history = list(activities)
    X = np.empty((len(candidates), len(model.spec.features)))
    for k, counts in enumerate(candidates):
        added = [(when, t, None) for t, n in counts.items() for _ in range(n)]
        X[k] = online.features(profile, history + added, as_of_us)[1]
    proba = model.probability(model.margin(X))
    sizes = np.array([sum(c.values()) for c in candidates])
    crossing = np.flatnonzero(proba >= model.sales_ready)
    if not len(crossing):
        return None
    fewest = sizes[crossing].min()
    best = max((k for k in crossing if sizes[k] == fewest), key=lambda k: proba[k])
    counts = candidates[best]
    text = " + ".join(action(t, n, lang) for t, n in counts.items())
    return WhatIf(dict(counts), text, float(proba[best]), int(score_from_probability(proba[best:best + 1])[0]))
