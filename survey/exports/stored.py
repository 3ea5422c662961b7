"""Large exports written to a file by a background job (survey.jobs), then downloaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import current_app

from survey import exports, jobs
from survey.extensions import db
from survey.i18n import N_
from survey.models import Job, Study

# The files a job may write, and how each is made: (study id, recruitment ids) -> chunks.
MAKERS = {"psych-ds.zip": exports.psychds_zip}


def export_path(job: Job) -> Path:
    """Where an export job's file lives: the shared media folder, named by the job's key, so
    web nodes and workers find the same file and a job run again writes the same name."""
    name = str(job.inputs["name"])
    suffix = Path(name).suffix or ".bin"
    return Path(current_app.config["MEDIA_DIR"]) / "exports" / f"{job.key}{suffix}"


@jobs.kind("export", N_("Preparing an export"))
def export_job(job: Job, progress: jobs.Progress) -> dict[str, Any]:
    """Write the export to a temporary file, then rename it into place: a worker killed midway
    leaves no file that looks finished, and the next attempt writes it whole."""
    name = str(job.inputs["name"])
    make = MAKERS.get(name)
    if make is None:
        raise jobs.JobError(f"There is no export called {name!r} to prepare.")
    study_id = int(job.study_id or 0)
    if db.session.get(Study, study_id) is None:
        raise jobs.JobError(N_("The study was deleted."))
    path = export_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    progress(5, f"Writing {name}")
    size = 0
    with partial.open("wb") as handle:
        for index, chunk in enumerate(make(study_id, bool(job.inputs.get("recruitment_ids")))):
            data = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8")
            handle.write(data)
            size += len(data)
            if index % 200 == 0:
                progress(min(95, 5 + index // 200), f"Writing {name}: {size / 1e6:.1f} MB")
        handle.flush()
        os.fsync(handle.fileno())
    db.session.commit()
    os.replace(partial, path)
    return {"file": path.name, "bytes": size}
