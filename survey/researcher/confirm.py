"""Confirmation pages: an action that deletes, freezes, opens or publishes is asked first.

The button that starts such an action is a link to a GET page saying what it will do, with a
POST form that does it: it works without script. A deletion of a design part says that it can
be undone; afterwards the page offers "Undo" (see undo.py) once.
"""

from __future__ import annotations

from flask import render_template, session

from survey.extensions import db
from survey.models import DeletedPart, Study

UNDO_OFFER = "undo_offer"


def confirm_page(study: Study, role: str, status: int = 200, **confirm):
    """Render a confirmation page: title, lines, action, button, back (and note, problems)."""
    return render_template(
        "researcher/confirm.html", study=study, role=role, confirm=confirm
    ), status


def offer_undo(study: Study, part: DeletedPart) -> None:
    """Offer "Undo" for a deletion on the next page of the study the researcher sees."""
    session[UNDO_OFFER] = {"study": study.id, "part": part.id}


def undo_offer(study_id: int) -> DeletedPart | None:
    """Return the deletion to offer undoing on this page (once), if it can still be undone."""
    offer = session.get(UNDO_OFFER)
    if not offer or offer.get("study") != study_id:
        return None
    session.pop(UNDO_OFFER, None)
    part = db.session.get(DeletedPart, offer.get("part"))
    study = db.session.get(Study, study_id)
    if part is None or study is None or study.state != "draft" or study.design_locked:
        return None
    return part
