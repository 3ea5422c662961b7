"""A study's exports (trials, participants, stimuli, codebook, psych-DS ZIP), streamed from
the database.

Every export is a generator of text (or bytes) chunks that reads the database in slices of
`CHUNK_ROWS` rows through a server-side cursor, so memory stays the same for a thousand rows or a
million. Names, order and meaning of the columns follow docs/DATA_CONTRACT.md. Preview and
withdrawn participants are never exported; practice trials are left out of trials.csv (the
contract has no column to mark them, and they are never analysed). Simulated participants
(`flask simulate-participants`) are exported with `simulated` = 1 in both tables; the report
reads the tables without them (`include_simulated=False`) unless asked to include them.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from analysis.vocabulary import RT_FAST_MS, RT_SLOW_MS, rt_flag
from survey import block_settings
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
    list_label,
)

if TYPE_CHECKING:
    import pandas as pd

CHUNK_ROWS = 5000
# Participants are read in slices of this many to attach their attention counts and ids.
PARTICIPANT_SLICE = 1000

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
RECRUITMENT_COLUMNS = ("recruitment_platform", "recruitment_id")
STIMULI_COLUMNS = ("image", "identity", "role", "source", "generator", "sha256", "width", "height")
CODEBOOK_COLUMNS = ("name", "file", "type", "description", "values")

# A spreadsheet evaluates a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# On an attention-check trial, the answer compared with the instructed one is this measure.
_ATTENTION_MEASURES = ("attention", "same", "source", "choice")
# Instructed answers may be written as words; answers are stored as the contract's values.
_ANSWER_ALIASES = {"same": "1", "different": "0"}
# The confidence question as the participant's page asks it (survey/participant/forms.py).
SIMULATED_MEANING = (
    "1 when the participant was simulated by the platform (flask simulate-participants), not a "
    "person: the report leaves them out unless asked to include them; 0 for real participants"
)
CONFIDENCE = {
    "question": "How sure are you?",
    "min": 1,
    "max": 5,
    "low_anchor": "Guessing",
    "high_anchor": "Certain",
}


# --- cells and CSV ---------------------------------------------------------------------------


def safe_cell(value: Any) -> str:
    """Return a value as CSV cell text that no spreadsheet evaluates; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    text = str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def format_number(value: float) -> str:
    """Write a number without a trailing .0 when it is whole, else in its shortest exact form."""
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


class _SafeCells(dict):
    """Cell texts of values seen before: recurring codes, labels and answers cost one lookup."""

    LIMIT = 20_000

    def __missing__(self, value: Any) -> str:
        """Neutralise a value not seen yet and remember it (forgetting all past LIMIT)."""
        if len(self) >= self.LIMIT:
            self.clear()
        text = self[value] = safe_cell(value)
        return text


def _safe_rows(records: Iterable[Sequence[Any]]) -> Iterator[list[str]]:
    """Turn rows of values into rows of safe cell texts."""
    cells = _SafeCells()
    for record in records:
        yield [cells[value] for value in record]


def _rows_text(rows: Sequence[Sequence[Any]]) -> str:
    """Write rows as CSV text with LF row ends, quoting every cell that holds a CR or a LF.

    The csv module quotes a cell holding a character of its line terminator; with LF alone, a
    bare CR would stay unquoted and spreadsheets would start a new row at it. Such rare rows
    are written with a CRLF terminator (so the CR is quoted) that is then turned into LF.
    """
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    text = out.getvalue()
    if "\r" not in text:
        return text
    lf, crlf = io.StringIO(), io.StringIO()
    plain, careful = csv.writer(lf, lineterminator="\n"), csv.writer(crlf, lineterminator="\r\n")
    for row in rows:
        if any(isinstance(cell, str) and "\r" in cell for cell in row):
            crlf.seek(0)
            crlf.truncate()
            careful.writerow(row)
            lf.write(crlf.getvalue()[:-2] + "\n")
        else:
            plain.writerow(row)
    return lf.getvalue()


def _csv_stream(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Yield a CSV file as text chunks of CHUNK_ROWS rows, header first; rows hold safe cells."""
    yield _rows_text([[safe_cell(name) for name in header]])
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK_ROWS:
            yield _rows_text(batch)
            batch.clear()
    yield _rows_text(batch)


def _streamed(stmt: sa.Select) -> sa.CursorResult:
    """Run a query through a server-side cursor, CHUNK_ROWS rows at a time (Core rows: fast)."""
    return db.session.connection().execute(stmt.execution_options(yield_per=CHUNK_ROWS))


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


def iso_utc(moment: datetime | None) -> str:
    """Format a timestamp as ISO 8601 in UTC with a Z, to the second; empty for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def correct(measure: str, value: str, condition: str | None, is_match: bool | None) -> bool | None:
    """Score a data answer: same == is_match (match), source == condition (detect), else None."""
    if measure == "same" and is_match is not None:
        return value == ("1" if is_match else "0")
    if measure == "source" and condition in block_settings.CONDITIONS:
        return value == condition
    return None


# --- trials.csv -------------------------------------------------------------------------------


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
    stmt = _exported(
        sa.select(
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
        )
        .select_from(Response)
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Response.participant_id)
        .where(Trial.is_practice.is_(False)),
        study_id,
        include_simulated,
    ).order_by(_participant_order(), Trial.position, Response.measure)
    slug = study.slug
    labels: dict[int, str] = {}

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
            _left,
            _measure,
            _value,
            rt,
            simulated,
        ) = row
        label = labels.get(list_index) or labels.setdefault(list_index, list_label(list_index))
        match = task == "match"
        return (
            slug,
            public_id,
            label,
            position,
            blocks.get(block_id, ""),
            task,
            codes.get(identity_id, ""),
            condition or "",
            codes.get(probe_id, "") if match else "",
            is_match if match else None,
            measure,
            value,
            right,
            rt,
            attention,
            rt_flag(rt),
            bool(simulated),
        )

    # An attention check's answers are held until its trial ends, then written as one row.
    check: list[sa.Row] = []
    for row in itertools.chain.from_iterable(_streamed(stmt).partitions()):
        public_id, position, is_attention = row[0], row[2], row[9]
        if check and (public_id != check[0][0] or position != check[0][2]):
            chosen, passed = _attention_scored(check)
            yield record(chosen, "attention", chosen.value, passed, True)
            check = []
        if is_attention:
            check.append(row)
            continue
        measure, value, condition, is_match = row[12], row[13], row[6], row[8]
        yield record(row, measure, value, correct(measure, value, condition, is_match), False)
    if check:
        chosen, passed = _attention_scored(check)
        yield record(chosen, "attention", chosen.value, passed, True)


_FLAGS = {None: "", True: "1", False: "0"}


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
    for name in ("is_match", "correct", "attention_check", "simulated"):
        frame[name] = frame[name].astype("boolean").astype("Int64")
    frame["trial"] = frame["trial"].astype("int64")
    frame["rt_ms"] = pd.to_numeric(frame["rt_ms"]).astype("float64")
    return frame


# --- participants.csv -------------------------------------------------------------------------


def demographic_keys(study_id: int, include_simulated: bool = True) -> list[str]:
    """Return every demographics key answered in the study, sorted."""
    keys: set[str] = set()
    stmt = _exported(sa.select(Participant.demographics), study_id, include_simulated)
    for (answers,) in _streamed(stmt):
        if isinstance(answers, dict):
            keys.update(str(k) for k in answers)
    return sorted(keys)


def _demographic_column(key: str) -> str:
    """Name a demographics column, kept apart from the contract's own columns."""
    taken = PARTICIPANT_COLUMNS + EXPIRY_COLUMNS + SIMULATED_COLUMNS + RECRUITMENT_COLUMNS
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


def participant_columns(keys: Sequence[str], include_recruitment: bool = False) -> list[str]:
    """Return the header of participants.csv: contract columns, ids if asked, demographics."""
    extra = list(RECRUITMENT_COLUMNS) if include_recruitment else []
    return (
        list(PARTICIPANT_COLUMNS)
        + list(EXPIRY_COLUMNS)
        + list(SIMULATED_COLUMNS)
        + extra
        + [_demographic_column(k) for k in keys]
    )


def _participant_rows(
    study_id: int, include_recruitment: bool, keys: Sequence[str], include_simulated: bool = True
) -> Iterator[tuple]:
    """Yield the raw values of participants.csv rows, sorted by participant."""
    _study(study_id)
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
            ]
            if include_recruitment:
                values.extend(recruitment.get(row.id, ("", "")))
            answers = row.demographics if isinstance(row.demographics, dict) else {}
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
    header = participant_columns(keys, include_recruitment)
    rows = _participant_rows(study_id, include_recruitment, keys, include_simulated)
    return _csv_stream(header, _safe_rows(rows))


def participants_dataframe(
    study_id: int, include_recruitment: bool = False, include_simulated: bool = True
) -> pd.DataFrame:
    """Return the participants.csv table as a DataFrame (typed cells, no spreadsheet guard)."""
    import pandas as pd

    keys = demographic_keys(study_id, include_simulated)
    header = participant_columns(keys, include_recruitment)
    rows = _participant_rows(study_id, include_recruitment, keys, include_simulated)
    frame = pd.DataFrame(list(rows), columns=header)
    for name in ("attention_passed", "attention_total", "simulated"):
        frame[name] = frame[name].astype("int64")
    frame["duration_s"] = pd.to_numeric(frame["duration_s"]).astype("float64")
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


# --- codebook ---------------------------------------------------------------------------------


def _settings(block: Block) -> dict[str, Any]:
    """Return a block's settings with their defaults filled in."""
    try:
        return block_settings.validate_block_settings(block.task, block.settings)
    except ValueError:
        # A stored block is valid by construction; describe what is there rather than fail.
        return dict(block.settings or {})


def measures(study: Study) -> list[dict[str, Any]]:
    """Describe every measure the study's blocks record: key, task, block, type and range."""
    out: list[dict[str, Any]] = []
    confidence = {"measure": "confidence", "type": "integer", **CONFIDENCE}
    for block in study.blocks:
        settings = _settings(block)
        common = {"block": block.name, "task": block.task}
        if block.task == "match":
            out.append(
                {
                    **common,
                    "measure": "same",
                    "type": "0/1",
                    "values": "1 = same person, 0 = different people",
                    "question": "Same person?",
                }
            )
        elif block.task == "detect":
            out.append(
                {
                    **common,
                    "measure": "source",
                    "type": "text",
                    "values": "real = real photograph, ai = AI-generated",
                    "question": "Real photograph or AI-generated?",
                }
            )
        elif block.task == "choose":
            out.append(
                {
                    **common,
                    "measure": "choice",
                    "type": "text",
                    "values": "real = chose the real headshot, ai = chose the AI headshot",
                    "question": settings.get("question", block_settings.DEFAULT_CHOOSE_QUESTION),
                }
            )
        elif block.task == "rate":
            for scale in settings.get("scales", []):
                out.append(
                    {
                        **common,
                        "measure": scale["key"],
                        "type": "integer",
                        "min": scale.get("min", 1),
                        "max": scale.get("max", 7),
                        "low_anchor": scale.get("low_anchor", ""),
                        "high_anchor": scale.get("high_anchor", ""),
                        "question": scale.get("question", ""),
                    }
                )
        if block.task in ("match", "detect") and settings.get("confidence", True):
            out.append({**common, **confidence})
        if settings.get("attention_checks"):
            out.append(
                {
                    **common,
                    "measure": "attention",
                    "type": "text",
                    "values": "the answer given; correct = 1 when it was the instructed one",
                    "question": "attention check: the item names the answer to give",
                }
            )
    for entry in out:
        if "min" in entry:
            entry["values"] = (
                f"{entry['min']} ({entry['low_anchor'] or 'lowest'}) to "
                f"{entry['max']} ({entry['high_anchor'] or 'highest'})"
            )
    return out


def scale_ranges(study_id: int) -> dict[str, tuple[int, int]]:
    """Return {measure: (min, max)} of the study's rating and confidence scales, for analysis."""
    return {m["measure"]: (m["min"], m["max"]) for m in measures(_study(study_id)) if "min" in m}


def _joined(values: Iterable[str]) -> str:
    """Join distinct values in first-seen order with ', '."""
    return ", ".join(dict.fromkeys(values))


def codebook(study_id: int, include_recruitment: bool | None = None) -> list[dict[str, str]]:
    """Describe every column of every file: name, file, type, description, allowed values.

    With ``include_recruitment`` None the recruitment columns are listed with a note that
    they appear only when asked for; True lists them plainly, False leaves them out.
    """
    study = _study(study_id)
    described = measures(study)
    tasks = _joined(b.task for b in study.blocks) or ", ".join(block_settings.TASKS)
    lists = ", ".join(list_label(i) for i in range(study.n_lists))
    value_text = (
        "; ".join(f"{m['measure']} ({m['block']}): {m['values']}" for m in described)
        or "depends on the measure"
    )
    trials = [
        ("study", "text", "study slug", study.slug),
        (
            "participant",
            "text",
            "opaque participant id (never a recruitment-platform id)",
            "see participants.csv",
        ),
        ("list", "text", "counterbalancing list the participant was assigned", lists),
        (
            "trial",
            "integer",
            "1-based presentation order within the participant (practice "
            "trials count in the order but are not exported)",
            "1 or more",
        ),
        ("block", "text", "block name as configured", _joined(b.name for b in study.blocks)),
        ("task", "text", "task of the block", tasks),
        (
            "identity",
            "text",
            "code of the person in the headshot (choose: of the pair)",
            "identity codes, see stimuli.csv",
        ),
        ("condition", "text", "source of the headshot shown; empty for choose", "real, ai, empty"),
        (
            "probe",
            "text",
            "match only: identity code of the probe photo; empty elsewhere",
            "identity codes, empty",
        ),
        (
            "is_match",
            "0/1",
            "match only: 1 when the probe shows the headshot's identity",
            "0, 1, empty",
        ),
        ("measure", "text", "what the answer measures", _joined(m["measure"] for m in described)),
        ("value", "text", "the answer given", value_text),
        (
            "correct",
            "0/1",
            "match/same: same == is_match; detect/source: source == condition; "
            "attention: 1 when the instructed answer was given; else empty",
            "0, 1, empty",
        ),
        (
            "rt_ms",
            "number",
            "response time measured in the browser, in milliseconds; empty when not measured",
            "0 or more, empty",
        ),
        ("attention_check", "0/1", "1 on attention-check trials (measure 'attention')", "0, 1"),
        (
            "rt_flag",
            "text",
            f"rt_ms outside the plausible range, kept but flagged: fast below "
            f"{RT_FAST_MS:g} ms, slow above {RT_SLOW_MS:g} ms (10 minutes); empty when plausible "
            "or not measured",
            "fast, slow, empty",
        ),
        ("simulated", "0/1", SIMULATED_MEANING, "0, 1"),
    ]
    participants = [
        ("participant", "text", "opaque participant id, as in trials.csv", "random ids"),
        ("list", "text", "counterbalancing list", lists),
        (
            "status",
            "text",
            "completed, or partial when the participant stopped early "
            "(withdrawn and preview participants are not exported)",
            "completed, partial",
        ),
        ("started_at", "datetime", "when the participant started (ISO 8601, UTC)", "timestamp"),
        (
            "completed_at",
            "datetime",
            "when the participant finished (ISO 8601, UTC); empty when partial",
            "timestamp, empty",
        ),
        (
            "duration_s",
            "number",
            "seconds from start to completion; empty when partial",
            "0 or more, empty",
        ),
        (
            "device",
            "text",
            "device guessed from the browser at the start",
            "mobile, desktop, empty",
        ),
        ("source", "text", "where the participant came from", "prolific, mturk, sona, link"),
        ("attention_passed", "integer", "attention checks answered as instructed", "0 or more"),
        ("attention_total", "integer", "attention checks answered", "0 or more"),
        (
            "expired_at",
            "datetime",
            "when a participant who stopped without finishing was "
            "marked expired, PARTICIPANT_EXPIRE_HOURS after the start (ISO 8601, UTC; status "
            "partial); empty otherwise",
            "timestamp, empty",
        ),
        ("simulated", "0/1", SIMULATED_MEANING, "0, 1"),
    ]
    if include_recruitment is not False:
        note = "" if include_recruitment else " (only in exports made with recruitment ids)"
        participants += [
            (
                "recruitment_platform",
                "text",
                "recruitment platform" + note,
                "prolific, mturk, sona, link, empty",
            ),
            (
                "recruitment_id",
                "text",
                "the platform's id of the participant: personal data, "
                "links answers to a person" + note,
                "platform ids, empty",
            ),
        ]
    for key in demographic_keys(study_id):
        participants.append(
            (
                _demographic_column(key),
                "text",
                f"optional demographics answer '{key}'",
                "as answered, empty",
            )
        )
    stimuli = [
        ("image", "text", "public id of the image", "random ids"),
        ("identity", "text", "code of the person shown", "identity codes"),
        ("role", "text", "headshot or an in-person probe photo", "headshot, probe"),
        (
            "source",
            "text",
            "real photograph, AI-generated headshot, or probe photo",
            "real, ai, photo",
        ),
        ("generator", "text", "camera or photographer, or the AI model", "free text"),
        ("sha256", "text", "SHA-256 of the stored image (metadata stripped)", "64 hex digits"),
        ("width", "integer", "width in pixels", "1 or more"),
        ("height", "integer", "height in pixels", "1 or more"),
    ]
    rows = []
    for file, columns in (
        ("trials.csv", trials),
        ("participants.csv", participants),
        ("stimuli.csv", stimuli),
    ):
        for name, kind, description, values in columns:
            rows.append(
                {
                    "name": name,
                    "file": file,
                    "type": kind,
                    "description": description,
                    "values": values,
                }
            )
    return rows


def codebook_csv(study_id: int, include_recruitment: bool | None = None) -> Iterator[str]:
    """Stream codebook.csv: one row per column of every file."""
    rows = codebook(study_id, include_recruitment)
    return _csv_stream(CODEBOOK_COLUMNS, _safe_rows([r[c] for c in CODEBOOK_COLUMNS] for r in rows))


def codebook_json(study_id: int, include_recruitment: bool | None = None) -> str:
    """Return codebook.json: the columns of every file and the measures with their scales."""
    study = _study(study_id)
    document = {
        "study": study.slug,
        "title": study.title,
        "columns": codebook(study_id, include_recruitment),
        "measures": measures(study),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- psych-DS ---------------------------------------------------------------------------------


def psychds_label(slug: str) -> str:
    """Return the slug as a psych-DS keyword value: letters and digits only."""
    return re.sub(r"[^A-Za-z0-9]", "", slug) or "study"


def psychds_names(slug: str) -> dict[str, str]:
    """Return the psych-DS path of each table: data/study-<slug>_data.csv and the others."""
    label = psychds_label(slug)
    return {
        "trials.csv": f"data/study-{label}_data.csv",
        "participants.csv": f"data/study-{label}_table-participants_data.csv",
        "stimuli.csv": f"data/study-{label}_table-stimuli_data.csv",
    }


def dataset_description(study_id: int, include_recruitment: bool = False) -> dict[str, Any]:
    """Return the psych-DS dataset_description.json (JSON-LD, schema.org Dataset)."""
    study = _study(study_id)
    seen: dict[str, dict[str, str]] = {}
    for row in codebook(study_id, include_recruitment):
        entry = seen.setdefault(
            row["name"],
            {
                "@type": "PropertyValue",
                "name": row["name"],
                "description": row["description"],
            },
        )
        if row["file"] != "trials.csv" and entry["description"] != row["description"]:
            entry["description"] += f" ({row['file']}: {row['description']})"
    # Shared with the data: the participants' title and the public summary, never the team's
    # internal name or private description.
    summary = (study.public_summary or "").strip()
    description = summary or f"Data of the Likeness study {study.title}."
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "name": study.title,
        "description": description,
        "identifier": study.slug,
        "variableMeasured": list(seen.values()),
    }


class _Drain(io.RawIOBase):
    """A write-only stream that keeps bytes until drained; zipfile writes it without seeking."""

    def __init__(self) -> None:
        """Start empty at position 0."""
        super().__init__()
        self.chunks = bytearray()
        self.position = 0

    def writable(self) -> bool:
        """Tell zipfile it may write."""
        return True

    def write(self, data) -> int:
        """Keep the bytes and advance the position."""
        self.chunks += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        """Return how many bytes were written in all."""
        return self.position

    def drain(self) -> bytes:
        """Return the bytes kept since the last drain."""
        data = bytes(self.chunks)
        self.chunks.clear()
        return data


def psychds_zip(study_id: int, include_recruitment: bool = False) -> Iterator[bytes]:
    """Stream a psych-DS ZIP: dataset_description.json, data/ tables and the codebook.

    The ZIP is written through zipfile into a small in-memory buffer that is drained after
    every chunk of rows (entries carry data descriptors, so nothing needs seeking back), which
    keeps memory bounded by one chunk whatever the size of the study.
    """
    study = _study(study_id)
    names = psychds_names(study.slug)
    sink = _Drain()
    tables = {
        names["trials.csv"]: trials_csv(study_id),
        names["participants.csv"]: participants_csv(study_id, include_recruitment),
        names["stimuli.csv"]: stimuli_csv(study_id),
        "codebook.csv": codebook_csv(study_id, include_recruitment),
    }
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        description = dataset_description(study_id, include_recruitment)
        archive.writestr(
            "dataset_description.json", json.dumps(description, indent=2, ensure_ascii=False)
        )
        archive.writestr("codebook.json", codebook_json(study_id, include_recruitment))
        yield sink.drain()
        for name, chunks in tables.items():
            with archive.open(name, "w", force_zip64=True) as entry:
                for chunk in chunks:
                    entry.write(chunk.encode("utf-8"))
                    yield sink.drain()
    yield sink.drain()


def psychds_filename(slug: str) -> str:
    """Return the download name of the psych-DS ZIP."""
    return f"study-{psychds_label(slug)}_psychds.zip"
