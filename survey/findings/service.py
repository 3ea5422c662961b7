"""Compute, cache and publish a study's report: the analysis of its current data, once per data."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

import analysis
from analysis.rscript import r_script
from survey import audit, block_settings, design, exports, jobs
from survey import flow as block_flow
from survey.cache import BoundedCache
from survey.extensions import db
from survey.findings import present
from survey.findings.methods import methods_paragraph
from survey.i18n import N_, gettext
from survey.models import (
    Job,
    Participant,
    Preregistration,
    Report,
    ReportChart,
    Researcher,
    Response,
    Study,
    StudyMember,
    Trial,
    utcnow,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# What the web report needs beyond results.json lives under this key of Report.results.
REPORT_DATA = "report_data"
# Findings are published only from at least this many included participants.
MIN_PUBLIC_N = 20
PUBLIC_STATES = ("closed", "archived")
# results.json keys that hold participant ids or free text: never on the public page.
PRIVATE_KEYS = ("exclusions", "flags", "warnings", "detection_by_participant", "input", REPORT_DATA)
ROLE_ORDER = {"owner": 0, "editor": 1, "viewer": 2}

# Data stamp -> data hash, per process: a page that refreshes every few seconds must not read
# and hash every row each time. The stamp changes whenever a row the hash covers can change.
_HASHES_MAX = 512
_HASHES: BoundedCache[str, str] = BoundedCache(_HASHES_MAX)


class PublishError(ValueError):
    """Findings cannot be published (or unpublished) now; the message says why."""


@dataclass
class StudyInputs:
    """The study's current data as the analysis reads it, and its hash."""

    trials: pd.DataFrame
    participants: pd.DataFrame
    plan: dict | None
    scale_ranges: dict
    data_sha256: str
    # Withdrawn participants when the tables were read: a larger count at storing time means
    # someone withdrew meanwhile, and the results may hold their data.
    withdrawn: int = 0
    # Whether the tables hold the simulated participants, and how many the study has (left
    # out of the tables, or included in them).
    include_simulated: bool = False
    simulated: int = 0
    # identities.csv (identity descriptors, the report's moderators), None when none is given
    identities: pd.DataFrame | None = None


@dataclass
class ReportState:
    """What the report page shows: the report of the current data, or progress, or a failure."""

    current: Report | None
    shown: Report | None
    computing: Report | None
    n_rows: int

    @property
    def failed(self) -> Report | None:
        """The current data's report when its computation failed."""
        return (
            self.current if self.current is not None and self.current.status == "failed" else None
        )


# --- data, stamp and hash ----------------------------------------------------------------------


def current_plan(study: Study) -> dict | None:
    """The preregistered plan once frozen; a draft plan does not make any test preregistered."""
    prereg = db.session.scalar(
        sa.select(Preregistration).where(Preregistration.study_id == study.id)
    )
    if prereg is None or prereg.frozen_at is None:
        return None
    return dict(prereg.plan)


def _count_participants(study_id: int, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect:
    """The number of the study's participants (never preview runs, which are never analysed)
    that match `where`."""
    return (
        sa.select(sa.func.count())
        .select_from(Participant)
        .where(Participant.study_id == study_id, Participant.is_preview.is_(False), *where)
        .scalar_subquery()
    )


def _simulated_count(study_id: int) -> sa.ScalarSelect:
    """The number of the study's simulated participants that the exports hold."""
    return _count_participants(
        study_id, Participant.status != "withdrawn", Participant.is_simulated.is_(True)
    )


def simulated_count(study: Study) -> int:
    """How many simulated participants the study's exports hold now."""
    return int(db.session.scalar(sa.select(_simulated_count(study.id))) or 0)


def data_stamp(study: Study, include_simulated: bool = False) -> tuple[str, int]:
    """A cheap fingerprint of everything the data hash covers (hex), and the number of answers.

    Answers are stored once and never changed; withdrawal deletes them and changes the
    participant's status, completion changes the status: counts, id sums and the latest
    completion catch every change without reading the rows. Without the simulated
    participants, their number still counts (the report says how many it left out).
    """
    exported = sa.and_(
        Participant.study_id == study.id,
        Participant.is_preview.is_(False),
        Participant.status != "withdrawn",
    )
    if not include_simulated:
        exported = sa.and_(exported, Participant.is_simulated.is_(False))
    people = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(Participant.id), 0),
            sa.func.count(Participant.completed_at),
            sa.func.max(Participant.completed_at),
        ).where(exported)
    ).one()
    answers = db.session.execute(
        sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(Response.id), 0), sa.func.max(Response.id)
        )
        .select_from(Response)
        .join(Participant, Participant.id == Response.participant_id)
        .where(exported)
    ).one()
    prereg = db.session.execute(
        sa.select(Preregistration.sha256, Preregistration.frozen_at).where(
            Preregistration.study_id == study.id
        )
    ).first()
    stamp = (
        study.id,
        study.created_at,
        analysis.__version__,
        study.design_sha256,
        tuple(people),
        tuple(answers),
        tuple(prereg) if prereg else None,
        ("simulated", include_simulated, simulated_count(study)),
    )
    return hashlib.sha256(repr(stamp).encode("utf-8")).hexdigest(), int(answers[0])


def _canonical_participants(participants: pd.DataFrame) -> str:
    """The participants table's contract columns as CSV text, sorted by participant."""
    table = participants.loc[:, list(exports.PARTICIPANT_COLUMNS)].sort_values(
        "participant", kind="mergesort"
    )
    return table.to_csv(index=False, lineterminator="\n", na_rep="")


def data_hash(
    trials: pd.DataFrame,
    participants: pd.DataFrame,
    plan: dict | None,
    include_simulated: bool = False,
    simulated: int = 0,
    identities: pd.DataFrame | None = None,
) -> str:
    """SHA-256 of canonical trials CSV, a newline, canonical participants CSV, a newline, plan JSON.

    When identities have descriptors, "\nidentities" and their CSV follow, so that a changed
    descriptor computes the report (its moderators) again.

    When the study has simulated participants, or they are included, a last line says so
    ("\nsimulated excluded N" or "\nsimulated included N"): the report of the real participants
    and the one with the simulated ones never share a key, and a report that says how many it
    left out is computed again when that number changes.
    """
    from analysis.io import canonical_trials_csv

    digest = hashlib.sha256()
    digest.update(canonical_trials_csv(trials).encode("utf-8"))
    digest.update(b"\n")
    digest.update(_canonical_participants(participants).encode("utf-8"))
    digest.update(b"\n")
    digest.update(json.dumps(plan, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    if include_simulated or simulated:
        word = "included" if include_simulated else "excluded"
        digest.update(f"\nsimulated {word} {simulated}".encode())
    if identities is not None:
        digest.update(b"\nidentities\n")
        digest.update(identities.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    return digest.hexdigest()


def _withdrawn_count(study_id: int) -> sa.ScalarSelect:
    """The number of the study's withdrawn participants."""
    return _count_participants(study_id, Participant.status == "withdrawn")


def load_inputs(study: Study, include_simulated: bool = False) -> StudyInputs:
    """Read the study's exported tables (without the simulated participants unless asked),
    plan and scale ranges, and hash them."""
    # Counted before the tables are read, so a withdrawal during the read is noticed too.
    withdrawn = db.session.scalar(sa.select(_withdrawn_count(study.id)))
    simulated = simulated_count(study)
    trials = exports.trials_dataframe(study.id, include_simulated=include_simulated)
    participants = exports.participants_dataframe(study.id, include_simulated=include_simulated)
    plan = current_plan(study)
    identities = exports.identities_dataframe(study.id)
    return StudyInputs(
        trials,
        participants,
        plan,
        exports.scale_ranges(study.id),
        data_hash(trials, participants, plan, include_simulated, simulated, identities),
        withdrawn,
        include_simulated,
        simulated,
        identities,
    )


def _remember(stamp: str, sha: str) -> None:
    """Keep a stamp's hash, dropping the oldest beyond the limit."""
    _HASHES.put(stamp, sha)


def _recall(study: Study, stamp: str) -> str | None:
    """The hash known for a stamp: this process's memory, else the study's latest report row.

    Every report row keeps the stamp it was computed for, so another worker (or a restarted
    one) finds the hash without reading every row of the data again.
    """
    sha = _HASHES.get(stamp)
    if sha is not None:
        return sha
    latest = db.session.scalar(
        sa.select(Report)
        .where(Report.study_id == study.id, Report.analysis_version == analysis.__version__)
        .order_by(Report.id.desc())
        .limit(1)
    )
    if latest is not None and (latest.results or {}).get(REPORT_DATA, {}).get("stamp") == stamp:
        _remember(stamp, latest.data_sha256)
        return latest.data_sha256
    return None


@dataclass
class DataState:
    """The study's data now: its hash (None without answers), stamp, size, and inputs if read."""

    sha: str | None
    stamp: str
    n_rows: int
    inputs: StudyInputs | None = None


def current_data(study: Study, include_simulated: bool = False) -> DataState:
    """Hash the study's current data, reading the rows only when the stamp is new."""
    stamp, n_rows = data_stamp(study, include_simulated)
    if n_rows == 0:
        return DataState(None, stamp, 0)
    sha = _recall(study, stamp)
    if sha is not None:
        return DataState(sha, stamp, n_rows)
    inputs = load_inputs(study, include_simulated)
    _remember(stamp, inputs.data_sha256)
    return DataState(inputs.data_sha256, stamp, n_rows, inputs)


# --- computing ---------------------------------------------------------------------------------


def _table_json(table: pd.DataFrame) -> dict:
    """A DataFrame as {"columns", "data"} of plain JSON values (NaN as null)."""
    return json.loads(table.to_json(orient="split", index=False, double_precision=15))


def table_frame(stored: dict) -> pd.DataFrame:
    """Rebuild a DataFrame stored by `_table_json`."""
    import pandas as pd

    return pd.DataFrame(stored.get("data", []), columns=stored.get("columns", []))


def _count_by(frame: pd.DataFrame, column: str, included: set) -> list[dict]:
    """Recruited, excluded and included participants per value of a column."""
    rows = []
    values = frame[column].fillna("").replace("", "unknown")
    for value in sorted(values.unique()):
        ids = set(frame.loc[values == value, "participant"])
        rows.append(
            {
                column: value,
                "recruited": len(ids),
                "included": len(ids & included),
                "excluded": len(ids - included),
            }
        )
    return rows


def sample_summary(study: Study, inputs: StudyInputs, screen: pd.DataFrame) -> dict:
    """Recruited, withdrawn, excluded (by reason), included, per list, device and source."""
    included = set(screen.loc[~screen["excluded"], "participant"])
    reasons: dict[str, int] = {}
    for text in screen.loc[screen["excluded"], "reason"]:
        for reason in filter(None, str(text).split("; ")):
            reasons[reason] = reasons.get(reason, 0) + 1
    withdrawn = db.session.scalar(
        sa.select(sa.func.count()).where(
            Participant.study_id == study.id,
            Participant.is_preview.is_(False),
            Participant.status == "withdrawn",
        )
    )
    parts = inputs.participants
    return {
        "recruited": len(parts),
        "completed": int((parts["status"] == "completed").sum()),
        "partial": int((parts["status"] == "partial").sum()),
        "withdrawn": int(withdrawn or 0),
        "excluded": int(screen["excluded"].sum()),
        "reasons": reasons,
        "included": len(included),
        "by_list": _count_by(parts, "list", included),
        "by_device": _count_by(parts, "device", included),
        "sources": {k: int(v) for k, v in parts["source"].value_counts().sort_index().items()},
        # Simulated participants (flask simulate-participants): left out, or counted above.
        "simulated_excluded": 0 if inputs.include_simulated else inputs.simulated,
        "simulated_included": inputs.simulated if inputs.include_simulated else 0,
    }


def simulated_record(inputs: StudyInputs) -> dict[str, int | bool]:
    """results.json's `simulated_participants`: how many were left out, how many included."""
    return {
        "excluded": 0 if inputs.include_simulated else inputs.simulated,
        "included": inputs.simulated if inputs.include_simulated else 0,
    }


def software_versions() -> dict[str, str]:
    """Versions of what computed the report, for the methods paragraph."""
    import matplotlib
    import numpy
    import pandas
    import scipy
    import statsmodels

    return {
        "Likeness analysis": analysis.__version__,
        "Python": platform.python_version(),
        "NumPy": numpy.__version__,
        "SciPy": scipy.__version__,
        "pandas": pandas.__version__,
        "statsmodels": statsmodels.__version__,
        "matplotlib": matplotlib.__version__,
    }


def analyse(*args: Any, **kwargs: Any) -> Any:
    """`analysis.report.analyse`, imported on the first report (it loads SciPy and statsmodels)."""
    from analysis.report import analyse as run_analysis

    return run_analysis(*args, **kwargs)


def compute(report_id: int, inputs: StudyInputs) -> bool:
    """Run the analysis for a pending report row and store its results (or its failure).

    Returns False when nothing was stored because the row is gone or a participant withdrew
    after the inputs were read (the row is then deleted: the next visit computes again).
    """
    report = db.session.get(Report, report_id)
    if report is None or report.status not in ("pending", "running"):
        return False
    study_id = report.study_id
    stamp = (report.results or {}).get(REPORT_DATA, {}).get("stamp")
    study = db.session.get(Study, study_id)
    report.status = "running"
    db.session.commit()
    try:
        result = analyse(
            inputs.trials,
            inputs.participants,
            plan=inputs.plan,
            scale_ranges=inputs.scale_ranges,
            identities=inputs.identities,
        )
        stored = dict(result.results)
        stored["simulated_participants"] = simulated_record(inputs)
        stored[REPORT_DATA] = {
            "stamp": stamp,
            "sample": sample_summary(study, inputs, result.tables["exclusions"]),
            "software": software_versions(),
            "tables": {name: _table_json(table) for name, table in result.tables.items()},
        }
    except ValueError as exc:
        _fail(report_id, f"The analysis could not run on these data: {exc}")
        return True
    except Exception as exc:
        log.exception("report %s failed", report_id)
        _fail(
            report_id,
            f"The analysis stopped with an unexpected error ({type(exc).__name__}: "
            f"{exc}). Try again; if it fails again, the data export and this message "
            "will help to find the cause.",
        )
        return True
    # The withdrawal check is part of the UPDATE, made under the study row's lock, which a
    # withdrawal takes first: a withdrawal committed before is seen, one in progress is waited
    # for, and one that comes after deletes the stored row (`forget_reports`).
    db.session.execute(
        sa.select(Study.id).where(Study.id == study_id).with_for_update(key_share=True)
    )
    # Likewise a deletion of the simulated participants (`delete_simulated`), for a report that
    # includes them.
    unchanged = [_withdrawn_count(study_id) == inputs.withdrawn]
    if inputs.include_simulated:
        unchanged.append(_simulated_count(study_id) == inputs.simulated)
    done = db.session.execute(
        sa.update(Report)
        .where(Report.id == report_id, Report.status == "running", *unchanged)
        .values(results=stored, status="done", error="", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not done:
        # A withdrawal meanwhile; never a report another computation of it finished.
        db.session.execute(sa.delete(Report).where(Report.id == report_id, Report.status != "done"))
    db.session.commit()
    db.session.expire_all()
    return bool(done)


def _fail(report_id: int, message: str) -> None:
    """Mark a report failed with a message in plain words."""
    db.session.rollback()
    report = db.session.get(Report, report_id)
    if report is not None:
        report.status = "failed"
        report.error = message
        report.finished_at = utcnow()
        db.session.commit()


def report_job_inputs(report: Report) -> dict[str, Any]:
    """The inputs of a report's job: the row, its data hash and when the row was made (a row
    id reused after a deletion never finds the earlier row's job)."""
    return {
        "report_id": report.id,
        "data_sha256": report.data_sha256,
        "created": report.created_at.isoformat(),
        "include_simulated": bool(report.includes_simulated),
    }


def report_job(report: Report) -> Job | None:
    """The background job computing a report (None when it was computed in the request)."""
    return jobs.find(jobs.job_key("report", report_job_inputs(report)))


def _start_job(report: Report) -> Job:
    """Compute a report in the background (a worker, or a thread without one)."""
    return jobs.enqueue("report", study_id=report.study_id, **report_job_inputs(report))


@jobs.kind("report", N_("Computing the report"))
def compute_job(job: Job, progress: jobs.Progress) -> dict:
    """The report job: read the data again, check they are still what the row is keyed by,
    then compute. Run again after a killed worker, it computes the row still running."""
    report_id = int(job.inputs["report_id"])
    report = db.session.get(Report, report_id)
    if report is None or report.status in ("done", "failed"):
        return {"report_id": report_id if report is not None else None}
    study = db.session.get(Study, report.study_id)
    progress(10, N_("Reading the data"))
    inputs = load_inputs(study, bool(job.inputs.get("include_simulated")))
    db.session.commit()
    if inputs.data_sha256 != report.data_sha256:
        # New data arrived since the row was made: the next visit computes the data then.
        db.session.execute(sa.delete(Report).where(Report.id == report_id))
        db.session.commit()
        return {"report_id": None, "superseded": True}
    progress(30, f"Analysing {len(inputs.trials):,} answers")
    stored = compute(report_id, inputs)
    return {"report_id": report_id if stored else None}


def _expire_stale(study: Study) -> None:
    """Mark failed the pending or running reports that no computation will finish: their job
    failed for good, or (computed in a request) they outlived any request."""
    seconds = current_app.config["REPORT_STALE_SECONDS"]
    limit = utcnow() - timedelta(seconds=seconds)
    unfinished = db.session.scalars(
        sa.select(Report).where(
            Report.study_id == study.id, Report.status.in_(("pending", "running"))
        )
    ).all()
    changed = False
    for report in unfinished:
        job = report_job(report)
        if job is not None and job.status in ("queued", "running"):
            continue  # a worker has it, or will (a killed worker's job is started again)
        if job is not None and job.status == "failed":
            error = f"The computation failed {job.attempts} time(s): {job.error}"
        elif report.created_at < limit:
            error = (
                "The computation stopped before it finished (the server may have restarted). "
                "Try again."
            )
        else:
            continue
        report.status = "failed"
        report.error = error
        report.finished_at = utcnow()
        changed = True
    if changed:
        db.session.commit()


def _find(study_id: int, sha: str) -> Report | None:
    """The report of these data under the running analysis version."""
    return db.session.scalar(
        sa.select(Report).where(
            Report.study_id == study_id,
            Report.data_sha256 == sha,
            Report.analysis_version == analysis.__version__,
        )
    )


def latest_done(study: Study, include_simulated: bool = False) -> Report | None:
    """The most recently finished report of the study, of any data, with the simulated
    participants included or not as asked."""
    return db.session.scalar(
        sa.select(Report)
        .where(
            Report.study_id == study.id,
            Report.status == "done",
            Report.includes_simulated.is_(include_simulated),
        )
        .order_by(Report.finished_at.desc(), Report.id.desc())
        .limit(1)
    )


def report_state(study: Study, include_simulated: bool = False, _attempts: int = 3) -> ReportState:
    """Find or start the report of the study's current data; see the module docstring.

    By default the report of the real participants; with `include_simulated`, the one that
    also analyses the simulated participants (never published).
    """
    # Without a worker, a report job left by a restarted web process is started again here.
    jobs.recover_in_process()
    _expire_stale(study)
    data = current_data(study, include_simulated)
    if data.sha is None:
        return ReportState(None, None, None, 0)
    report = _find(study.id, data.sha)
    if report is None:
        running = db.session.scalar(
            sa.select(Report)
            .where(Report.study_id == study.id, Report.status.in_(("pending", "running")))
            .limit(1)
        )
        if running is not None:
            # One computation per study at a time; the next visit starts the newer one.
            return ReportState(None, latest_done(study, include_simulated), running, data.n_rows)
        report, created = _insert_pending(study, data.sha, data.stamp, include_simulated)
        if created:
            inputs = data.inputs or load_inputs(study, include_simulated)
            if inputs.data_sha256 != data.sha and _attempts > 1:
                # New data arrived between the stamp and the read: key the row by what is read.
                db.session.delete(report)
                db.session.commit()
                return report_state(study, include_simulated, _attempts - 1)
            inline = current_app.config["REPORT_INLINE_MAX_ROWS"]
            if data.n_rows <= inline:
                if not compute(report.id, inputs):
                    # A participant withdrew meanwhile: compute the remaining data instead.
                    if _attempts > 1:
                        return report_state(study, include_simulated, _attempts - 1)
                    return ReportState(
                        None, latest_done(study, include_simulated), None, data.n_rows
                    )
                db.session.refresh(report)
            else:
                _start_job(report)
    if report.status == "done":
        return ReportState(report, report, None, data.n_rows)
    if report.status == "failed":
        return ReportState(report, latest_done(study, include_simulated), None, data.n_rows)
    return ReportState(report, latest_done(study, include_simulated), report, data.n_rows)


def _insert_pending(
    study: Study, sha: str, stamp: str, include_simulated: bool = False
) -> tuple[Report, bool]:
    """Insert the pending row and tell whether this request did; a concurrent one may win."""
    report = Report(
        study_id=study.id,
        data_sha256=sha,
        analysis_version=analysis.__version__,
        status="pending",
        results={REPORT_DATA: {"stamp": stamp}},
        includes_simulated=include_simulated,
    )
    db.session.add(report)
    try:
        db.session.commit()
    except IntegrityError:
        # The unique (study, data hash, version) key: another request inserted it first and
        # computes it; this one shows its progress.
        db.session.rollback()
        report = _find(study.id, sha)
        if report is None:
            raise
        return report, False
    return report, True


def forget_reports(study_id: int, only_simulated: bool = False) -> int:
    """Delete every stored report of the study, published or not, in the caller's transaction.

    Called when a participant's data are deleted: results.json, the tables and the published
    findings may all hold the person's id or scores. The next visit to the report (or to the
    public page, see `published_report`) computes the report of the remaining data. With
    `only_simulated`, only the reports that included simulated participants (none of them
    published). Returns how many were deleted.
    """
    stmt = sa.delete(Report).where(Report.study_id == study_id)
    if only_simulated:
        stmt = stmt.where(Report.includes_simulated.is_(True))
    return db.session.execute(stmt).rowcount or 0


def retry(study: Study) -> int:
    """Delete the study's failed reports so the next visit computes again; return how many."""
    failed = db.session.scalars(
        sa.select(Report).where(Report.study_id == study.id, Report.status == "failed")
    ).all()
    for report in failed:
        db.session.delete(report)
    db.session.commit()
    return len(failed)


def finished_current_report(study: Study) -> Report | None:
    """The finished report of the study's current data, without starting a computation."""
    data = current_data(study)
    if data.sha is None:
        return None
    report = _find(study.id, data.sha)
    return report if report is not None and report.status == "done" else None


def _state_problem(study: Study) -> str | None:
    """Why a study in its state cannot have its findings published (None when it can)."""
    if study.state in PUBLIC_STATES:
        return None
    return gettext(
        "Only a closed (or archived) study's findings can be published; this "
        "study is %(state)s. Close it first.",
        state=study.state,
    )


def _size_problem(report: Report) -> str | None:
    """Why a report includes too few participants to be published (None when it does not)."""
    n = results_json(report).get("n_participants", 0)
    if n >= MIN_PUBLIC_N:
        return None
    return gettext(
        "Findings are published only from at least %(minimum)s included "
        "participants; this report includes %(n)s.",
        minimum=MIN_PUBLIC_N,
        n=n,
    )


def publish_problems(study: Study, report: Report | None) -> list[str]:
    """Why the findings could not be published now (empty when they can)."""
    problems = [_state_problem(study)]
    if report is None:
        problems.append(
            gettext(
                "There is no finished report of the current data: open the report, "
                "which computes it, then come back."
            )
        )
    else:
        problems.append(_size_problem(report))
    return [problem for problem in problems if problem is not None]


def report_of(study: Study, report_id: int) -> Report | None:
    """A finished report of this study by id, or None."""
    report = db.session.get(Report, report_id)
    if report is None or report.study_id != study.id or report.status != "done":
        return None
    return report


# --- what the pages show -----------------------------------------------------------------------


def results_json(report: Report) -> dict:
    """results.json of a report (without the web report's own data)."""
    return {k: v for k, v in (report.results or {}).items() if k != REPORT_DATA}


def report_data(report: Report) -> dict:
    """The web report's data of a report: sample, software and tables."""
    return (report.results or {}).get(REPORT_DATA) or {}


def tables(report: Report) -> dict[str, pd.DataFrame]:
    """The report's tidy tables as DataFrames."""
    return {
        name: table_frame(stored) for name, stored in report_data(report).get("tables", {}).items()
    }


def score_tables(report: Report) -> tuple[pd.DataFrame, pd.DataFrame]:
    """participant_scores and identity_scores of a report (empty tables when absent)."""
    stored = report_data(report).get("tables", {})
    empty = {"columns": ["outcome", "condition", "value"], "data": []}
    return (
        table_frame(stored.get("participant_scores", empty)),
        table_frame(stored.get("identity_scores", empty)),
    )


def design_facts(study: Study) -> dict[str, Any]:
    """The design as the methods paragraph needs it."""
    blocks = []
    flow = block_flow.flow_settings(study.settings)
    last = block_flow.kept_last(study.blocks, flow.last)
    # In the order listed, the blocks kept at the end (choose blocks always) after the others.
    for block in design.block_order(study.blocks, "fixed", last=last)[0]:
        try:
            settings = block_settings.validate_block_settings(block.task, block.settings)
        except ValueError:
            settings = dict(block.settings or {})
        blocks.append({"name": block.name, "task": block.task, "settings": settings})
    prereg = study.preregistration
    frozen = prereg is not None and prereg.frozen_at is not None
    return {
        "n_identities": len(study.identities),
        "n_consented": sum(1 for identity in study.identities if identity.consent_recorded),
        "n_lists": study.n_lists,
        "assign_by": study.assign_by,
        "blocks": blocks,
        "block_order": flow.order,
        "blocks_last": list(last),
        "block_breaks": flow.breaks,
        "preregistration": {
            "frozen_at": prereg.frozen_at.strftime("%d %B %Y"),
            "sha256": prereg.sha256,
        }
        if frozen
        else None,
    }


def methods_text(study: Study, report: Report) -> str:
    """The methods paragraph of a report."""
    data = report_data(report)
    return methods_paragraph(
        design_facts(study), results_json(report), data.get("sample", {}), data.get("software", {})
    )


def public_results(report: Report) -> dict:
    """results.json without anything about single participants: aggregates only."""
    results = results_json(report)
    public = {k: v for k, v in results.items() if k not in PRIVATE_KEYS}
    reasons = report_data(report).get("sample", {}).get("reasons", {})
    public["exclusion_reasons"] = reasons
    return public


# Rows of each list of `participant_lists` shown at most (the counts are always complete).
LISTED_MAX = 200


def participant_lists(
    study: Study, report: Report | None, include_simulated: bool = False
) -> dict[str, Any]:
    """Who is not in the analysis, and why: excluded by a rule (from the report's exclusions
    table), expired, not finished (in progress or abandoned), and the withdrawn (a count: their
    data are gone). Preview runs never count; simulated participants only when included.
    Expired and unfinished participants are read live; exclusions are the report's own.
    """
    from survey.findings.methods import REASON_WORDS

    excluded = []
    if report is not None:
        frame = tables(report).get("exclusions")
        if frame is not None and "excluded" in frame:
            for row in frame[frame["excluded"].astype(bool)].itertuples(index=False):
                reasons = [REASON_WORDS.get(r, r) for r in str(row.reason).split("; ") if r]
                excluded.append(
                    {
                        "participant": row.participant,
                        "reason": "; ".join(reasons),
                        "detail": getattr(row, "detail", "") or "",
                    }
                )
    where = [Participant.study_id == study.id, Participant.is_preview.is_(False)]
    if not include_simulated:
        where.append(Participant.is_simulated.is_(False))
    scheduled = (
        sa.select(sa.func.count(Trial.id))
        .where(Trial.participant_id == Participant.id, Trial.is_practice.is_(False))
        .scalar_subquery()
    )
    answered_trials = (
        sa.select(sa.func.count(Trial.id))
        .where(
            Trial.participant_id == Participant.id,
            Trial.is_practice.is_(False),
            Trial.answered_at.is_not(None),
        )
        .scalar_subquery()
    )

    def listed(status: str) -> tuple[list[dict], int]:
        total = (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(Participant)
                .where(*where, Participant.status == status)
            )
            or 0
        )
        rows = db.session.execute(
            sa.select(
                Participant.public_id,
                Participant.started_at,
                Participant.expired_at,
                Participant.is_simulated,
                answered_trials.label("answered"),
                scheduled.label("scheduled"),
            )
            .where(*where, Participant.status == status)
            .order_by(Participant.started_at, Participant.id)
            .limit(LISTED_MAX)
        ).all()
        return [
            {
                "participant": r.public_id,
                "started_at": r.started_at,
                "expired_at": r.expired_at,
                "simulated": r.is_simulated,
                "answered": r.answered,
                "scheduled": r.scheduled,
            }
            for r in rows
        ], int(total)

    expired, n_expired = listed("expired")
    unfinished, n_unfinished = listed("in_progress")
    withdrawn = (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Participant)
            .where(*where, Participant.status == "withdrawn")
        )
        or 0
    )
    return {
        "excluded": excluded,
        "expired": expired,
        "n_expired": n_expired,
        "unfinished": unfinished,
        "n_unfinished": n_unfinished,
        "withdrawn": int(withdrawn),
        "limit": LISTED_MAX,
    }


def plain_warnings(results: dict, sample: dict, plan: dict | None) -> list[str]:
    """Warnings a reader must see, in plain words: small N, singular fits, unbalanced lists."""
    notes = []
    n = results.get("n_participants", 0)
    if n < MIN_PUBLIC_N:
        notes.append(
            f"Only {n} participants are included: estimates are imprecise, and "
            f"findings need at least {MIN_PUBLIC_N} included participants to be "
            "published."
        )
    target = (plan or {}).get("target_n")
    if target and n < target:
        notes.append(
            f"The preregistered target was {target} included participants; {n} are included so far."
        )
    n_identities = results.get("n_identities", 0)
    if 0 < n_identities < 10:
        notes.append(
            f"Only {n_identities} identities were shown: the tests over identities "
            "have little power, and the results may not generalise to other people."
        )
    for test in results.get("tests", []):
        if test.get("method") in ("lmm", "glmm", "clmm") and test.get("singular"):
            notes.append(
                f"The mixed model of {test['outcome'].replace('_', ' ')} is singular: "
                f"{present.singular_cause(test)}, so the model is simpler than its "
                "formula; read it beside the participant-level test."
            )
        if test.get("method") in ("lmm", "glmm", "clmm") and test.get("converged") is False:
            notes.append(
                f"The mixed model of {test['outcome'].replace('_', ' ')} did not "
                "converge: do not rely on it."
            )
    lists = [row for row in sample.get("by_list", []) if row.get("list") != "unknown"]
    if len(lists) > 1:
        counts = [row["included"] for row in lists]
        if max(counts) - min(counts) > max(2, 0.1 * (sum(counts) / len(counts))):
            notes.append(
                "The counterbalancing lists are unbalanced ("
                + ", ".join(f"list {row['list']}: {row['included']}" for row in lists)
                + " included participants): each identity was not seen equally often "
                "in each condition."
            )
    return notes


# --- downloads ---------------------------------------------------------------------------------


def tables_zip(report: Report) -> bytes:
    """results.json and one CSV per result table in a ZIP (analysis.report.write_report's files)."""
    from analysis.report import Report as AnalysisReport
    from analysis.report import write_report

    frames = {}
    for name, frame in tables(report).items():
        # Participant ids may start with '-': guard text cells as the exports do.
        frames[name] = frame.apply(
            lambda column: column.map(lambda v: exports.safe_cell(v) if isinstance(v, str) else v)
        )
    with tempfile.TemporaryDirectory() as folder:
        write_report(AnalysisReport(results_json(report), frames), folder)
        return _zip_folder(folder)


def _zip_folder(folder: str) -> bytes:
    """Every file of a folder in a ZIP, sorted by name."""
    from pathlib import Path

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(folder).iterdir()):
            if path.is_file() and not path.name.startswith("."):
                archive.write(path, path.name)
    return buffer.getvalue()


README = """Reproduction bundle of the Likeness study "{title}" ({slug})

trials.csv        one row per answer to one measure (columns of the Likeness data contract)
participants.csv  one row per participant
identities.csv    one row per identity with its descriptors (the report's moderators)
results.json      the results of the analysis (analysis {version})
analysis.R        recomputes every test of results.json with R: Rscript analysis.R
                  (needs R with lme4 and lmerTest; prints R's values beside results.json's)

The data are the study's export at the time of the report: withdrawn participants and preview
runs are not in them; recruitment-platform ids are left out. {simulated} Text cells that a
spreadsheet would evaluate start with an apostrophe; analysis.R removes it.

Data hash: {sha}
It is the SHA-256 of the canonical trials table (analysis.io.canonical_trials_csv), a newline,
participants.csv's contract columns sorted by participant, a newline, and the preregistered
plan as compact JSON with sorted keys ("null" without a plan); when the study had simulated
participants (or they were included), then a newline and "simulated excluded N" (or
"simulated included N"); when identities have descriptors, then a newline, "identities", a
newline and the identities table as CSV (identity and the descriptor columns that hold any
value, cells as stored, no apostrophe guard).

Re-run the Python analysis with:  python -m analysis report trials.csv --out report/
"""


def bundle_stream(study: Study, report: Report) -> Any:
    """The reproduction bundle ZIP: trials.csv, participants.csv, results.json, analysis.R, README.

    The two tables are streamed from the database by the exports' own CSV writers into a
    spooled temporary file, so a large study needs no more memory than a small one.
    """
    results = results_json(report)
    # Left open for the caller, which streams it and then closes it.
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115
    include = report.includes_simulated
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, chunks in (
            ("trials.csv", exports.trials_csv(study.id, include_simulated=include)),
            ("participants.csv", exports.participants_csv(study.id, include_simulated=include)),
            ("identities.csv", exports.identities_csv(study.id)),
        ):
            with archive.open(name, "w", force_zip64=True) as entry:
                for chunk in chunks:
                    entry.write(chunk.encode("utf-8"))
        archive.writestr("results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        # The participants' title: the internal name and the private note stay in the workspace.
        archive.writestr("analysis.R", r_script(results, title=study.title))
        archive.writestr(
            "README.txt",
            README.format(
                title=study.title,
                slug=study.slug,
                version=report.analysis_version,
                sha=report.data_sha256,
                simulated=(
                    "Simulated participants (column simulated = 1) are in them, as in the analysis."
                    if include
                    else "Simulated participants are not in them, as in the analysis."
                ),
            ),
        )
    spool.seek(0)
    return spool


# --- publishing --------------------------------------------------------------------------------


def authors(study: Study) -> list[str]:
    """The display names of the members the owner chose as authors, owners first.

    Only members opted in (`StudyMember.is_author`) with a display name they set are listed:
    an email, or any part of it, is never shown.
    """
    members = db.session.execute(
        sa.select(StudyMember.role, Researcher.name)
        .join(Researcher, Researcher.id == StudyMember.researcher_id)
        .where(StudyMember.study_id == study.id, StudyMember.is_author.is_(True))
    ).all()
    named = [m for m in members if (m.name or "").strip()]
    ordered = sorted(named, key=lambda m: (ROLE_ORDER.get(m.role, 9), m.name.strip().lower()))
    return [m.name.strip() for m in ordered]


def citation(study: Study, report: Report, names: list[str], published: Any, url: str) -> str:
    """The citation of published findings: the authors when chosen, else the title first."""
    tail = (
        f"Likeness findings, published {published:%d %B %Y}. {url} (data SHA-256 "
        f"{cited_sha256(report)[:16]}…, analysis {report.analysis_version})."
    )
    title = study.title.rstrip(".")
    if names:
        return f"{', '.join(names)} ({published:%Y}). {title}. {tail}"
    return f"{title} ({published:%Y}). {tail}"


def published_report(study: Study) -> Report | None:
    """The report whose findings the public page shows, when the study's findings are public.

    After a withdrawal deleted the published report, the report of the remaining data is
    computed and published in its place once it is ready and includes enough participants;
    until then there is none.
    """
    if study.findings_published_at is None or study.state not in PUBLIC_STATES:
        return None
    published = sa.select(Report).where(
        Report.study_id == study.id,
        Report.published_at.is_not(None),
        Report.status == "done",
        Report.includes_simulated.is_(False),
    )
    report = db.session.scalar(published.order_by(Report.published_at.desc()).limit(1))
    if report is not None:
        return report
    current = report_state(study).current
    if (
        current is None
        or current.status != "done"
        or results_json(current).get("n_participants", 0) < MIN_PUBLIC_N
    ):
        return None
    # Conditional, so of two requests doing this at once one publishes and one reads.
    republished = db.session.execute(
        sa.update(Report)
        .where(
            Report.id == current.id,
            Report.published_at.is_(None),
            ~sa.exists().where(Report.study_id == study.id, Report.published_at.is_not(None)),
        )
        .values(published_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if republished:
        audit.record(
            "findings.republish",
            researcher=None,
            study=study,
            report_id=current.id,
            data_sha256=current.data_sha256,
            reason="a participant withdrew",
        )
    db.session.commit()
    return db.session.scalar(published.order_by(Report.published_at.desc()).limit(1))


def withdrawn_since_published(study: Study) -> Any:
    """When the last participant withdrew after the findings were published (None if nobody did)."""
    if study.findings_published_at is None:
        return None
    return db.session.scalar(
        sa.select(sa.func.max(Participant.withdrawn_at)).where(
            Participant.study_id == study.id,
            Participant.is_preview.is_(False),
            Participant.withdrawn_at > study.findings_published_at,
        )
    )


def public_study(slug: str) -> tuple[Study | None, Report | None]:
    """The study with that slug and its published report, or (None, None) when not public.

    A study whose findings are published but are being recomputed after a withdrawal comes
    with no report: (study, None).
    """
    study = db.session.scalar(sa.select(Study).where(Study.slug == slug))
    if study is None:
        return None, None
    report = published_report(study)
    if report is None and (study.findings_published_at is None or study.state not in PUBLIC_STATES):
        return None, None
    return study, report


def publish(study: Study, researcher: Researcher, confirmed_report_id: int | None = None) -> Report:
    """Publish the findings of the current data's report; PublishError says why not.

    `confirmed_report_id` is the report the owner reviewed on the confirmation page: when new
    data made another report current meanwhile, nothing is published.
    """
    problem = _state_problem(study)
    if problem is not None:
        raise PublishError(problem)
    state = report_state(study)
    report = state.current
    if report is None:
        raise PublishError(gettext("The study has no data to publish yet."))
    if report.status != "done":
        raise PublishError(
            gettext(
                "The report of the current data is not ready yet: wait until it is "
                "computed, then publish."
            )
            if report.status != "failed"
            else gettext("The report of the current data failed; fix that before publishing.")
        )
    if report.includes_simulated:  # report_state's default never is: a guard, not a path
        raise PublishError(
            gettext("A report that includes simulated participants cannot be published.")
        )
    problem = _size_problem(report)
    if problem is not None:
        raise PublishError(problem)
    if confirmed_report_id is not None and confirmed_report_id != report.id:
        raise PublishError(
            gettext(
                "New data arrived after you reviewed what becomes public, so the "
                "report changed. Nothing was published: review it again, then "
                "publish."
            )
        )
    now = utcnow()
    db.session.execute(
        sa.update(Report)
        .where(Report.study_id == study.id, Report.id != report.id)
        .values(published_at=None)
    )
    report.published_at = now
    study.findings_published_at = now
    audit.record(
        "findings.publish",
        researcher=researcher,
        study=study,
        report_id=report.id,
        data_sha256=report.data_sha256,
        analysis_version=report.analysis_version,
    )
    db.session.commit()
    return report


def unpublish(study: Study, researcher: Researcher) -> None:
    """Take the public findings page down."""
    if study.findings_published_at is None:
        raise PublishError(gettext("The findings of this study are not published."))
    db.session.execute(
        sa.update(Report).where(Report.study_id == study.id).values(published_at=None)
    )
    # The public charts go with the page; publishing again draws them anew.
    db.session.execute(
        sa.delete(ReportChart).where(
            ReportChart.name.like("card:%"),
            ReportChart.report_id.in_(sa.select(Report.id).where(Report.study_id == study.id)),
        )
    )
    study.findings_published_at = None
    audit.record("findings.unpublish", researcher=researcher, study=study)
    db.session.commit()


def cited_sha256(report: Report) -> str:
    """The data's SHA-256 as results.json states it (the canonical trials table, as
    `analysis.io` defines it); `Report.data_sha256` is only the cache key of the report."""
    return results_json(report)["data_sha256"]


def card_footer(url: str, report: Report) -> str:
    """The footer of a public chart: where it comes from and what it was computed from."""
    return (
        f"{url} · data SHA-256 {cited_sha256(report)[:12]} · analysis "
        f"{report.analysis_version} · Likeness"
    )


def chart(study: Study, report: Report, outcome: str, fmt: str, url: str) -> bytes | None:
    """The public chart of one finding, or None when the report has no finding on it."""
    results = results_json(report)
    finding = next((f for f in results.get("findings", []) if f.get("outcome") == outcome), None)
    if finding is None:
        return None
    from analysis.figures import claim_card

    return claim_card(results, finding, study.title, card_footer(url, report), fmt)


def has_finding(report: Report, outcome: str) -> bool:
    """Whether the report has a finding on this outcome (so a public chart of it)."""
    return any(f.get("outcome") == outcome for f in results_json(report).get("findings", []))


# --- drawn charts, stored once per report -------------------------------------------------------
#
# matplotlib takes about 0.2 s of CPU a chart. Each drawn chart is stored once per report, name
# and format (`ReportChart`), with a digest of everything else it was drawn from (`inputs`: the
# figure code's version, the study title, the footer); a row whose inputs differ is redrawn.
# Rows go with their report (ON DELETE CASCADE, enforced on SQLite by the connection's
# PRAGMA foreign_keys), so a withdrawal's `forget_reports` deletes them in its transaction.


def chart_inputs(*parts: str) -> str:
    """The digest of what a chart is drawn from besides its report's results."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def card_name(outcome: str) -> str:
    """The stored name of a finding's public chart."""
    return f"card:{outcome}"


def figure_name(name: str) -> str:
    """The stored name of one of the report's figures."""
    return f"figure:{name}"


def _chart_row(report_id: int, name: str, fmt: str, inputs: str, columns: tuple) -> Any:
    """Columns of the stored chart when its inputs are these, else None."""
    return db.session.execute(
        sa.select(*columns).where(
            ReportChart.report_id == report_id,
            ReportChart.name == name,
            ReportChart.fmt == fmt,
            ReportChart.inputs == inputs,
        )
    ).first()


def stored_chart_sha(report_id: int, name: str, fmt: str, inputs: str) -> str | None:
    """The SHA-256 of the stored chart (its ETag), without reading its bytes; None if none."""
    row = _chart_row(report_id, name, fmt, inputs, (ReportChart.sha256,))
    return row.sha256 if row is not None else None


def stored_chart(report_id: int, name: str, fmt: str, inputs: str) -> tuple[str, bytes] | None:
    """The stored chart's SHA-256 and bytes, or None."""
    row = _chart_row(report_id, name, fmt, inputs, (ReportChart.sha256, ReportChart.body))
    return (row.sha256, bytes(row.body)) if row is not None else None


def store_chart(report_id: int, name: str, fmt: str, inputs: str, body: bytes) -> str:
    """Store a drawn chart in its own transaction (replacing one of other inputs); its SHA-256.

    Two requests drawing the same chart at once both get their bytes: the unique key keeps
    the first stored, the second's insert fails and is rolled back. So does an insert for a
    report that a withdrawal deleted meanwhile (the foreign key): nothing is stored for it.
    """
    sha = hashlib.sha256(body).hexdigest()
    try:
        db.session.execute(
            sa.delete(ReportChart).where(
                ReportChart.report_id == report_id,
                ReportChart.name == name,
                ReportChart.fmt == fmt,
                ReportChart.inputs != inputs,
            )
        )
        db.session.add(
            ReportChart(
                report_id=report_id, name=name, fmt=fmt, inputs=inputs, sha256=sha, body=body
            )
        )
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
    return sha


def cached_chart(
    report_id: int, name: str, fmt: str, inputs: str, draw: Any
) -> tuple[str, bytes] | None:
    """The stored chart, else `draw()` stored and returned; None when `draw()` gives None."""
    stored = stored_chart(report_id, name, fmt, inputs)
    if stored is not None:
        return stored
    body = draw()
    if body is None:
        return None
    return store_chart(report_id, name, fmt, inputs, body), body


def card_inputs(study: Study, report: Report, url: str, version: str) -> str:
    """The inputs digest of a public chart card: code version, study title and footer."""
    return chart_inputs("card", version, study.title, card_footer(url, report))


def start_public_charts(study: Study, report: Report, url: str, version: str) -> Job:
    """Draw the public charts of a just-published report in the background."""
    return jobs.enqueue(
        "charts",
        study_id=study.id,
        report_id=report.id,
        url=url,
        version=version,
        inputs=card_inputs(study, report, url, version),
        # Each publication draws anew (unpublishing deleted the charts).
        published=report.published_at.isoformat() if report.published_at else "",
    )


@jobs.kind("charts", N_("Drawing the public charts"))
def charts_job(job: Job, progress: jobs.Progress) -> dict:
    """The charts job: draw what is not stored yet (each chart is stored once, so a run after
    a killed worker draws only the rest)."""
    report = db.session.get(Report, int(job.inputs["report_id"]))
    study = db.session.get(Study, job.study_id) if report is not None else None
    if report is None or study is None:
        return {"drawn": 0}  # unpublished or deleted meanwhile: nothing to draw
    progress(10, N_("Drawing the charts"))
    drawn = draw_public_charts(study, report, str(job.inputs["url"]), str(job.inputs["version"]))
    return {"drawn": drawn, "report_id": report.id}


def draw_public_charts(study: Study, report: Report, url: str, version: str) -> int:
    """Draw and store every public chart of a report not stored yet; how many were drawn.

    Called on publishing, so the first visitors find the charts drawn.
    """
    from analysis.figures import claim_card
    from analysis.results import FORMATS

    report_id, title = report.id, study.title
    results, footer = results_json(report), card_footer(url, report)
    inputs = card_inputs(study, report, url, version)
    drawn = 0
    for finding in results.get("findings", []):
        for fmt in FORMATS:
            name = card_name(finding["outcome"])
            if stored_chart_sha(report_id, name, fmt, inputs) is None:
                store_chart(
                    report_id, name, fmt, inputs, claim_card(results, finding, title, footer, fmt)
                )
                drawn += 1
    return drawn
