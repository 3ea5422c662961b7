"""The codebook: every column of every file and every measure, as CSV and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from analysis.vocabulary import RT_FAST_MS, RT_SLOW_MS
from survey import block_settings
from survey import flow as block_flow
from survey.exports.cells import _csv_stream, _safe_rows
from survey.exports.tables import _demographic_column, _study, demographic_keys, has_memory_delay
from survey.extensions import db
from survey.i18n import LANGUAGES, study_languages
from survey.models import Block, Study, StudyQuestion, list_label
from survey.question_labels import KIND_LABELS, describe
from survey.study_texts import part_texts

CODEBOOK_COLUMNS = ("name", "file", "type", "description", "values")
SIMULATED_MEANING = (
    "1 when the participant was simulated by the platform (flask simulate-participants), not a "
    "person: the report leaves them out unless asked to include them; 0 for real participants"
)
# The type of a question's column in participants.csv, by kind.
QUESTION_TYPES = {
    "likert": "integer",
    "choice": "text",
    "checkboxes": "text",
    "number": "number",
    "text": "text",
}
# The confidence question as the participant's page asks it (survey/participant/forms.py).
CONFIDENCE = {
    "question": "How sure are you?",
    "min": 1,
    "max": 5,
    "low_anchor": "Guessing",
    "high_anchor": "Certain",
}


# participants.csv's columns of a memory study's delay before the test phase (only in studies
# whose recognise block sets one).
SESSION_ENTRIES = (
    (
        "waiting_since",
        "datetime",
        "memory study with a second session: when the first session ended and the return link "
        "and code were shown (ISO 8601, UTC); empty before that or without a second session",
        "timestamp, empty",
    ),
    (
        "return_due_at",
        "datetime",
        "when the test phase opened to the return link: waiting_since plus the recognise "
        "block's delay_hours (at once for a preview run)",
        "timestamp, empty",
    ),
    (
        "returned_at",
        "datetime",
        "when the participant came back through the link or code; empty while waiting (or "
        "never returned)",
        "timestamp, empty",
    ),
    (
        "distractor_started_at",
        "datetime",
        "memory study with a timed distractor: when the participant started its sums",
        "timestamp, empty",
    ),
    (
        "distractor_ended_at",
        "datetime",
        "when the participant left the distractor, never before its distractor_s had passed",
        "timestamp, empty",
    ),
    (
        "distractor_answered",
        "integer",
        "distractor sums answered while it ran (not analysed)",
        "0 or more",
    ),
    ("distractor_correct", "integer", "of those, sums answered right (not analysed)", "0 or more"),
)


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
        elif block.task == "learn":
            orienting = settings.get("orienting_question") or ""
            out.append(
                {
                    **common,
                    "measure": "orienting" if orienting else "seen",
                    "type": "integer" if orienting else "0/1",
                    **(
                        {
                            "min": 1,
                            "max": 5,
                            "low_anchor": "Not at all",
                            "high_anchor": "Very",
                        }
                        if orienting
                        else {"values": "1 = the participant moved on from the headshot"}
                    ),
                    "question": orienting or "study phase: the headshot, then Continue",
                }
            )
        elif block.task == "recognise":
            out.append(
                {
                    **common,
                    "measure": "old",
                    "type": "0/1",
                    "values": "1 = met before (yes), 0 = not met (no)",
                    "question": settings.get("question", block_settings.DEFAULT_RECOGNISE_QUESTION),
                }
            )
            if settings.get("name_recall"):
                out.append(
                    {
                        **common,
                        "measure": "name",
                        "type": "text",
                        "values": "the name chosen of four, asked after a yes; correct = 1 when "
                        "it is the name the person was studied with",
                        "question": "What is this person's name?",
                    }
                )
        if block.task in ("match", "detect", "recognise") and settings.get("confidence", True):
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
        (
            "condition",
            "text",
            "source of the headshot shown; empty for choose; recognise: source of the headshot "
            "the person was studied with, empty for a foil (never studied)",
            "real, ai, empty",
        ),
        (
            "probe",
            "text",
            "match and recognise: identity code of the probe photo; empty elsewhere",
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
            "recognise/old: old == studied; recognise/name: the name studied with was chosen; "
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
        (
            "studied",
            "0/1",
            "recognise only: 1 when the person was met in the learn block (a target), 0 for a "
            "foil; empty on other tasks. With condition it gives the status of the old/new GLMM: "
            "foil (0), studied_real or studied_ai (1 and the condition studied in)",
            "0, 1, empty",
        ),
        (
            "real_side",
            "text",
            "choose only: the side of the screen the real headshot was on; empty for other tasks",
            "left, right, empty",
        ),
        (
            "image",
            "text",
            "public id of the photo shown (choose: the left headshot; recognise: the new photo, "
            "the same as probe_image), as in stimuli.csv",
            "image ids, see stimuli.csv",
        ),
        (
            "image_right",
            "text",
            "choose only: public id of the right-hand headshot, as in stimuli.csv; empty elsewhere",
            "image ids, empty",
        ),
        (
            "probe_image",
            "text",
            "match and recognise: public id of the probe photo shown, as in stimuli.csv; empty "
            "elsewhere",
            "image ids, empty",
        ),
        (
            "shown_at",
            "datetime",
            "when the trial page was first served with this trial (ISO 8601, UTC, to the "
            "millisecond, ending in Z; the server's time of sending, not of painting: rt_ms is "
            "measured in the browser); a reload keeps the first time; empty for trials served "
            "before the column existed",
            "timestamp, empty",
        ),
        (
            "answered_at",
            "datetime",
            "when the answer was stored (ISO 8601, UTC, to the millisecond, ending in Z), on "
            "the same clock as shown_at; never before shown_at",
            "timestamp, empty",
        ),
        (
            "timing",
            "text",
            "trials with a timed phase (a sequential match, a study-phase headshot with a set "
            "time): timed when the browser ran the phases on animation frames and reported the "
            "durations below; untimed when it could not (no script: both photos showed at once, "
            "no fixation cross or mask; a study-phase headshot stayed until Continue) or its "
            "report was implausible; empty on other trials",
            "timed, untimed, empty",
        ),
        (
            "refresh_hz",
            "number",
            "timed trials: the display's refresh rate estimated in the browser (median interval "
            "of 20 animation frames before the trial), in Hz; else empty",
            "20 to 500, empty",
        ),
        *(
            (
                f"{phase}_ms_achieved",
                "number",
                f"timed trials: how long the {words} was on screen, in ms, from the timestamps "
                "of the animation frames that showed and replaced it; empty when untimed or "
                "the block has none",
                "0 to 60000, empty",
            )
            for phase, words in (
                ("fixation", "fixation cross"),
                ("exposure", "headshot"),
                ("mask", "mask"),
                ("isi", "blank between the headshot (or mask) and the probe (0: none; match only)"),
            )
        ),
    ]
    order_how = {
        "fixed": "fixed: the same for everyone",
        "random": "randomised per participant",
        "counterbalanced": "counterbalanced across participants",
    }[block_flow.flow_settings(study.settings).order]
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
        (
            "language",
            "text",
            "the language of the participant's pages, chosen before the consent (the study "
            "link's ?lang=, else the browser's languages among the study's, else its default) "
            "and kept from then on; en for participants from before languages",
            ", ".join(LANGUAGES),
        ),
        (
            "block_order",
            "text",
            f"the blocks in the order this participant ran them, names joined by ';' ({order_how})",
            "block names joined by ';', empty for participants started before it was recorded",
        ),
        (
            "block_order_row",
            "integer",
            "counterbalanced block order only: the row of the balanced Latin square the "
            "participant was given (0-based, rows dealt in order of arrival); empty otherwise",
            "0 or more, empty",
        ),
        *(SESSION_ENTRIES if has_memory_delay(study_id) else ()),
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
    asked = {q.code: q for q in _questions(study_id)}
    for key in demographic_keys(study_id):
        q = asked.get(key)
        participants.append(
            (
                _demographic_column(key),
                "text",
                f"optional demographics answer '{key}'",
                "as answered, empty",
            )
            if q is None
            else (
                _demographic_column(key),
                QUESTION_TYPES[q.kind],
                f"{'required' if q.required else 'optional'} question ({KIND_LABELS[q.kind]})"
                f"{f' asked right after the block {q.block.name!r}' if q.block else ''}: "
                f"“{q.text}”",
                describe(q.kind, q.spec, english=True)
                + ("" if q.required else ", empty when not answered"),
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
    identities = [
        ("identity", "text", "code of the person photographed", "identity codes"),
        (
            "gender",
            "text",
            "gender of the person, as described by the study team",
            "free text, empty",
        ),
        ("age_band", "text", "age band of the person, as described", "free text, empty"),
        ("ethnicity", "text", "ethnicity of the person, as described", "free text, empty"),
    ]
    rows = []
    for file, columns in (
        ("trials.csv", trials),
        ("participants.csv", participants),
        ("stimuli.csv", stimuli),
        ("identities.csv", identities),
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


def _questions(study_id: int) -> list[StudyQuestion]:
    """Return the study's questions in order."""
    return list(
        db.session.scalars(
            sa.select(StudyQuestion)
            .where(StudyQuestion.study_id == study_id)
            .order_by(StudyQuestion.position, StudyQuestion.id)
        )
    )


def questions(study_id: int) -> list[dict[str, Any]]:
    """Return the questions as codebook.json lists them: code, kind, text, required, settings,
    and the block they are asked right after (absent: the questions page)."""
    return [
        {
            "code": q.code,
            "kind": q.kind,
            "text": q.text,
            "required": q.required,
            **q.spec,
            **({"asked_after_block": q.block.name} if q.block else {}),
        }
        for q in _questions(study_id)
    ]


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
        "questions": questions(study_id),
    }
    languages = study_languages(study)
    if len(languages) > 1:
        _add_translations(study, document, languages)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# A measure's texts (as codebook.json names them) and the block text each is asked with.
_MEASURE_TEXTS = {
    "rate": lambda m: {f: f"scale:{m}:{f}" for f in ("question", "low_anchor", "high_anchor")},
    "choose": lambda m: {"question": "question"},
    "recognise": lambda m: {"question": "question"} if m == "old" else {},
    "learn": lambda m: {"question": "orienting_question"} if m == "orienting" else {},
}


def _add_translations(study: Study, document: dict[str, Any], languages: list[str]) -> None:
    """Add the study's languages, and to each measure and question the wording participants
    read in every other language (as written; an unwritten one was read in the default's)."""
    document["languages"] = languages
    blocks = {b.name: b.id for b in study.blocks}
    for entry in document["measures"]:
        names = _MEASURE_TEXTS.get(entry["task"], lambda m: {})(entry["measure"])
        if entry["measure"] in ("confidence", "attention") or not names:
            continue
        written = part_texts("block", blocks[entry["block"]])
        entry["translations"] = {
            lang: {name: written[lang][key] for name, key in names.items() if key in written[lang]}
            for lang in languages[1:]
            if lang in written
        }
    ids = {q.code: q.id for q in _questions(study.id)}
    for entry in document["questions"]:
        written = part_texts("question", ids[entry["code"]])
        translations = {}
        for lang in languages[1:]:
            texts = written.get(lang, {})
            one: dict[str, Any] = {"text": texts["text"]} if "text" in texts else {}
            for kind in ("option", "anchor"):
                labels = {k.split(":", 1)[1]: v for k, v in texts.items() if k.startswith(kind)}
                if labels:
                    one[f"{kind}s"] = labels
            translations[lang] = one
        entry["translations"] = translations
