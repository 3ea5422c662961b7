"""Undo a deletion of a design part while the study is a draft."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_login import current_user

from survey import audit
from survey.extensions import db
from survey.i18n import gettext
from survey.models import DeletedPart, Study
from survey.researcher import bp
from survey.researcher.access import lock_for_change, requires_role
from survey.researcher.forms import require_button
from survey.researcher.undo import UndoRefused, discard_unused, forget, undo

BACK = {
    "block": "researcher.blocks",
    "identity": "researcher.stimuli",
    "image": "researcher.stimuli",
    "question": "researcher.questions",
}


@bp.post("/studies/<int:study_id>/undo/<int:part_id>")
@requires_role("editor")
def undo_delete(study: Study, role: str, part_id: int):
    """Put a deleted block, identity, image or question back as it was, if the study is still a
    draft."""
    require_button()
    study = lock_for_change(study)
    part = db.session.get(DeletedPart, part_id)
    back = BACK.get(part.kind, "researcher.study") if part is not None else "researcher.study"
    try:
        label = undo(study, part_id, current_user._get_current_object())
    except UndoRefused as refused:
        db.session.rollback()
        abort(409, description=str(refused))
    db.session.commit()
    flash(gettext("Brought back %(what)s.", what=label), "success")
    return redirect(url_for(back, study_id=study.id))


@bp.post("/studies/<int:study_id>/undo/<int:part_id>/forget")
@requires_role("editor")
def forget_delete(study: Study, role: str, part_id: int):
    """Delete a kept deletion for good, with its image files (e.g. a withdrawn image consent)."""
    require_button()
    study = lock_for_change(study)
    part = db.session.get(DeletedPart, part_id)
    if part is None or part.study_id != study.id:
        abort(
            404,
            description=gettext("There is no such deletion to forget: it was undone or forgotten."),
        )
    back, label = BACK.get(part.kind, "researcher.study"), part.label
    keys = forget(study, [part])
    audit.record(f"{part.kind}.forget_delete", researcher=current_user, study=study, part=label)
    db.session.commit()
    discard_unused(study, keys)
    flash(
        gettext("Deleted %(what)s for good: it can no longer be brought back.", what=label),
        "success",
    )
    return redirect(url_for(back, study_id=study.id))
