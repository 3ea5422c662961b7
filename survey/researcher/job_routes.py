"""Researcher routes: a study's background jobs, each with its progress, error and Retry button."""

from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, url_for

from survey import jobs
from survey.extensions import db
from survey.i18n import gettext
from survey.models import Job, Study
from survey.researcher import bp
from survey.researcher.access import ROLE_RANK, requires_role
from survey.researcher.forms import require_button

# Who may retry a failed job of each kind (the role that could start it).
RETRY_ROLE = {"charts": "owner"}


def _job_or_404(study: Study, job_id: int) -> Job:
    """A job of this study, or 404 (a job of another study is not found here either)."""
    job = db.session.get(Job, job_id)
    if job is None or job.study_id != study.id:
        abort(404)
    return job


def result_link(study: Study, job: Job) -> tuple[str, str] | None:
    """Where a finished job's result is read (link text and URL), if anywhere."""
    if job.status != "done":
        return None
    if job.kind == "report":
        return gettext("Open the report"), url_for("findings.report", study_id=study.id)
    if job.kind == "charts":
        return gettext("Open the report"), url_for("findings.report", study_id=study.id)
    if job.kind == "stimulus_zip":
        return gettext("Open the stimuli"), url_for("researcher.stimuli", study_id=study.id)
    if job.kind == "export":
        name = job.inputs["name"] if "name" in job.inputs else gettext("the file")
        return (
            gettext("Download %(name)s", name=name),
            url_for("researcher.job_download", study_id=study.id, job_id=job.id),
        )
    return None


@bp.get("/studies/<int:study_id>/jobs")
@requires_role("viewer")
def jobs_page(study: Study, role: str):
    """The study's recent background jobs, newest first."""
    listed = jobs.study_jobs(study.id)
    return render_template(
        "researcher/jobs.html", study=study, role=role, jobs=listed, title=jobs.title
    )


@bp.get("/studies/<int:study_id>/jobs/<int:job_id>")
@requires_role("viewer")
def job_page(study: Study, role: str, job_id: int):
    """One job: a progress bar (a script keeps it current; without script the page refreshes
    itself), its error with a Retry button once it has failed, and where its result is."""
    job = _job_or_404(study, job_id)
    return render_template(
        "researcher/job.html",
        study=study,
        role=role,
        job=job,
        title=jobs.title(job),
        states=jobs.state_labels(),
        link=result_link(study, job),
        can_retry=ROLE_RANK[role] >= ROLE_RANK[RETRY_ROLE.get(job.kind, "editor")],
    )


@bp.get("/studies/<int:study_id>/jobs/<int:job_id>/status")
@requires_role("viewer")
def job_status(study: Study, role: str, job_id: int):
    """The job's status, progress and message as JSON, for the job page's script."""
    job = _job_or_404(study, job_id)
    body = jobs.status_json(job)
    link = result_link(study, job)
    body["link"] = {"text": link[0], "url": link[1]} if link else None
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/studies/<int:study_id>/jobs/<int:job_id>/retry")
@requires_role("editor")
def job_retry(study: Study, role: str, job_id: int):
    """Queue a failed job again (its attempts start afresh)."""
    require_button()
    job = _job_or_404(study, job_id)
    need = RETRY_ROLE.get(job.kind, "editor")
    if ROLE_RANK[role] < ROLE_RANK[need]:
        abort(
            403,
            description=gettext(
                "Retrying this job needs the %(need)s role on the study.", need=need
            ),
        )
    if jobs.retry(job.id):
        flash(gettext("The job was queued again."), "success")
    else:
        flash(gettext("The job had not failed, so it was left as it is."), "warning")
    return redirect(url_for("researcher.job_page", study_id=study.id, job_id=job.id))


@bp.get("/studies/<int:study_id>/jobs/<int:job_id>/download")
@requires_role("viewer")
def job_download(study: Study, role: str, job_id: int):
    """The file a finished export job wrote."""
    from survey.researcher.export_routes import send_job_file

    job = _job_or_404(study, job_id)
    if job.kind != "export" or job.status != "done":
        abort(404)
    return send_job_file(study, job, role)
