"""Run the whole analysis of a study and write results.json and tidy CSV tables."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import analysis
from analysis import bayes, stats
from analysis import moderators as moderators_
from analysis.corrections import adjust
from analysis.descriptives import describe, within_ci
from analysis.exclusions import included_trials, screen_participants
from analysis.findings import findings_for, untested_finding
from analysis.io import StudyData, load
from analysis.outcomes import Outcome, study_outcomes, trial_scores, unit_scores
from analysis.plan import (
    DEFAULT_MODELS,
    plan_models,
    preregistered_outcomes,
    validate_models,
    validate_plan,
)
from analysis.sdt import detect_sdt, match_sdt, memory_sdt
from analysis.vocabulary import FAMILY_LABELS

# Families of tests corrected together, in report order, with what each one asks.
FAMILIES = {
    "primary": "the participant-level test of each outcome (of the preregistered outcomes when "
    "the plan names any)",
    "secondary": "the participant-level tests of outcomes the plan did not name",
    "participant_wilcoxon": "Wilcoxon signed-rank tests on participant scores (robustness)",
    "identity_t": "t-tests on identity scores (generalisation over identities)",
    "identity_wilcoxon": "Wilcoxon signed-rank tests on identity scores",
    "equivalence": "TOST equivalence tests against the preregistered bounds",
    "pooled_binomial": "binomial tests on all trials pooled (ignores that trials are nested)",
    "mixed": "mixed models with crossed random effects of participants and identities",
    "participant_t": "paired t-tests on participant scores, when the plan makes the ordinal "
    "mixed model (CLMM) the primary model of the ratings",
}
UNIT_LEVELS = ("participant", "identity")
SLOPES: dict[str, bool | str] = {"auto": "auto", "intercepts": False, "slopes": True}


@dataclass
class Report:
    """The results dict (results.json) and the tidy tables written beside it."""

    results: dict
    tables: dict[str, pd.DataFrame]


class _Collector:
    """Gathers test dicts and warnings while the analysis runs."""

    def __init__(self, n_excluded: int):
        self.tests: list[dict] = []
        self.warnings: list[str] = []
        self.n_excluded = n_excluded

    def attempt(
        self,
        outcome: Outcome,
        family: str,
        level: str,
        what: str,
        compute: Callable[[], pd.DataFrame],
        **extra,
    ) -> dict | None:
        """Run one test; on a ValueError record a warning instead of a row."""
        try:
            row = compute()
        except ValueError as exc:
            self.warnings.append(f"{outcome.name}: {what} at the {level} level not computed: {exc}")
            return None
        test = {k: v for k, v in row.iloc[0].to_dict().items()}
        return self.add(outcome, family, level, test, **extra)

    def add(self, outcome: Outcome, family: str, level: str, test: dict, **extra) -> dict:
        """Store a test dict with the fields every test carries."""
        if "mean_x" in test:
            test["mean_ai"], test["mean_real"] = test.pop("mean_x"), test.pop("mean_y")
        record = {
            "outcome": outcome.name,
            "method": test.pop("method"),
            "level": level,
            "family": family,
            **test,
            "n_excluded": self.n_excluded,
            **extra,
        }
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                record[key] = None
                why = (
                    " (too few differences for the interval)"
                    if key.startswith("ci_") and record["method"] == "wilcoxon"
                    else ""
                )
                self.warnings.append(
                    f"{outcome.name}: {record['method']} at the {level} level: "
                    f"{key} is not available{why}; written as null"
                )
        if outcome.scale:
            record["scale"] = list(outcome.scale)
        self.tests.append(record)
        return record


def _within_intervals(scores: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each condition's mean and 95% within-participant CI (Cousineau-Morey) from participant
    scores.

    Only participants with both conditions count (``within_n``), as in the paired test and the
    report's figures; the limits are None below two such participants.
    """
    paired = scores[scores["condition"].isin(["real", "ai"])]
    if paired.empty:
        return {}
    table = within_ci(paired, "value", "condition", "unit")
    out = {}
    for row in table.itertuples():
        low, high = float(row.ci_low), float(row.ci_high)
        out[str(row.condition)] = {
            "within_mean": float(row.mean),
            "within_ci_low": low if math.isfinite(low) else None,
            "within_ci_high": high if math.isfinite(high) else None,
            "within_n": int(row.n),
        }
    return out


def _estimate_label(outcome: Outcome, method: str) -> str:
    """What the estimate of a test is, in words."""
    if method == "glmm" and outcome.name == "memory_hit_rate":
        return "AI minus real (log-odds of saying a studied person was met before)"
    if method == "glmm":
        return "AI minus real (log-odds of a correct answer)"
    if method == "clmm":
        return "AI minus real (log cumulative odds of a higher rating)"
    if outcome.paired or method == "lmm":
        return "AI minus real"
    if method in ("binomial",):
        return f"proportion minus chance ({outcome.reference_value:g})"
    if method == "wilcoxon":
        return f"pseudo-median minus {outcome.reference_value:g}"
    return f"mean minus {outcome.reference_value:g}"


def _unit_tests(
    tests: _Collector,
    outcome: Outcome,
    scores: pd.DataFrame,
    level: str,
    main_family: str,
    bounds: list | None,
    alpha: float,
    continuity_correction: bool = False,
    clmm_primary: bool = False,
    rscale: float = bayes.DEFAULT_RSCALE,
) -> None:
    """t and Wilcoxon tests (and TOST) of one outcome on participant or identity scores; the
    participant-level t-test carries its JZS Bayes factor."""
    t_family = main_family if level == "participant" else "identity_t"
    if level == "participant" and clmm_primary and outcome.kind == "rating":
        t_family = "participant_t"
    w_family = "participant_wilcoxon" if level == "participant" else "identity_wilcoxon"
    if outcome.paired:
        wide = stats.paired_wide(scores, "value", "condition", "unit")
        if len(wide) < 2:
            n_ai = int((scores["condition"] == "ai").sum())
            n_real = int((scores["condition"] == "real").sum())
            tests.warnings.append(
                f"{outcome.name}: no {level}-level tests: {len(wide)} {level}(s) have both "
                f"conditions (ai: {n_ai}, real: {n_real}); a paired test needs at least 2"
            )
            return
        x, y = wide["ai"].to_numpy(), wide["real"].to_numpy()
        t_test = tests.attempt(
            outcome, t_family, level, "paired t-test", partial(stats.paired_t, x, y)
        )
        if t_test is not None and level == "participant":
            _add_bayes(tests, outcome, t_test, partial(bayes.ttest_bf, x, y, rscale=rscale))
        tests.attempt(
            outcome,
            w_family,
            level,
            "Wilcoxon test",
            lambda: stats.wilcoxon(x, y, correct=continuity_correction),
        )
        if bounds and level == "participant":
            tests.attempt(
                outcome,
                "equivalence",
                level,
                "TOST",
                lambda: stats.tost(x, y, low=bounds[0], high=bounds[1], alpha=alpha),
            )
        return
    x = scores["value"].to_numpy()
    mu = outcome.reference_value
    t_test = tests.attempt(
        outcome, t_family, level, "one-sample t-test", partial(stats.one_sample_t, x, mu)
    )
    if t_test is not None and level == "participant":
        _add_bayes(tests, outcome, t_test, partial(bayes.ttest_bf, x, mu=mu, rscale=rscale))
    tests.attempt(
        outcome,
        w_family,
        level,
        "Wilcoxon test",
        lambda: stats.wilcoxon(x, mu=mu, correct=continuity_correction),
        reference_value=mu,
    )
    if bounds and level == "participant":
        tests.attempt(
            outcome,
            "equivalence",
            level,
            "TOST",
            lambda: stats.tost(x, low=bounds[0], high=bounds[1], mu=mu, alpha=alpha),
            reference_value=mu,
        )


def _add_bayes(
    tests: _Collector, outcome: Outcome, t_test: dict, compute: Callable[[], bayes.BayesFactor]
) -> None:
    """Put the JZS Bayes factor beside a t-test: bf10, bf01, log_bf10 (always finite) and
    bf_rscale; a failure becomes a warning and null fields."""
    try:
        bf = compute()
    except ValueError as exc:
        t_test.update(bf10=None, bf01=None, log_bf10=None, bf_rscale=None)
        tests.warnings.append(f"{outcome.name}: Bayes factor not computed: {exc}")
        return
    t_test.update(
        bf10=bf.bf10 if math.isfinite(bf.bf10) else None,
        bf01=bf.bf01 if math.isfinite(bf.bf01) else None,
        log_bf10=bf.log_bf10,
        bf_rscale=bf.rscale,
    )


def _mixed_tests(
    tests: _Collector,
    outcome: Outcome,
    rows: pd.DataFrame,
    random_effects: list[dict],
    models: dict | None = None,
) -> Any:
    """Fit the LMM (ratings) or GLMM (accuracies) of one outcome; a failure becomes a warning.

    ``models`` (see `analysis.plan.validate_models`) sets the random-effects structure and the
    model of rating outcomes. Returns the fit, or None.
    """
    models = models or DEFAULT_MODELS
    method = models["family"] if outcome.kind == "rating" else "glmm"
    try:
        from analysis import mixed
    except ImportError as exc:
        tests.warnings.append(
            f"{outcome.name}: mixed model not fitted: analysis.mixed is not available ({exc})"
        )
        return None
    rows = rows[rows["condition"].isin(["ai", "real"])]
    # Named as in trials.csv (or, for the memory test's hits, as the R script names it), so
    # the formula in results.json reads as lme4 would fit it.
    if outcome.kind == "rating":
        dv = "value"
    else:
        dv = "said_old" if outcome.name == "memory_hit_rate" else "correct"
    try:
        fit = mixed.FAMILIES[method].fit(
            rows.rename(columns={"value": dv}), dv=dv, slopes=SLOPES[models["random"]]
        )
    except Exception as exc:  # noqa: BLE001 - numerical failures must not stop the report
        tests.warnings.append(f"{outcome.name}: {method} not fitted: {type(exc).__name__}: {exc}")
        return None
    variances = {(r.get("group"), r.get("term")): r.get("variance") for r in fit.random_effects}
    intercepts = [variances.get((g, "(Intercept)")) for g in ("participant", "identity")]
    total = sum(v for v in intercepts if v is not None) + (fit.residual_variance or 0.0)
    if method == "glmm":
        effect, effect_name = math.exp(fit.estimate), "odds_ratio"
    elif total > 0:
        # Westfall, Kenny & Judd (2014): the difference over the SD of a single observation.
        effect, effect_name = fit.estimate / math.sqrt(total), "d_westfall"
    else:
        effect, effect_name = None, None
    tests.add(
        outcome,
        "mixed",
        "trial",
        _fit_row(fit, method, "t" if method == "lmm" else "z", fit.df, effect, effect_name),
    )
    _fit_notes(tests, random_effects, outcome, method, fit)
    if fit.residual_variance is not None:
        random_effects.append(
            {
                "outcome": outcome.name,
                "method": method,
                "group": "residual",
                "term": None,
                "variance": fit.residual_variance,
            }
        )
    return fit


def _fit_row(
    fit: Any,
    method: str,
    statistic_name: str,
    df: float | None,
    effect: float | None,
    effect_name: str | None,
) -> dict[str, Any]:
    """The results.json row of a mixed model's condition effect (LMM, GLMM or CLMM)."""
    return {
        "method": method,
        "estimate": fit.estimate,
        "ci_low": fit.ci_low,
        "ci_high": fit.ci_high,
        "confidence": 0.95,
        "statistic": fit.statistic,
        "statistic_name": statistic_name,
        "df": df,
        "p_value": fit.p_value,
        "effect_size": effect,
        "effect_size_name": effect_name,
        "n": fit.n_obs,
        "se": fit.se,
        "n_participants": fit.n_participants,
        "n_identities": fit.n_identities,
        "formula": fit.formula,
        "singular": bool(fit.singular),
        "converged": bool(fit.converged),
        "notes": list(fit.notes),
    }


def _fit_notes(
    tests: _Collector, random_effects: list[dict], outcome: Outcome, method: str, fit: Any
) -> None:
    """Pass a mixed model's notes on as warnings and collect its random-effect variances."""
    for note in fit.notes:
        tests.warnings.append(f"{outcome.name}: {method}: {note}")
    if not fit.converged:
        tests.warnings.append(f"{outcome.name}: {method} did not converge; treat it with care")
    for r in fit.random_effects:
        random_effects.append({"outcome": outcome.name, "method": method, **r})


def _clmm_test(
    tests: _Collector,
    outcome: Outcome,
    rows: pd.DataFrame,
    random_effects: list[dict],
    family: str,
    random: str = "auto",
) -> Any:
    """Fit the ordinal mixed model (CLMM) of one rating outcome; a failure becomes a warning.

    ``random`` is the plan's random-effects structure (auto, intercepts, slopes), as for the
    LMM. Returns the fit, or None when it failed.
    """
    from analysis.clmm import fit_clmm

    rows = rows[rows["condition"].isin(["ai", "real"])]
    scale = list(range(int(outcome.scale[0]), int(outcome.scale[1]) + 1)) if outcome.scale else None
    try:
        fit = fit_clmm(rows, dv="value", categories=scale, slopes=SLOPES[random])
    except Exception as exc:  # noqa: BLE001 - numerical failures must not stop the report
        tests.warnings.append(f"{outcome.name}: clmm not fitted: {type(exc).__name__}: {exc}")
        return None
    tests.add(
        outcome,
        family,
        "trial",
        {
            **_fit_row(fit, "clmm", "z", None, math.exp(fit.estimate), "cumulative_odds_ratio"),
            "thresholds": fit.thresholds,
            "log_likelihood": fit.log_likelihood,
        },
    )
    _fit_notes(tests, random_effects, outcome, "clmm", fit)
    return fit


def _sdt_warnings(table: pd.DataFrame, what: str, level: str) -> list[str]:
    """Say how many SDT cells needed the log-linear correction or could not be measured."""
    notes = []
    unmeasured = table["d_prime"].isna()
    if unmeasured.any():
        notes.append(
            f"{what}: {int(unmeasured.sum())} {level} cell(s) lack signal or noise "
            "trials; d' and c are not defined there and those cells are left out"
        )
    extreme = ~unmeasured & (table["hit_rate"].isin([0.0, 1.0]) | table["fa_rate"].isin([0.0, 1.0]))
    if extreme.any():
        notes.append(
            f"{what}: {int(extreme.sum())} of {int((~unmeasured).sum())} {level} cell(s) "
            "have a hit or false-alarm rate of 0 or 1 (e.g. all hits); the log-linear "
            "correction keeps d' finite"
        )
    return notes


def _detection_by_participant(data: pd.DataFrame, correction: str, alpha: float) -> pd.DataFrame:
    """Each participant's detection accuracy with an exact binomial test against 0.5."""
    rows = data[(data["task"] == "detect") & (data["measure"] == "source")]
    counts = rows.groupby("participant")["correct"].agg(correct="sum", n="size").reset_index()
    tests = [
        stats.binomial(int(c), int(n), 0.5).iloc[0]
        for c, n in zip(counts["correct"], counts["n"], strict=True)
    ]
    table = counts.assign(
        accuracy=counts["correct"] / counts["n"],
        ci_low=[t["ci_low"] + 0.5 for t in tests],
        ci_high=[t["ci_high"] + 0.5 for t in tests],
        p_value=[t["p_value"] for t in tests],
    )
    table["p_adjusted"] = adjust(table["p_value"], correction)
    table["correction"] = correction
    table["above_chance"] = (table["p_adjusted"] < alpha) & (table["accuracy"] > 0.5)
    table["below_chance"] = (table["p_adjusted"] < alpha) & (table["accuracy"] < 0.5)
    return table


def _memory_summary(data: pd.DataFrame, table: pd.DataFrame) -> dict[str, Any]:
    """The memory test at a glance: hits by encoding condition, false alarms, d' and c.

    Means over participants of their rates (raw) and of their d' and c (log-linear corrected),
    per condition the person was studied in; the false-alarm rate is one per participant (foils
    were never studied), so it is taken once per participant.
    """
    rows = data[(data["task"] == "recognise") & (data["measure"] == "old")]
    foils = rows[~rows["condition"].isin(["real", "ai"])]
    per_participant_fa = foils.groupby("participant")["value_number"].mean()
    conditions = {}
    for condition in ("real", "ai"):
        cells = table[(table["condition"] == condition) & table["d_prime"].notna()]
        conditions[condition] = {
            "n_participants": len(cells),
            "hit_rate": float(cells["hit_rate"].mean()) if len(cells) else None,
            "d_prime": float(cells["d_prime"].mean()) if len(cells) else None,
            "criterion": float(cells["criterion"].mean()) if len(cells) else None,
        }
    return {
        "conditions": conditions,
        "false_alarm_rate": float(per_participant_fa.mean()) if len(per_participant_fa) else None,
        "n_targets": int(rows["condition"].isin(["real", "ai"]).sum()),
        "n_foils": len(foils),
    }


def _old_new_glmm(data: pd.DataFrame, warnings: list[str]) -> dict[str, Any] | None:
    """The old/new GLMM by status (`analysis.oldnew`); a failure becomes a warning."""
    from analysis.oldnew import fit_old_new

    try:
        return fit_old_new(data)
    except Exception as exc:  # noqa: BLE001 - numerical failures must not stop the report
        warnings.append(f"memory old/new glmm not fitted: {type(exc).__name__}: {exc}")
        return None


def _correct(tests: list[dict], correction: str) -> None:
    """Fill p_adjusted and correction within each family."""
    for family in FAMILIES:
        members = [t for t in tests if t["family"] == family]
        p = [t["p_value"] if t.get("p_value") is not None else np.nan for t in members]
        for test, adjusted in zip(members, adjust(p, correction), strict=True):
            test["p_adjusted"] = None if np.isnan(adjusted) else float(adjusted)
            test["correction"] = correction


def _json_ready(value: Any, path: str, warnings: list[str]) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and infinities to null with a warning."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v, f"{path}.{k}", warnings) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, f"{path}[{i}]", warnings) for i, v in enumerate(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            warnings.append(f"{path} is not a finite number ({value}); written as null")
            return None
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA:
        return None
    return str(value)


def _records(table: pd.DataFrame) -> list[dict]:
    """DataFrame rows as dicts, with NaN as None."""
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]


def analyse(
    data: StudyData | pd.DataFrame,
    participants: pd.DataFrame | None = None,
    plan: dict | None = None,
    *,
    scale_ranges: dict | None = None,
    mixed_models: bool = True,
    continuity_correction: bool = False,
    identities: pd.DataFrame | None = None,
    random: str | None = None,
    family: str | None = None,
    moderators: list[str] | None = None,
    rscale: float | str | None = None,
) -> Report:
    """Run every analysis of a study.

    Parameters
    ----------
    data : StudyData or pandas.DataFrame
        From `analysis.io.load`, or a trials DataFrame (validated here).
    participants : pandas.DataFrame, optional
        Participants table, when `data` is a DataFrame.
    plan : dict, optional
        Preregistration plan (see `analysis.plan.validate_plan`); None uses the defaults and
        marks every test exploratory.
    scale_ranges : dict, optional
        Rating-scale ranges, passed to `analysis.io.load` when `data` is a DataFrame.
    mixed_models : bool
        Fit the mixed models (the slowest part).
    continuity_correction : bool
        Wilcoxon tests with R's default continuity correction (``correct = TRUE``); off by
        default, as in earlier reports. Each Wilcoxon test records the choice in
        ``continuity_correction``.
    identities : pandas.DataFrame, optional
        Identities table (identity and descriptors), when `data` is a DataFrame.
    random, family, moderators : optional
        The mixed models' random effects (auto, intercepts, slopes), model of rating
        outcomes (lmm) and moderators (column names; [] for none); each, when given,
        overrides the plan's ``models`` (defaults: auto, lmm, every identity descriptor).
    rscale : float or str, optional
        Scale r of the Cauchy prior of the Bayes factors (a positive finite number, or
        medium, wide, ultrawide); overrides the plan's ``bayes_rscale`` (default sqrt(2)/2),
        with a warning when a plan named another.

    Returns
    -------
    Report
        ``results`` follows DATA_CONTRACT.md (results.json) with the additions ``analysis_version``,
        ``alpha``, ``correction``, ``plan``, ``data_sha256``, ``n_excluded``, ``flags``,
        ``families``, ``warnings`` (and ``detection_by_participant`` with a detect block);
        ``tables`` holds the tidy CSV tables.

    Raises
    ------
    ValueError
        Invalid plan, or no participant left after exclusions.
    """
    if not isinstance(data, StudyData):
        data = load(data, participants, scale_ranges=scale_ranges, identities=identities)
    plan_given = plan is not None
    plan_names_rscale = plan is not None and "bayes_rscale" in plan
    plan = validate_plan(plan)
    planned = plan_models(plan)
    overrides = {"random": random, "family": family, "moderators": moderators}
    models = validate_models({**planned, **{k: v for k, v in overrides.items() if v is not None}})
    alpha, correction = plan["alpha"], plan["correction"]
    prior_scale = plan["bayes_rscale"] if rscale is None else bayes.rscale_value(rscale)
    preregistered = preregistered_outcomes(plan)
    trials, parts = data.trials, data.participants

    screen = screen_participants(trials, parts, plan["exclusions"])
    excluded = screen[screen["excluded"]]
    tests = _Collector(n_excluded=len(excluded))
    warnings = tests.warnings
    if plan_names_rscale and prior_scale != plan["bayes_rscale"]:
        warnings.append(
            f"the Bayes factors use the prior scale r = {prior_scale:.4g} given for this run, "
            f"not the plan's bayes_rscale = {plan['bayes_rscale']:.4g}"
        )
    if parts is None and plan["exclusions"]["incomplete"]:
        warnings.append(
            "no participants table: completion status is unknown, so the "
            "'incomplete' exclusion rule was not applied"
        )
    no_rt = screen["median_rt_ms"].isna() & ~screen["excluded"]
    if plan["exclusions"]["min_median_rt_ms"] is not None and no_rt.any():
        warnings.append(
            f"{int(no_rt.sum())} included participant(s) have no measured rt_ms; "
            "the median-rt rule could not be applied to them"
        )
    flagged = screen[screen["straightlining"]]
    if len(flagged) and not plan["exclusions"]["straightlining"]:
        warnings.append(
            f"{len(flagged)} participant(s) gave the same rating on every rate trial "
            "(flagged as straight-lining, not excluded: the rule is off)"
        )

    kept = included_trials(trials, screen)
    n_kept = int((~screen["excluded"]).sum())
    if kept.empty:
        reasons = excluded["reason"].str.split("; ").explode().value_counts()
        raise ValueError(
            f"no data left to analyse: {len(excluded)} of {len(screen)} participant(s) excluded "
            f"({', '.join(f'{r}: {c}' for r, c in reasons.items()) or 'none'}) and the others "
            "have no trials"
        )
    with_data = set(kept["participant"])
    empty = sorted(set(screen.loc[~screen["excluded"], "participant"]) - with_data)
    if empty:
        warnings.append(
            f"{len(empty)} included participant(s) have no trials: "
            f"{', '.join(empty[:5])}" + (" ..." if len(empty) > 5 else "")
        )
    if len(with_data) == 1:
        warnings.append(
            "only one participant is included: participant-level tests need at least two"
        )

    outcomes = study_outcomes(kept, data.scale_ranges)
    if not outcomes:
        warnings.append(
            "the data hold no analysable outcome (no match, rate, choose, detect or recognise"
            " trials)"
        )
    missing = sorted(preregistered - {o.name for o in outcomes})
    for name in missing:
        warnings.append(f"preregistered outcome {name!r} has no data in this study")

    descriptives: list[dict[str, Any]] = []
    random_effects: list[dict[str, Any]] = []
    chosen = (
        moderators_.choose_moderators(data.identities, parts, models["moderators"], warnings)
        if mixed_models
        else []
    )
    moderation: list[dict[str, Any]] = []
    score_tables: dict[str, list[pd.DataFrame]] = {level: [] for level in UNIT_LEVELS}
    clmm_primary = plan["rating_model"] == "clmm"
    if clmm_primary and not mixed_models:
        warnings.append(
            "the plan names the ordinal mixed model (CLMM) as the primary model of the ratings, "
            "but mixed models were not fitted: the ratings have no primary test"
        )
    for outcome in outcomes:
        named = not preregistered or outcome.name in preregistered
        main_family = "primary" if named else "secondary"
        bounds = plan["equivalence_bounds"].get(outcome.name)
        for level in UNIT_LEVELS:
            scores = unit_scores(kept, outcome, level)
            described = scores
            if outcome.kind == "proportion" and not outcome.paired:
                # Accuracy on AI and on real headshots apart shows a bias towards one answer.
                described = pd.concat(
                    [scores, unit_scores(kept, outcome, level, True)], ignore_index=True
                )
            score_tables[level].append(described.assign(outcome=outcome.name))
            within = _within_intervals(scores) if outcome.paired and level == "participant" else {}
            for row in _records(describe(described, "value", by=["condition"])):
                descriptives.append(
                    {
                        "outcome": outcome.name,
                        "level": level,
                        **row,
                        "condition": row["condition"] or None,
                        "n_excluded": len(excluded),
                        **within.get(row["condition"], {}),
                    }
                )
            _unit_tests(
                tests,
                outcome,
                scores,
                level,
                main_family,
                bounds,
                alpha,
                continuity_correction,
                clmm_primary=clmm_primary,
                rscale=prior_scale,
            )
        if outcome.kind in ("proportion", "share") and not outcome.paired:
            rows = trial_scores(kept, outcome)
            tests.attempt(
                outcome,
                "pooled_binomial",
                "trial",
                "binomial test",
                partial(
                    stats.binomial, int(rows["value"].sum()), len(rows), outcome.reference_value
                ),
            )
        if mixed_models and (
            outcome.kind == "rating"
            or outcome.name in ("recognition_accuracy", "detection_accuracy", "memory_hit_rate")
        ):
            rows = trial_scores(kept, outcome)
            fit = _mixed_tests(tests, outcome, rows, random_effects, models)
            if fit is not None and chosen:
                rows = moderators_.with_moderators(rows, chosen, data.identities, parts)
                moderation += moderators_.moderation_tests(
                    outcome.name,
                    rows[rows["condition"].isin(["ai", "real"])],
                    fit.method,
                    fit.slopes,
                    chosen,
                    models["moderators"] or [],
                    list(outcome.scale) if outcome.scale else None,
                )
        if mixed_models and outcome.kind == "rating":
            family = main_family if clmm_primary else "mixed"
            rows = trial_scores(kept, outcome)
            fit = _clmm_test(tests, outcome, rows, random_effects, family, models["random"])
            if fit is not None and chosen:
                rows = moderators_.with_moderators(rows, chosen, data.identities, parts)
                moderation += moderators_.moderation_tests(
                    outcome.name,
                    rows[rows["condition"].isin(["ai", "real"])],
                    "clmm",
                    fit.slopes,
                    chosen,
                    models["moderators"] or [],
                    list(outcome.scale) if outcome.scale else None,
                )

    for test in tests.tests:
        test["estimate_label"] = _estimate_label(
            _outcome_of(outcomes, test["outcome"]), test["method"]
        )
        test["preregistered"] = bool(
            plan_given
            and test["outcome"] in preregistered
            and (test["level"] == "participant" or test["method"] == "clmm")
            and test["family"] in ("primary", "equivalence")
        )
    _correct(tests.tests, correction)
    moderators_.finish(moderation, alpha, correction)
    found = findings_for(tests.tests, alpha, plan["hypotheses"])
    hypotheses = {h["outcome"]: h for h in plan["hypotheses"]}
    for name in [o.name for o in outcomes] + missing:
        if name in {f["outcome"] for f in found}:
            continue
        prefix = f"{name}: "
        reason = next(
            (w[len(prefix) :] for w in warnings if w.startswith(prefix)), "no data in this study"
        )
        found.append(
            untested_finding(
                name, reason, plan_given and name in preregistered, hypotheses.get(name)
            )
        )

    sdt_tables = {}
    if any(o.task == "match" for o in outcomes):
        sdt_tables["sdt_match"] = match_sdt(kept)
        warnings.extend(
            _sdt_warnings(sdt_tables["sdt_match"], "recognition d'", "participant-condition")
        )
    if any(o.task == "detect" for o in outcomes):
        sdt_tables["sdt_detect"] = detect_sdt(kept)
        warnings.extend(_sdt_warnings(sdt_tables["sdt_detect"], "detection d'", "participant"))
    memory = None
    if any(o.task == "recognise" for o in outcomes):
        sdt_tables["sdt_memory"] = memory_sdt(kept)
        warnings.extend(
            _sdt_warnings(sdt_tables["sdt_memory"], "memory d'", "participant-condition")
        )
        memory = _memory_summary(kept, sdt_tables["sdt_memory"])
        memory["old_new_glmm"] = _old_new_glmm(kept, warnings)
    detection = None
    if any(o.name == "detection_accuracy" for o in outcomes):
        detection = _detection_by_participant(kept, correction, alpha)

    exclusions = [
        {"participant": r["participant"], "reason": r["reason"], "detail": r["detail"]}
        for r in _records(excluded)
    ]
    flags = [
        {"participant": p, "flag": "straightlining", "excluded": bool(e)}
        for p, e in zip(flagged["participant"], flagged["excluded"], strict=True)
    ]
    families = [
        {
            "family": f,
            "label": FAMILY_LABELS[f],
            "description": d,
            "correction": correction,
            "n_tests": sum(t["family"] == f for t in tests.tests),
        }
        for f, d in FAMILIES.items()
        if any(t["family"] == f for t in tests.tests)
    ]
    results = {
        "study": data.study,
        "analysis_version": analysis.__version__,
        "data_sha256": data.data_sha256,
        "input": {"trials": data.trials_source, "participants": data.participants_source},
        "alpha": alpha,
        "correction": correction,
        "plan": plan if plan_given else None,
        "n_participants": n_kept,
        "n_identities": int(kept["identity"].nunique()),
        "n_excluded": len(excluded),
        "exclusions": exclusions,
        "flags": flags,
        "descriptives": descriptives,
        "tests": tests.tests,
        "random_effects": random_effects,
        "families": families,
        "findings": found,
        "models": {**models, "moderators": [m for m, _source in chosen]},
        "moderation": moderation,
    }
    if detection is not None:
        results["detection_by_participant"] = _records(detection)
    if memory is not None:
        results["memory"] = memory
    clean = _json_ready(results, "results", warnings)
    clean["warnings"] = list(warnings)

    tables = {
        "exclusions": screen,
        "descriptives": pd.DataFrame(clean["descriptives"]),
        "tests": pd.DataFrame(
            [
                {
                    k: (v if not isinstance(v, list) else "; ".join(map(str, v)))
                    for k, v in t.items()
                }
                for t in clean["tests"]
            ]
        ),
        "findings": pd.DataFrame(
            [
                {**f, "supported_by": " ".join(map(str, f["supported_by"]))}
                for f in clean["findings"]
            ]
        ),
        "random_effects": pd.DataFrame(clean["random_effects"]),
        "participant_scores": _score_table(score_tables["participant"], "participant"),
        "identity_scores": _score_table(score_tables["identity"], "identity"),
        **sdt_tables,
    }
    if clean["moderation"]:
        tables["moderation"] = moderators_.moderation_table(clean["moderation"])
    if detection is not None:
        tables["detection_by_participant"] = detection
    return Report(clean, tables)


def _outcome_of(outcomes: list[Outcome], name: str) -> Outcome:
    """The Outcome called name."""
    return next(o for o in outcomes if o.name == name)


def _score_table(parts: list[pd.DataFrame], unit: str) -> pd.DataFrame:
    """Stack per-outcome unit scores into one tidy table."""
    columns = [unit, "outcome", "condition", "value", "n_trials"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True).rename(columns={"unit": unit})[columns]


def write_report(report: Report, out_dir) -> Path:
    """Write results.json and one CSV per table into out_dir; return the results.json path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in report.tables.items():
        table.to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    path = out / "results.json"
    text = json.dumps(report.results, indent=2, allow_nan=False, ensure_ascii=False)
    # Write then rename, so a reader never sees half a results.json.
    partial = out / ".results.json.tmp"
    partial.write_text(text + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def run(
    source,
    out_dir,
    plan: dict | None = None,
    *,
    participants=None,
    scale_ranges: dict | None = None,
    mixed_models: bool = True,
    continuity_correction: bool = False,
    identities=None,
    random: str | None = None,
    family: str | None = None,
    moderators: list[str] | None = None,
    rscale: float | str | None = None,
) -> Report:
    """Load a study export, analyse it and write the report into out_dir."""
    report = analyse(
        load(source, participants, scale_ranges=scale_ranges, identities=identities),
        plan=plan,
        mixed_models=mixed_models,
        continuity_correction=continuity_correction,
        random=random,
        family=family,
        moderators=moderators,
        rscale=rscale,
    )
    write_report(report, out_dir)
    return report
