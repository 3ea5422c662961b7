"""Who may do what to a study: every researcher route goes through `study_for`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

import sqlalchemy as sa
from flask import abort
from flask_login import current_user, login_required

from survey.extensions import db
from survey.i18n import gettext
from survey.models import Study, StudyMember
from survey.studies import lock_study

ROLE_RANK = {"viewer": 1, "editor": 2, "owner": 3}
# The least role that sees participants' personal data (recruitment-platform ids): viewers
# read everything else and change nothing.
PERSONAL_DATA_ROLE = "editor"


def role_on(study_id: int) -> str | None:
    """Return the signed-in researcher's role on the study, or None."""
    if not current_user.is_authenticated:
        return None
    return db.session.scalar(
        sa.select(StudyMember.role).where(
            StudyMember.study_id == study_id, StudyMember.researcher_id == current_user.id
        )
    )


def study_for(study_id: int, need: str = "viewer") -> tuple[Study, str]:
    """Return the study and the researcher's role; 404 to strangers, 403 below `need`."""
    role = role_on(study_id)
    if role is None:
        # A stranger learns nothing, not even that the study exists.
        abort(404)
    if ROLE_RANK[role] < ROLE_RANK[need]:
        abort(
            403,
            description=gettext(
                "This needs the %(need)s role on the study; you are a %(role)s.",
                need=need,
                role=role,
            ),
        )
    study = db.session.get(Study, study_id)
    if study is None:
        abort(404)
    return study, role


def lock_for_change(study: Study, need: str = "editor") -> Study:
    """Lock the study's row for a change and check the role again under the lock.

    Call it before changing anything; then check the study's state on the row it returns.
    """
    locked = lock_study(study.id)
    if locked is None:
        abort(404)
    study_for(locked.id, need)
    return locked


def requires_role(need: str) -> Callable:
    """Decorate a view taking `study_id`: sign-in required, then `study` and `role` passed in."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(study_id: int, **kwargs):
            study, role = study_for(study_id, need)
            return view(study=study, role=role, **kwargs)

        wrapped.required_role = need  # read by the route-enumerating security tests
        return wrapped

    return decorator
