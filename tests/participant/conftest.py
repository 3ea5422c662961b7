"""Fixtures of the participant tests (the demo study, `demo`, comes from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def lookups(monkeypatch) -> list[int]:
    """Count the answers that read their trial from the database (the long way round)."""
    from survey.participant import answers

    calls: list[int] = []
    original = answers.answer_target

    def counted(slug, public_id, trial_id):
        calls.append(trial_id)
        return original(slug, public_id, trial_id)

    monkeypatch.setattr(answers, "answer_target", counted)
    return calls
