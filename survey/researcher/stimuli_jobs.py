"""Large stimulus ZIPs imported by a background job: the upload kept in the media folder, then
checked and imported by a worker exactly as a small one is in the request."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from survey import jobs
from survey.extensions import db
from survey.i18n import N_
from survey.models import AuditEvent, Job, Researcher, Study, StudyMember
from survey.researcher import stimuli_service
from survey.researcher.access import ROLE_RANK
from survey.studies import lock_study

# How many of a refused set's problems the job's error lists (the rest are counted).
SHOWN_PROBLEMS = 20


def _uploads() -> Path:
    """The folder of ZIPs waiting for their job: in the media folder every node shares."""
    return Path(current_app.config["MEDIA_DIR"]) / "uploads"


def keep_upload(stream: IO[bytes]) -> str:
    """Copy an upload into the shared uploads folder under its SHA-256; return the hash."""
    folder = _uploads()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as handle:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
            handle.write(block)
    sha = digest.hexdigest()
    os.replace(handle.name, folder / f"{sha}.zip")
    return sha


def start_import(study: Study, researcher: Researcher, stream: IO[bytes], filename: str) -> Job:
    """Keep the ZIP and queue its import; the same ZIP for the same study is the same job."""
    sha = keep_upload(stream)
    return jobs.enqueue(
        "stimulus_zip",
        study_id=study.id,
        sha256=sha,
        filename=filename[-255:],
        researcher_id=researcher.id,
    )


def _locker(researcher_id: int):
    """Lock the study's row and check, under the lock, that the uploader may still edit it."""

    def lock(study: Study) -> Study:
        locked = lock_study(study.id)
        if locked is None:
            raise jobs.JobError(N_("The study was deleted."))
        role = db.session.scalar(
            sa.select(StudyMember.role).where(
                StudyMember.study_id == locked.id, StudyMember.researcher_id == researcher_id
            )
        )
        if role is None or ROLE_RANK[role] < ROLE_RANK["editor"]:
            raise jobs.JobError(N_("The uploader is no longer an editor of the study."))
        return locked

    return lock


def _imported(study_id: int, job_id: int) -> dict | None:
    """The audit detail of this job's import when an attempt committed it, else None."""
    events = db.session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.study_id == study_id, AuditEvent.action == "stimuli.upload"
        )
    )
    return next((e.detail for e in events if (e.detail or {}).get("job") == job_id), None)


def _refused(stimulus_set: Any, filename: str) -> str:
    """A refused set's problems, in plain words, for the job's error."""
    problems = sorted(stimulus_set.errors, key=lambda p: p.row or 0)
    lines = [f"{filename}: nothing was imported, because of these problems:"]
    lines += [f"- {problem}" for problem in problems[:SHOWN_PROBLEMS]]
    if stimulus_set.error_count > SHOWN_PROBLEMS:
        lines.append(f"… and {stimulus_set.error_count - SHOWN_PROBLEMS} more.")
    lines.append("Fix the ZIP and upload it again.")
    return "\n".join(lines)


@jobs.kind("stimulus_zip", N_("Importing a stimulus ZIP"))
def import_job(job: Job, progress: jobs.Progress) -> dict[str, Any]:
    """Check the kept ZIP against the study and import it whole in one transaction (a worker
    killed midway leaves nothing: the next attempt imports it from the start)."""
    study = db.session.get(Study, job.study_id)
    researcher = db.session.get(Researcher, int(job.inputs["researcher_id"]))
    if study is None or researcher is None:
        raise jobs.JobError(N_("The study or the uploader's account was deleted."))
    earlier = _imported(study.id, job.id)
    if earlier is not None:
        # Imported by an attempt whose worker stopped before it could say so.
        return {"images": earlier.get("images"), "identities": earlier.get("identities")}
    path = _uploads() / f"{job.inputs['sha256']}.zip"
    if not path.exists():
        raise jobs.JobError(N_("The uploaded ZIP is no longer on the server; upload it again."))
    filename = str(job.inputs.get("filename") or path.name)
    config = current_app.config
    progress(5, f"Checking {filename}")
    try:
        if study.design_locked:
            stimuli_service.refuse_if_frozen(study)
        with path.open("rb") as handle:
            stimulus_set = stimuli_service.read_set(
                study,
                handle,
                max_pixels=config["STIMULUS_ZIP_MAX_MEGAPIXELS"] * 1_000_000,
                max_seconds=config["STIMULUS_ZIP_JOB_MAX_SECONDS"],
            )
        db.session.commit()
        if not stimulus_set.ok:
            raise jobs.JobError(_refused(stimulus_set, filename))
        progress(60, f"Storing {len(stimulus_set.images)} images")
        count = stimuli_service.import_set(
            study, stimulus_set, researcher, _locker(researcher.id), job=job.id
        )
    except HTTPException as exc:
        raise jobs.JobError(str(exc.description)) from exc
    except IntegrityError as exc:
        raise jobs.JobError(
            N_(
                "Another upload added some of these images at the same time. Nothing of this "
                "upload was kept; retry to import it again."
            )
        ) from exc
    path.unlink(missing_ok=True)
    return {
        "images": count,
        "identities": len(stimulus_set.identities),
        "warnings": [str(w) for w in stimulus_set.warnings[:10]],
    }
