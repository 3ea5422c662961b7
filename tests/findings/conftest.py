"""Fixtures of the report and findings tests (the demo study, `demo`, and `auth` come from
tests/conftest.py; simulated participants and the publishing steps from support.py)."""

from __future__ import annotations

import pytest

from tests.findings.support import count_analyses


@pytest.fixture
def analyses(monkeypatch) -> list:
    """The report analysed without mixed models (seconds faster); the list of its calls."""
    return count_analyses(monkeypatch)
