"""Researcher routes: importing this module registers the workspace's views on the blueprint."""

from survey import jobs
from survey.researcher import (  # noqa: F401
    auth_routes,
    block_routes,
    bp,
    monitor_routes,
    planning_routes,
    prereg_routes,
    question_routes,
    study_routes,
    texts_routes,
    undo_routes,
)
from survey.researcher.access import role_on
from survey.researcher.confirm import undo_offer


@bp.app_context_processor
def researcher_helpers() -> dict:
    """Let templates ask the signed-in researcher's role on a study (to show only usable links),
    the undo offer, and a job's state and message in the page's language."""
    return {
        "researcher_role": role_on,
        "undo_offer": undo_offer,
        "job_state": jobs.state_label,
        "job_message": jobs.shown_message,
    }
