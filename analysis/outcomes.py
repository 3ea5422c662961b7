"""The study's outcomes: what each one is, and its score per trial, participant or identity."""

from __future__ import annotations

import pandas as pd

from analysis.sdt import detect_sdt, match_sdt, memory_sdt
from analysis.vocabulary import (
    FIXED_MEASURES,
    FIXED_OUTCOMES,
    MEMORY_OUTCOMES,
    Outcome,
    rating_outcome,
)


def rating_scales(trials: pd.DataFrame) -> list[str]:
    """Rating-scale keys in the data, trust first, then in order of first appearance."""
    rows = trials[
        (trials["task"] == "rate")
        & (trials["attention_check"] == 0)
        & ~trials["measure"].isin(FIXED_MEASURES)
    ]
    keys = list(dict.fromkeys(rows["measure"]))
    return sorted(keys, key=lambda k: k != "trust")


def study_outcomes(trials: pd.DataFrame, scale_ranges: dict | None = None) -> list[Outcome]:
    """Every outcome the data can answer, in report order."""
    data = trials[trials["attention_check"] == 0]
    tasks = set(data["task"])
    found = [rating_outcome(k, scale_ranges) for k in rating_scales(data)]
    if "match" in tasks and (data["measure"] == "same").any():
        found += [FIXED_OUTCOMES[k] for k in ("recognition_accuracy", "d_prime", "criterion")]
    if "choose" in tasks and (data["measure"] == "choice").any():
        found.append(FIXED_OUTCOMES["choice_real"])
    if "detect" in tasks and (data["measure"] == "source").any():
        found += [FIXED_OUTCOMES[k] for k in ("detection_accuracy", "detection_d_prime")]
    if "recognise" in tasks and (data["measure"] == "old").any():
        found += [FIXED_OUTCOMES[k] for k in MEMORY_OUTCOMES]
    return found


def trial_scores(trials: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """Trial-level score of an outcome that has one (ratings and proportions).

    Returns
    -------
    pandas.DataFrame
        ``participant``, ``identity``, ``condition`` ("" for choose) and ``value``: the rating,
        ``correct`` (recognition and detection accuracy), 1 when the real headshot was chosen,
        or (memory hit rate) 1 when a studied person was said to be met before, on the
        targets alone, by the condition they were studied in.

    Raises
    ------
    ValueError
        For d' and c, which exist per participant or identity, not per trial.
    """
    data = trials[trials["attention_check"] == 0]
    if outcome.kind == "rating":
        rows = data[(data["task"] == "rate") & (data["measure"] == outcome.name)]
        value = rows["value_number"]
    elif outcome.name == "recognition_accuracy":
        rows = data[(data["task"] == "match") & (data["measure"] == "same")]
        value = rows["correct"]
    elif outcome.name == "detection_accuracy":
        rows = data[(data["task"] == "detect") & (data["measure"] == "source")]
        value = rows["correct"]
    elif outcome.name == "memory_hit_rate":
        rows = data[
            (data["task"] == "recognise")
            & (data["measure"] == "old")
            & data["condition"].isin(["real", "ai"])
        ]
        value = rows["value_number"]
    elif outcome.name == "choice_real":
        rows = data[(data["task"] == "choose") & (data["measure"] == "choice")]
        value = (rows["value"] == "real").astype(float)
    else:
        raise ValueError(f"{outcome.name} has no trial-level score (it is computed per unit)")
    return pd.DataFrame(
        {
            "participant": rows["participant"],
            "identity": rows["identity"],
            "condition": rows["condition"],
            "value": value.astype(float),
        }
    ).reset_index(drop=True)


def unit_scores(
    trials: pd.DataFrame,
    outcome: Outcome,
    unit: str = "participant",
    by_condition: bool | None = None,
) -> pd.DataFrame:
    """Score of an outcome per unit (participant or identity) and condition.

    Parameters
    ----------
    trials : pandas.DataFrame
        Validated trials of the included participants.
    outcome : Outcome
        From `study_outcomes`.
    unit : {"participant", "identity"}
        Whose score: a participant's over the identities they saw, or an identity's over the
        participants who saw it.
    by_condition : bool, optional
        Score each condition apart. By default only for outcomes tested ai vs real; outcomes
        tested against chance (detection accuracy) get one score per unit over both conditions.

    Returns
    -------
    pandas.DataFrame
        ``unit`` (the participant or identity id), ``condition`` ("" when the outcome has none),
        ``value`` and ``n_trials``. Ratings and proportions are means of the trial scores; d' and
        c come from `analysis.sdt` (log-linear correction); cells where d' is not measured (no
        signal or no noise trials) are left out.
    """
    if unit not in ("participant", "identity"):
        raise ValueError(f"unit must be 'participant' or 'identity', got {unit!r}")
    if by_condition is None:
        by_condition = outcome.paired
    if outcome.kind != "sdt":
        rows = trial_scores(trials, outcome)
        if not by_condition:
            rows = rows.assign(condition="")
        scores = (
            rows.groupby([unit, "condition"], sort=True)["value"]
            .agg(value="mean", n_trials="size")
            .reset_index()
        )
    else:
        sdt = {"match": match_sdt, "detect": detect_sdt, "recognise": memory_sdt}[outcome.task]
        table = sdt(trials, unit)
        if "condition" not in table:
            table["condition"] = ""
        column = "criterion" if outcome.name.endswith("criterion") else "d_prime"
        scores = table.assign(value=table[column], n_trials=table["n_signal"] + table["n_noise"])
        scores = scores.loc[scores["value"].notna(), [unit, "condition", "value", "n_trials"]]
    return scores.rename(columns={unit: "unit"}).reset_index(drop=True)
