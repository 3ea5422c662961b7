"""Starting or resuming a participant under the study row's lock, with the study design and
the schedules kept for audit."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from sqlalchemy.exc import IntegrityError

from survey import design
from survey import flow as block_flow
from survey.extensions import db
from survey.models import (
    OPTIONS_SEPARATOR,
    Block,
    Identity,
    Participant,
    RecruitmentId,
    Study,
    StudyQuestion,
    Trial,
    UTCDateTime,
    utcnow,
)
from survey.participant import hotdb, limits
from survey.participant.hotdb import hot_path
from survey.participant.recruitment import Recruitment
from survey.participant.service import StudyView, end_read, flow


class StudyUnavailable(Exception):
    """A new participant cannot start: `reason` is draft, closed, full, changed or busy.

    Busy: the start limits refused it; `retry_after` says in how many seconds to try again.
    """

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"the study cannot be started: {reason}")


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


def expiry_clock(table: sa.Table | type[Participant] = Participant) -> sa.ColumnElement:
    """The time a participant's expiry counts from: the start, or for a memory study with a
    second session the time the test phase opened (while waiting) or the return."""
    c = table.c if isinstance(table, sa.Table) else table
    return sa.func.coalesce(c.returned_at, c.return_due_at, c.started_at)


# Mark participants in progress whose clock started before the cutoff as expired: a conditional
# UPDATE, so a participant that completed or withdrew meanwhile is left alone.
_EXPIRE = (
    sa.update(Participant.__table__)
    .where(
        Participant.__table__.c.status == "in_progress",
        Participant.__table__.c.is_preview.is_(False),
        expiry_clock(Participant.__table__) < sa.bindparam("cutoff", type_=UTCDateTime()),
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
                sa.or_(Participant.status != "in_progress", expiry_clock() >= cutoff)
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
    # Names of the blocks with questions asked right after them (survey/flow.py).
    asked_after: frozenset[str] = frozenset()


def study_design(study: Study, *, cached: bool = True) -> StudyDesign:
    """Return the study's design (read once per worker when frozen, or always when not cached).

    A frozen design is used only if it still hashes to the SHA-256 stored when the study
    opened; otherwise StudyUnavailable("changed") is raised (when cached) and nobody starts.
    """
    key = (study.id, study.design_sha256 or "")
    # An open study's design cannot change: each worker reads it once (`hot_path`).
    frozen = hot_path.state().designs
    if cached and study.design_sha256:
        known = frozen.get(key)
        if known is not None:
            return known
    from survey.studies import design_inputs, design_sha256

    loaded = _load_design(study.id)
    if cached and study.design_sha256 and design_sha256(loaded) != study.design_sha256:
        raise StudyUnavailable("changed")
    identities, blocks = design_inputs(loaded)
    # Questions change only while the study is a draft, so a frozen design may keep them.
    asked_after = db.session.scalars(
        sa.select(Block.name)
        .join(StudyQuestion, StudyQuestion.block_id == Block.id)
        .where(Block.study_id == study.id)
        .distinct()
    )
    result = StudyDesign(
        identities=tuple(identities),
        blocks=tuple(blocks),
        identity_ids={identity.code: identity.id for identity in loaded.identities},
        block_ids={block.name: block.id for block in loaded.blocks},
        asked_after=frozenset(asked_after),
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
            "studied": s.studied,
            "label": s.label,
            "options": OPTIONS_SEPARATOR.join(s.options) if s.options else None,
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
_STUDY_FOR_START = (
    Study.id,
    Study.state,
    Study.n_lists,
    Study.target_n,
    Study.assign_by,
    Study.participants_started,
)
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
    "is_practice", "is_attention", "attention_answer", "studied", "label", "options",
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
    language: str = "en",
) -> Start:
    """Start a participant (or resume the one its recruitment id or public id already started).

    Assigns the list with the fewest counted participants, under the study row's lock, stores
    the schedule, and commits. Raises StudyUnavailable (draft, closed, full) for a new
    non-preview participant. `public_id`, when given, is the id the new participant gets; a
    second start with the same id (a double-clicked consent button) returns the first. A start
    from a client `address` (the study link) is subject to the start limits (busy). Under the
    same lock, participants past the expiry time are marked expired before lists are counted.
    A `simulated` participant is marked so (see SIMULATED_ENVIRON); a resumed one keeps its mark.
    `language` is the new participant's (survey/i18n.py); a resumed one keeps its own.
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
    flow = block_flow.flow_settings(study.settings)
    last = block_flow.kept_last(plan.blocks, flow.last)
    # Counterbalanced, the order depends on the place in the start order, known under the
    # lock: the one schedule needed is built there.
    by_arrival = flow.order == "counterbalanced"

    def schedule(list_index: int, n_lists: int, start_index: int = 0) -> list[design.TrialSpec]:
        """Build one list's schedule from the participant's seed."""
        return design.build_schedule(
            plan.identities, plan.blocks, list_index, n_lists, seed, flow.order, start_index, last
        )

    def schedules_for(n_lists: int) -> list[list[design.TrialSpec]]:
        """Build the schedule of every list (none when built under the lock)."""
        return [] if by_arrival else [schedule(index, n_lists) for index in range(n_lists)]

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
        if not by_arrival and len(schedules) != current.n_lists:
            schedules = schedules_for(current.n_lists)  # a draft's lists changed (a preview)
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
        # This start's place in the start order: the counter this start just raised (a preview
        # takes the place the next participant would).
        start_index = max(current.participants_started - (0 if preview else 1), 0)
        specs = (
            schedule(list_index, current.n_lists, start_index)
            if by_arrival
            else schedules[list_index]
        )
        running, row = design.block_order(plan.blocks, flow.order, seed, start_index, last)
        steps = block_flow.plan_steps(
            specs, {b.name: b for b in plan.blocks}, plan.asked_after, flow.breaks
        )
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
            "language": language,
            "block_order": [b.name for b in running],
            "block_order_row": row,
            "flow_steps": steps,
            "flow_step": 0,
            "next_step_at": block_flow.next_at(steps, 0),
            "block_answers": {},
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
        _insert_trials(connection, _trial_rows(plan, participant_id, specs))
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


# --- schedules for audit ----------------------------------------------------------------------


def regenerate_schedule(participant: Participant) -> list[design.TrialSpec]:
    """Rebuild the participant's schedule from its seed and the stored design, for audit."""
    study = db.session.get(Study, participant.study_id)
    plan = study_design(study, cached=False)
    flow = block_flow.flow_settings(study.settings)
    # A participant started before the order was recorded ran the blocks as listed.
    order = flow.order if participant.block_order is not None else "fixed"
    return design.build_schedule(
        plan.identities,
        plan.blocks,
        participant.list_index,
        study.n_lists,
        participant.seed,
        order,
        participant.block_order_row or 0,
        block_flow.kept_last(plan.blocks, flow.last),
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
            studied=t.studied,
            label=t.label,
            options=tuple(t.options.split(OPTIONS_SEPARATOR)) if t.options else (),
        )
        for t in trials
    ]
