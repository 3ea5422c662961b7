"""The participant hot path's SQL, built once: the trial page, the answer's target, the claim
and the one-statement store; row positions come from the named column lists."""

from __future__ import annotations

from collections import namedtuple

import sqlalchemy as sa
import sqlalchemy.orm as so

from survey.models import Block, Image, Participant, Response, Study, StudyText, Trial, db_now
from survey.study_texts import TITLE_KEY


# A study stores a participant's answers while it is open, and a researcher's preview run's
# also while it is a draft. Closing it stops the answers of participants in progress too: they
# are told it closed, what they answered stays (a partial response) unless they withdraw, and
# a reopened study lets them go on.
def takes_answers(state: str, is_preview: bool) -> bool:
    """Tell whether a study in `state` stores the answers of a participant (or preview run)."""
    return state == "open" or (is_preview and state == "draft")


def takes_answers_sql(state: sa.ColumnElement[str], is_preview: sa.ColumnElement[bool]):
    """Return `takes_answers` as SQL, on a study's state and a participant's is_preview."""
    return sa.or_(state == "open", sa.and_(is_preview, state == "draft"))


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

# The study's title as written in the participant's language (none: the default's is read), in
# the page's own statement: a title can be corrected while the study is open, so no worker
# keeps it (`study_texts.trial_texts`). One row by the (study, language, key) unique key.
_TITLE_WRITTEN = (
    sa.select(StudyText.text)
    .where(
        StudyText.study_id == Study.id,
        StudyText.language == Participant.language,
        StudyText.key == TITLE_KEY,
    )
    .scalar_subquery()
)

# A trial page's rows: the participant's columns, then those of one unanswered trial (all
# None when every trial is answered), named as `PageRow` reads them.
_PAGE_COLUMNS = {
    "participant_id": Participant.id,
    "status": Participant.status,
    "is_preview": Participant.is_preview,
    "consented_at": Participant.consented_at,
    # The page's language, read with it: the trial page costs no statement more for it.
    "language": Participant.language,
    "study_title": Study.title,
    "title_written": _TITLE_WRITTEN,
    "study_state": Study.state,
    "trial_id": Trial.id,
    "position": Trial.position,
    "task": Trial.task,
    "is_practice": Trial.is_practice,
    "is_attention": Trial.is_attention,
    "attention_answer": Trial.attention_answer,
    "block_id": Block.id,
    "settings": Block.settings,
    "left_source": Trial.left_source,
    "headshot": _shown.public_id,
    "other": _other.public_id,
    "probe": _probe.public_id,
    "total": _TOTAL,
    "shown_at": Trial.shown_at,
    # Memory: the name shown with a studied headshot; the names a recognise trial offers.
    "label": Trial.label,
    "options": Trial.options,
    # The position of the trial before which a page between trials comes (survey/flow.py).
    "next_step_at": Participant.next_step_at,
}
PageRow = namedtuple("PageRow", _PAGE_COLUMNS)  # type: ignore[misc]


_VIEWER = Participant.__table__.alias("viewer")
_VIEWED = Study.__table__.alias("viewed")


def _with_shown(query: sa.Select) -> sa.Select:
    """Join a query on trials to their block and images."""
    return (
        query.outerjoin(Block, Block.id == Trial.block_id)
        .outerjoin(_shown, _shown.id == Trial.image_id)
        .outerjoin(_other, _other.id == Trial.other_image_id)
        .outerjoin(_probe, _probe.id == Trial.probe_image_id)
    )


# The trials are found through the participant's id as a scalar subquery on its unique public
# id, not through the join alone: a plan PostgreSQL makes while the tables are still small (a
# study's launch on a new database) may otherwise walk every unanswered trial of every
# participant, and a prepared statement keeps that plan as the tables grow.
_PARTICIPANT_ID = (
    sa.select(_VIEWER.c.id)
    .where(_VIEWER.c.public_id == sa.bindparam("public_id"))
    .scalar_subquery()
)

# The participant with its current and next unanswered trials (none when all are answered).
PAGE = (
    _with_shown(
        sa.select(*_PAGE_COLUMNS.values())
        .select_from(Participant)
        .join(Study, Study.id == Participant.study_id)
        .outerjoin(
            Trial,
            sa.and_(
                Trial.participant_id == Participant.id,
                Trial.participant_id == _PARTICIPANT_ID,
                Trial.answered_at.is_(None),
            ),
        )
    )
    .where(Participant.public_id == sa.bindparam("public_id"), Study.slug == sa.bindparam("slug"))
    .order_by(Trial.position)
    .limit(2)
)

# The time a trial is first shown (trial.shown_at), from the database's clock like answered_at:
# set on the trial the page shows, only when the page shows one (the participant consented, is
# in progress, and the study takes their answers: `routes.trial`), and only the first time, so
# a reload or a return keeps the first time.
_TRIAL = Trial.__table__
_CURRENT = _TRIAL.alias("current")
# The participant whose trial may be stamped, as a scalar subquery that drives the trial's
# lookup (see _PARTICIPANT_ID).
_STAMPABLE = (
    sa.select(_VIEWER.c.id)
    .join(_VIEWED, _VIEWED.c.id == _VIEWER.c.study_id)
    .where(
        _VIEWER.c.public_id == sa.bindparam("public_id"),
        _VIEWED.c.slug == sa.bindparam("slug"),
        _VIEWER.c.status == "in_progress",
        _VIEWER.c.consented_at.is_not(None),
        takes_answers_sql(_VIEWED.c.state, _VIEWER.c.is_preview),
    )
    .scalar_subquery()
)
_SHOWN_NOW = (
    sa.select(_CURRENT.c.id)
    .where(_CURRENT.c.participant_id == _STAMPABLE, _CURRENT.c.answered_at.is_(None))
    .order_by(_CURRENT.c.position)
    .limit(1)
    .scalar_subquery()
)
# Where the participant's next page between trials comes (block instructions, a break): a
# trial at or after it is not shown yet, so not stamped; it is once the participant continues.
_STEP_AT = (
    sa.select(_VIEWER.c.next_step_at)
    .join(_VIEWED, _VIEWED.c.id == _VIEWER.c.study_id)
    .where(_VIEWER.c.public_id == sa.bindparam("public_id"), _VIEWED.c.slug == sa.bindparam("slug"))
    .scalar_subquery()
)
# PostgreSQL: the page's statement stamps its trial in a data-modifying CTE, so showing a
# trial stays one round trip. The CTE and the page's SELECT read the same snapshot: the page
# does not see the time it set (it does not need it). Run again after a dropped connection
# (`hotdb._once_more`), it stamps nothing twice.
PAGE_STAMPING = PAGE.add_cte(
    sa.update(_TRIAL)
    .where(
        _TRIAL.c.id == _SHOWN_NOW,
        _TRIAL.c.shown_at.is_(None),
        sa.or_(_STEP_AT.is_(None), _STEP_AT > _TRIAL.c.position),
    )
    .values(shown_at=db_now())
    .returning(_TRIAL.c.id)
    .cte("stamped")
)
# SQLite (no writing CTE): a second statement, run only when the page's read found the trial it
# shows not stamped yet; a reload is one read again.
STAMP_SHOWN = (
    sa.update(_TRIAL)
    .where(
        _TRIAL.c.id == sa.bindparam("trial_id"),
        _TRIAL.c.shown_at.is_(None),
        _TRIAL.c.answered_at.is_(None),
    )
    .values(shown_at=db_now())
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
# The posted trial's columns, named as `TargetRow` reads them.
_TARGET_COLUMNS = {
    "position": Trial.position,
    "task": Trial.task,
    "is_attention": Trial.is_attention,
    "left_source": Trial.left_source,
    "answered_at": Trial.answered_at,
    "block_id": Block.id,
    "settings": Block.settings,
    "total": _TOTAL,
    "current": ~_EARLIER_OPEN,
    "status": Participant.status,
    "taking_answers": takes_answers_sql(Study.state, Participant.is_preview),
    "language": Participant.language,
}
TargetRow = namedtuple("TargetRow", _TARGET_COLUMNS)  # type: ignore[misc]
TARGET = (
    sa.select(*_TARGET_COLUMNS.values())
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
        takes_answers_sql(_STUDY.c.state, _PARTICIPANT.c.is_preview),
    )
    .scalar_subquery()
)
_CLAIM_WHERE = (
    _TRIAL.c.id == sa.bindparam("trial_id"),
    _TRIAL.c.participant_id == _OWNER,
    _TRIAL.c.answered_at.is_(None),
    ~_EARLIER_OPEN,
)
# What the browser achieved on the trial's timed phases (`answers.clean_timing`), stored by the
# claim itself: still one statement per answer.
TIMING_COLUMNS = (
    "timing",
    "fixation_ms_achieved",
    "exposure_ms_achieved",
    "mask_ms_achieved",
    "isi_ms_achieved",
    "refresh_hz",
)
CLAIM = (
    sa.update(_TRIAL)
    .where(*_CLAIM_WHERE)
    # The database's clock, as for shown_at: the two never disagree as workers' clocks can.
    .values(
        answered_at=db_now(),
        **{name: sa.bindparam(name, type_=_TRIAL.c[name].type) for name in TIMING_COLUMNS},
    )
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
