"""Exclusion rules: the contract's defaults, preregistered variants, straight-lining."""

import pandas as pd
import pytest

from analysis.exclusions import included_trials, screen_participants, straightlining
from analysis.io import load
from tests.analysis.helpers import make_participants, make_trials


def test_default_exclusions_match_r(sim, reference):
    # R (reference.R): status == "completed", attention_passed == attention_total,
    # median(rt_ms, na.rm = TRUE) >= 250
    screen = screen_participants(sim.trials, sim.participants)
    assert sorted(screen.loc[screen["excluded"], "participant"]) == reference["excluded"]
    assert (~screen["excluded"]).sum() == reference["n_participants"]
    reasons = screen.set_index("participant")["reason"]
    assert reasons["s7-0007"] == "attention" and reasons["s7-0068"] == "incomplete"


def test_included_trials_drop_attention_rows(sim):
    screen = screen_participants(sim.trials, sim.participants)
    kept = included_trials(sim.trials, screen)
    assert (kept["attention_check"] == 0).all()
    assert kept["participant"].nunique() == 113
    assert not kept["participant"].isin(screen.loc[screen["excluded"], "participant"]).any()


def test_failed_attention_check_in_trials():
    trials = make_trials()
    trials.loc[
        (trials["participant"] == "p2") & (trials["measure"] == "attention"), ["value", "correct"]
    ] = ["5", "0"]
    data = load(trials, make_participants(trials))
    screen = screen_participants(data.trials, data.participants).set_index("participant")
    assert screen.loc["p2", "excluded"] and screen.loc["p2", "reason"] == "attention"
    assert screen.loc["p2", "detail"] == "1 failed attention check(s)"
    off = screen_participants(data.trials, data.participants, {"attention": False})
    assert not off["excluded"].any()


def test_fast_responders_by_median_rt():
    trials = make_trials()
    trials.loc[trials["participant"] == "p3", "rt_ms"] = "180"
    data = load(trials, make_participants(trials))
    screen = screen_participants(data.trials, data.participants).set_index("participant")
    assert screen.loc["p3", "reason"] == "median_rt"
    assert screen.loc["p3", "detail"] == "median rt 180 ms < 250 ms"
    assert screen.loc["p3", "median_rt_ms"] == 180
    loose = screen_participants(data.trials, data.participants, {"min_median_rt_ms": 150})
    assert not loose["excluded"].any()
    off = screen_participants(data.trials, data.participants, {"min_median_rt_ms": None})
    assert not off["excluded"].any()


def test_no_rt_is_not_a_reason_to_exclude():
    trials = make_trials()
    trials.loc[trials["participant"] == "p1", "rt_ms"] = ""
    data = load(trials, make_participants(trials))
    screen = screen_participants(data.trials, data.participants).set_index("participant")
    assert pd.isna(screen.loc["p1", "median_rt_ms"]) and not screen.loc["p1", "excluded"]


def test_incomplete_needs_the_participants_table():
    trials = make_trials()
    data = load(trials, make_participants(trials, {"p1": "partial"}))
    screen = screen_participants(data.trials, data.participants).set_index("participant")
    assert screen.loc["p1", "reason"] == "incomplete"
    without = screen_participants(data.trials, None).set_index("participant")
    assert without.loc["p1", "status"] == "unknown" and not without["excluded"].any()


def test_several_reasons_are_all_named():
    trials = make_trials()
    trials.loc[trials["participant"] == "p1", "rt_ms"] = "100"
    data = load(trials, make_participants(trials, {"p1": "partial"}))
    screen = screen_participants(data.trials, data.participants).set_index("participant")
    assert screen.loc["p1", "reason"] == "incomplete; median_rt"


def test_straightlining_is_flagged_and_excluded_only_when_asked():
    trials = make_trials(rating=lambda p, i, c: 4 if p == "p1" else (5 if c == "real" else 3))
    data = load(trials, make_participants(trials))
    assert straightlining(data.trials).to_dict() == {"p1": True, "p2": False, "p3": False}
    screen = screen_participants(data.trials, data.participants).set_index("participant")
    assert screen.loc["p1", "straightlining"] and not screen.loc["p1", "excluded"]
    strict = screen_participants(data.trials, data.participants, {"straightlining": True})
    assert strict.set_index("participant").loc["p1", "reason"] == "straightlining"


def test_one_rate_trial_is_not_straightlining():
    trials = make_trials(identities=("A",), rating=lambda p, i, c: 4 if c == "real" else None)
    assert not straightlining(load(trials).trials).any()


@pytest.mark.parametrize("rule", ["incomplete", "attention"])
def test_rules_can_be_switched_off(rule):
    trials = make_trials()
    trials.loc[
        (trials["participant"] == "p2") & (trials["measure"] == "attention"), ["value", "correct"]
    ] = ["5", "0"]
    data = load(trials, make_participants(trials, {"p1": "partial"}))
    screen = screen_participants(data.trials, data.participants, {rule: False})
    assert screen["excluded"].sum() == 1
