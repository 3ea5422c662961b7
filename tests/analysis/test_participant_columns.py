"""Question answers from participants.csv joined onto the trials as covariates."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.io import ContractError, validate_participants, with_participant_columns

PARTICIPANTS = pd.DataFrame(
    {
        "participant": ["p1", "p2", "p3"],
        "status": ["completed"] * 3,
        "ai_familiarity": ["4", "", "1"],
        "gender": ["woman", "prefer_not_to_say", ""],
        "tools": ["mj; sd", "", "sd"],
    }
)
TRIALS = pd.DataFrame({"participant": ["p1", "p1", "p2", "p3"], "value": [1, 0, 1, 1]})


def test_answers_join_typed_onto_every_trial():
    parts = validate_participants(PARTICIPANTS)
    joined = with_participant_columns(TRIALS, parts, ["ai_familiarity", "gender", "tools"])
    assert len(joined) == 4
    assert joined["ai_familiarity"].dtype == "float64"
    assert joined["ai_familiarity"].iloc[:2].tolist() == [4.0, 4.0]
    assert math.isnan(joined["ai_familiarity"].iloc[2]) and joined["ai_familiarity"].iloc[3] == 1
    assert joined["gender"].tolist() == ["woman", "woman", "prefer_not_to_say", ""]
    assert joined["tools"].tolist() == ["mj; sd", "mj; sd", "", "sd"]


def test_a_missing_column_or_table_is_a_clear_error():
    with pytest.raises(ContractError, match="no column 'age'"):
        with_participant_columns(TRIALS, validate_participants(PARTICIPANTS), ["age"])
    with pytest.raises(ContractError, match="needed for participant columns"):
        with_participant_columns(TRIALS, None, ["gender"])


def test_a_question_code_names_a_moderator():
    from analysis.moderators import choose_moderators, with_moderators

    parts = validate_participants(PARTICIPANTS)
    warnings: list[str] = []
    chosen = choose_moderators(None, parts, ["ai_familiarity", "gender", "nope"], warnings)
    assert chosen == [("ai_familiarity", "participant"), ("gender", "participant")]
    assert warnings and "'nope'" in warnings[0]
    rows = with_moderators(TRIALS, chosen, None, parts)
    assert rows["gender"].tolist() == ["woman", "woman", "prefer_not_to_say", ""]
