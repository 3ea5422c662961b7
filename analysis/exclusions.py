"""Participant exclusions: preregistered rules or the contract's defaults, each with its reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.vocabulary import DEFAULT_RULES

REASONS = ("incomplete", "attention", "median_rt", "straightlining")


def straightlining(trials: pd.DataFrame) -> pd.Series:
    """Flag participants who gave the same rating on every rate trial.

    A participant straight-lines when they answered at least two rate trials and, for every
    rating scale they answered, all their answers to it are the same number.

    Parameters
    ----------
    trials : pandas.DataFrame
        Validated trials (see `analysis.io.load`).

    Returns
    -------
    pandas.Series of bool
        Indexed by participant (only participants with rating answers).
    """
    ratings = trials[
        (trials["task"] == "rate")
        & (trials["attention_check"] == 0)
        & trials["value_number"].notna()
    ]
    if ratings.empty:
        return pd.Series(dtype=bool)
    per_scale = ratings.groupby(["participant", "measure"])["value_number"].nunique()
    constant = (per_scale == 1).groupby(level="participant").all()
    n_trials = ratings.groupby("participant")["trial"].nunique()
    return (constant & (n_trials >= 2)).rename("straightlining")


def screen_participants(
    trials: pd.DataFrame, participants: pd.DataFrame | None = None, rules: dict | None = None
) -> pd.DataFrame:
    """Apply exclusion rules to every participant.

    Parameters
    ----------
    trials : pandas.DataFrame
        Validated trials, attention-check rows included.
    participants : pandas.DataFrame, optional
        Validated participants table; without it completion status is unknown and the
        ``incomplete`` rule cannot be applied.
    rules : dict, optional
        ``incomplete`` (exclude status other than completed), ``attention`` (exclude any failed
        attention check: a check row with correct = 0, or attention_passed < attention_total),
        ``min_median_rt_ms`` (exclude a median rt_ms below it, over every row with an rt; None
        turns the rule off), ``straightlining`` (exclude straight-liners; they are always
        flagged). Missing keys take `DEFAULT_RULES`.

    Returns
    -------
    pandas.DataFrame
        One row per participant, sorted: ``participant``, ``status`` (or "unknown"),
        ``attention_failed`` (number of failed checks), ``median_rt_ms`` (NaN when no rt was
        measured), ``straightlining`` (bool flag), ``excluded`` (bool), ``reason`` (the rules
        that excluded the participant, joined by "; "; "" when kept) and ``detail``.
    """
    rules = {**DEFAULT_RULES, **(rules or {})}
    known = set(participants["participant"]) if participants is not None else set()
    ids = pd.Index(sorted(set(trials["participant"]) | known), name="participant")
    table = pd.DataFrame(index=ids)
    if participants is not None:
        status = participants.set_index("participant")["status"]
        table["status"] = status.reindex(ids, fill_value="unknown")
    else:
        table["status"] = "unknown"

    checks = trials[trials["attention_check"] == 1]
    failed = (checks["correct"] == 0).groupby(checks["participant"]).sum()
    table["attention_failed"] = failed.reindex(ids, fill_value=0).astype(np.int64)
    if participants is not None and {"attention_passed", "attention_total"} <= set(participants):
        counts = participants.set_index("participant")
        missed = (counts["attention_total"] - counts["attention_passed"]).reindex(ids, fill_value=0)
        table["attention_failed"] = np.maximum(table["attention_failed"], missed.astype(np.int64))

    # Like R's median(rt_ms, na.rm = TRUE) over every row of the participant. Flagged times
    # count: a fast one is what this rule looks for, and a few slow ones do not move a median.
    table["median_rt_ms"] = trials.groupby("participant")["rt_ms"].median().reindex(ids)
    table["straightlining"] = straightlining(trials).reindex(ids, fill_value=False).astype(bool)

    hits = pd.DataFrame(index=ids)
    hits["incomplete"] = bool(rules["incomplete"]) & (table["status"] == "partial")
    hits["attention"] = bool(rules["attention"]) & (table["attention_failed"] > 0)
    limit = rules["min_median_rt_ms"]
    hits["median_rt"] = (table["median_rt_ms"] < limit) if limit is not None else False
    hits["straightlining"] = bool(rules["straightlining"]) & table["straightlining"]

    def detail(pid) -> str:
        row = table.loc[pid]
        parts = []
        if hits.at[pid, "incomplete"]:
            parts.append(f"status {row['status']}")
        if hits.at[pid, "attention"]:
            parts.append(f"{row['attention_failed']} failed attention check(s)")
        if hits.at[pid, "median_rt"]:
            parts.append(f"median rt {row['median_rt_ms']:g} ms < {limit:g} ms")
        if hits.at[pid, "straightlining"]:
            parts.append("same rating on every rate trial")
        return "; ".join(parts)

    table["excluded"] = hits.any(axis=1)
    table["reason"] = ["; ".join(r for r in REASONS if hits.at[pid, r]) for pid in ids]
    table["detail"] = [detail(pid) for pid in ids]
    return table.reset_index()


def included_trials(trials: pd.DataFrame, screen: pd.DataFrame) -> pd.DataFrame:
    """Return the trials of included participants, without attention-check rows."""
    keep = set(screen.loc[~screen["excluded"], "participant"])
    rows = trials["participant"].isin(keep) & (trials["attention_check"] == 0)
    return trials[rows].reset_index(drop=True)
