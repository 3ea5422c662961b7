"""Fixtures of the security tests: an open study with members of every role and a participant,
and a draft study (the helpers that build them are in helpers.py)."""

from __future__ import annotations

import pytest

from tests.security.helpers import World, make_world


@pytest.fixture
def world(app) -> World:
    """An open study with a team of every role, a stranger, and one started participant."""
    return make_world(app)


@pytest.fixture
def draft(app):
    """A draft study (its design still open to uploads) and a client of its editor."""
    world = make_world(app, slug="draft", open_it=False)
    return world.client(app, "editor"), world.study_id
