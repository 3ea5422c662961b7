"""The trial page's state and the answers to it (hot path): what a posted answer targets, and
storing it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from survey.block_settings import validate_block_settings
from survey.extensions import db
from survey.models import OPTIONS_SEPARATOR, Participant, Trial, utcnow
from survey.participant import hotdb, tickets
from survey.participant.hotdb import hot_path
from survey.participant.statements import (
    CLAIM,
    COMPLETE,
    INSERT_RESPONSES,
    PAGE,
    PAGE_STAMPING,
    STAMP_SHOWN,
    STORE_ONE_STATEMENT,
    TARGET,
    TIMING_COLUMNS,
    PageRow,
    TargetRow,
    takes_answers,
)

# A response time is stored when above 0 and below 30 days (the participant cookie's life:
# no trial page can stay open longer); anything else is not a time and is stored as missing.
# Implausible but possible times (below 50 ms, above 10 minutes) are kept and flagged in
# the export's rt_flag column, not dropped here.
RT_MAX_MS = 30 * 24 * 3600 * 1000
# A timed phase's report (hidden fields the script fills, see static/js/survey.js) is stored
# when plausible: a refresh rate of 20-500 Hz and every duration from 0 to 60 s (a phase is
# set to at most 10 s); anything else, or no report at all, stores the trial as "untimed".
REFRESH_HZ_RANGE = (20.0, 500.0)
ACHIEVED_MS_MAX = 60_000.0
# The achieved duration of each phase and the block setting that asked for it.
_PHASES = (
    ("fixation_ms_achieved", "fixation_ms"),
    ("exposure_ms_achieved", "exposure_ms"),
    ("mask_ms_achieved", "mask_ms"),
    ("isi_ms_achieved", "isi_ms"),
)
# A trial with no timed phase stores no timing at all.
NO_TIMING: dict[str, Any] = dict.fromkeys(TIMING_COLUMNS)


def _block_settings(block_id: int, task: str, raw: dict | None) -> tuple[dict[str, Any], str]:
    """Return a block's settings with defaults and their key (cached while they are unchanged).

    The key is a digest of the task and the stored settings: a ticket that names it is
    validated with exactly the settings its page was shown with.
    """
    kept = hot_path.state()
    cached = kept.block_settings.get(block_id)
    if cached is not None and cached[0] == raw:
        # A page shown with these settings names their key: keep it known as long as the block.
        if kept.settings_by_key.get(cached[2]) is None:
            kept.settings_by_key.put(cached[2], cached[1])
        return cached[1], cached[2]
    normalised = validate_block_settings(task, raw or {})
    stored = json.dumps([task, raw or {}], sort_keys=True, default=str)
    key = hashlib.sha256(stored.encode()).hexdigest()[:16]
    kept.block_settings.put(block_id, (raw, normalised, key))
    kept.settings_by_key.put(key, normalised)
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
    # Public ids of the images: match, rate, detect, learn: the headshot; choose: left then
    # right; recognise: the new photo.
    images: tuple[str, ...]
    probe: str | None
    # Memory: the name shown with a studied headshot (learn); the names offered (recognise).
    label: str | None = None
    options: tuple[str, ...] = ()
    # The trial's block: its texts in the participant's language (`survey.study_texts`).
    block_id: int | None = None


@dataclass(frozen=True)
class PageState:
    """A participant's state as the trial page needs it: who, and the current and next trial."""

    participant_id: int
    status: str
    is_preview: bool
    consented: bool
    # The study's title in the default language (`title_written` below: in the participant's).
    study_title: str
    # The study takes this participant's answers now (see `takes_answers`).
    taking_answers: bool
    current: TrialView | None
    next_images: tuple[str, ...]
    # The current trial's answer ticket (see `survey.participant.tickets`); "" without one.
    ticket: str = ""
    # The participant's language (survey/i18n.py): the page's words.
    language: str = "en"
    # The study's title as written in the participant's language (None: not written); which of
    # the two the page shows, `study_texts.trial_texts` says.
    title_written: str | None = None
    # A page between trials (block instructions, a break, a block's questions) comes before
    # the current trial, or after the last when every trial is answered (survey/flow.py).
    step_due: bool = False


def page_state(
    slug: str, public_id: str | None, secret: tickets.Secret | None = None
) -> PageState | None:
    """Return the participant's current trial and the next one's images; None if unknown.

    With the app's secret key, the state carries the current trial's signed answer ticket.
    The trial it shows gets its shown_at the first time (`statements.PAGE_STAMPING`): on
    PostgreSQL within the page's one statement, on SQLite by a second one that first time only.
    """
    if not public_id:
        return None
    params = {"public_id": public_id, "slug": slug}
    if hotdb.is_postgres():
        rows = hotdb.rows(PAGE_STAMPING, params)
        return _page_state(rows, slug, public_id, secret) if rows else None
    rows = hotdb.rows(PAGE, params)
    if not rows:
        return None
    state = _page_state(rows, slug, public_id, secret)
    if (
        state.current is not None
        and not state.step_due
        and PageRow._make(rows[0]).shown_at is None
        and state.consented
        and state.status == "in_progress"
        and state.taking_answers
    ):
        hotdb.rows(STAMP_SHOWN, {"trial_id": state.current.id})
    return state


def _page_state(
    rows: Sequence[Sequence[Any]], slug: str, public_id: str, secret: tickets.Secret | None
) -> PageState:
    """Read a trial page's rows (PAGE's columns) into its state."""
    first = PageRow._make(rows[0])
    current = None
    ticket = ""
    if first.trial_id is not None:
        settings, settings_key = _block_settings(first.block_id, first.task, first.settings)
        current = TrialView(
            id=first.trial_id,
            position=first.position,
            total=first.total,
            task=first.task,
            settings=settings,
            is_practice=first.is_practice,
            is_attention=first.is_attention,
            attention_answer=first.attention_answer,
            images=(first.headshot, first.other) if first.other is not None else (first.headshot,),
            probe=first.probe,
            label=first.label,
            options=tuple(first.options.split(OPTIONS_SEPARATOR)) if first.options else (),
            block_id=first.block_id,
        )
        if secret is not None:
            last = first.position >= first.total
            ticket = tickets.issue(
                secret,
                slug,
                public_id,
                first.trial_id,
                tickets.Ticket(
                    first.task, first.is_attention, last, first.left_source, settings_key
                ),
            )
    # Every trial answered: the position after the last one (a block's questions may follow).
    here = first.position if first.trial_id is not None else None
    step_due = first.next_step_at is not None and (here is None or first.next_step_at <= here)
    next_images: tuple[str, ...] = ()
    if len(rows) > 1:
        following = PageRow._make(rows[1])
        shown = (following.headshot, following.other, following.probe)
        # A recognise trial's new photo is both its image and its probe: preloaded once.
        next_images = tuple(dict.fromkeys(image for image in shown if image is not None))
    return PageState(
        participant_id=first.participant_id,
        status=first.status,
        is_preview=first.is_preview,
        consented=first.consented_at is not None,
        study_title=first.study_title,
        title_written=first.title_written,
        taking_answers=takes_answers(first.study_state, first.is_preview),
        current=current,
        next_images=next_images,
        ticket=ticket,
        language=first.language,
        step_due=step_due,
    )


# --- answers --------------------------------------------------------------------------------


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
    # The participant's language, for a page explaining a refusal; None from a ticket (an
    # answer stored without a page needs none).
    language: str | None = None


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
    row = TargetRow._make(rows[0])
    return AnswerTarget(
        public_id=public_id,
        trial_id=trial_id,
        task=row.task,
        settings=block_settings(row.block_id, row.task, row.settings),
        is_attention=row.is_attention,
        left_source=row.left_source,
        last=row.position >= row.total,
        answered=row.answered_at is not None,
        current=bool(row.current),
        taking_answers=row.status == "in_progress" and bool(row.taking_answers),
        language=row.language,
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
    settings = hot_path.state().settings_by_key.get(ticket.settings_key)
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
    target: AnswerTarget,
    measures: Sequence[tuple[str, str]],
    rt_ms: float | None,
    timing: Mapping[str, Any] | None = None,
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
    claim = {
        "trial_id": target.trial_id,
        "public_id": target.public_id,
        "now": now,
        **(timing or NO_TIMING),
    }
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


def has_timed_phase(task: str, settings: Mapping[str, Any]) -> bool:
    """Tell whether a trial shows something for a set time (a sequential match's headshot, or
    a study-phase headshot with an exposure time rather than self-paced)."""
    if task == "learn":
        return bool(settings.get("exposure_ms"))
    return task == "match" and settings.get("presentation") == "sequential"


def _number(raw: Any) -> float | None:
    """Return a posted number, or None when missing or not a finite number."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def clean_timing(form: Mapping[str, Any], task: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return what to store of a trial's timing report (the columns of `TIMING_COLUMNS`).

    No timed phase: nothing. Otherwise "timed" with the durations achieved (ms, 0.1 ms) and
    the refresh rate (Hz, 0.01) when the script reported them all and they are plausible; a
    phase the block leaves out (0 ms) stores no duration, but the blank before a match's probe
    is always measured (0 when the probe replaced the headshot in the same frame); a study-phase
    headshot has only its exposure. Anything
    missing or implausible stores "untimed" and no figures: never a partly made-up record.
    """
    if not has_timed_phase(task, settings):
        return NO_TIMING
    untimed = {**NO_TIMING, "timing": "untimed"}
    refresh = _number(form.get("refresh_hz"))
    low, high = REFRESH_HZ_RANGE
    if form.get("timing") != "frames" or refresh is None or not low <= refresh <= high:
        return untimed
    out = {**NO_TIMING, "timing": "timed", "refresh_hz": round(refresh, 2)}
    for name, setting in _PHASES:
        requested = settings.get(setting) or 0
        if not requested and (setting != "isi_ms" or task != "match"):
            continue
        value = _number(form.get(name))
        if value is None or not 0 <= value <= ACHIEVED_MS_MAX or (requested and value == 0):
            return untimed
        out[name] = round(value, 1)
    return out


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
