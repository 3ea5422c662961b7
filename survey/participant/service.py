"""The participant's pages around the trials: reading a link's study with its participant,
consent, demographics and withdrawal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from survey.extensions import db
from survey.models import (
    Block,
    Participant,
    RecruitmentId,
    Response,
    Study,
    StudyQuestion,
    Trial,
    utcnow,
)
from survey.participant import hotdb
from survey.participant.recruitment import (
    WITHDRAWN_ID_PREFIX,
    Recruitment,
    recruited_in,
    recruitment_params,
    withdrawn_digest,
)
from survey.participant.statements import takes_answers_sql
from survey.questions import Asked

_PARTICIPANT = Participant.__table__
_STUDY = Study.__table__


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
    # The language of the participant's pages (survey/i18n.py).
    language: str
    # The position of the trial before which a page between trials comes (survey/flow.py):
    # once every trial is answered, a block's questions may still be due.
    next_step_at: int | None
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
    .where(*recruited_in(Study.id))
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
        params = {"slug": slug, **recruitment_params(recruitment)}
        return _flow(hotdb.rows(FLOW_BY_RECRUITMENT, params))
    return _flow(hotdb.rows(FLOW, {"slug": slug, "public_id": public_id}))


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


def end_read() -> None:
    """End the ORM session's read with COMMIT rather than the ROLLBACK the session would send.

    psycopg forgets every prepared statement of a connection on each ROLLBACK, after which
    PostgreSQL plans the hot queries afresh (the trial page's takes a millisecond and a half of
    its CPU to plan, many times the cost of running it). Callers have nothing pending.
    """
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()


def consent(participant: Participant, language: str | None = None) -> None:
    """Record the consent of a participant started before consenting (a preview run), in the
    language the consent page was read in."""
    if participant.consented_at is None:
        participant.consented_at = utcnow()
        if language is not None:
            participant.language = language
        db.session.commit()


# --- after the trials ----------------------------------------------------------------------


# A question as a page asks it (`Asked`'s fields), of one study, in the researcher's order.
_ASKED = (
    sa.select(
        StudyQuestion.code,
        StudyQuestion.kind,
        StudyQuestion.text,
        StudyQuestion.required,
        StudyQuestion.spec,
    )
    .where(StudyQuestion.study_id == sa.bindparam("study_id"))
    .order_by(StudyQuestion.position, StudyQuestion.id)
)


def study_questions(study_id: int) -> list[Asked]:
    """Return the questions of the questions page in order (not those asked after a block)."""
    rows = db.session.execute(
        _ASKED.where(StudyQuestion.block_id.is_(None)), {"study_id": study_id}
    )
    return [Asked(*row) for row in rows]


def save_demographics(participant: Participant, answers: Mapping[str, Any]) -> bool:
    """Store the answers to the questions once (never overwritten) while the study takes
    answers; tell if. All are written by one UPDATE, or none."""
    values = {k: v for k, v in answers.items() if v not in (None, "", [])}
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
                takes_answers_sql(_STUDY.c.state, _PARTICIPANT.c.is_preview),
            )
            .exists(),
        )
        .values(demographics=values)
    ).rowcount
    db.session.commit()
    return bool(stored)


# --- the pages between trials (survey/flow.py) ---------------------------------------------


@dataclass(frozen=True)
class FlowPosition:
    """Where a participant stands between trials: the pages planned and passed, the position
    of the first unanswered trial (the number of trials plus one when all are answered)."""

    steps: list[dict[str, Any]]
    passed: int
    current: int
    total: int
    # The names of the blocks in the order the participant runs them.
    block_order: list[str]


_FIRST_OPEN = (
    sa.select(sa.func.min(Trial.position))
    .where(Trial.participant_id == Participant.id, Trial.answered_at.is_(None))
    .scalar_subquery()
)
_LAST = (
    sa.select(sa.func.max(Trial.position))
    .where(Trial.participant_id == Participant.id)
    .scalar_subquery()
)


def flow_position(participant_id: int) -> FlowPosition:
    """Return the participant's pages between trials and where the participant stands."""
    steps, passed, order, first_open, last = db.session.execute(
        sa.select(
            Participant.flow_steps,
            Participant.flow_step,
            Participant.block_order,
            _FIRST_OPEN,
            _LAST,
        ).where(Participant.id == participant_id)
    ).one()
    total = last or 0
    return FlowPosition(
        steps=list(steps or []),
        passed=passed,
        current=first_open if first_open is not None else total + 1,
        total=total,
        block_order=list(order or []),
    )


def block_questions(study_id: int, block_name: str) -> list[Asked]:
    """Return the questions asked right after a block, in order."""
    rows = db.session.execute(
        _ASKED.join(Block, Block.id == StudyQuestion.block_id).where(
            Block.name == sa.bindparam("block_name")
        ),
        {"study_id": study_id, "block_name": block_name},
    )
    return [Asked(*row) for row in rows]


def block_instructions(study_id: int, block_name: str) -> tuple[int | None, str]:
    """Return a block's id and its instructions in the default language (Markdown; empty when
    it has none; no id when the block is gone)."""
    row = db.session.execute(
        sa.select(Block.id, Block.settings).where(
            Block.study_id == study_id, Block.name == block_name
        )
    ).first()
    if row is None:
        return None, ""
    text = (row.settings or {}).get("instructions")
    return row.id, text if isinstance(text, str) else ""


def pass_step(
    participant_id: int,
    passed: int,
    index: int,
    next_step_at: int | None,
    answers: Mapping[str, Any] | None = None,
) -> bool:
    """Record that the participant, who had passed `passed` pages, passed page number `index`
    (storing the answers given on it, with those of earlier blocks); tell whether this request
    did.

    One conditional UPDATE, only while the participant still stands where it was read and the
    study takes their answers: a reload, the back button or a double click passes nothing
    twice, and the answers are written once, all or none.
    """
    values: dict[str, Any] = {"flow_step": index + 1, "next_step_at": next_step_at}
    given = {k: v for k, v in (answers or {}).items() if v not in (None, "", [])}
    if given:
        # Written only by the UPDATE that moves flow_step on from `passed`: no other writer
        # can have changed them since this read.
        earlier = db.session.scalar(
            sa.select(Participant.block_answers).where(Participant.id == participant_id)
        )
        values["block_answers"] = {**(earlier or {}), **given}
    moved = db.session.execute(
        sa.update(_PARTICIPANT)
        .where(
            _PARTICIPANT.c.id == participant_id,
            _PARTICIPANT.c.flow_step == passed,
            _PARTICIPANT.c.status.in_(("in_progress", "completed")),
            sa.select(_STUDY.c.id)
            .where(
                _STUDY.c.id == _PARTICIPANT.c.study_id,
                takes_answers_sql(_STUDY.c.state, _PARTICIPANT.c.is_preview),
            )
            .exists(),
        )
        .values(**values)
    ).rowcount
    db.session.commit()
    return bool(moved)


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
        .values(
            status="withdrawn",
            withdrawn_at=utcnow(),
            completed_at=None,
            demographics={},
            block_answers={},
        )
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
