"""The live monitor, participant data requests (look-up, deletion) and the audit log."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user

from survey import audit
from survey.extensions import db
from survey.i18n import gettext
from survey.models import PARTICIPANT_STATUSES, AuditEvent, Study, utcnow
from survey.participant.answers import answered_count
from survey.researcher import bp, monitoring
from survey.researcher.access import PERSONAL_DATA_ROLE, lock_for_change, requires_role
from survey.researcher.forms import LookupForm, ParticipantDeleteForm, SimulatedDeleteForm
from survey.researcher.service import (
    AmbiguousId,
    delete_participant_data,
    delete_simulated,
    find_participant,
    simulated_summary,
)

AUDIT_PAGE_SIZE = 50


def _page_number() -> int:
    """Return the ?page= number, 1 when absent or not a number."""
    return request.args.get("page", 1, type=int) or 1


@bp.get("/studies/<int:study_id>/monitor")
@requires_role("viewer")
def monitor(study: Study, role: str):
    """Show live counts, timing, attention checks, recent answers and a page of participants."""
    preview = request.args.get("preview") == "1"
    status = request.args.get("status") or None
    if status is not None and status not in PARTICIPANT_STATUSES:
        abort(
            400,
            description=gettext(
                "status must be one of %(statuses)s.", statuses=", ".join(PARTICIPANT_STATUSES)
            ),
        )
    return render_template(
        "researcher/monitor.html",
        study=study,
        role=role,
        figures=monitoring.summary(study, utcnow()),
        table=monitoring.participant_page(study, _page_number(), preview=preview, status=status),
        preview=preview,
        status=status,
        statuses=PARTICIPANT_STATUSES,
    )


@bp.get("/studies/<int:study_id>/monitor.json")
@requires_role("viewer")
def monitor_json(study: Study, role: str):
    """Return the monitor's live figures as JSON, for the page's ten-second refresh."""
    return monitoring.summary(study, utcnow()), 200, {"Cache-Control": "no-store"}


@bp.get("/studies/<int:study_id>/participants")
@requires_role(PERSONAL_DATA_ROLE)
def participant_lookup(study: Study, role: str):
    """Find one participant by recruitment id (for a withdrawal request) or by opaque id."""
    form = LookupForm(request.args)
    participant, searched, status = None, False, 200
    if request.args:
        if not form.validate():
            status = 400
        elif not form.public_id.data and not form.external_id.data:
            form.external_id.errors.append(gettext("Give a recruitment id or a participant id."))
            status = 400
        else:
            searched = True
            try:
                participant = find_participant(
                    study,
                    platform=form.platform.data or "",
                    external_id=form.external_id.data or "",
                    public_id=form.public_id.data or "",
                    allow_short=True,
                )
            except AmbiguousId as err:
                form.public_id.errors.append(str(err))
                participant = None
            # Who looked up whom is worth knowing: recruitment ids are personal data.
            audit.record(
                "participant.lookup",
                researcher=current_user,
                study=study,
                by="recruitment id" if not form.public_id.data else "participant id",
                found=participant.public_id if participant else None,
            )
            db.session.commit()
            status = 200 if participant else 400 if form.public_id.errors else 404
            searched = not form.public_id.errors
    answered = answered_count(participant.id) if participant is not None else 0
    return (
        render_template(
            "researcher/participants.html",
            study=study,
            role=role,
            form=form,
            participant=participant,
            answered=answered,
            searched=searched,
            delete_form=ParticipantDeleteForm(formdata=None),
        ),
        status,
    )


@bp.post("/studies/<int:study_id>/participants/<public_id>/delete")
@requires_role("editor")
def participant_delete(study: Study, role: str, public_id: str):
    """Delete one participant's data; the reason goes to the audit log."""
    participant = find_participant(study, public_id=public_id)
    if participant is None:
        abort(404, description=gettext("This study has no participant with that id."))
    form = ParticipantDeleteForm()
    if not form.validate_on_submit():
        return (
            render_template(
                "researcher/participants.html",
                study=study,
                role=role,
                form=LookupForm(formdata=None),
                participant=participant,
                answered=answered_count(participant.id),
                searched=True,
                delete_form=form,
            ),
            400,
        )
    delete_participant_data(study, participant, current_user, form.reason.data)
    flash(
        gettext(
            "The data of participant %(id)s are deleted; the reason is in the audit log.",
            id=public_id,
        ),
        "success",
    )
    return redirect(url_for("researcher.participant_lookup", study_id=study.id))


def _simulated_page(
    study: Study, role: str, form: SimulatedDeleteForm, status: int = 200, refusal: str = ""
):
    """The confirmation page of the bulk deletion of simulated participants."""
    summary = simulated_summary(study)
    if form.count.data is None or status == 200:
        form.count.data = summary["participants"]
    return (
        render_template(
            "researcher/simulated_delete.html",
            study=study,
            role=role,
            form=form,
            summary=summary,
            refusal=refusal,
        ),
        status,
    )


@bp.route("/studies/<int:study_id>/simulated/delete", methods=["GET", "POST"])
@requires_role("owner")
def simulated_delete(study: Study, role: str):
    """Delete every simulated participant of the study (flask simulate-participants), after a
    confirmation page that shows how many; audited. Real participants are never touched."""
    form = SimulatedDeleteForm()
    if request.method == "GET":
        return _simulated_page(study, role, SimulatedDeleteForm(formdata=None))
    if not form.validate_on_submit():
        return _simulated_page(study, role, form, 400)
    # Checked again on the locked study row: a state change or new simulated participants
    # wait for this transaction, or are seen by it.
    study = lock_for_change(study, "owner")
    try:
        deleted = delete_simulated(study, current_user, expected=form.count.data)
    except ValueError as exc:
        db.session.rollback()
        return _simulated_page(study, role, SimulatedDeleteForm(formdata=None), 409, str(exc))
    flash(
        ngettext(
            "%(num)s simulated participant and their %(answers)s answers are deleted; real "
            "participants are untouched.",
            "%(num)s simulated participants and their %(answers)s answers are deleted; real "
            "participants are untouched.",
            deleted["participants"],
            answers=deleted["answers"],
        ),
        "success",
    )
    return redirect(url_for("researcher.monitor", study_id=study.id))


@bp.get("/studies/<int:study_id>/audit")
@requires_role("viewer")
def audit_log(study: Study, role: str):
    """List who did what to the study and when, newest first."""
    total = db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.study_id == study.id))
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    page = min(max(1, _page_number()), pages)
    events = db.session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.study_id == study.id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .offset((page - 1) * AUDIT_PAGE_SIZE)
        .limit(AUDIT_PAGE_SIZE)
    ).all()
    return render_template(
        "researcher/audit.html",
        study=study,
        role=role,
        events=events,
        page=page,
        pages=pages,
        total=total,
    )
