"""Fixtures of the researcher workspace's tests: studies with a runnable design, members by role."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from survey.extensions import db
from survey.models import Study, StudyMember
from tests.helpers import sign_in
from tests.researcher.helpers import add_member, quick_researcher, seed_design


@pytest.fixture
def make_study(app):
    """Return a function that creates a study owned by a researcher (with a runnable design
    if asked)."""

    def make(
        owner_id: int,
        *,
        title: str = "Trust in headshots",
        slug: str = "trust",
        design: bool = False,
        **fields,
    ) -> int:
        with app.app_context():
            study = Study(title=title, slug=slug, **fields)
            db.session.add(study)
            db.session.add(StudyMember(study=study, researcher_id=owner_id, role="owner"))
            db.session.flush()
            if design:
                seed_design(study)
            db.session.commit()
            return study.id

    return make


@dataclass
class Team:
    """A study with an owner, an editor, a viewer, and a stranger with a study of their own."""

    study_id: int
    owner: int
    editor: int
    viewer: int
    stranger: int

    def client(self, app, who: str):
        """Return a test client signed in as one of the team (or the stranger)."""
        client = app.test_client()
        sign_in(client, app, getattr(self, who))
        return client


@pytest.fixture
def team(app, make_study) -> Team:
    """A runnable draft study with members of every role, and a stranger."""
    owner, editor, viewer, stranger = (
        quick_researcher(app, f"{who}@example.org")
        for who in ("owner", "editor", "viewer", "stranger")
    )
    study_id = make_study(owner, design=True)
    add_member(app, study_id, editor, "editor")
    add_member(app, study_id, viewer, "viewer")
    make_study(stranger, title="Someone else's", slug="other")
    return Team(study_id, owner, editor, viewer, stranger)


@pytest.fixture
def owner_client(app, team):
    """A client signed in as the team's owner."""
    return team.client(app, "owner")
