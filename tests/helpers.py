"""Helpers shared by tests that are not fixtures."""

from __future__ import annotations

from survey.extensions import db
from survey.models import Study
from survey.studies import design_sha256


def refreeze(study_id: int) -> None:
    """Freeze the study's design as it is now, after a test edited an open study directly.

    The app refuses starts on a design that no longer matches the SHA-256 frozen at opening;
    a test that changes an open study's settings in the database (not through the workspace,
    which refuses) records the changed design as the frozen one. Commits.
    """
    study = db.session.get(Study, study_id)
    db.session.refresh(study)
    study.design_sha256 = design_sha256(study)
    db.session.commit()
