"""The preregistration plan: schema check and defaults, shared by the analysis and the web app."""

from __future__ import annotations

import math
import re
from typing import Any

from analysis.vocabulary import DEFAULT_RULES, FIXED_MEASURES

OUTCOMES = (
    "recognition_accuracy",
    "d_prime",
    "criterion",
    "choice_real",
    "detection_accuracy",
    "detection_d_prime",
)
DIRECTIONS = ("less", "greater", "two-sided")
CORRECTIONS = ("holm", "bh")
# The primary model of rating outcomes: the paired t-test on participant means, or the
# cumulative-link mixed model of single ratings (analysis.clmm).
RATING_MODELS = ("paired_t", "clmm")
FIELDS = (
    "hypotheses",
    "primary_outcomes",
    "alpha",
    "correction",
    "exclusions",
    "equivalence_bounds",
    "target_n",
    "rating_model",
    "models",
    "bayes_rscale",
)
DEFAULT_ALPHA = 0.05
# The mixed models: random-effects structure, model of rating outcomes (0/1 outcomes always
# use the logistic GLMM) and moderators (identity descriptors or participants.csv columns).
RANDOM_STRUCTURES = ("auto", "intercepts", "slopes")
RATING_FAMILIES = ["lmm"]
DEFAULT_MODELS: dict[str, Any] = {"random": "auto", "family": "lmm", "moderators": None}
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# Scale r of the Cauchy prior of the Bayes factors (BayesFactor's "medium", sqrt(2) / 2).
DEFAULT_BAYES_RSCALE = math.sqrt(2) / 2
_SCALE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def is_outcome_name(name: Any) -> bool:
    """True for a known outcome or a rating-scale key (any other identifier, e.g. ``trust``).

    The fixed measure keys are not rating scales, so they cannot name an outcome either.
    """
    return isinstance(name, str) and (
        name in OUTCOMES or (bool(_SCALE_KEY.match(name)) and name not in FIXED_MEASURES)
    )


def _outcome(value: Any, field: str) -> str:
    """Return value when it names an outcome, else raise naming the field."""
    if not is_outcome_name(value):
        raise ValueError(
            f"{field}: {value!r} is not an outcome (one of {', '.join(OUTCOMES)} "
            "or a rating-scale key such as 'trust')"
        )
    return value


def _number(value: Any, field: str) -> float:
    """A finite real number (bool is refused: true is not 1 in a plan)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field}: expected a number, got {value!r}")
    return float(value)


def _flag(value: Any, field: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise ValueError(f"{field}: expected true or false, got {value!r}")
    return value


def validate_plan(plan: dict | None) -> dict:
    """Check a preregistration plan and fill in the defaults.

    Parameters
    ----------
    plan : dict or None
        Fields (all optional): ``hypotheses`` (list of {outcome, direction: less | greater |
        two-sided, text}), ``primary_outcomes`` (list of outcome names), ``alpha`` (0 < alpha <
        0.5), ``correction`` ("holm" or "bh"), ``exclusions`` ({incomplete, attention,
        straightlining: bool; min_median_rt_ms: number >= 0 or null}), ``equivalence_bounds``
        ({outcome: [low, high]} with low < 0 < high, on the scale of the estimate),
        ``target_n`` (positive integer), ``rating_model`` ("paired_t" or "clmm": the primary
        test of rating outcomes, the paired t-test on participant means or the ordinal mixed
        model of single ratings),
        ``models`` ({random: auto | intercepts | slopes,
        family: lmm, moderators: list of column names or null for every identity
        descriptor}), ``bayes_rscale`` (scale r > 0 of the Cauchy prior on the standardised
        difference in the Bayes factors).

    Returns
    -------
    dict
        Every field present: alpha 0.05, correction "holm", the contract's default exclusions,
        empty hypotheses / primary_outcomes / equivalence_bounds, target_n None, rating_model
        "paired_t", bayes_rscale sqrt(2) / 2; ``models``
        only when the plan has it (with its defaults filled in). Validating the result again
        returns it unchanged.

    Raises
    ------
    ValueError
        Naming the first invalid field (e.g. ``hypotheses[0].direction``) and its value; unknown
        fields are refused so that a misspelt rule cannot be silently ignored.
    """
    if plan is None:
        plan = {}
    if not isinstance(plan, dict):
        raise ValueError(f"plan: expected a JSON object, got {type(plan).__name__}")
    unknown = sorted(set(plan) - set(FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown plan field (allowed: {', '.join(FIELDS)})")

    hypotheses = []
    raw_hypotheses = plan.get("hypotheses", [])
    if not isinstance(raw_hypotheses, list):
        raise ValueError(f"hypotheses: expected a list, got {raw_hypotheses!r}")
    for i, h in enumerate(raw_hypotheses):
        field = f"hypotheses[{i}]"
        if not isinstance(h, dict):
            raise ValueError(f"{field}: expected an object, got {h!r}")
        extra = sorted(set(h) - {"outcome", "direction", "text"})
        if extra:
            raise ValueError(
                f"{field}.{extra[0]}: unknown field (allowed: outcome, direction, text)"
            )
        if "outcome" not in h:
            raise ValueError(f"{field}.outcome: required")
        direction = h.get("direction", "two-sided")
        if direction not in DIRECTIONS:
            raise ValueError(
                f"{field}.direction: {direction!r} is not one of {', '.join(DIRECTIONS)}"
            )
        text = h.get("text", "")
        if not isinstance(text, str):
            raise ValueError(f"{field}.text: expected text, got {text!r}")
        hypotheses.append(
            {
                "outcome": _outcome(h["outcome"], f"{field}.outcome"),
                "direction": direction,
                "text": text.strip(),
            }
        )
    seen = [h["outcome"] for h in hypotheses]
    repeated = sorted({o for o in seen if seen.count(o) > 1})
    if repeated:
        raise ValueError(f"hypotheses: outcome {repeated[0]!r} has more than one hypothesis")

    primary = plan.get("primary_outcomes", [])
    if not isinstance(primary, list):
        raise ValueError(f"primary_outcomes: expected a list, got {primary!r}")
    primary = [_outcome(o, f"primary_outcomes[{i}]") for i, o in enumerate(primary)]
    if len(set(primary)) != len(primary):
        raise ValueError(f"primary_outcomes: an outcome is listed twice in {primary!r}")

    alpha = _number(plan.get("alpha", DEFAULT_ALPHA), "alpha")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: must be between 0 and 0.5, got {alpha!r}")
    correction = plan.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction: {correction!r} is not one of {', '.join(CORRECTIONS)}")

    raw_rules = plan.get("exclusions", {})
    if not isinstance(raw_rules, dict):
        raise ValueError(f"exclusions: expected an object, got {raw_rules!r}")
    extra = sorted(set(raw_rules) - set(DEFAULT_RULES))
    if extra:
        raise ValueError(
            f"exclusions.{extra[0]}: unknown rule (allowed: {', '.join(DEFAULT_RULES)})"
        )
    rules = dict(DEFAULT_RULES)
    for key in ("incomplete", "attention", "straightlining"):
        if key in raw_rules:
            rules[key] = _flag(raw_rules[key], f"exclusions.{key}")
    if "min_median_rt_ms" in raw_rules:
        limit = raw_rules["min_median_rt_ms"]
        if limit is not None:
            limit = _number(limit, "exclusions.min_median_rt_ms")
            if limit < 0:
                raise ValueError(f"exclusions.min_median_rt_ms: must be >= 0, got {limit!r}")
        rules["min_median_rt_ms"] = limit

    raw_bounds = plan.get("equivalence_bounds", {})
    if not isinstance(raw_bounds, dict):
        raise ValueError(f"equivalence_bounds: expected an object, got {raw_bounds!r}")
    bounds = {}
    for outcome, pair in raw_bounds.items():
        field = f"equivalence_bounds.{outcome}"
        _outcome(outcome, field)
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{field}: expected [low, high], got {pair!r}")
        low, high = (_number(v, field) for v in pair)
        if not low < 0 < high:
            raise ValueError(f"{field}: need low < 0 < high, got [{low}, {high}]")
        bounds[outcome] = [low, high]

    target_n = plan.get("target_n")
    if target_n is not None and (
        isinstance(target_n, bool) or not isinstance(target_n, int) or target_n < 1
    ):
        raise ValueError(f"target_n: expected a positive integer, got {target_n!r}")

    rating_model = plan.get("rating_model", "paired_t")
    if rating_model not in RATING_MODELS:
        raise ValueError(f"rating_model: {rating_model!r} is not one of {', '.join(RATING_MODELS)}")

    rscale = _number(plan.get("bayes_rscale", DEFAULT_BAYES_RSCALE), "bayes_rscale")
    if not rscale > 0:
        raise ValueError(f"bayes_rscale: must be above 0, got {rscale!r}")

    validated = {
        "hypotheses": hypotheses,
        "primary_outcomes": primary,
        "alpha": alpha,
        "correction": correction,
        "exclusions": rules,
        "equivalence_bounds": bounds,
        "target_n": target_n,
        "rating_model": rating_model,
        "bayes_rscale": rscale,
    }
    if "models" in plan:
        validated["models"] = validate_models(plan["models"])
    return validated


def validate_models(models: Any, field: str = "models") -> dict[str, Any]:
    """Check the plan's ``models`` object and fill in its defaults (see `validate_plan`)."""
    if models is None:
        models = {}
    if not isinstance(models, dict):
        raise ValueError(f"{field}: expected an object, got {models!r}")
    extra = sorted(set(models) - set(DEFAULT_MODELS))
    if extra:
        raise ValueError(
            f"{field}.{extra[0]}: unknown field (allowed: {', '.join(DEFAULT_MODELS)})"
        )
    out = {**DEFAULT_MODELS, **models}
    if out["random"] not in RANDOM_STRUCTURES:
        raise ValueError(
            f"{field}.random: {out['random']!r} is not one of {', '.join(RANDOM_STRUCTURES)}"
        )
    if out["family"] not in RATING_FAMILIES:
        raise ValueError(
            f"{field}.family: {out['family']!r} is not one of {', '.join(RATING_FAMILIES)}"
        )
    names = out["moderators"]
    if names is not None:
        if not isinstance(names, list):
            raise ValueError(f"{field}.moderators: expected a list of column names, got {names!r}")
        for i, name in enumerate(names):
            if not isinstance(name, str) or not _COLUMN.match(name):
                raise ValueError(f"{field}.moderators[{i}]: {name!r} is not a column name")
        if len(set(names)) != len(names):
            raise ValueError(f"{field}.moderators: a column is listed twice in {names!r}")
        out["moderators"] = list(names)
    return out


def plan_models(plan: dict) -> dict[str, Any]:
    """The models of a validated plan, the defaults when it names none."""
    return dict(plan.get("models") or DEFAULT_MODELS)


def preregistered_outcomes(plan: dict) -> set[str]:
    """Outcomes named as primary or in a hypothesis of a validated plan."""
    return set(plan["primary_outcomes"]) | {h["outcome"] for h in plan["hypotheses"]}
