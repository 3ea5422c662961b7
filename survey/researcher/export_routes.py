"""Researcher routes: the exports page and the downloads, streamed straight from the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    send_file,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from survey import audit, exports, jobs
from survey.exports.stored import MAKERS, export_path
from survey.extensions import db
from survey.findings.service import data_stamp
from survey.i18n import N_, gettext
from survey.models import Job, Participant, Study
from survey.models import Response as Answer
from survey.researcher import bp
from survey.researcher.access import PERSONAL_DATA_ROLE, ROLE_RANK, requires_role
from survey.researcher.stimuli_forms import ExportForm


@dataclass(frozen=True)
class Download:
    """One file of the exports page: what it holds and how it is made."""

    name: str
    mimetype: str
    # Marked with N_, translated where the page shows it.
    description: str
    # (study id, include recruitment ids) -> chunks of the file
    make: Callable[[int, bool], Iterator[str] | Iterator[bytes]]
    # Whether the file holds the participants table, so recruitment ids may be asked for.
    participants: bool = False


DOWNLOADS = {
    d.name: d
    for d in (
        Download(
            "trials.csv",
            "text/csv",
            N_(
                "One row per answer to one measure, sorted by participant and trial: the file "
                "the analysis reads. Practice trials are left out."
            ),
            lambda sid, _ids: exports.trials_csv(sid),
        ),
        Download(
            "participants.csv",
            "text/csv",
            N_(
                "One row per participant: list, status, times, device, source, attention checks "
                "and the optional demographics."
            ),
            exports.participants_csv,
            participants=True,
        ),
        Download(
            "stimuli.csv",
            "text/csv",
            N_("One row per image: identity, role, source, generator, SHA-256 and size."),
            lambda sid, _ids: exports.stimuli_csv(sid),
        ),
        Download(
            "identities.csv",
            "text/csv",
            N_(
                "One row per identity: gender, age band and ethnicity as described (blank when "
                "not given); the report tests them as moderators."
            ),
            lambda sid, _ids: exports.identities_csv(sid),
        ),
        Download(
            "codebook.csv",
            "text/csv",
            N_(
                "Every column of every file: type, meaning and allowed values, with the rating "
                "scales' ranges and anchors."
            ),
            lambda sid, _ids: exports.codebook_csv(sid),
        ),
        Download(
            "codebook.json",
            "application/json",
            N_("The same codebook as JSON, with the measures of each block."),
            lambda sid, _ids: iter([exports.codebook_json(sid)]),
        ),
        Download(
            "psych-ds.zip",
            "application/zip",
            N_(
                "A psych-DS dataset: dataset_description.json (schema.org JSON-LD) and the three "
                "tables in data/, with the codebook."
            ),
            exports.psychds_zip,
            participants=True,
        ),
    )
}


def _counts(study: Study) -> dict[str, int]:
    """Count the study's participants by what the exports do with them, in SQL."""
    stmt = (
        sa.select(
            Participant.is_preview, Participant.is_simulated, Participant.status, sa.func.count()
        )
        .where(Participant.study_id == study.id)
        .group_by(Participant.is_preview, Participant.is_simulated, Participant.status)
    )
    counts = {"completed": 0, "partial": 0, "withdrawn": 0, "preview": 0, "simulated": 0}
    for is_preview, is_simulated, status, n in db.session.execute(stmt):
        if is_preview:
            counts["preview"] += n
        elif status == "withdrawn":
            counts["withdrawn"] += n
        else:
            counts["completed" if status == "completed" else "partial"] += n
            # Exported, marked in the simulated column (counted among the above too).
            counts["simulated"] += n if is_simulated else 0
    return counts


def _form(name: str) -> ExportForm:
    """Return the download form of one file; the prefix keeps each form's ids apart."""
    return ExportForm(prefix=name.replace(".", "-"))


def _filename(study: Study, download: Download) -> str:
    """Return the name the browser saves the file under."""
    if download.name == "psych-ds.zip":
        return exports.psychds_filename(study.slug)
    return download.name


@bp.get("/studies/<int:study_id>/exports", endpoint="exports")
@requires_role("viewer")
def exports_page(study: Study, role: str):
    """List the study's exports, each with its download button."""
    return render_template(
        "researcher/exports/index.html",
        study=study,
        role=role,
        downloads=DOWNLOADS.values(),
        forms={name: _form(name) for name in DOWNLOADS},
        counts=_counts(study),
        may_see_ids=ROLE_RANK[role] >= ROLE_RANK[PERSONAL_DATA_ROLE],
    )


@bp.post("/studies/<int:study_id>/exports/<name>", endpoint="export_file")
@requires_role("viewer")
def export_file(study: Study, role: str, name: str):
    """Stream one export as a download; recorded in the audit log."""
    download = DOWNLOADS.get(name)
    if download is None:
        abort(404, description=gettext("There is no export called %(name)s.", name=repr(name)))
    form = _form(name)
    include_ids = bool(form.recruitment_ids.data) and download.participants
    if include_ids and ROLE_RANK[role] < ROLE_RANK[PERSONAL_DATA_ROLE]:
        # The same rule as the participants page: recruitment ids are personal data.
        abort(
            403,
            description=gettext(
                "Recruitment ids need the %(needed)s role on the study; you are a %(role)s. "
                "Download the file without them.",
                needed=PERSONAL_DATA_ROLE,
                role=role,
            ),
        )
    audit.record(
        "study.export",
        researcher=current_user._get_current_object(),
        study=study,
        file=name,
        recruitment_ids=include_ids,
    )
    db.session.commit()
    if name in MAKERS and _answers(study) > current_app.config["EXPORT_INLINE_MAX_ROWS"]:
        # A big study's archive is written by a job; its page offers the file when ready.
        job = jobs.enqueue(
            "export",
            study_id=study.id,
            name=name,
            recruitment_ids=include_ids,
            data=data_stamp(study, include_simulated=True)[0],
        )
        if job.status == "failed":
            jobs.retry(job.id)  # asked for again: a failed attempt is tried afresh
        return redirect(url_for("researcher.job_page", study_id=study.id, job_id=job.id))
    chunks = download.make(study.id, include_ids)
    return Response(
        stream_with_context(chunks),
        mimetype=download.mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{_filename(study, download)}"',
            "Cache-Control": "no-store",
        },
    )


def _answers(study: Study) -> int:
    """How many answers the study's exports hold (an estimate of their size)."""
    return int(
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Answer)
            .join(Participant, Participant.id == Answer.participant_id)
            .where(Participant.study_id == study.id)
        )
        or 0
    )


def send_job_file(study: Study, job: Job, role: str) -> Response:
    """The file an export job wrote, with the same rule on recruitment ids as the export."""
    if job.inputs.get("recruitment_ids") and ROLE_RANK[role] < ROLE_RANK[PERSONAL_DATA_ROLE]:
        abort(
            403,
            description=gettext(
                "This file holds recruitment ids: it needs the %(needed)s role on the study.",
                needed=PERSONAL_DATA_ROLE,
            ),
        )
    path = export_path(job)
    if not path.exists():
        abort(
            410,
            description=gettext(
                "The file is no longer on the server. Export it again from the exports page."
            ),
        )
    download = DOWNLOADS[str(job.inputs["name"])]
    audit.record(
        "study.export",
        researcher=current_user._get_current_object(),
        study=study,
        file=download.name,
        recruitment_ids=bool(job.inputs.get("recruitment_ids")),
        job=job.id,
    )
    db.session.commit()
    response = send_file(
        path,
        mimetype=download.mimetype,
        as_attachment=True,
        download_name=_filename(study, download),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
