"""The participant flow's database work: start, resume, record answers, complete, withdraw.

Routes and the simulation command both call these functions; nothing here reads the request.

Starting takes the study row's lock (an UPDATE of its start counter: a row lock in PostgreSQL,
the write lock in SQLite), so concurrent starts run one after another: each sees the lists'
counts left by the one before, and the target-N check cannot be overrun. Under the same lock a
start from the study link is checked against the start limits (`survey.participant.limits`)
and marks the study's participants past the expiry time expired. Showing a trial and
recording an answer are the hot path, run on a connection of their own outside the ORM
session (`survey.participant.hotdb`, autocommit on PostgreSQL). The trial page is one
SELECT, on every request: no worker keeps a page, which another worker's answer or a
withdrawal could have made stale. An answer whose page's signed ticket
(`survey.participant.tickets`) says what validating it needs goes, once valid, straight to
one atomic statement that claims the trial (only if it is the participant's, the participant
is in progress in a study that takes its answers, the trial is still unanswered and every
earlier trial answered), inserts its responses and completes the participant after the last
(on SQLite: claim, insert and complete in one transaction). Without a usable ticket, or when
the claim finds nothing, one SELECT of the posted trial says whether it is this participant's,
answered, the current one, whether the study still takes answers, and what validating the
answer needs. A repeated POST claims nothing and stores nothing; the unique (trial, measure)
key is the last guard.

The pages around the trials (the link, consent, instructions, questions, debrief) start with
one SELECT on that connection too (`flow`): the study by its slug with the participant, as
frozen views; what they write still goes through the ORM session.

Withdrawal deletes the participant's trials, answers and demographics. Its recruitment id is
kept only as a SHA-256 digest and its link parameters are dropped: the platform's id itself is
gone, yet the same id cannot start the study a second time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from sqlalchemy.exc import IntegrityError

from survey import design
from survey.block_settings import validate_block_settings
from survey.cache import BoundedCache
from survey.extensions import db
from survey.models import (
    Block,
    Identity,
    Image,
    Participant,
    RecruitmentId,
    Response,
    Study,
    Trial,
    UTCDateTime,
    utcnow,
)
from survey.participant import hotdb, limits, tickets

# Query parameters naming the participant on each platform, in the order they are looked for,
# and the platform's other parameters worth keeping (apart from the opaque participant id).
PLATFORM_ID_PARAMS = (
    ("prolific", "PROLIFIC_PID"),
    ("mturk", "workerId"),
    ("sona", "sona_id"),
    ("sona", "id"),
    # A generic panel's id: recruited through a plain link that names its participant.
    ("link", "pid"),
)
PLATFORM_EXTRA_PARAMS = {
    "prolific": ("STUDY_ID", "SESSION_ID"),
    "mturk": ("assignmentId", "hitId", "turkSubmitTo"),
    "sona": ("experiment_id", "credit_token", "survey_code"),
    "link": ("source", "session"),
}
# The parameter a platform gives each attempt afresh (Prolific's SESSION_ID, MTurk's
# assignmentId): unlike the participant's platform id it is not known to others, so it lets a
# recruitment id resume its participant in another browser. SONA has none.
PLATFORM_SESSION_PARAMS = {"prolific": "SESSION_ID", "mturk": "assignmentId", "link": "session"}
PLATFORM_NAMES = {"prolific": "Prolific", "mturk": "Mechanical Turk", "sona": "SONA"}
EXTERNAL_ID = re.compile(r"[A-Za-z0-9_.:@+-]{1,128}\Z")
PARAM_VALUE = re.compile(r"[A-Za-z0-9_.:@+/%=-]{1,200}\Z")
WITHDRAWN_ID_PREFIX = "sha256:"
# A response time is stored when above 0 and below 30 days (the participant cookie's life:
# no trial page can stay open longer); anything else is not a time and is stored as missing.
# Implausible but possible times (below 50 ms, above 10 minutes) are kept and flagged in
# the export's rt_flag column, not dropped here.
RT_MAX_MS = 30 * 24 * 3600 * 1000
MOBILE_HINTS = ("Mobi", "Android", "iPhone", "iPod", "Windows Phone", "Opera Mini")


class StudyUnavailable(Exception):
    """A new participant cannot start: `reason` is draft, closed, full, changed or busy.

    Busy: the start limits refused it; `retry_after` says in how many seconds to try again.
    """

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"the study cannot be started: {reason}")


@dataclass(frozen=True)
class Recruitment:
    """A recruitment platform's ids from the study link, kept apart from the participant id."""

    platform: str
    external_id: str
    params: dict[str, str] = field(default_factory=dict, hash=False)


# --- arriving ---------------------------------------------------------------------------------


def recruitment_from_args(args: Mapping[str, str]) -> Recruitment | None:
    """Return the platform and ids named in a link's query, None for a plain link.

    Raises ValueError naming the parameter when its id is malformed (e.g. a placeholder such
    as ``{{%PROLIFIC_PID%}}`` the platform did not fill in).
    """
    for platform, name in PLATFORM_ID_PARAMS:
        raw = args.get(name)
        if raw is None or raw == "":
            continue
        value = raw.strip()
        if not EXTERNAL_ID.match(value):
            raise ValueError(f"{name} {raw[:40]!r} is not a valid participant id")
        params = {
            key: args[key]
            for key in PLATFORM_EXTRA_PARAMS[platform]
            if PARAM_VALUE.match(args.get(key) or "")
        }
        return Recruitment(platform, value, params)
    return None


def device_from_user_agent(user_agent: str | None) -> str:
    """Return "mobile" or "desktop" from a User-Agent string (a simple heuristic)."""
    ua = user_agent or ""
    return "mobile" if any(hint in ua for hint in MOBILE_HINTS) else "desktop"


def withdrawn_digest(platform: str, external_id: str) -> str:
    """Return the digest a withdrawn participant's recruitment id is kept as."""
    digest = hashlib.sha256(f"{platform}:{external_id}".encode()).hexdigest()
    return WITHDRAWN_ID_PREFIX + digest


def _recruited_in(study_id: Any) -> tuple[sa.ColumnElement[bool], ...]:
    """Match the recruitment id of the `platform`, `external_id` and `withdrawn_id` parameters
    in a study: the platform's id, or its digest once its participant withdrew."""
    return (
        RecruitmentId.study_id == study_id,
        RecruitmentId.platform == sa.bindparam("platform"),
        RecruitmentId.external_id.in_([sa.bindparam("external_id"), sa.bindparam("withdrawn_id")]),
    )


def _recruitment_params(recruitment: Recruitment) -> dict[str, str]:
    """Return the parameters `_recruited_in` matches a recruitment id with."""
    return {
        "platform": recruitment.platform,
        "external_id": recruitment.external_id,
        "withdrawn_id": withdrawn_digest(recruitment.platform, recruitment.external_id),
    }


_BY_RECRUITMENT = (
    sa.select(Participant)
    .join(RecruitmentId, RecruitmentId.participant_id == Participant.id)
    .where(*_recruited_in(sa.bindparam("study_id")))
)


def find_by_recruitment(study_id: int, recruitment: Recruitment) -> Participant | None:
    """Return the participant this recruitment id already started in the study, if any."""
    return db.session.scalar(
        _BY_RECRUITMENT, {"study_id": study_id, **_recruitment_params(recruitment)}
    )


def same_attempt(participant_id: int, recruitment: Recruitment) -> bool:
    """Tell whether the link carries the session parameter the participant started with.

    Knowing a participant's platform id is not enough to resume as them: the platform's
    per-attempt parameter must match too (a link without one, or a platform without one,
    resumes only in the participant's own browser).
    """
    name = PLATFORM_SESSION_PARAMS.get(recruitment.platform)
    given = recruitment.params.get(name, "") if name else ""
    if not given:
        return False
    stored = db.session.scalar(
        sa.select(RecruitmentId.params).where(RecruitmentId.participant_id == participant_id)
    )
    kept = stored.get(name, "") if isinstance(stored, dict) else ""
    return bool(kept) and hmac.compare_digest(str(kept).encode(), given.encode())


def find_participant(study_id: int, public_id: str | None) -> Participant | None:
    """Return the study's participant with this opaque id, or None."""
    if not public_id:
        return None
    return db.session.scalar(
        sa.select(Participant).where(
            Participant.public_id == public_id, Participant.study_id == study_id
        )
    )


def study_by_slug(slug: str) -> Study | None:
    """Return the study a link names, or None."""
    return db.session.scalar(sa.select(Study).where(Study.slug == slug))


# --- the participant's pages around the trials ------------------------------------------------


# A study stores a participant's answers while it is open, and a researcher's preview run's
# also while it is a draft. Closing it stops the answers of participants in progress too: they
# are told it closed, what they answered stays (a partial response) unless they withdraw, and
# a reopened study lets them go on.
def takes_answers(state: str, is_preview: bool) -> bool:
    """Tell whether a study in `state` stores the answers of a participant (or preview run)."""
    return state == "open" or (is_preview and state == "draft")


def _takes_answers(state: sa.ColumnElement[str], is_preview: sa.ColumnElement[bool]):
    """Return `takes_answers` as SQL, on a study's state and a participant's is_preview."""
    return sa.or_(state == "open", sa.and_(is_preview, state == "draft"))


@dataclass(frozen=True)
class StudyView:
    """What the participant's pages need of their study, read with the participant."""

    id: int
    slug: str
    title: str
    state: str
    consent_text: str
    instructions_text: str
    debrief_text: str
    completion_code: str
    completion_url: str
    target_n: int | None
    n_lists: int
    assign_by: str
    settings: dict | None
    design_sha256: str | None

    @property
    def is_open(self) -> bool:
        """Tell whether participants may start the study now."""
        return self.state == "open"


@dataclass(frozen=True)
class ParticipantView:
    """What the participant's pages need of the participant."""

    id: int
    public_id: str
    status: str
    is_preview: bool
    consented_at: Any | None
    source: str
    demographics: dict | None
    # At least one trial is answered (the instructions are behind them).
    answered_any: bool


_STUDY_VIEW = tuple(getattr(Study, f.name) for f in fields(StudyView))
_PARTICIPANT_VIEW = (
    *(getattr(Participant, f.name) for f in fields(ParticipantView)[:-1]),
    sa.select(Trial.id)
    .where(Trial.participant_id == Participant.id, Trial.answered_at.is_not(None))
    .exists(),
)


def _flow_statement(participant: sa.ColumnElement[bool]) -> sa.Select:
    """Select a study by its slug with the participant that `participant` joins (or nulls)."""
    return (
        sa.select(*_STUDY_VIEW, *_PARTICIPANT_VIEW)
        .select_from(Study)
        .outerjoin(Participant, participant)
        .where(Study.slug == sa.bindparam("slug"))
    )


# A page's study and this browser's participant (by its opaque id), in one statement.
FLOW = _flow_statement(
    sa.and_(Participant.study_id == Study.id, Participant.public_id == sa.bindparam("public_id"))
)
# A page's study and the participant a recruitment id started (a withdrawn one by its digest).
FLOW_BY_RECRUITMENT = _flow_statement(
    Participant.id
    == sa.select(RecruitmentId.participant_id)
    .where(*_recruited_in(Study.id))
    .limit(1)
    .scalar_subquery()
)


def _flow(rows: Sequence[Sequence[Any]]) -> tuple[StudyView, ParticipantView | None] | None:
    """Read FLOW's row into the study and the participant (None when there is none)."""
    if not rows:
        return None
    row = tuple(rows[0])
    n = len(_STUDY_VIEW)
    # (SQLite returns the EXISTS column as 0 or 1.)
    participant = ParticipantView(*row[n:-1], bool(row[-1])) if row[n] is not None else None
    return StudyView(*row[:n]), participant


def flow(
    slug: str, public_id: str | None = None, recruitment: Recruitment | None = None
) -> tuple[StudyView, ParticipantView | None] | None:
    """Return a link's study and its participant by opaque id or recruitment id; None: no study.

    One statement on the hot path's connection (no ORM session): every page of the flow
    starts with it.
    """
    if recruitment is not None:
        params = {"slug": slug, **_recruitment_params(recruitment)}
        return _flow(hotdb.rows(FLOW_BY_RECRUITMENT, params))
    return _flow(hotdb.rows(FLOW, {"slug": slug, "public_id": public_id}))


# --- starting ---------------------------------------------------------------------------------


def counted_statuses(study: Study) -> tuple[str, ...]:
    """Return the statuses that count toward lists and target N (the study's `assign_by`)."""
    return ("completed",) if study.assign_by == "completed" else ("in_progress", "completed")


def expiry_cutoff(now: datetime | None = None) -> datetime | None:
    """Return the start time before which a participant still in progress has expired.

    None when participants never expire (PARTICIPANT_EXPIRE_HOURS is 0).
    """
    hours = int(current_app.config["PARTICIPANT_EXPIRE_HOURS"])
    if hours <= 0:
        return None
    return (now or utcnow()) - timedelta(hours=hours)


# Mark participants in progress that started before the cutoff as expired: a conditional
# UPDATE, so a participant that completed or withdrew meanwhile is left alone.
_EXPIRE = (
    sa.update(Participant.__table__)
    .where(
        Participant.__table__.c.status == "in_progress",
        Participant.__table__.c.is_preview.is_(False),
        Participant.__table__.c.started_at < sa.bindparam("cutoff", type_=UTCDateTime()),
    )
    .values(status="expired", expired_at=sa.bindparam("now", type_=UTCDateTime()))
)
_EXPIRE_IN_STUDY = _EXPIRE.where(Participant.__table__.c.study_id == sa.bindparam("in_study"))


def expire_participants(
    connection: sa.Connection, now: datetime, study_id: int | None = None
) -> int:
    """Mark the participants (of one study, or all) in progress past the expiry time expired.

    Their answers stay, exported as partial with the time they expired; their list slot is
    free. Returns how many were marked.
    """
    cutoff = expiry_cutoff(now)
    if cutoff is None:
        return 0
    if study_id is None:
        return connection.execute(_EXPIRE, {"cutoff": cutoff, "now": now}).rowcount
    params = {"cutoff": cutoff, "now": now, "in_study": study_id}
    return connection.execute(_EXPIRE_IN_STUDY, params).rowcount


def list_counts(study: Study, *, preview: bool = False, simulated: bool = False) -> list[int]:
    """Return how many counted participants (or preview runs, or simulated participants) each
    list has. Real participants are counted apart from simulated ones: simulated runs never
    fill a real participant's slot (nor the target N), and are balanced among themselves.

    A participant in progress past the expiry time no longer counts, even before it is marked
    expired: its slot is free.
    """
    query = (
        sa.select(Participant.list_index, sa.func.count())
        .where(Participant.study_id == study.id, Participant.is_preview.is_(preview))
        .group_by(Participant.list_index)
    )
    if not preview:
        query = query.where(
            Participant.status.in_(counted_statuses(study)), Participant.is_simulated.is_(simulated)
        )
        cutoff = expiry_cutoff()
        if cutoff is not None:
            query = query.where(
                sa.or_(Participant.status != "in_progress", Participant.started_at >= cutoff)
            )
    counts = [0] * study.n_lists
    for list_index, n in db.session.execute(query):
        if 0 <= list_index < study.n_lists:
            counts[list_index] = n
    return counts


def is_full(study: Study, counts: Sequence[int] | None = None) -> bool:
    """Tell whether the study has its target N of counted participants."""
    if study.target_n is None:
        return False
    return sum(list_counts(study) if counts is None else counts) >= study.target_n


def _load_design(study_id: int) -> Study:
    """Load the study with its identities, images and blocks in three queries."""
    return db.session.scalars(
        sa.select(Study)
        .where(Study.id == study_id)
        .options(
            so.selectinload(Study.identities).selectinload(Identity.images),
            so.selectinload(Study.blocks),
        )
        .execution_options(populate_existing=True)
    ).one()


@dataclass(frozen=True)
class StudyDesign:
    """A study's design as schedules need it, with the row ids that trials refer to."""

    identities: tuple[design.IdentityInfo, ...]
    blocks: tuple[design.BlockInfo, ...]
    identity_ids: dict[str, int]
    block_ids: dict[str, int]


# Frozen designs by engine (one per app) and (study id, design SHA-256): an open study's design
# cannot change, so each worker reads it once rather than on every start (of the most recently
# started studies, at most _FROZEN_DESIGNS_MAX per app).
_FROZEN_DESIGNS_MAX = 256
_FROZEN_DESIGNS: weakref.WeakKeyDictionary[
    sa.Engine, BoundedCache[tuple[int, str], StudyDesign]
] = weakref.WeakKeyDictionary()


def study_design(study: Study, *, cached: bool = True) -> StudyDesign:
    """Return the study's design (read once per worker when frozen, or always when not cached).

    A frozen design is used only if it still hashes to the SHA-256 stored when the study
    opened; otherwise StudyUnavailable("changed") is raised (when cached) and nobody starts.
    """
    key = (study.id, study.design_sha256 or "")
    frozen = _FROZEN_DESIGNS.get(db.engine)
    if frozen is None:
        frozen = _FROZEN_DESIGNS.setdefault(db.engine, BoundedCache(_FROZEN_DESIGNS_MAX))
    if cached and study.design_sha256:
        known = frozen.get(key)
        if known is not None:
            return known
    from survey.studies import design_inputs, design_sha256

    loaded = _load_design(study.id)
    if cached and study.design_sha256 and design_sha256(loaded) != study.design_sha256:
        raise StudyUnavailable("changed")
    identities, blocks = design_inputs(loaded)
    result = StudyDesign(
        identities=tuple(identities),
        blocks=tuple(blocks),
        identity_ids={identity.code: identity.id for identity in loaded.identities},
        block_ids={block.name: block.id for block in loaded.blocks},
    )
    if study.design_sha256:
        frozen.put(key, result)
    return result


def _trial_rows(
    plan: StudyDesign, participant_id: int, specs: Sequence[design.TrialSpec]
) -> list[dict]:
    """Translate schedule specs (identity codes, image keys) into Trial row values."""
    ids = plan.identity_ids
    return [
        {
            "participant_id": participant_id,
            "block_id": plan.block_ids[s.block],
            "position": s.position,
            "task": s.task,
            "identity_id": ids[s.identity],
            "condition": s.condition,
            "image_id": int(s.image),
            "other_image_id": int(s.other_image) if s.other_image else None,
            "left_source": s.left_source,
            "probe_image_id": int(s.probe_image) if s.probe_image else None,
            "probe_identity_id": ids[s.probe_identity] if s.probe_identity else None,
            "is_match": s.is_match,
            "is_practice": s.is_practice,
            "is_attention": s.is_attention,
            "attention_answer": s.attention_answer,
        }
        for s in specs
    ]


@dataclass(frozen=True)
class Start:
    """The participant a consent started or resumed."""

    participant_id: int
    public_id: str
    # True: started now (consented, nothing answered); False: an earlier start resumed.
    started: bool

    @property
    def participant(self) -> Participant:
        """Return the participant from the ORM session (loaded on first use)."""
        return db.session.get(Participant, self.participant_id)


def start_participant(study: Study, **options: Any) -> Participant:
    """Start a participant, or resume the one its recruitment id or public id already started.

    Takes the options of `start_or_resume`, which also tells which of the two happened.
    """
    return start_or_resume(study, **options).participant


# A start's statements, built once (Core: the ORM's unit of work cost more than the inserts).
_STUDY_FOR_START = (Study.id, Study.state, Study.n_lists, Study.target_n, Study.assign_by)
# Take the study row's lock and read the study as it is now, in one statement.
_LOCK_STUDY = (
    sa.update(Study)
    .where(Study.id == sa.bindparam("study_id"))
    .values(participants_started=Study.participants_started + 1)
    .returning(*_STUDY_FOR_START)
)
_READ_STUDY = sa.select(*_STUDY_FOR_START).where(Study.id == sa.bindparam("study_id"))
_INSERT_PARTICIPANT = Participant.__table__.insert().returning(
    Participant.__table__.c.id, Participant.__table__.c.public_id
)
_INSERT_RECRUITMENT = RecruitmentId.__table__.insert()
_INSERT_TRIALS = Trial.__table__.insert()
_TRIAL_ROW_COLUMNS = (
    "participant_id", "block_id", "position", "task", "identity_id", "condition", "image_id",
    "other_image_id", "left_source", "probe_image_id", "probe_identity_id", "is_match",
    "is_practice", "is_attention", "attention_answer",
)  # fmt: skip


def _insert_trials_from_arrays() -> sa.Insert:
    """PostgreSQL: insert a schedule's trials from one array per column, in one statement.

    One INSERT of all rows costs PostgreSQL about half the CPU of one INSERT a row, and its
    SQL is the same for every schedule (a multi-row VALUES list would be new text, parsed
    again by the driver, for every length).
    """
    from sqlalchemy.dialects import postgresql

    columns = [Trial.__table__.c[name] for name in _TRIAL_ROW_COLUMNS]
    arrays = (
        sa.func.unnest(
            *(sa.bindparam(f"all_{c.name}", type_=postgresql.ARRAY(c.type)) for c in columns)
        )
        .table_valued(*_TRIAL_ROW_COLUMNS)
        .render_derived()
    )
    return Trial.__table__.insert().from_select(
        list(_TRIAL_ROW_COLUMNS), sa.select(*(arrays.c[name] for name in _TRIAL_ROW_COLUMNS))
    )


_INSERT_TRIALS_FROM_ARRAYS = _insert_trials_from_arrays()


def _insert_trials(connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert a schedule's trial rows (PostgreSQL: in one statement)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            _INSERT_TRIALS_FROM_ARRAYS,
            {f"all_{name}": [row[name] for row in rows] for name in _TRIAL_ROW_COLUMNS},
        )
    else:
        connection.execute(_INSERT_TRIALS, rows)


# The participant that holds an opaque id, in any study.
_HOLDER = sa.select(Participant.id, Participant.study_id).where(
    Participant.public_id == sa.bindparam("public_id")
)


# The WSGI environ key `flask simulate-participants` sets on its own test client's requests
# (survey/participant/simulate.py). A request from the network cannot carry it: a WSGI server
# puts HTTP headers under HTTP_* keys only, so no header becomes this key.
SIMULATED_ENVIRON = "likeness.simulated"


def start_or_resume(
    study: Study | StudyView,
    *,
    recruitment: Recruitment | None = None,
    device: str | None = None,
    preview: bool = False,
    consented: bool = True,
    public_id: str | None = None,
    address: str | None = None,
    simulated: bool = False,
) -> Start:
    """Start a participant (or resume the one its recruitment id or public id already started).

    Assigns the list with the fewest counted participants, under the study row's lock, stores
    the schedule, and commits. Raises StudyUnavailable (draft, closed, full) for a new
    non-preview participant. `public_id`, when given, is the id the new participant gets; a
    second start with the same id (a double-clicked consent button) returns the first. A start
    from a client `address` (the study link) is subject to the start limits (busy). Under the
    same lock, participants past the expiry time are marked expired before lists are counted.
    A `simulated` participant is marked so (see SIMULATED_ENVIRON); a resumed one keeps its mark.
    """
    study_id = study.id
    existing, public_id = _already_started(study, recruitment, public_id)
    if existing is not None:
        return Start(*existing, started=False)
    # Everything that does not depend on the list is done before taking the lock, so that
    # simultaneous starts wait for each other as briefly as possible: the schedule of every
    # list is built from one seed, and the lock only picks which one is stored.
    plan = study_design(study)
    seed = secrets.randbits(63)

    def schedules_for(n_lists: int) -> list[list[design.TrialSpec]]:
        """Build the schedule of every list from the participant's seed."""
        return [
            design.build_schedule(plan.identities, plan.blocks, index, n_lists, seed)
            for index in range(n_lists)
        ]

    schedules = schedules_for(study.n_lists)
    # The lock must be the transaction's first statement: SQLite cannot upgrade a read
    # transaction to a write once another writer committed. The reads so far end here.
    end_read()
    try:
        connection = db.session.connection()
        now = utcnow()
        current = connection.execute(
            _READ_STUDY if preview else _LOCK_STUDY, {"study_id": study_id}
        ).one()
        if len(schedules) != current.n_lists:  # a draft's lists changed meanwhile (a preview)
            schedules = schedules_for(current.n_lists)
        if not preview:
            if current.state != "open":
                raise StudyUnavailable(current.state if current.state == "draft" else "closed")
            if address is not None:
                retry_after = limits.check_and_record(connection, study_id, address, now)
                if retry_after is not None:
                    db.session.rollback()
                    limits.count_refusal(study_id)
                    raise StudyUnavailable("busy", retry_after)
            expire_participants(connection, now, study_id)
            counts = list_counts(current)
            if is_full(current, counts):
                raise StudyUnavailable("full")
            if simulated:
                counts = list_counts(current, simulated=True)
        else:
            counts = list_counts(current, preview=True)
        list_index = design.choose_list(counts)
        values = {
            "study_id": study_id,
            "list_index": list_index,
            "seed": seed,
            "is_preview": preview,
            "is_simulated": simulated,
            "source": recruitment.platform if recruitment else "link",
            "device": device,
            "started_at": now,
            "consented_at": now if consented else None,
        }
        if public_id:
            values["public_id"] = public_id
        participant_id, public_id = connection.execute(_INSERT_PARTICIPANT, values).one()
        if recruitment is not None:
            connection.execute(
                _INSERT_RECRUITMENT,
                {
                    "participant_id": participant_id,
                    "study_id": study_id,
                    "platform": recruitment.platform,
                    "external_id": recruitment.external_id,
                    "params": dict(recruitment.params),
                },
            )
        _insert_trials(connection, _trial_rows(plan, participant_id, schedules[list_index]))
        db.session.commit()
    except IntegrityError:
        # The same recruitment id or consent token started at the same moment: the unique key
        # let one through, and this one resumes it.
        db.session.rollback()
        existing, _ = _already_started(study, recruitment, public_id)
        if existing is None:
            raise
        return Start(*existing, started=False)
    except BaseException:
        db.session.rollback()
        raise
    return Start(participant_id, public_id, started=True)


def _already_started(
    study: Study | StudyView, recruitment: Recruitment | None, public_id: str | None
) -> tuple[tuple[int, str] | None, str | None]:
    """Return (id, public id) of the participant a recruitment id or public id already started.

    Also returns the public id a new participant may take: None when another study's
    participant has it (ids are unique across studies; the new one then gets a fresh id).
    """
    # Read on the hot path's connection: the ORM session's first statement is then the lock.
    if recruitment is not None:
        found = flow(study.slug, recruitment=recruitment)
        if found is not None and found[1] is not None:
            return (found[1].id, found[1].public_id), public_id
    if public_id:
        holder = hotdb.rows(_HOLDER, {"public_id": public_id})
        if holder:
            owner, holder_study = holder[0]
            return ((owner, public_id), public_id) if holder_study == study.id else (None, None)
    return None, public_id


def consent(participant: Participant) -> None:
    """Record the consent of a participant started before consenting (a preview run)."""
    if participant.consented_at is None:
        participant.consented_at = utcnow()
        db.session.commit()


# --- schedules for audit ---------------------------------------------------------------------


def regenerate_schedule(participant: Participant) -> list[design.TrialSpec]:
    """Rebuild the participant's schedule from its seed and the stored design, for audit."""
    study = db.session.get(Study, participant.study_id)
    plan = study_design(study, cached=False)
    return design.build_schedule(
        plan.identities, plan.blocks, participant.list_index, study.n_lists, participant.seed
    )


def stored_schedule(participant: Participant) -> list[design.TrialSpec]:
    """Return the participant's stored Trial rows as schedule specs (codes and image keys)."""
    codes = dict(
        db.session.execute(
            sa.select(Identity.id, Identity.code).where(Identity.study_id == participant.study_id)
        ).all()
    )
    blocks = dict(
        db.session.execute(
            sa.select(Block.id, Block.name).where(Block.study_id == participant.study_id)
        ).all()
    )
    trials = db.session.scalars(
        sa.select(Trial).where(Trial.participant_id == participant.id).order_by(Trial.position)
    )

    def key(image_id: int | None) -> str | None:
        """Return an image id as the schedule's key."""
        return None if image_id is None else str(image_id)

    return [
        design.TrialSpec(
            position=t.position,
            block=blocks[t.block_id],
            task=t.task,
            identity=codes[t.identity_id],
            condition=t.condition,
            image=str(t.image_id),
            other_image=key(t.other_image_id),
            left_source=t.left_source,
            probe_image=key(t.probe_image_id),
            probe_identity=codes.get(t.probe_identity_id) if t.probe_identity_id else None,
            is_match=t.is_match,
            is_practice=t.is_practice,
            is_attention=t.is_attention,
            attention_answer=t.attention_answer,
        )
        for t in trials
    ]


# --- the trial page (hot path) ----------------------------------------------------------------


# Each worker's blocks: block id -> (stored settings, settings with defaults, settings key), and
# settings key -> settings with defaults, for answers whose ticket names the key.
_SETTINGS_MAX = 4096
_SETTINGS_CACHE: BoundedCache[int, tuple[dict | None, dict, str]] = BoundedCache(_SETTINGS_MAX)
_SETTINGS_BY_KEY: BoundedCache[str, dict[str, Any]] = BoundedCache(_SETTINGS_MAX)


def _block_settings(block_id: int, task: str, raw: dict | None) -> tuple[dict[str, Any], str]:
    """Return a block's settings with defaults and their key (cached while they are unchanged).

    The key is a digest of the task and the stored settings: a ticket that names it is
    validated with exactly the settings its page was shown with.
    """
    cached = _SETTINGS_CACHE.get(block_id)
    if cached is not None and cached[0] == raw:
        # A page shown with these settings names their key: keep it known as long as the block.
        if _SETTINGS_BY_KEY.get(cached[2]) is None:
            _SETTINGS_BY_KEY.put(cached[2], cached[1])
        return cached[1], cached[2]
    normalised = validate_block_settings(task, raw or {})
    stored = json.dumps([task, raw or {}], sort_keys=True, default=str)
    key = hashlib.sha256(stored.encode()).hexdigest()[:16]
    _SETTINGS_CACHE.put(block_id, (raw, normalised, key))
    _SETTINGS_BY_KEY.put(key, normalised)
    return normalised, key


def block_settings(block_id: int, task: str, raw: dict | None) -> dict[str, Any]:
    """Return a block's settings with defaults, cached while the stored settings are unchanged."""
    return _block_settings(block_id, task, raw)[0]


@dataclass(frozen=True)
class TrialView:
    """What a trial page shows and asks (never its condition or whether the probe matches)."""

    id: int
    position: int
    total: int
    task: str
    settings: dict[str, Any]
    is_practice: bool
    is_attention: bool
    attention_answer: str | None
    # Public ids of the images: match, rate, detect: the headshot; choose: left then right.
    images: tuple[str, ...]
    probe: str | None


@dataclass(frozen=True)
class PageState:
    """A participant's state as the trial page needs it: who, and the current and next trial."""

    participant_id: int
    status: str
    is_preview: bool
    consented: bool
    study_title: str
    # The study takes this participant's answers now (see `takes_answers`).
    taking_answers: bool
    current: TrialView | None
    next_images: tuple[str, ...]
    # The current trial's answer ticket (see `survey.participant.tickets`); "" without one.
    ticket: str = ""


# The hot path's statements are built once, with bound parameters: building a statement and
# its cache key costs more than running it. They run on `hotdb`'s connection.
_shown = so.aliased(Image, name="shown")
_other = so.aliased(Image, name="other")
_probe = so.aliased(Image, name="probe")
_later = so.aliased(Trial, name="later")
_TOTAL = (
    sa.select(sa.func.max(_later.position))
    .where(_later.participant_id == Trial.participant_id)
    .scalar_subquery()
)

# A trial page's rows: the participant's six columns, then those of one unanswered trial.
_PARTICIPANT_COLUMNS = (
    Participant.id,
    Participant.status,
    Participant.is_preview,
    Participant.consented_at,
    Study.title,
    Study.state,
)
_TRIAL_COLUMNS = (
    Trial.id,
    Trial.position,
    Trial.task,
    Trial.is_practice,
    Trial.is_attention,
    Trial.attention_answer,
    Block.id,
    Block.settings,
    Trial.left_source,
    _shown.public_id,
    _other.public_id,
    _probe.public_id,
    _TOTAL,
)


def _with_shown(query: sa.Select) -> sa.Select:
    """Join a query on trials to their block and images."""
    return (
        query.outerjoin(Block, Block.id == Trial.block_id)
        .outerjoin(_shown, _shown.id == Trial.image_id)
        .outerjoin(_other, _other.id == Trial.other_image_id)
        .outerjoin(_probe, _probe.id == Trial.probe_image_id)
    )


# The participant with its current and next unanswered trials (none when all are answered).
PAGE = (
    _with_shown(
        sa.select(*_PARTICIPANT_COLUMNS, *_TRIAL_COLUMNS)
        .select_from(Participant)
        .join(Study, Study.id == Participant.study_id)
        .outerjoin(
            Trial, sa.and_(Trial.participant_id == Participant.id, Trial.answered_at.is_(None))
        )
    )
    .where(Participant.public_id == sa.bindparam("public_id"), Study.slug == sa.bindparam("slug"))
    .order_by(Trial.position)
    .limit(2)
)

# The posted trial, only if it is this participant's in this study: what validating its answer
# needs, whether it is answered already and whether it is the current one (no earlier trial
# left unanswered).
_EARLIER_OPEN = (
    sa.select(_later.id)
    .where(
        _later.participant_id == Trial.participant_id,
        _later.position < Trial.position,
        _later.answered_at.is_(None),
    )
    .exists()
)
TARGET = (
    sa.select(
        Trial.position,
        Trial.task,
        Trial.is_attention,
        Trial.left_source,
        Trial.answered_at,
        Block.id,
        Block.settings,
        _TOTAL,
        ~_EARLIER_OPEN,
        Participant.status,
        _takes_answers(Study.state, Participant.is_preview),
    )
    .select_from(Trial)
    .join(Participant, Participant.id == Trial.participant_id)
    .join(Study, Study.id == Participant.study_id)
    .join(Block, Block.id == Trial.block_id)
    .where(
        Trial.id == sa.bindparam("trial_id"),
        Participant.public_id == sa.bindparam("public_id"),
        Study.slug == sa.bindparam("slug"),
    )
)
_TRIAL = Trial.__table__
_RESPONSE = Response.__table__
_PARTICIPANT = Participant.__table__
_STUDY = Study.__table__
_NOW = sa.bindparam("now", type_=_TRIAL.c.answered_at.type)
# Claim the trial: only if it is the participant's (by its opaque id), the participant is in
# progress in a study that takes its answers now (`takes_answers`: open, or a preview's draft),
# the trial is still unanswered and every earlier one is answered, so of two identical POSTs
# racing, one claims it and the other finds nothing (READ COMMITTED re-checks the row after
# the first commits). A close waits for the claims already under way (`survey.studies`), so an
# answer is stored before the close or not at all.
_OWNER = (
    sa.select(_PARTICIPANT.c.id)
    .join(_STUDY, _STUDY.c.id == _PARTICIPANT.c.study_id)
    .where(
        _PARTICIPANT.c.public_id == sa.bindparam("public_id"),
        _PARTICIPANT.c.status == "in_progress",
        _takes_answers(_STUDY.c.state, _PARTICIPANT.c.is_preview),
    )
    .scalar_subquery()
)
_CLAIM_WHERE = (
    _TRIAL.c.id == sa.bindparam("trial_id"),
    _TRIAL.c.participant_id == _OWNER,
    _TRIAL.c.answered_at.is_(None),
    ~_EARLIER_OPEN,
)
CLAIM = (
    sa.update(_TRIAL)
    .where(*_CLAIM_WHERE)
    .values(answered_at=_NOW)
    .returning(_TRIAL.c.id, _TRIAL.c.participant_id, _TRIAL.c.position)
)
INSERT_RESPONSES = _RESPONSE.insert()
COMPLETE = (
    sa.update(_PARTICIPANT)
    .where(_PARTICIPANT.c.id == sa.bindparam("owner"), _PARTICIPANT.c.status == "in_progress")
    .values(status="completed", completed_at=_NOW)
)


def _store_in_one_statement() -> sa.Select:
    """PostgreSQL: claim, insert the answers and complete the participant in one statement.

    Data-modifying CTEs run as one atomic statement, so in autocommit it costs one round trip
    instead of BEGIN, UPDATE, INSERT, UPDATE and COMMIT. Returns the claimed trial's id, or
    no row when nothing was claimed. (It does not read the next trial page: a page kept for
    the redirect may be served by a worker that does not know what happened since.)
    """
    from sqlalchemy.dialects import postgresql

    claimed = CLAIM.cte("claimed")
    answers = (
        sa.func.unnest(
            sa.bindparam("measures", type_=postgresql.ARRAY(sa.String)),
            sa.bindparam("answer_values", type_=postgresql.ARRAY(sa.String)),
        )
        .table_valued("measure", "value")
        .render_derived()
    )
    stored = (
        _RESPONSE.insert()
        .from_select(
            ["trial_id", "participant_id", "measure", "value", "rt_ms", "created_at"],
            sa.select(
                claimed.c.id,
                claimed.c.participant_id,
                answers.c.measure,
                answers.c.value,
                sa.bindparam("rt_ms", type_=_RESPONSE.c.rt_ms.type),
                _NOW,
            ).select_from(claimed.join(answers, sa.true())),
        )
        .cte("stored")
    )
    completed = (
        sa.update(_PARTICIPANT)
        .where(
            _PARTICIPANT.c.id.in_(sa.select(claimed.c.participant_id)),
            sa.bindparam("last", type_=sa.Boolean),
            _PARTICIPANT.c.status == "in_progress",
        )
        .values(status="completed", completed_at=_NOW)
        .cte("completed")
    )
    return sa.select(claimed.c.id).add_cte(stored, completed)


STORE_ONE_STATEMENT = _store_in_one_statement()


def end_read() -> None:
    """End the ORM session's read with COMMIT rather than the ROLLBACK the session would send.

    psycopg forgets every prepared statement of a connection on each ROLLBACK, after which
    PostgreSQL plans the hot queries afresh (the trial page's takes a millisecond and a half of
    its CPU to plan, many times the cost of running it). Callers have nothing pending.
    """
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()


def page_state(
    slug: str, public_id: str | None, secret: tickets.Secret | None = None
) -> PageState | None:
    """Return the participant's current trial and the next one's images; None if unknown.

    With the app's secret key, the state carries the current trial's signed answer ticket.
    """
    if not public_id:
        return None
    rows = hotdb.rows(PAGE, {"public_id": public_id, "slug": slug})
    return _page_state(rows, slug, public_id, secret) if rows else None


def _page_state(
    rows: Sequence[Sequence[Any]], slug: str, public_id: str, secret: tickets.Secret | None
) -> PageState:
    """Read a trial page's rows (PAGE's columns) into its state."""
    first = rows[0]
    current = None
    ticket = ""
    if first[6] is not None:
        (_, _, _, _, _, _, trial_id, position, task, practice, attention, answer,
         block_id, raw_settings, left_source, headshot, other, probe, total) = first  # fmt: skip
        settings, settings_key = _block_settings(block_id, task, raw_settings)
        current = TrialView(
            id=trial_id,
            position=position,
            total=total,
            task=task,
            settings=settings,
            is_practice=practice,
            is_attention=attention,
            attention_answer=answer,
            images=(headshot, other) if other is not None else (headshot,),
            probe=probe,
        )
        if secret is not None:
            ticket = tickets.issue(
                secret,
                slug,
                public_id,
                trial_id,
                tickets.Ticket(task, attention, position >= total, left_source, settings_key),
            )
    next_images: tuple[str, ...] = ()
    if len(rows) > 1:
        next_images = tuple(image for image in rows[1][15:18] if image is not None)
    return PageState(
        participant_id=first[0],
        status=first[1],
        is_preview=first[2],
        consented=first[3] is not None,
        study_title=first[4],
        taking_answers=takes_answers(first[5], first[2]),
        current=current,
        next_images=next_images,
        ticket=ticket,
    )


# --- answers (hot path) -----------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerTarget:
    """A posted trial of this participant in this study: what validating its answer needs."""

    public_id: str
    trial_id: int
    task: str
    settings: dict[str, Any]
    is_attention: bool
    left_source: str | None
    # The participant's last trial: storing its answer completes the participant.
    last: bool
    answered: bool
    # Every earlier trial is answered: this one is the participant's current trial.
    current: bool
    # The participant is in progress in a study that takes its answers now (`takes_answers`);
    # a target read from a ticket assumes so, and the claim checks it.
    taking_answers: bool = True


STORED = "stored"
REPEAT = "repeat"
NOT_CURRENT = "not_current"
CLOSED = "closed"


def answer_target(slug: str, public_id: str | None, trial_id: int) -> AnswerTarget | None:
    """Return the posted trial if it is this participant's (by its cookie) in this study."""
    if not public_id:
        return None
    rows = hotdb.rows(TARGET, {"trial_id": trial_id, "public_id": public_id, "slug": slug})
    if not rows:
        return None
    (position, task, attention, left_source, answered_at, block_id, raw_settings, total,
     current, status, taking) = rows[0]  # fmt: skip
    return AnswerTarget(
        public_id=public_id,
        trial_id=trial_id,
        task=task,
        settings=block_settings(block_id, task, raw_settings),
        is_attention=attention,
        left_source=left_source,
        last=position >= total,
        answered=answered_at is not None,
        current=bool(current),
        taking_answers=status == "in_progress" and bool(taking),
    )


def ticket_target(
    secret: tickets.Secret, slug: str, public_id: str | None, trial_id: int, raw_ticket: str
) -> AnswerTarget | None:
    """Return the posted trial as its page's signed ticket describes it, without a query.

    None when there is no valid ticket for this trial of this participant in this study, or
    when this worker does not know the settings it names: the caller then asks the database
    (`answer_target`). The target is taken to be current and unanswered; the claim that stores
    the answer checks both.
    """
    if not public_id:
        return None
    ticket = tickets.read(secret, slug, public_id, trial_id, raw_ticket)
    if ticket is None:
        return None
    settings = _SETTINGS_BY_KEY.get(ticket.settings_key)
    if settings is None:
        return None
    return AnswerTarget(
        public_id=public_id,
        trial_id=trial_id,
        task=ticket.task,
        settings=settings,
        is_attention=ticket.is_attention,
        left_source=ticket.left_source,
        last=ticket.last,
        answered=False,
        current=True,
    )


def _store(
    connection: sa.Connection,
    target: AnswerTarget,
    claim: Mapping[str, Any],
    measures: Sequence[tuple[str, str]],
    rt_ms: float | None,
) -> bool:
    """SQLite: claim the trial, insert its responses and complete after the last (one
    transaction)."""
    claimed = connection.execute(CLAIM, claim).first()
    if claimed is None:
        return False
    owner = claimed[1]
    connection.execute(
        INSERT_RESPONSES,
        [
            {
                "trial_id": target.trial_id,
                "participant_id": owner,
                "measure": measure,
                "value": value,
                "rt_ms": rt_ms,
                "created_at": claim["now"],
            }
            for measure, value in measures
        ],
    )
    if target.last:
        connection.execute(COMPLETE, {"owner": owner, "now": claim["now"]})
    return True


def store_answer(
    target: AnswerTarget, measures: Sequence[tuple[str, str]], rt_ms: float | None
) -> str:
    """Store a validated answer: claim the trial, insert its responses, complete after the last.

    All or nothing. Returns STORED; REPEAT when nothing was claimed: the trial was answered
    meanwhile (a repeated POST racing this one: the unique (trial, measure) key is the last
    guard), or, for a target read from a ticket, it is not (or no longer) the participant's
    current trial, or the study no longer takes the participant's answers (it closed);
    NOT_CURRENT when the target already says an earlier trial is unanswered; CLOSED when the
    target already says the study does not take the participant's answers.
    """
    if target.answered:
        return REPEAT
    if not target.taking_answers:
        return CLOSED
    if not target.current:
        return NOT_CURRENT
    now = utcnow()
    claim = {"trial_id": target.trial_id, "public_id": target.public_id, "now": now}
    try:
        if hotdb.is_postgres():
            claimed = hotdb.rows(
                STORE_ONE_STATEMENT,
                {
                    **claim,
                    "measures": [measure for measure, _ in measures],
                    "answer_values": [value for _, value in measures],
                    "rt_ms": rt_ms,
                    "last": target.last,
                },
            )
        else:
            claimed = hotdb.transaction(
                lambda connection: _store(connection, target, claim, measures, rt_ms)
            )
    except IntegrityError:
        return REPEAT
    return STORED if claimed else REPEAT


def clean_rt(raw: Any) -> float | None:
    """Return a response time in ms, or None when missing, unparsable or out of range."""
    if raw is None or raw == "":
        return None
    try:
        # Stored to 0.1 ms: a time that rounds to 0 is out of range too.
        value = round(float(raw), 1)
    except (TypeError, ValueError, OverflowError):
        return None
    if not 0 < value < RT_MAX_MS:  # also rejects NaN
        return None
    return value


def complete_if_done(participant: Participant) -> bool:
    """Complete a participant with no unanswered trial left; tell whether it is completed."""
    if participant.status == "completed":
        return True
    if participant.status != "in_progress":
        return False
    left = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Trial)
        .where(Trial.participant_id == participant.id, Trial.answered_at.is_(None))
    )
    if left:
        return False
    db.session.connection().execute(COMPLETE, {"owner": participant.id, "now": utcnow()})
    db.session.commit()
    db.session.refresh(participant)
    return True


def answered_count(participant_id: int) -> int:
    """Return how many of the participant's trials are answered."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Trial)
        .where(Trial.participant_id == participant_id, Trial.answered_at.is_not(None))
    )


# --- after the trials -------------------------------------------------------------------------


def save_demographics(participant: Participant, answers: Mapping[str, Any]) -> bool:
    """Store the demographics once (never overwritten) while the study takes answers; tell if."""
    values = {k: v for k, v in answers.items() if v not in (None, "")}
    if participant.status != "completed" or participant.demographics or not values:
        return False
    # Only while the study takes answers, checked by the UPDATE itself (a close waits for it).
    stored = db.session.execute(
        sa.update(_PARTICIPANT)
        .where(
            _PARTICIPANT.c.id == participant.id,
            _PARTICIPANT.c.status == "completed",
            sa.select(_STUDY.c.id)
            .where(
                _STUDY.c.id == _PARTICIPANT.c.study_id,
                _takes_answers(_STUDY.c.state, _PARTICIPANT.c.is_preview),
            )
            .exists(),
        )
        .values(demographics=values)
    ).rowcount
    db.session.commit()
    return bool(stored)


def withdraw(participant: Participant) -> None:
    """Delete the participant's answers and trials and mark it withdrawn (see module docstring).

    Also deletes the study's stored reports (`survey.findings.service.forget_reports`), in the
    same transaction: none may keep the participant's data.
    """
    # Imported here: the findings service brings the analysis package, which no other
    # participant page needs.
    from survey.findings.service import forget_reports

    # The study row first, as starts and state changes take it: a report being stored waits
    # for this transaction (see `survey.findings.service.compute`). Then the trials, then the
    # participant: the order in which an answer locks them (its claim takes the trial, its
    # completion the participant), so the two never deadlock. An answer that claimed a trial
    # first commits before the DELETE goes on; one that comes later finds no trial to claim.
    db.session.execute(
        sa.select(Study.id).where(Study.id == participant.study_id).with_for_update(key_share=True)
    )
    db.session.execute(sa.delete(Trial).where(Trial.participant_id == participant.id))
    db.session.execute(sa.delete(Response).where(Response.participant_id == participant.id))
    # Every column set here, whatever the session last read: a completion committed since then
    # is undone, and the status is checked by the UPDATE itself.
    withdrawn = db.session.execute(
        sa.update(Participant)
        .where(Participant.id == participant.id, Participant.status != "withdrawn")
        .values(status="withdrawn", withdrawn_at=utcnow(), completed_at=None, demographics={})
        .returning(Participant.study_id)
        .execution_options(synchronize_session=False)
    ).first()
    if withdrawn is not None:
        recruitment = participant.recruitment
        if recruitment is not None and not recruitment.external_id.startswith(WITHDRAWN_ID_PREFIX):
            platform, external_id = recruitment.platform, recruitment.external_id
            recruitment.external_id = withdrawn_digest(platform, external_id)
            recruitment.params = {}
        if not participant.is_preview:
            forget_reports(withdrawn.study_id)
    db.session.commit()
    db.session.refresh(participant)


def platform_name(participant: Participant, completion_url: str) -> str:
    """Return the name of where the completion link leads ("Prolific", or the host)."""
    name = PLATFORM_NAMES.get(participant.source)
    if name:
        return name
    host = completion_url.split("://", 1)[-1].split("/", 1)[0]
    return host or "the study site"
