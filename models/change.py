"""Why did the score change? Two served scores of one lead, split into data and model version.

The API's ledger keeps, for every served score, the scorer, the model version, the probability,
the 1–99 score and the raw feature values it was computed from. Between two entries both the
lead's data and the model may have changed; with ``s_v(x)`` the score model ``v`` gives values ``x``:

    total = s_new(x_new) − s_old(x_old)
          = [s_new(x_new) − s_new(x_old)]   data: the new model on the old and the new values
          + [s_new(x_old) − s_old(x_old)]   model: the old values under the new and the old model

exactly, in probability and in score points. Each part is also split over business signals
(``models.explain.Signals``) with exact TreeSHAP on the margin (log-odds):

- **data drivers**: the new model's contributions on ``x_new`` minus those on ``x_old``. They add
  up to the new model's margin change (the base value cancels), each with the old and the new
  value of the signal's feature that moved it.
- **model drivers**: ``φ_new(x_old) − φ_old(x_old)``, signals matched by name (a signal only one
  model knows counts fully on its side), plus the change of the base value (``baseline``): they
  add up to the margin change between the two models on the old values. Calibration maps margins
  to probabilities, so log-odds say which signals matter and the score points say how much.

Nothing is split when a score came from the SLA rules or a model version cannot be loaded: the
answer then says which scorer answered and why, and reports only the total.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadscore.features.build import encode_matrix
from leadscore.features.catalog import FLAGS, LANGS, NOTHING_YET, _value, label, signal_label
from leadscore.features.spec import FeatureSpec
from leadscore.models.decision import Lang, display_value, score_from_probability
from leadscore.models.explain import row_sums, signal_of

if TYPE_CHECKING:
    from leadscore.models.lgbm import LeadModel

BASELINE = "baseline"  # the model driver for the change of the base value (an average lead's log-odds)
_WINDOW = re.compile(r"^(?P<what>.+)_(?P<days>\d+)d$")
_LISTED_NAMES = 6  # feature names a note lists before "and N more"

# Every sentence in both languages: (en, de).
_T: dict[str, tuple[str, str]] = {
    "rose": ("{what} rose from {old} to {new} ({effect})",
             "{what}: von {old} auf {new} gestiegen ({effect})"),
    "fell": ("{what} fell from {old} to {new} ({effect})",
             "{what}: von {old} auf {new} gesunken ({effect})"),
    "changed": ("{what} changed from {old} to {new} ({effect})",
                "{what}: von {old} zu {new} gewechselt ({effect})"),
    "same": ("{what} unchanged at {old} ({effect}, through its interplay with the other changes)",
             "{what}: unverändert bei {old} ({effect}, im Zusammenspiel mit den anderen Änderungen)"),
    "reweighed": ("Model {new_v} weighs {what} = {old} differently than model {old_v} ({effect})",
                  "Modell {new_v} gewichtet {what} = {old} anders als Modell {old_v} ({effect})"),
    "added": ("{what} = {old} is new in model {new_v} ({effect})",
              "{what} = {old} ist neu in Modell {new_v} ({effect})"),
    "dropped": ("Model {new_v} no longer uses {what} = {old} ({effect})",
                "Modell {new_v} nutzt {what} = {old} nicht mehr ({effect})"),
    "baseline": ("Model {new_v} starts from a different average lead than model {old_v} ({effect})",
                 "Modell {new_v} geht von einem anderen durchschnittlichen Lead aus als Modell {old_v} "
                 "({effect})"),
    "score_rose": ("The score rose from {old} to {new} ({total} points)",
                   "Der Score ist von {old} auf {new} gestiegen ({total} Punkte)"),
    "score_fell": ("The score fell from {old} to {new} ({total} points)",
                   "Der Score ist von {old} auf {new} gesunken ({total} Punkte)"),
    "score_same": ("The score stayed at {old}", "Der Score ist unverändert bei {old}"),
    "parts": (": {data} from changes in the lead's data, {model} from the new model version ({old_v} → {new_v}).",
              ": {data} durch geänderte Daten des Leads, {model} durch die neue Modellversion ({old_v} → {new_v})."),
    "all_data": (", all from changes in the lead's data (model version {old_v} both times).",
                 ", ganz durch geänderte Daten des Leads (beide Male Modellversion {old_v})."),
    "main_data": (" Main change in the data: {text}.", " Wichtigste Änderung in den Daten: {text}."),
    "main_model": (" Main change in the model: {text}.", " Wichtigste Änderung im Modell: {text}."),
    "not_split": (". It is not split into data and model: {why}.",
                  ". Er wird nicht in Daten- und Modellanteil aufgeteilt: {why}."),
    "scorer_changed": ("the scorer changed ({old_s} → {new_s})",
                       "das Bewertungsverfahren hat gewechselt ({old_s} → {new_s})"),
    "both_rules": ("both scores came from the SLA rules ({old_s} → {new_s}), which have no model to split",
                   "beide Scores kamen aus den SLA-Regeln ({old_s} → {new_s}), es gibt kein Modell zum Aufteilen"),
    "not_loaded": ("model version {v} could not be loaded", "Modellversion {v} ließ sich nicht laden"),
    "no_version": ("a model score without a recorded model version",
                   "ein Modell-Score ohne gespeicherte Modellversion"),
    "model": ("model {v}", "Modell {v}"),
    "rules": ("the SLA rules", "die SLA-Regeln"),
    "rules_version": ("SLA rules version {v}", "SLA-Regeln Version {v}"),
    "missing": ("The {which} values lack {names}, which model {v} uses: counted as missing (NaN), "
                "LightGBM's missing-value path.",
                "Den {which} Werten fehlen {names}, die Modell {v} nutzt: als fehlend (NaN) gezählt, "
                "wie LightGBM fehlende Werte behandelt."),
    "unused": ("Model {v} does not use {names} of the {which} values.",
               "Modell {v} nutzt {names} aus den {which} Werten nicht."),
    "kind": ("{names} in the {which} values do not fit the type model {v} expects (number or category): "
             "counted as missing (NaN).",
             "{names} in den {which} Werten passen nicht zum Typ, den Modell {v} erwartet (Zahl oder Kategorie): "
             "als fehlend (NaN) gezählt."),
    "recomputed": ("The stored {which} score {stored} differs from what model {v} gives on the stored values "
                   "({recomputed}); the split uses the recomputed scores, so its parts add up to {parts} "
                   "instead of {total}.",
                   "Der gespeicherte {which} Score {stored} weicht von dem ab, was Modell {v} auf den gespeicherten "
                   "Werten ergibt ({recomputed}); die Aufteilung nutzt die neu berechneten Scores, ihre Teile "
                   "ergeben daher {parts} statt {total}."),
    "old": ("old", "alten"),
    "new": ("new", "neuen"),
    "old_score": ("old", "alte"),
    "new_score": ("new", "neue"),
    "more": ("{names} and {n} more", "{names} und {n} weitere"),
    "yes": ("yes", "ja"),
    "no": ("no", "nein"),
    "none_yet": ("none yet", "noch keine"),
    "window": ("{what} (last {days} days)", "{what} (letzte {days} Tage)"),
}


@dataclass
class Driver:
    signal: str
    old_value: str | float | None
    new_value: str | float | None
    effect: float  # log-odds change attributed to this signal
    text: str  # sentence in the requested language


@dataclass
class ChangeExplanation:
    """Why a lead's score moved between two ledger entries. ``data_change + model_change == total``
    when both stored scores are what their models give on the stored values (else a note says so).

    The fields after ``notes`` are additions to the agreed API: the same split in probabilities
    (stored ones for old/new; recomputed ones for the parts)."""

    old_score: int
    new_score: int
    total: int  # new_score - old_score
    data_change: int | None  # score points from data (None when not decomposed)
    model_change: int | None  # score points from the model version
    old_model_version: str | None
    new_model_version: str | None
    decomposed: bool
    data_drivers: list[Driver]  # top_k, largest |effect| first
    model_drivers: list[Driver]
    text: str  # one-paragraph summary in the language
    notes: list[str]
    old_probability: float | None = None
    new_probability: float | None = None
    data_probability: float | None = None  # p_new(x_new) - p_new(x_old)
    model_probability: float | None = None  # p_new(x_old) - p_old(x_old)


def encode_raw(rows: Sequence[Mapping[str, object]], spec: FeatureSpec) -> np.ndarray:
    """Raw feature values (feature name → value, as ``OnlineFeatures.features`` gives them, None for
    missing) as the model's rows, by ``encode_matrix`` itself: a category is its index in the spec's
    training levels (NaN if unseen or missing), a number a float, None NaN. A feature a mapping
    lacks is missing (NaN)."""
    frame = pd.DataFrame(
        {f.name: pd.Series([row.get(f.name) for row in rows], dtype=object) for f in spec.features},
        index=range(len(rows)),
    )
    return encode_matrix(frame, spec)


def explain_change(
    old: Mapping | object,
    new: Mapping | object,
    load_model: Callable[[str], "LeadModel | None"],
    *,
    top_k: int = 5,
    lang: Lang = "en",
) -> ChangeExplanation:
    """Split the change between two ledger entries of one lead (``old`` before ``new``) into what
    the lead's data and what the model version moved, with the signals behind each part.

    ``old`` / ``new``: ``scorer`` ("model" | "rules"), ``model_version``, ``probability``, ``score``,
    ``features`` (feature → raw value, None for missing), optionally ``fallback_reason``; a mapping
    or a dataclass with those fields (``serving.ledger.LedgerEntry``).
    ``load_model(version)`` gives the LeadModel of a registry version, or None."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}; found {lang!r}")
    old, new = _entry(old), _entry(new)
    for name, entry in (("old", old), ("new", new)):
        lacking = [k for k in ("scorer", "score") if k not in entry]
        if lacking:
            raise ValueError(f"the {name} ledger entry lacks {', '.join(lacking)}; found keys {sorted(entry)}")
    t = _Texts(lang)
    old_score, new_score = int(old["score"]), int(new["score"])
    total = new_score - old_score
    v_old, v_new = _version(old), _version(new)
    base = ChangeExplanation(old_score, new_score, total, None, None, v_old, v_new, False, [], [], "", [],
                             _probability(old), _probability(new))

    why = _scorer_change(old, new, t)
    models: dict[str, LeadModel] = {}
    if why is None:
        for v in dict.fromkeys([v_new, v_old]):  # the new one first; a version once
            model, error = _load(load_model, v)
            if model is None:
                why = t("no_version") if v is None else t("not_loaded", v=v) + (f" ({error})" if error else "")
                break
            models[v] = model
    if why is not None:
        base.text = _headline(old_score, new_score, total, t) + t("not_split", why=why)
        return base
    return _decompose(base, old, new, models[v_old], models[v_new], top_k, t)


# --- the split ----------------------------------------------------------------------------------


def _decompose(out: ChangeExplanation, old: Mapping, new: Mapping, old_model: "LeadModel", new_model: "LeadModel",
               top_k: int, t: "_Texts") -> ChangeExplanation:
    same = old_model is new_model
    x_old, x_new = _features(old), _features(new)
    notes: list[str] = []
    v_old, v_new = out.old_model_version, out.new_model_version
    rows = _encode(new_model, v_new, [x_old, x_new], ["old", "new"], notes, t)
    phi_new = new_model.contributions(rows)  # row 0: x_old, row 1: x_new; base value last
    # As LeadModel scores: the margin is the sum of the contributions, then the calibrator.
    p_new = new_model.probability(row_sums(phi_new))
    if same:
        phi_old, p_old = phi_new[:1], p_new[:1]
    else:
        phi_old = old_model.contributions(_encode(old_model, v_old, [x_old], ["old"], notes, t))
        p_old = old_model.probability(row_sums(phi_old))
        notes += _unused(new_model, v_new, x_old, "old", t)
    s_old_old, s_new_old, s_new_new = (int(score_from_probability(p)[0]) for p in (p_old[:1], p_new[:1], p_new[1:]))

    out.decomposed = True
    out.data_change = s_new_new - s_new_old
    out.model_change = 0 if same else s_new_old - s_old_old
    out.data_probability = float(p_new[1] - p_new[0])
    out.model_probability = 0.0 if same else float(p_new[0] - p_old[0])
    parts = out.data_change + out.model_change
    for which, stored, recomputed, v in (("old_score", out.old_score, s_old_old, v_old),
                                         ("new_score", out.new_score, s_new_new, v_new)):
        if stored != recomputed:
            notes.append(t("recomputed", which=t(which), stored=stored, v=v, recomputed=recomputed,
                           parts=_signed(parts), total=_signed(out.total)))

    out.data_drivers = _data_drivers(new_model, phi_new, x_old, x_new, t)[:top_k]
    if not same:
        out.model_drivers = _model_drivers(old_model, new_model, phi_old[0], phi_new[0], x_old, v_old, v_new, t)[:top_k]
    text = _headline(out.old_score, out.new_score, out.total, t)
    if same:
        text += t("all_data", old_v=v_old)
    else:
        text += t("parts", data=_signed(out.data_change), model=_signed(out.model_change), old_v=v_old, new_v=v_new)
    if out.data_drivers:
        text += t("main_data", text=out.data_drivers[0].text)
    if out.model_drivers:
        text += t("main_model", text=out.model_drivers[0].text)
    out.text = text
    out.notes = notes
    return out


def _data_drivers(model: "LeadModel", phi: np.ndarray, x_old: Mapping, x_new: Mapping, t: "_Texts") -> list[Driver]:
    """Per signal of ``model``: its contributions on ``x_new`` minus those on ``x_old``. A signal is
    listed when that is not zero or when one of its values changed."""
    names = model.spec.names
    delta = phi[1, :-1] - phi[0, :-1]
    per_signal = model.signals.sum(delta[None, :])[0]
    drivers = []
    for s, signal in enumerate(model.signals.names):
        members = np.flatnonzero(model.signals.member_of == s)
        changed = [j for j in members if _differs(x_old.get(names[j]), x_new.get(names[j]))]
        if per_signal[s] == 0 and not changed:
            continue
        pool = changed or list(members)
        j = max(pool, key=lambda k: abs(delta[k]))  # the first of equals: explain's order
        feature = names[j]
        a, b = x_old.get(feature), x_new.get(feature)
        effect = float(per_signal[s])
        text = t(_direction(a, b), what=t.what(feature, model.spec), old=t.value(feature, a), new=t.value(feature, b),
                 effect=t.number(effect))
        drivers.append(Driver(signal, display_value(a), display_value(b), effect, text))
    return _ranked(drivers)


def _model_drivers(old_model: "LeadModel", new_model: "LeadModel", phi_old: np.ndarray, phi_new: np.ndarray,
                   x_old: Mapping, v_old: str | None, v_new: str | None, t: "_Texts") -> list[Driver]:
    """Per signal (by name): the new model's contributions on the old values minus the old model's.
    A signal only one model knows counts fully on its side; ``baseline`` is the base value's change."""
    # signal → feature → [φ_new, φ_old]; a side the feature is not in stays 0.
    by_signal: dict[str, dict[str, list[float]]] = {}
    sides: dict[str, set[str]] = {}
    for side, model, phi in ((0, new_model, phi_new), (1, old_model, phi_old)):
        for j, feature in enumerate(model.spec.names):
            signal = signal_of(feature, model.spec)
            by_signal.setdefault(signal, {}).setdefault(feature, [0.0, 0.0])[side] = float(phi[j])
            sides.setdefault(signal, set()).add("new" if side == 0 else "old")
    spec_of = {f: new_model.spec for f in new_model.spec.names} | {
        f: old_model.spec for f in old_model.spec.names if f not in new_model.spec.names}
    drivers = []
    for signal, features in by_signal.items():
        # Summed per side, then subtracted: the drivers add up to the two margins' difference.
        effect = sum(v[0] for v in features.values()) - sum(v[1] for v in features.values())
        if effect == 0:
            continue
        feature = max(features, key=lambda f: abs(features[f][0] - features[f][1]))
        key = "reweighed" if len(sides[signal]) == 2 else "added" if "new" in sides[signal] else "dropped"
        value = x_old.get(feature)
        text = t(key, what=t.what(feature, spec_of[feature]), old=t.value(feature, value), effect=t.number(effect),
                 old_v=v_old, new_v=v_new)
        drivers.append(Driver(signal, display_value(value), display_value(value), effect, text))
    base_old, base_new = float(phi_old[-1]), float(phi_new[-1])
    if base_new != base_old:
        effect = base_new - base_old
        drivers.append(Driver(BASELINE, base_old, base_new, effect,
                              t("baseline", effect=t.number(effect), old_v=v_old, new_v=v_new)))
    return _ranked(drivers)


def _ranked(drivers: list[Driver]) -> list[Driver]:
    return sorted(drivers, key=lambda d: -abs(d.effect))  # stable: signal order among equals


# --- ledger entries and models --------------------------------------------------------------------


def _entry(entry: Mapping | object) -> Mapping:
    if isinstance(entry, Mapping):
        return entry
    if is_dataclass(entry) and not isinstance(entry, type):
        return {f.name: getattr(entry, f.name) for f in fields(entry)}
    raise TypeError(f"a ledger entry is a mapping or a dataclass; found {type(entry).__name__}")


def _version(entry: Mapping) -> str | None:
    v = entry.get("model_version")
    return None if v is None else str(v)


def _probability(entry: Mapping) -> float | None:
    p = entry.get("probability")
    return None if p is None else float(p)


def _features(entry: Mapping) -> dict[str, object]:
    return dict(entry.get("features") or {})


def _scorer_change(old: Mapping, new: Mapping, t: "_Texts") -> str | None:
    """Why the change is not split by the scorers alone (rules involved), or None."""
    if old["scorer"] == "model" and new["scorer"] == "model":
        return None
    key = "both_rules" if old["scorer"] != "model" and new["scorer"] != "model" else "scorer_changed"
    why = t(key, old_s=_scorer_name(old, t), new_s=_scorer_name(new, t))
    reason = new.get("fallback_reason") if new["scorer"] != "model" else old.get("fallback_reason")
    return f"{why}: {reason}" if reason else why


def _scorer_name(entry: Mapping, t: "_Texts") -> str:
    if entry["scorer"] == "model":
        return t("model", v=_version(entry))
    version = _version(entry)  # "rules:<version of the SLA file>"
    return t("rules_version", v=version.removeprefix("rules:")) if version else t("rules")


def _load(load_model: Callable[[str], "LeadModel | None"], version: str | None) -> tuple["LeadModel | None", str]:
    if version is None:
        return None, ""
    try:
        return load_model(version), ""
    except Exception as exc:  # noqa: BLE001 — a deleted or broken old version must not break the answer
        return None, f"{type(exc).__name__}: {exc}"


def _encode(model: "LeadModel", version: str | None, rows: list[Mapping[str, object]], which: list[str],
            notes: list[str], t: "_Texts") -> np.ndarray:
    """``encode_raw`` for ``model``, noting features a row lacks and values of the wrong type
    (a profile column whose type differs between versions); both become NaN."""
    cleaned = []
    for row, w in zip(rows, which):
        lacking, wrong = [], []
        row = dict(row)
        for f in model.spec.features:
            if f.name not in row:
                lacking.append(f.name)
            elif _wrong_kind(row[f.name], f.kind):
                wrong.append(f.name)
                row[f.name] = None
        if lacking:
            notes.append(t("missing", which=t(w), names=t.names(lacking), v=version))
        if wrong:
            notes.append(t("kind", which=t(w), names=t.names(wrong), v=version))
        cleaned.append(row)
    return encode_raw(cleaned, model.spec)


def _unused(model: "LeadModel", version: str | None, row: Mapping[str, object], which: str, t: "_Texts") -> list[str]:
    known = set(model.spec.names)
    unused = [name for name in row if name not in known]
    return [t("unused", v=version, names=t.names(unused), which=t(which))] if unused else []


def _wrong_kind(value: object, kind: str) -> bool:
    if value is None or _is_nan(value):
        return False
    # encode_matrix reads numbers (bools too) as floats and only text as a category level.
    is_number = isinstance(value, (int, float, np.integer, np.floating, np.bool_))
    return not is_number if kind == "numeric" else not isinstance(value, str)


# --- values and sentences --------------------------------------------------------------------------


def _is_nan(value: object) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _differs(a: object, b: object) -> bool:
    return display_value(a) != display_value(b)


def _direction(a: object, b: object) -> str:
    a, b = display_value(a), display_value(b)
    if a == b:
        return "same"
    if isinstance(a, float) and isinstance(b, float):
        return "rose" if b > a else "fell"
    return "changed"


def _signed(n: int) -> str:
    return f"{n:+d}" if n else "±0"


def _headline(old: int, new: int, total: int, t: "_Texts") -> str:
    key = "score_rose" if total > 0 else "score_fell" if total < 0 else "score_same"
    return t(key, old=old, new=new, total=_signed(total))


class _Texts:
    """The sentences of one language, and values written the way ``features.catalog`` writes them."""

    def __init__(self, lang: Lang):
        self.lang = lang
        self.i = LANGS.index(lang)

    def __call__(self, key: str, **values: object) -> str:
        return _T[key][self.i].format(**values)

    def number(self, effect: float) -> str:
        """How a driver moved the score, in words (the log-odds behind it stay in ``Driver.effect``)."""
        strength = 0 if abs(effect) >= 0.5 else 1 if abs(effect) >= 0.1 else 2
        up = effect > 0
        if self.lang == "de":
            return ("hebt" if up else "senkt") + " den Score" + (" stark", "", " leicht")[strength]
        return ("strongly ", "", "slightly ")[strength] + ("raises" if up else "lowers") + " the score"

    def names(self, names: list[str]) -> str:
        shown = ", ".join(names[:_LISTED_NAMES])
        rest = len(names) - _LISTED_NAMES
        return self("more", names=shown, n=rest) if rest > 0 else shown

    def what(self, feature: str, spec: FeatureSpec) -> str:
        """'Pricing page visits (last 30 days)'; other features by their catalog label."""
        match = _WINDOW.match(feature)
        if match and signal_of(feature, spec) == match["what"]:
            return self("window", what=signal_label(match["what"], self.lang), days=match["days"])
        return label(feature, self.lang)

    def value(self, feature: str, value: object) -> str:
        value = display_value(value)
        if feature in FLAGS and isinstance(value, float):
            return self("yes" if value else "no")
        if feature in NOTHING_YET and isinstance(value, float) and value >= NOTHING_YET[feature][0]:
            return self("none_yet")
        # features.catalog's own value format (its thousands marks, its names of levels).
        return _value(feature, value, self.lang)
