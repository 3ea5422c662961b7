"""Study definitions as JSON ("likeness-study/1"): a study's texts, settings, blocks, identities
and image list, without image files and without data, so a study can be replicated elsewhere."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from survey import audit
from survey.block_settings import (
    fit_errors,
    plain_problems,
    stored_settings,
    validate_block_settings,
)
from survey.design import BlockInfo
from survey.ending import RETURN_REDIRECT_KEY, redirect_problem
from survey.extensions import db
from survey.flow import BREAKS_KEY, LAST_KEY, MESSAGE_KEY, MESSAGE_MAX, ORDER_KEY, flow_errors
from survey.models import TASKS, Block, Identity, Preregistration, Researcher, Study, StudyQuestion
from survey.questions import check_code, clean_spec, spec_as_form
from survey.researcher.forms import BLOCK_NAME_RE, COMPLETION_CODE_RE, MAX_TEXT, SLUG_RE
from survey.researcher.service import (
    COPIED_FIELDS,
    IDENTITY_FIELDS,
    IMAGE_FIELDS,
    attach_questions,
    create_study,
    plan_row_values,
    slug_taken,
    unique_slug,
)
from survey.stimuli.manifest import validate_identity_code
from survey.study_texts import (
    MAX_LONG_TEXT,
    MAX_SHORT_TEXT,
    ONE_LINE,
    STUDY_KEYS,
    TITLE_MAX,
    Text,
    add_part_texts,
    add_study_texts,
    block_texts,
    check_imported,
    check_languages,
    one_line,
    part_texts,
    question_texts,
    study_texts,
    with_languages,
)

FORMAT = "likeness-study/1"
MAX_BLOCKS = 50
MAX_QUESTIONS = 100
MAX_IDENTITIES = 2000
TEXT_LIMITS = {
    "name": 200,
    "title": TITLE_MAX,
    "description": MAX_TEXT,
    "consent_text": MAX_TEXT,
    "instructions_text": MAX_TEXT,
    "debrief_text": MAX_TEXT,
    "completion_code": 64,
    "completion_url": 2000,
    "assign_by": 16,
}
DESCRIPTOR_LIMITS = {"age_band": 32, "gender": 32, "ethnicity": 64, "consent_note": MAX_TEXT}
# An exported definition nests about eight levels deep; far deeper is no definition and would
# exhaust the recursion of the checks or of the database driver's JSON encoder.
MAX_DEPTH = 32
TOO_DEEP = (
    f"The file nests objects and lists more than {MAX_DEPTH} levels deep; "
    "a study definition does not."
)


def _iso(value: datetime | None) -> str | None:
    """Format a timestamp as ISO 8601 UTC with a Z."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def export_definition(study: Study, now: datetime) -> dict[str, Any]:
    """Return the study's definition as JSON-ready data."""
    prereg = study.preregistration
    return {
        "format": FORMAT,
        "exported_at": _iso(now),
        # The private description is the team's note: it stays in the workspace (a copy made
        # here keeps it; a definition file, which may travel, does not carry it).
        "study": {
            "slug": study.slug,
            "name": study.name,
            "title": study.title,
            **{f: getattr(study, f) for f in COPIED_FIELDS if f != "description"},
            "texts": study_texts(study.id),
        },
        "blocks": [
            {
                "name": b.name,
                "task": b.task,
                "settings": b.settings,
                "texts": part_texts("block", b.id),
            }
            for b in sorted(study.blocks, key=lambda b: b.position)
        ],
        "questions": [
            {
                "code": q.code,
                "kind": q.kind,
                "text": q.text,
                "required": q.required,
                "spec": q.spec,
                "texts": part_texts("question", q.id),
                # Asked right after this block (left out: on the questions page).
                **({"block": q.block.name} if q.block is not None else {}),
            }
            for q in study.questions
        ],
        "identities": [
            {
                **{f: getattr(identity, f) for f in IDENTITY_FIELDS},
                "images": [
                    {f: getattr(image, f) for f in IMAGE_FIELDS}
                    for image in sorted(
                        identity.images, key=lambda im: (im.role, im.source, im.sha256)
                    )
                ],
            }
            for identity in sorted(study.identities, key=lambda i: i.code)
        ],
        "preregistration": None
        if prereg is None
        else {"plan": prereg.plan, "sha256": prereg.sha256, "frozen_at": _iso(prereg.frozen_at)},
    }


def _object(value: Any, where: str) -> dict[str, Any]:
    """Return value when it is a JSON object, else raise naming where."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str, limit: int) -> list[Any]:
    """Return value when it is a JSON list of at most `limit` items."""
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{where} has {len(value)} entries; at most {limit} are allowed")
    return value


def _text(value: Any, where: str, limit: int) -> str:
    """Return value when it is text of at most `limit` characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where} must be text, got {value!r}")
    if len(value) > limit:
        raise ValueError(f"{where} is longer than {limit} characters")
    return value


def _study_texts(raw: Any) -> dict[str, dict[str, str]]:
    """Check the study's own texts in other languages (the break message and the title are
    shorter, and the title is one line)."""
    texts = check_imported(raw, "study.texts", STUDY_KEYS, MAX_LONG_TEXT)
    for language, by_key in texts.items():
        for key, most in {MESSAGE_KEY: MESSAGE_MAX, **ONE_LINE}.items():
            if len(by_key.get(key, "")) > most:
                raise ValueError(
                    f"study.texts.{language}.{key} must be text of at most {most} characters"
                )
        for key in ONE_LINE:
            if not one_line(by_key.get(key, "")):
                raise ValueError(
                    f"study.texts.{language}.{key} must be one line, without line breaks or tabs"
                )
    return texts


def _study_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """Check the study part of a definition; return the fields to create the study with."""
    fields: dict[str, Any] = {}
    for name, limit in TEXT_LIMITS.items():
        fields[name] = _text(raw.get(name), f"study.{name}", limit)
    for name in ("name", "title", "completion_code", "completion_url", "assign_by"):
        fields[name] = fields[name].strip()
    if not fields["title"]:
        raise ValueError("study.title is missing or empty")
    for name in ("title", "name"):
        if not one_line(fields[name]):
            # Quoted in one-line places: page titles, citations, the R script's header.
            raise ValueError(f"study.{name} must be one line, without line breaks or tabs")
    # Definitions written before studies had an internal name: the title stands in.
    fields["name"] = fields["name"] or fields["title"]
    if fields["completion_code"] and not re.match(COMPLETION_CODE_RE, fields["completion_code"]):
        raise ValueError(
            f"study.completion_code {fields['completion_code']!r} may hold only letters, digits, "
            "'.', '_' or '-'"
        )
    url = fields["completion_url"]
    if url and (urlsplit(url).scheme != "https" or not urlsplit(url).netloc):
        raise ValueError(f"study.completion_url {url!r} must be an https:// address")
    fields["assign_by"] = fields["assign_by"] or "started"
    if fields["assign_by"] not in ("started", "completed"):
        raise ValueError(
            f"study.assign_by must be 'started' or 'completed', got {fields['assign_by']!r}"
        )
    target_n = raw.get("target_n")
    if target_n is not None and (
        isinstance(target_n, bool) or not isinstance(target_n, int) or target_n < 1
    ):
        raise ValueError(
            f"study.target_n must be a positive whole number or null, got {target_n!r}"
        )
    fields["target_n"] = target_n
    n_lists = raw.get("n_lists", 2)
    if isinstance(n_lists, bool) or not isinstance(n_lists, int) or not 1 <= n_lists <= 24:
        raise ValueError(f"study.n_lists must be a whole number from 1 to 24, got {n_lists!r}")
    fields["n_lists"] = n_lists
    fields["settings"] = _object(raw.get("settings") or {}, "study.settings")
    problem = redirect_problem(fields["settings"].get(RETURN_REDIRECT_KEY))
    if problem:
        raise ValueError(f"study.settings.{RETURN_REDIRECT_KEY}: {problem}")
    if "languages" in fields["settings"]:
        chosen = fields["settings"]["languages"]
        if (
            not isinstance(chosen, list)
            or not chosen
            or not all(isinstance(c, str) for c in chosen)
        ):
            raise ValueError("study.settings.languages must be a list of language codes")
        languages, problem = check_languages(chosen, chosen[0])
        if problem:
            raise ValueError(f"study.settings.languages: {problem}")
        fields["settings"] = with_languages(fields["settings"], languages)
    slug = raw.get("slug")
    fields["slug"] = (
        slug if isinstance(slug, str) and re.match(SLUG_RE, slug) and 3 <= len(slug) <= 64 else None
    )
    return fields


def _blocks(raw: list[Any]) -> list[dict[str, Any]]:
    """Check the blocks; return them with validated settings."""
    blocks, names = [], set()
    for i, item in enumerate(_list(raw, "blocks", MAX_BLOCKS)):
        where = f"blocks[{i}]"
        item = _object(item, where)
        name = _text(item.get("name"), f"{where}.name", 64).strip()
        if not name or not re.match(BLOCK_NAME_RE, name):
            raise ValueError(f"{where}.name {name!r} must be letters, digits, spaces, '_' or '-'")
        if name in names:
            raise ValueError(f"{where}.name {name!r} is used by another block")
        names.add(name)
        task = item.get("task")
        if task not in TASKS:
            raise ValueError(f"{where}.task must be one of {', '.join(TASKS)}, got {task!r}")
        raw_settings = item.get("settings") or {}
        try:
            settings = stored_settings(validate_block_settings(task, raw_settings))
        except ValueError as err:
            # In the workspace's words, every problem of the block at once.
            plain = plain_problems(task, raw_settings, err)
            raise ValueError(f"{where}.settings: {' '.join(plain)}") from None
        keys = _suffixes(block_texts(Block(id=0, name=name, task=task, settings=settings)))
        texts = check_imported(item.get("texts"), f"{where}.texts", keys, MAX_SHORT_TEXT)
        blocks.append({"name": name, "task": task, "settings": settings, "texts": texts})
    return blocks


def _lists_fit(blocks: list[dict[str, Any]], n_lists: int) -> None:
    """Refuse a number of lists the blocks cannot be balanced over, as the workspace does."""
    for i, block in enumerate(blocks):
        problems = fit_errors(block["task"], block["settings"], 0, n_lists).get("task")
        if problems:
            raise ValueError(f"blocks[{i}]: {problems[0]}")


def _flow_fits(settings: dict[str, Any], blocks: list[dict[str, Any]]) -> None:
    """Refuse a block order, blocks kept last, breaks or a break message the workspace would
    refuse (missing ones are the defaults: fixed, none, no breaks, no message)."""
    errors = flow_errors(
        settings.get(ORDER_KEY, "fixed"),
        settings.get(LAST_KEY) or [],
        settings.get(BREAKS_KEY, False),
        settings.get(MESSAGE_KEY, ""),
        [BlockInfo(b["name"], b["task"], b["settings"]) for b in blocks],
    )
    if errors:
        raise ValueError(f"study.settings: {' '.join(m for ms in errors.values() for m in ms)}")


def _suffixes(texts: list[Text]) -> list[str]:
    """Return texts' keys without their part's prefix ("block:0:question" -> "question")."""
    return [t.key.split(":", 2)[2] for t in texts]


def _questions(raw: Any) -> list[dict[str, Any]] | None:
    """Check the questions as the builder does; None when the file has none (older files)."""
    if raw is None:
        return None
    questions: list[dict[str, Any]] = []
    for i, item in enumerate(_list(raw, "questions", MAX_QUESTIONS)):
        where = f"questions[{i}]"
        item = _object(item, where)
        code = _text(item.get("code"), f"{where}.code", 32)
        problem = check_code(code, {q["code"] for q in questions})
        if problem:
            raise ValueError(f"{where}.code: {problem}")
        kind = item.get("kind")
        try:
            written = spec_as_form(kind, _object(item.get("spec") or {}, f"{where}.spec"))
        except (TypeError, ValueError, AttributeError):
            raise ValueError(f"{where}.spec does not fit a {kind} question") from None
        spec = clean_spec(kind, written)
        if spec.errors:
            first = next(iter(spec.errors.values()))[0]
            raise ValueError(f"{where}: {first}")
        text = _text(item.get("text"), f"{where}.text", 500).strip()
        if not text:
            raise ValueError(f"{where}.text is empty")
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise ValueError(f"{where}.required must be true or false, got {required!r}")
        shown = StudyQuestion(id=0, code=code, kind=kind, text=text, spec=spec.values)
        texts = check_imported(
            item.get("texts"), f"{where}.texts", _suffixes(question_texts(shown)), MAX_SHORT_TEXT
        )
        block = item.get("block")
        if block is not None and not isinstance(block, str):
            raise ValueError(f"{where}.block must be a block's name or left out, got {block!r}")
        questions.append(
            {
                "code": code,
                "kind": kind,
                "text": text,
                "required": required,
                "spec": spec.values,
                "texts": texts,
                **({"block": block} if block is not None else {}),
            }
        )
    return questions


def _identities(raw: list[Any]) -> list[dict[str, Any]]:
    """Check the identities and their descriptors (the image list is not imported)."""
    identities, codes = [], set()
    for i, item in enumerate(_list(raw, "identities", MAX_IDENTITIES)):
        where = f"identities[{i}]"
        item = _object(item, where)
        try:
            code = validate_identity_code(item.get("code"))
        except ValueError as err:
            raise ValueError(f"{where}.code: {err}") from None
        if code in codes:
            raise ValueError(f"{where}.code {code!r} is used by another identity")
        codes.add(code)
        fields: dict[str, Any] = {"code": code}
        for name, limit in DESCRIPTOR_LIMITS.items():
            fields[name] = _text(item.get(name), f"{where}.{name}", limit)
        consent = item.get("consent_recorded", False)
        if not isinstance(consent, bool):
            raise ValueError(f"{where}.consent_recorded must be true or false, got {consent!r}")
        fields["consent_recorded"] = consent
        _list(item.get("images", []), f"{where}.images", 1000)
        identities.append(fields)
    return identities


def _plan(raw: Any) -> dict[str, Any] | None:
    """Check the plan of a definition's preregistration, if it has one."""
    if raw is None:
        return None
    from analysis.plan import validate_plan

    try:
        return validate_plan(_object(raw, "preregistration").get("plan"))
    except ValueError as err:
        raise ValueError(f"preregistration.plan: {err}") from None


def _no_constant(name: str) -> None:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"The file holds {name}, which is not a JSON number.")


def _text_problem(value: str) -> str | None:
    """Say why a JSON string cannot be stored as text, or return None when it can."""
    if "\x00" in value:
        return "holds a NUL character (\\u0000), which text cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate escape (such as \\ud800), which is not a character"
    return None


def _check_shape(raw: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings that text columns cannot store.

    Walked with a stack, not recursion, so the check itself cannot run out of stack.
    """
    stack = [(raw, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ValueError(TOO_DEEP)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and _text_problem(key):
                    raise ValueError(f"A key {_text_problem(key)}.")
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                raise ValueError(f"A text value {problem}.")


def parse_definition(data: bytes | str) -> dict[str, Any]:
    """Read and check a definition; ValueError says what is wrong and where."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError(
                "The file is not UTF-8 text; a study definition is a JSON file."
            ) from None
    try:
        raw = json.loads(data, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"The file is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}."
        ) from None
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    _check_shape(raw)
    raw = _object(raw, "the definition")
    if raw.get("format") != FORMAT:
        raise ValueError(
            f"format must be {FORMAT!r}, got {raw.get('format')!r}: "
            "this is not a Likeness study definition"
        )
    study = _object(raw.get("study"), "study")
    fields, texts = _study_fields(study), _study_texts(study.get("texts"))
    blocks = _blocks(raw.get("blocks", []))
    _lists_fit(blocks, fields["n_lists"])
    _flow_fits(fields["settings"], blocks)
    return {
        "study": fields,
        "study_texts": texts,
        "blocks": blocks,
        "questions": _asked_after(_questions(raw.get("questions")), raw.get("blocks", [])),
        "identities": _identities(raw.get("identities", [])),
        "plan": _plan(raw.get("preregistration")),
    }


def _without_texts(item: dict[str, Any]) -> dict[str, Any]:
    """Return a block's or question's fields without its translations."""
    return {k: v for k, v in item.items() if k != "texts"}


def _asked_after(questions: list[dict[str, Any]] | None, blocks: Any) -> list[dict] | None:
    """Check that a question asked after a block names one of the file's blocks."""
    names = (
        {b.get("name") for b in blocks if isinstance(b, dict)}
        if isinstance(blocks, list)
        else set()
    )
    for i, question in enumerate(questions or []):
        if "block" in question and question["block"] not in names:
            raise ValueError(
                f"questions[{i}].block: the definition has no block called {question['block']!r}"
            )
    return questions


def import_definition(definition: dict[str, Any], researcher: Researcher) -> Study:
    """Create a draft study from a checked definition; committed by the caller."""
    fields = dict(definition["study"])
    slug = fields.pop("slug")
    title = fields.pop("title")
    if slug is None or slug_taken(slug):
        slug = unique_slug(title)
    questions = definition["questions"]
    after = {q["code"]: q["block"] for q in questions or [] if "block" in q}
    study = create_study(
        title,
        researcher,
        questions=None
        if questions is None
        else [{k: v for k, v in q.items() if k not in ("texts", "block")} for q in questions],
        slug=slug,
        **fields,
    )
    added = []
    for position, block in enumerate(definition["blocks"], start=1):
        added.append(Block(study=study, position=position, **_without_texts(block)))
        db.session.add(added[-1])
    db.session.flush()
    attach_questions(study, after)
    add_study_texts(study.id, definition["study_texts"])
    for block, item in zip(added, definition["blocks"], strict=True):
        add_part_texts(study.id, "block", block.id, item["texts"])
    by_code = {q.code: q.id for q in study.questions}
    for item in questions or []:
        add_part_texts(study.id, "question", by_code[item["code"]], item["texts"])
    for identity in definition["identities"]:
        db.session.add(Identity(study=study, **identity))
    plan = definition["plan"]
    if plan is not None:
        db.session.add(
            Preregistration(study=study, created_by_id=researcher.id, **plan_row_values(plan))
        )
    db.session.flush()
    audit.record(
        "study.import",
        researcher=researcher,
        study=study,
        blocks=len(definition["blocks"]),
        identities=len(definition["identities"]),
    )
    return study
