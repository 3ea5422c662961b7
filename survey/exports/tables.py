"""The tables: trials.csv, participants.csv and stimuli.csv streamed from the database, and
the trials and participants as data frames."""

from __future__ import annotations

import itertools
import json
from collections import namedtuple
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from analysis.vocabulary import TRIAL_DETAIL_COLUMNS, rt_flag
from survey import block_settings
from survey.exports import cells
from survey.exports.cells import (
    _csv_stream,
    _safe_rows,
    _SafeCells,
    format_number,
    iso_utc,
    iso_utc_ms,
)
from survey.extensions import db
from survey.models import (
    OPTIONS_SEPARATOR,
    Block,
    Identity,
    Image,
    Participant,
    RecruitmentId,
    Response,
    Study,
    StudyQuestion,
    Trial,
    list_label,
)

if TYPE_CHECKING:
    import pandas as pd

# Participants are read in slices of this many to attach their attention counts and ids.
PARTICIPANT_SLICE = 1000

# Per trial, after `simulated`: how its timed phases ran (a sequential match's fixation cross,
# headshot, mask and blank), repeated on each of the trial's rows; empty on other trials.
TIMING_COLUMNS = (
    "timing",
    "refresh_hz",
    "fixation_ms_achieved",
    "exposure_ms_achieved",
    "mask_ms_achieved",
    "isi_ms_achieved",
)
TRIAL_COLUMNS = (
    "study",
    "participant",
    "list",
    "trial",
    "block",
    "task",
    "identity",
    "condition",
    "probe",
    "is_match",
    "measure",
    "value",
    "correct",
    "rt_ms",
    "attention_check",
    "rt_flag",
    "simulated",
    "studied",
    # What each trial showed, where and when (docs/DATA_CONTRACT.md): outside the data hash,
    # which covers analysis.io.TRIAL_COLUMNS alone.
    *TRIAL_DETAIL_COLUMNS,
    *TIMING_COLUMNS,
)
PARTICIPANT_COLUMNS = (
    "participant",
    "list",
    "status",
    "started_at",
    "completed_at",
    "duration_s",
    "device",
    "source",
    "attention_passed",
    "attention_total",
)
# Written after the contract's columns above, which the data hash covers: the time an
# abandoned participant expired (its status is partial) changes no stored report.
EXPIRY_COLUMNS = ("expired_at",)
# 1 for a participant started by `flask simulate-participants`, not by a person.
SIMULATED_COLUMNS = ("simulated",)
# The language of the participant's pages (survey/i18n.py), after `simulated`; outside the hash.
LANGUAGE_COLUMNS = ("language",)
# A memory study's delay before the test phase, in studies whose recognise block sets one: the
# second session's times and the distractor's times and counts of sums answered and right.
SESSION_COLUMNS = (
    "waiting_since",
    "return_due_at",
    "returned_at",
    "distractor_started_at",
    "distractor_ended_at",
    "distractor_answered",
    "distractor_correct",
)
# The order the participant ran the blocks in (names joined by ";") and, counterbalanced, the
# balanced Latin square's row (0-based); empty for participants started before they were kept.
BLOCK_ORDER_COLUMNS = ("block_order", "block_order_row")
BLOCK_ORDER_SEPARATOR = ";"
RECRUITMENT_COLUMNS = ("recruitment_platform", "recruitment_id")
STIMULI_COLUMNS = ("image", "identity", "role", "source", "generator", "sha256", "width", "height")
# identities.csv: one row per identity, its descriptors (blank when not given)
IDENTITY_COLUMNS = ("identity", "gender", "age_band", "ethnicity")

# On an attention-check trial, the answer compared with the instructed one is this measure.
_ATTENTION_MEASURES = ("attention", "same", "source", "choice")
# Instructed answers may be written as words; answers are stored as the contract's values.
_ANSWER_ALIASES = {"same": "1", "different": "0"}


def _streamed(stmt: sa.Select) -> sa.CursorResult:
    """Run a query through a server-side cursor, CHUNK_ROWS rows at a time (Core rows: fast)."""
    return db.session.connection().execute(stmt.execution_options(yield_per=cells.CHUNK_ROWS))


# --- what every export shares -----------------------------------------------------------------


def _study(study_id: int) -> Study:
    """Return the study or raise ValueError naming the id."""
    study = db.session.get(Study, study_id)
    if study is None:
        raise ValueError(f"study_id {study_id!r} names no study")
    return study


def _exported(stmt: sa.Select, study_id: int, include_simulated: bool = True) -> sa.Select:
    """Limit a query over participants to the ones exported: not preview, not withdrawn (and
    not simulated, when they are left out)."""
    stmt = stmt.where(
        Participant.study_id == study_id,
        Participant.is_preview.is_(False),
        Participant.status != "withdrawn",
    )
    return stmt if include_simulated else stmt.where(Participant.is_simulated.is_(False))


def _participant_order() -> sa.ColumnElement:
    """Order by the participant's public id in code-point order, the same on every database."""
    column = Participant.public_id
    if db.session.get_bind().dialect.name == "postgresql":
        # The database's locale collation would order '-', '_' and capitals differently.
        return column.collate("C")
    return column


def attention_passed(
    task: str, given: str, instructed: str | None, left_source: str | None
) -> bool:
    """Tell whether an attention-check answer is the instructed one."""
    instructed = (instructed or "").strip().lower()
    if task == "choose" and instructed in ("left", "right") and given in block_settings.CONDITIONS:
        # A choice stored as the source picked; the instruction names a side.
        given = "left" if given == left_source else "right"
    return _ANSWER_ALIASES.get(given, given) == _ANSWER_ALIASES.get(instructed, instructed)


def _attention_row(rows: Sequence[sa.Row]) -> sa.Row:
    """Pick the answer of an attention-check trial that is compared with the instruction."""
    for measure in _ATTENTION_MEASURES:
        for row in rows:
            if row.measure == measure:
                return row
    # A rate check: the instructed answer is a value of the block's first scale.
    return rows[0]


def _attention_scored(rows: Sequence[sa.Row]) -> tuple[sa.Row, bool]:
    """Return an attention-check trial's compared answer and whether it passed."""
    row = _attention_row(rows)
    return row, attention_passed(row.task, row.value, row.attention_answer, row.left_source)


def correct(
    measure: str,
    value: str,
    condition: str | None,
    is_match: bool | None,
    studied: bool | None = None,
    label: str | None = None,
) -> bool | None:
    """Score a data answer: same == is_match (match), source == condition (detect), old ==
    studied and name == the name studied with (recognise), else None."""
    if measure == "same" and is_match is not None:
        return value == ("1" if is_match else "0")
    if measure == "source" and condition in block_settings.CONDITIONS:
        return value == condition
    if measure == "old" and studied is not None:
        return value == ("1" if studied else "0")
    if measure == "name" and studied is not None:
        # A foil was studied under no name: any name given is wrong.
        return bool(studied) and value == label
    return None


# --- trials.csv -------------------------------------------------------------------------------


# The columns trials.csv reads per answer, in the order `record` unpacks them.
_TRIAL_QUERY = (
    Participant.public_id,
    Participant.list_index,
    Trial.position,
    Trial.block_id,
    Trial.task,
    Trial.identity_id,
    Trial.condition,
    Trial.probe_identity_id,
    Trial.is_match,
    Trial.is_attention,
    Trial.attention_answer,
    Trial.left_source,
    Response.measure,
    Response.value,
    Response.rt_ms,
    Participant.is_simulated,
    Trial.studied,
    Trial.label,
    Trial.options,
    Trial.image_id,
    Trial.other_image_id,
    Trial.probe_image_id,
    Trial.shown_at,
    Trial.answered_at,
    *(getattr(Trial, name) for name in TIMING_COLUMNS),
)
# Where the loop finds the columns it looks at before laying out a row, by name.
_AT = namedtuple("_At", [column.key for column in _TRIAL_QUERY])(*range(len(_TRIAL_QUERY)))


def _trial_rows(study_id: int, include_simulated: bool = True) -> Iterator[tuple]:
    """Yield the raw values of trials.csv rows (same order as TRIAL_COLUMNS), sorted."""
    study = _study(study_id)
    blocks = dict(
        db.session.execute(sa.select(Block.id, Block.name).where(Block.study_id == study_id)).all()
    )
    codes = dict(
        db.session.execute(
            sa.select(Identity.id, Identity.code).where(Identity.study_id == study_id)
        ).all()
    )
    images = dict(
        db.session.execute(
            sa.select(Image.id, Image.public_id).where(Image.study_id == study_id)
        ).all()
    )
    stmt = _exported(
        sa.select(*_TRIAL_QUERY)
        .select_from(Response)
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .where(Trial.is_practice.is_(False)),
        study_id,
        include_simulated,
    ).order_by(_participant_order(), Trial.position, Response.measure)
    slug = study.slug
    labels: dict[int, str] = {}
    # A trial's rows follow one another: its two times are formatted once, not once per row.
    times: list[Any] = [None, None, "", ""]

    def record(row: sa.Row, measure: str, value: str, right: bool | None, attention: bool) -> tuple:
        """Lay out one trials.csv row."""
        (
            public_id,
            list_index,
            position,
            block_id,
            task,
            identity_id,
            condition,
            probe_id,
            is_match,
            _check,
            _instructed,
            left_source,
            _measure,
            _value,
            rt,
            simulated,
            studied,
            _label,
            _options,
            image_id,
            other_image_id,
            probe_image_id,
            shown_at,
            answered_at,
            *timing,
        ) = row
        label = labels.get(list_index) or labels.setdefault(list_index, list_label(list_index))
        match = task == "match"
        recognise = task == "recognise"
        choose = task == "choose"
        if times[0] != shown_at or times[1] != answered_at:
            times[:] = [shown_at, answered_at, iso_utc_ms(shown_at), iso_utc_ms(answered_at)]
        return (
            slug,
            public_id,
            label,
            position,
            blocks.get(block_id, ""),
            task,
            codes.get(identity_id, ""),
            condition or "",
            codes.get(probe_id, "") if match or recognise else "",
            is_match if match else None,
            measure,
            value,
            right,
            rt,
            attention,
            rt_flag(rt),
            bool(simulated),
            studied if recognise else None,
            real_side(left_source) if choose else "",
            images.get(image_id, ""),
            images.get(other_image_id, "") if choose else "",
            images.get(probe_image_id, "") if match or recognise else "",
            times[2],
            times[3],
            *timing,
        )

    # An attention check's answers are held until its trial ends, then written as one row.
    check: list[sa.Row] = []
    # Offsets in locals: this loop runs once per answer (a million in the benchmark).
    public_at, position_at, attention_at = _AT.public_id, _AT.position, _AT.is_attention
    measure_at, value_at = _AT.measure, _AT.value
    condition_at, match_at = _AT.condition, _AT.is_match
    options_at, studied_at, label_at = _AT.options, _AT.studied, _AT.label
    for row in itertools.chain.from_iterable(_streamed(stmt).partitions()):
        public_id, position = row[public_at], row[position_at]
        if check and (public_id != check[0][public_at] or position != check[0][position_at]):
            chosen, passed = _attention_scored(check)
            yield record(chosen, "attention", chosen.value, passed, True)
            check = []
        if row[attention_at]:
            check.append(row)
            continue
        measure, value = row[measure_at], row[value_at]
        if measure == "name":
            value = _name_chosen(value, row[options_at])
        right = correct(
            measure, value, row[condition_at], row[match_at], row[studied_at], row[label_at]
        )
        yield record(row, measure, value, right, False)
    if check:
        chosen, passed = _attention_scored(check)
        yield record(chosen, "attention", chosen.value, passed, True)


def _name_chosen(value: str, options: str | None) -> str:
    """Return the name a name-recall answer chose: it is stored as its place (1-4) among the
    trial's names (stored joined by "|")."""
    names = (options or "").split(OPTIONS_SEPARATOR)
    if options and value.isdigit() and 1 <= int(value) <= len(names):
        return names[int(value) - 1]
    return value


_FLAGS = {None: "", True: "1", False: "0"}


def real_side(left_source: str | None) -> str:
    """Return the side of a choose trial's real headshot: left, right, or empty if unknown."""
    if left_source == "real":
        return "left"
    if left_source == "ai":
        return "right"
    return ""


def _trial_cells(records: Iterable[tuple]) -> Iterator[tuple]:
    """Turn trials.csv values into safe cells, column by column (the hot loop of the export)."""
    texts = _SafeCells()
    for (
        study,
        participant,
        label,
        trial,
        block,
        task,
        identity,
        condition,
        probe,
        is_match,
        measure,
        value,
        right,
        rt,
        attention,
        flag,
        simulated,
        studied,
        side,
        image,
        image_right,
        probe_image,
        shown_at,
        answered_at,
        timing,
        *achieved,
    ) in records:
        # list, task, condition and rt_flag come from fixed sets of plain words; trial is an int.
        yield (
            texts[study],
            texts[participant],
            label,
            trial,
            texts[block],
            task,
            texts[identity],
            condition,
            texts[probe],
            _FLAGS[is_match],
            texts[measure],
            texts[value],
            _FLAGS[right],
            "" if rt is None else format_number(rt),
            _FLAGS[attention],
            flag,
            _FLAGS[simulated],
            _FLAGS[studied],
            # A side is a fixed word, an image id is a URL-safe random id (it may start
            # with '-'), a time is ISO 8601 text.
            side,
            texts[image],
            texts[image_right],
            texts[probe_image],
            shown_at,
            answered_at,
            timing or "",
            *("" if figure is None else format_number(figure) for figure in achieved),
        )


def trials_csv(study_id: int, include_simulated: bool = True) -> Iterator[str]:
    """Stream trials.csv: one row per answer to one measure, sorted by participant and trial."""
    return _csv_stream(TRIAL_COLUMNS, _trial_cells(_trial_rows(study_id, include_simulated)))


def trials_dataframe(study_id: int, include_simulated: bool = True) -> pd.DataFrame:
    """Return the trials.csv table as a DataFrame (typed cells, no spreadsheet guard)."""
    import pandas as pd

    columns: dict[str, list] = {name: [] for name in TRIAL_COLUMNS}
    for row in _trial_rows(study_id, include_simulated):
        for name, value in zip(TRIAL_COLUMNS, row, strict=True):
            columns[name].append(value)
    frame = pd.DataFrame(columns, columns=list(TRIAL_COLUMNS))
    for name in ("is_match", "correct", "attention_check", "simulated", "studied"):
        frame[name] = frame[name].astype("boolean").astype("Int64")
    frame["trial"] = frame["trial"].astype("int64")
    for name in ("rt_ms", *TIMING_COLUMNS[1:]):
        frame[name] = pd.to_numeric(frame[name]).astype("float64")
    frame["timing"] = frame["timing"].fillna("")
    return frame


# --- participants.csv -------------------------------------------------------------------------


def demographic_keys(study_id: int, include_simulated: bool = True) -> list[str]:
    """Return the study's question codes in the questions' order, then any other key answered
    (questions deleted since, answers stored before the question builder), sorted."""
    codes = list(
        db.session.scalars(
            sa.select(StudyQuestion.code)
            .where(StudyQuestion.study_id == study_id)
            .order_by(StudyQuestion.position, StudyQuestion.id)
        )
    )
    keys: set[str] = set()
    stmt = _exported(
        sa.select(Participant.demographics, Participant.block_answers), study_id, include_simulated
    )
    for row in _streamed(stmt):
        for answers in row:
            if isinstance(answers, dict):
                keys.update(str(k) for k in answers)
    return codes + sorted(keys - set(codes))


def _demographic_column(key: str) -> str:
    """Name a demographics column, kept apart from the contract's own columns."""
    taken = (
        PARTICIPANT_COLUMNS
        + EXPIRY_COLUMNS
        + SIMULATED_COLUMNS
        + LANGUAGE_COLUMNS
        + BLOCK_ORDER_COLUMNS
        + SESSION_COLUMNS
        + RECRUITMENT_COLUMNS
    )
    return f"demographic_{key}" if key in taken else key


def _attention_counts(participant_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Return {participant id: (passed, answered)} over attention checks, scored as trials.csv
    does."""
    stmt = (
        sa.select(
            Response.participant_id,
            Trial.id,
            Trial.task,
            Trial.condition,
            Trial.is_match,
            Trial.left_source,
            Trial.attention_answer,
            Response.measure,
            Response.value,
        )
        .join(Trial, Trial.id == Response.trial_id)
        .where(
            Response.participant_id.in_(participant_ids),
            Trial.is_attention.is_(True),
            Trial.is_practice.is_(False),
        )
        .order_by(Response.participant_id, Trial.id, Response.measure)
    )
    counts: dict[int, tuple[int, int]] = {}
    rows = db.session.execute(stmt)
    for (pid, _trial), answers in itertools.groupby(rows, key=lambda r: (r.participant_id, r.id)):
        _row, passed = _attention_scored(list(answers))
        ok, total = counts.get(pid, (0, 0))
        counts[pid] = (ok + passed, total + 1)
    return counts


def _recruitment(participant_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Return {participant id: (platform, external id)} for the given participants."""
    stmt = sa.select(
        RecruitmentId.participant_id, RecruitmentId.platform, RecruitmentId.external_id
    ).where(RecruitmentId.participant_id.in_(participant_ids))
    return {pid: (platform, external) for pid, platform, external in db.session.execute(stmt)}


def has_memory_delay(study_id: int) -> bool:
    """Tell whether the study's test phase waits behind a distractor or a second session."""
    stored = db.session.scalars(
        sa.select(Block.settings).where(Block.study_id == study_id, Block.task == "recognise")
    )
    return any(
        isinstance(s, dict) and bool(s.get("distractor_s") or s.get("delay_hours")) for s in stored
    )


def participant_columns(
    keys: Sequence[str], include_recruitment: bool = False, sessions: bool = False
) -> list[str]:
    """Return the header of participants.csv: contract columns, a memory delay's columns when
    the study has one, ids if asked, demographics."""
    extra = list(RECRUITMENT_COLUMNS) if include_recruitment else []
    return (
        list(PARTICIPANT_COLUMNS)
        + list(EXPIRY_COLUMNS)
        + list(SIMULATED_COLUMNS)
        + list(LANGUAGE_COLUMNS)
        + list(BLOCK_ORDER_COLUMNS)
        + (list(SESSION_COLUMNS) if sessions else [])
        + extra
        + [_demographic_column(k) for k in keys]
    )


def _participant_rows(
    study_id: int, include_recruitment: bool, keys: Sequence[str], include_simulated: bool = True
) -> Iterator[tuple]:
    """Yield the raw values of participants.csv rows, sorted by participant."""
    _study(study_id)
    sessions = has_memory_delay(study_id)
    stmt = _exported(
        sa.select(
            Participant.id,
            Participant.public_id,
            Participant.list_index,
            Participant.status,
            Participant.started_at,
            Participant.completed_at,
            Participant.device,
            Participant.source,
            Participant.demographics,
            Participant.expired_at,
            Participant.is_simulated,
            Participant.language,
            *(getattr(Participant, name) for name in SESSION_COLUMNS),
            Participant.block_order,
            Participant.block_order_row,
            Participant.block_answers,
        ),
        study_id,
        include_simulated,
    ).order_by(_participant_order())
    result = db.session.execute(stmt.execution_options(yield_per=PARTICIPANT_SLICE))
    for part in result.partitions():
        ids = [row.id for row in part]
        attention = _attention_counts(ids)
        recruitment = _recruitment(ids) if include_recruitment else {}
        for row in part:
            passed, total = attention.get(row.id, (0, 0))
            duration = None
            if row.completed_at is not None and row.started_at is not None:
                duration = round((row.completed_at - row.started_at).total_seconds(), 1)
            values: list[Any] = [
                row.public_id,
                list_label(row.list_index),
                "completed" if row.status == "completed" else "partial",
                iso_utc(row.started_at),
                iso_utc(row.completed_at),
                duration,
                row.device or "",
                row.source,
                passed,
                total,
                iso_utc(row.expired_at),
                1 if row.is_simulated else 0,
                row.language,
                BLOCK_ORDER_SEPARATOR.join(row.block_order or ()),
                row.block_order_row,
            ]
            if sessions:
                values += [iso_utc(getattr(row, name)) for name in SESSION_COLUMNS[:5]]
                values += [row.distractor_answered, row.distractor_correct]
            if include_recruitment:
                values.extend(recruitment.get(row.id, ("", "")))
            # The questions page's answers and those asked after a block, under their codes.
            answers = {
                **(row.block_answers if isinstance(row.block_answers, dict) else {}),
                **(row.demographics if isinstance(row.demographics, dict) else {}),
            }
            values.extend(_demographic_value(answers.get(k)) for k in keys)
            yield tuple(values)


def _demographic_value(value: Any) -> Any:
    """Flatten a demographics answer to one cell (lists joined by '; ')."""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def participants_csv(
    study_id: int, include_recruitment: bool = False, include_simulated: bool = True
) -> Iterator[str]:
    """Stream participants.csv; recruitment ids only when asked for."""
    keys = demographic_keys(study_id, include_simulated)
    header = participant_columns(keys, include_recruitment, has_memory_delay(study_id))
    rows = _participant_rows(study_id, include_recruitment, keys, include_simulated)
    return _csv_stream(header, _safe_rows(rows))


def participants_dataframe(
    study_id: int, include_recruitment: bool = False, include_simulated: bool = True
) -> pd.DataFrame:
    """Return the participants.csv table as a DataFrame (typed cells, no spreadsheet guard)."""
    import pandas as pd

    keys = demographic_keys(study_id, include_simulated)
    header = participant_columns(keys, include_recruitment, has_memory_delay(study_id))
    rows = _participant_rows(study_id, include_recruitment, keys, include_simulated)
    frame = pd.DataFrame(list(rows), columns=header)
    for name in ("attention_passed", "attention_total", "simulated", *SESSION_COLUMNS[5:]):
        if name in frame:
            frame[name] = frame[name].astype("int64")
    frame["duration_s"] = pd.to_numeric(frame["duration_s"]).astype("float64")
    frame["block_order_row"] = pd.array(frame["block_order_row"].tolist(), dtype="Int64")
    return frame


# --- stimuli.csv ------------------------------------------------------------------------------


def _stimulus_rows(study_id: int) -> Iterator[tuple]:
    """Yield stimuli.csv rows: every image of the study, by identity, role and source."""
    _study(study_id)
    stmt = (
        sa.select(
            Image.public_id,
            Identity.code,
            Image.role,
            Image.source,
            Image.generator,
            Image.sha256,
            Image.width,
            Image.height,
        )
        .join(Identity, Identity.id == Image.identity_id)
        .where(Image.study_id == study_id)
        .order_by(Identity.code, Image.role, Image.source, Image.id)
    )
    for row in _streamed(stmt):
        yield tuple(row)


def stimuli_csv(study_id: int) -> Iterator[str]:
    """Stream stimuli.csv: one row per image."""
    return _csv_stream(STIMULI_COLUMNS, _safe_rows(_stimulus_rows(study_id)))


def _identity_rows(study_id: int) -> Iterator[tuple]:
    """Yield identities.csv rows: every identity of the study with its descriptors, by code."""
    _study(study_id)
    stmt = (
        sa.select(Identity.code, Identity.gender, Identity.age_band, Identity.ethnicity)
        .where(Identity.study_id == study_id)
        .order_by(Identity.code)
    )
    for row in _streamed(stmt):
        yield tuple(row)


def identities_csv(study_id: int) -> Iterator[str]:
    """Stream identities.csv: one row per identity with its descriptors (the moderators)."""
    return _csv_stream(IDENTITY_COLUMNS, _safe_rows(_identity_rows(study_id)))


def identities_dataframe(study_id: int) -> pd.DataFrame | None:
    """The identities.csv table, or None when no identity has a descriptor (nothing to test)."""
    import pandas as pd

    frame = pd.DataFrame(list(_identity_rows(study_id)), columns=list(IDENTITY_COLUMNS))
    frame = frame.fillna("")
    described = [c for c in IDENTITY_COLUMNS[1:] if frame[c].str.strip().ne("").any()]
    return frame[["identity", *described]] if described else None
