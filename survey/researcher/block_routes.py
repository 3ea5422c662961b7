"""Blocks of a study: add, configure, reorder and delete, while the design is not frozen."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user

from survey import audit
from survey import flow as block_flow
from survey.block_settings import (
    DEFAULT_CHOOSE_QUESTION,
    DEFAULT_RECOGNISE_QUESTION,
    MEMORY_TASKS,
    PHASE_SETTINGS,
    SETTING_RULES,
    fit_errors,
    setting_errors,
    stored_settings,
    validate_block_settings,
)
from survey.design import block_order
from survey.extensions import db
from survey.i18n import gettext
from survey.i18n import lazy_gettext as _l
from survey.markup import render_markdown
from survey.models import Block, Identity, Study, StudyQuestion
from survey.researcher import bp, undo
from survey.researcher.access import ROLE_RANK, lock_for_change, requires_role
from survey.researcher.confirm import confirm_page, offer_undo
from survey.researcher.forms import (
    TASK_LABELS,
    BlockAddForm,
    BlockFlowForm,
    BlockForm,
    require_button,
)
from survey.researcher.service import (
    move_block,
    outcomes_of,
    renumber_blocks,
    require_design_editable,
    require_not_archived,
)

CHECK_COUNT_RE = re.compile(r"(\d+)\s*checks?", re.IGNORECASE)
PRACTICE_VALUES = {"auto": None, "yes": True, "no": False}
SCALE_FIELDS = ("key", "question", "low_anchor", "high_anchor", "min", "max")
# Blank rows offered for new scales under the existing ones.
NEW_SCALE_ROWS = 1
# The form's fields that belong to one task only.
TASK_FIELDS = {
    "match": ("presentation", "exposure_ms", *PHASE_SETTINGS, "confidence"),
    "rate": ("scales",),
    "choose": ("question",),
    "detect": ("confidence",),
    "learn": ("exposure_ms", "label", "orienting_question"),
    "recognise": ("question", "confidence", "name_recall", "distractor_s", "delay_hours"),
}
# The form's fields of every task but the memory ones (which study or test every identity).
COMMON_FIELDS = ("practice", "attention_checks", "n_identities")
# Field help that differs by task.
TASK_DESCRIPTIONS = {
    ("learn", "exposure_ms"): _l(
        "How long each headshot stays, 200 to 10000 ms. Leave empty for "
        "self-paced: the participant moves on when ready."
    ),
    ("recognise", "question"): _l(
        "Asked of each new photo, answered yes or no, e.g. “Have you met this person before?”."
    ),
}


def parse_attention_checks(text: str | None) -> list[int] | int:
    """Read "3, 12" as positions or "2 checks" as a count; ValueError says how to write it."""
    text = (text or "").strip()
    if not text:
        return []
    count = CHECK_COUNT_RE.fullmatch(text)
    if count:
        return int(count.group(1))
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ValueError(
            gettext(
                "Attention checks: write positions separated by commas, such as 3, 12, or a "
                "count such as 2 checks; you wrote %(typed)s.",
                typed=repr(text),
            )
        )
    return [int(p) for p in parts]


def format_attention_checks(value: Any) -> str:
    """Write stored attention checks the way the form reads them."""
    if isinstance(value, int):
        return f"{value} checks" if value else ""
    return ", ".join(str(p) for p in value or [])


def _name_taken_message(name: str) -> str:
    """Say that another block of the study already has this name."""
    return gettext("Another block is called %(name)s; choose another name.", name=repr(name))


def _block(study: Study, block_id: int) -> Block:
    """Return a block of this study, or 404."""
    block = db.session.get(Block, block_id)
    if block is None or block.study_id != study.id:
        abort(404)
    return block


def _name_taken(study: Study, name: str, except_id: int | None = None) -> bool:
    """Tell whether another block of the study has this name."""
    query = sa.select(Block.id).where(Block.study_id == study.id, Block.name == name)
    if except_id is not None:
        query = query.where(Block.id != except_id)
    return db.session.scalar(query) is not None


def flow_form(study: Study, submitted: bool = False) -> BlockFlowForm:
    """Return the block flow's form (posted, or filled from the study's settings)."""
    form = BlockFlowForm() if submitted else BlockFlowForm(formdata=None)
    form.blocks_last.choices = [
        (
            b.name,
            gettext("%(name)s (choose: always at the end)", name=b.name)
            if b.task == "choose"
            else b.name,
        )
        for b in study.blocks
    ]
    if not submitted:
        flow = block_flow.flow_settings(study.settings)
        form.block_order.data = flow.order
        form.blocks_last.data = list(block_flow.kept_last(study.blocks, flow.last))
        form.block_breaks.data = flow.breaks
        form.break_message.data = flow.message
    return form


def _blocks_page(
    study: Study,
    role: str,
    add_form: BlockAddForm | None = None,
    status: int = 200,
    form: BlockFlowForm | None = None,
):
    """Render the list of blocks with the block flow's form and the add form."""
    flow = block_flow.flow_settings(study.settings)
    order = [
        b.name
        for b in block_order(
            study.blocks, "fixed", last=block_flow.kept_last(study.blocks, flow.last)
        )[0]
    ]
    editor = ROLE_RANK[role] >= ROLE_RANK["editor"] and study.state != "archived"
    return (
        render_template(
            "researcher/blocks.html",
            study=study,
            role=role,
            can_edit=ROLE_RANK[role] >= ROLE_RANK["editor"]
            and not study.design_locked
            and study.state != "archived",
            add_form=add_form or BlockAddForm(formdata=None),
            flow_form=form or flow_form(study),
            flow=flow,
            can_edit_flow=editor,
            running_order=order,
            task_labels=TASK_LABELS,
            deleted=[p for p in undo.undoable(study) if p.kind == "block"],
        ),
        status,
    )


@bp.get("/studies/<int:study_id>/blocks")
@requires_role("viewer")
def blocks(study: Study, role: str):
    """List the study's blocks in order, with their settings."""
    return _blocks_page(study, role)


@bp.post("/studies/<int:study_id>/blocks/flow")
@requires_role("editor")
def block_flow_save(study: Study, role: str):
    """Save the block order and the breaks between blocks; every error beside its field.

    The order and the breaks are part of the design, frozen when the study opens; the break
    page's message is a text and can still be corrected.
    """
    study = lock_for_change(study)
    require_not_archived(study)
    form = flow_form(study, submitted=True)
    if not form.validate_on_submit() and form.errors.get("csrf_token"):
        abort(400, description=gettext("The form expired; reload the page and save again."))
    choose = {b.name for b in study.blocks if b.task == "choose"}
    last = [n for n in form.blocks_last.data or [] if n not in choose]
    order, breaks, message = (
        form.block_order.data,
        bool(form.block_breaks.data),
        form.break_message.data or "",
    )
    errors = block_flow.flow_errors(order, last, breaks, message, study.blocks)
    current = block_flow.flow_settings(study.settings)
    if study.design_locked:
        if order != current.order:
            errors.setdefault("block_order", []).append(
                gettext(
                    "The block order is part of the frozen design and cannot change now that "
                    "the study has opened."
                )
            )
        if sorted(last) != sorted(current.last or ()):
            errors.setdefault("blocks_last", []).append(
                gettext(
                    "Which blocks run last is part of the frozen design and cannot change now "
                    "that the study has opened."
                )
            )
        if breaks != current.breaks:
            errors.setdefault("block_breaks", []).append(
                gettext(
                    "A break between blocks is part of the frozen design and cannot change now "
                    "that the study has opened."
                )
            )
    if errors:
        for name, messages in errors.items():
            form[name].errors = [*form[name].errors, *messages]
        return _blocks_page(study, role, status=400, form=form)
    settings = {k: v for k, v in (study.settings or {}).items() if k not in block_flow.FLOW_KEYS}
    settings.update(
        {
            block_flow.ORDER_KEY: order,
            block_flow.BREAKS_KEY: breaks,
            **({block_flow.LAST_KEY: last} if last else {}),
            **({block_flow.MESSAGE_KEY: message} if message else {}),
        }
    )
    if order == "fixed" and not breaks:
        settings.pop(block_flow.ORDER_KEY)
        settings.pop(block_flow.BREAKS_KEY)
    changed = settings != (study.settings or {})
    if changed:
        study.settings = settings  # a new dict: the JSON column sees the change
        audit.record(
            "study.block_flow",
            researcher=current_user,
            study=study,
            order=order,
            last=last,
            breaks=breaks,
        )
    db.session.commit()
    flash(
        gettext("Block order and breaks saved.") if changed else gettext("Nothing changed."),
        "success",
    )
    return redirect(url_for("researcher.blocks", study_id=study.id) + "#block-flow", 303)


@bp.post("/studies/<int:study_id>/blocks")
@requires_role("editor")
def block_add(study: Study, role: str):
    """Add a block with the task's default settings, then open its settings."""
    study = lock_for_change(study)
    require_design_editable(study)
    form = BlockAddForm()
    if not form.validate_on_submit():
        return _blocks_page(study, role, form, 400)
    if _name_taken(study, form.name.data):
        form.name.errors.append(_name_taken_message(form.name.data))
        return _blocks_page(study, role, form, 400)
    settings = stored_settings(validate_block_settings(form.task.data, {}))
    lists = fit_errors(form.task.data, settings, 0, study.n_lists).get("task")
    if lists:
        form.task.errors.extend(lists)
        return _blocks_page(study, role, form, 400)
    position = max((b.position for b in study.blocks), default=0) + 1
    block = Block(
        study=study,
        position=position,
        name=form.name.data,
        task=form.task.data,
        settings=settings,
    )
    db.session.add(block)
    db.session.flush()
    audit.record(
        "block.add", researcher=current_user, study=study, block=block.name, task=block.task
    )
    db.session.commit()
    flash(
        gettext(
            "Block %(name)s added with default settings; adjust them below.",
            name=repr(block.name),
        ),
        "success",
    )
    return redirect(url_for("researcher.block_edit", study_id=study.id, block_id=block.id))


def block_form(block: Block, submitted: bool = False) -> BlockForm:
    """Return the settings form of a block (posted, or empty) with only the fields of its task."""
    form = BlockForm() if submitted else BlockForm(formdata=None)
    own = set(TASK_FIELDS[block.task])
    removed = {f for fields in TASK_FIELDS.values() for f in fields} - own
    if block.task in MEMORY_TASKS:
        removed |= set(COMMON_FIELDS)
    for name in removed:
        del form[name]
    for (task, name), text in TASK_DESCRIPTIONS.items():
        if task == block.task:
            form[name].description = text
    return form


def _fill_form(form: BlockForm, block: Block) -> None:
    """Put a block's stored settings into the form."""
    settings = block.settings
    form.name.data = block.name
    form.instructions.data = settings.get("instructions", "")
    form.break_every.data = settings.get("break_every")
    if block.task in MEMORY_TASKS:
        full = validate_block_settings(block.task, settings)
        for name in TASK_FIELDS[block.task]:
            form[name].data = full[name]
        return
    practice = settings.get("practice")
    form.practice.data = "auto" if practice is None else ("yes" if practice else "no")
    form.attention_checks.data = format_attention_checks(settings.get("attention_checks"))
    form.n_identities.data = settings.get("n_identities")
    if block.task == "match":
        form.presentation.data = settings.get("presentation", "side_by_side")
        form.exposure_ms.data = settings.get("exposure_ms", 1500)
        for name in PHASE_SETTINGS:
            form[name].data = settings.get(name, 0)
    if block.task in ("match", "detect"):
        form.confidence.data = bool(settings.get("confidence", True))
    if block.task == "choose":
        form.question.data = settings.get("question", DEFAULT_CHOOSE_QUESTION)
    if block.task == "rate":
        while len(form.scales):
            form.scales.pop_entry()
        for scale in settings.get("scales", []):
            form.scales.append_entry({k: scale.get(k) for k in SCALE_FIELDS})
        for _ in range(NEW_SCALE_ROWS):
            form.scales.append_entry()


def _typed(field) -> Any:
    """Return a field's value: the converted one, or the text typed when it did not convert."""
    if field.data is None and field.raw_data and field.raw_data[0].strip():
        return field.raw_data[0].strip()
    return field.data


def _settings_from_form(form: BlockForm, block: Block, errors: dict[str, list[str]]):
    """Build the block's settings from the form, as typed (checked afterwards by the rules).

    A field the form could not read (a number written in words) goes in as the text typed, so
    that the setting's rule reports it in its own words; attention checks that cannot be read
    are reported in `errors`. The block flow's settings are stored only when set.
    """
    flow = {"instructions": form.instructions.data or "", "break_every": _typed(form.break_every)}
    return {**_task_settings(form, block, errors), **{k: v for k, v in flow.items() if v}}


def _task_settings(form: BlockForm, block: Block, errors: dict[str, list[str]]):
    """Build the settings of the block's task from the form, as typed."""
    if block.task == "learn":
        return {
            "exposure_ms": _typed(form.exposure_ms),
            "label": form.label.data or "",
            "orienting_question": form.orienting_question.data or "",
        }
    if block.task == "recognise":
        settings = {
            "question": form.question.data or DEFAULT_RECOGNISE_QUESTION,
            "confidence": bool(form.confidence.data),
            "name_recall": bool(form.name_recall.data),
        }
        # Empty: no delay.
        settings.update({name: _typed(form[name]) or 0 for name in ("distractor_s", "delay_hours")})
        return settings
    settings: dict[str, Any] = {
        "practice": PRACTICE_VALUES.get(form.practice.data, form.practice.data),
        "n_identities": _typed(form.n_identities),
    }
    try:
        settings["attention_checks"] = parse_attention_checks(form.attention_checks.data)
    except ValueError as err:
        errors.setdefault("attention_checks", []).append(str(err))
    if block.task == "match":
        exposure = _typed(form.exposure_ms)
        settings["presentation"] = form.presentation.data
        settings["exposure_ms"] = 1500 if exposure is None else exposure
        # A phase left out (0 or empty) is not stored: its default is none.
        typed = {name: _typed(form[name]) for name in PHASE_SETTINGS}
        settings.update({name: value for name, value in typed.items() if value})
        settings["confidence"] = bool(form.confidence.data)
    elif block.task == "detect":
        settings["confidence"] = bool(form.confidence.data)
    elif block.task == "choose":
        settings["question"] = form.question.data or ""
    elif block.task == "rate":
        scales = []
        for entry in form.scales:
            if entry.form.remove.data:
                continue
            typed = {k: _typed(entry.form[k]) for k in SCALE_FIELDS}
            scale = {k: v for k, v in typed.items() if v not in (None, "")}
            if scale:
                scales.append(scale)
        settings["scales"] = scales
    return settings


def _show_errors(form: BlockForm, errors: dict[str, list[str]]) -> list[str]:
    """Put each message beside its field; return those that belong to no field of the form."""
    loose: list[str] = []
    for key, messages in errors.items():
        target = None
        parts = key.split("-")
        if len(parts) == 3 and parts[0] == "scales":
            entries = _scale_entries(form)
            if int(parts[1]) < len(entries):
                target = entries[int(parts[1])].form[parts[2]]
        elif key in form._fields:
            target = form[key]
        if target is None:
            loose.extend(messages)
        else:
            target.errors = [*target.errors, *messages]
    return loose


def _scale_rows(form: BlockForm) -> list[int]:
    """Return the form row of each scale the settings keep (rows removed or blank skipped)."""
    rows = []
    for index, entry in enumerate(form.scales):
        if entry.form.remove.data:
            continue
        if any(_typed(entry.form[k]) not in (None, "") for k in SCALE_FIELDS):
            rows.append(index)
    return rows


def _renumber_scale_errors(errors: dict[str, list[str]], rows: list[int]) -> dict[str, list[str]]:
    """Key scale errors by the form's row rather than by the scale's place in the settings."""
    out: dict[str, list[str]] = {}
    for key, messages in errors.items():
        parts = key.split("-")
        if len(parts) == 3 and parts[0] == "scales" and int(parts[1]) < len(rows):
            key = f"scales-{rows[int(parts[1])]}-{parts[2]}"
        out.setdefault(key, []).extend(messages)
    return out


def check_block_form(
    study: Study, block: Block, form: BlockForm
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """Check every field of a posted block form at once; return the settings or the errors.

    The errors are keyed by form field, each in the researcher's words. Call it under the
    study's lock: the checks against the identities and lists hold when the settings are written.
    """
    errors: dict[str, list[str]] = {}
    # The setting rules speak for the fields they check; the form's own messages for the rest
    # (a block name's characters, the length of a question or an anchor).
    for name in set(SETTING_RULES) & set(form._fields):
        form[name].errors = []
    for entry in _scale_entries(form):
        for sub in ("key", "min", "max"):
            entry.form[sub].errors = []
    if form.name.data and _name_taken(study, form.name.data, except_id=block.id):
        errors["name"] = [_name_taken_message(form.name.data)]
    settings = _settings_from_form(form, block, errors)
    rule_errors = setting_errors(block.task, settings)
    if block.task == "rate":
        rule_errors = _renumber_scale_errors(rule_errors, _scale_rows(form))
    for key, messages in rule_errors.items():
        if key == "attention_checks" and key in errors:
            continue
        errors.setdefault(key, []).extend(messages)
    # The checks against the identities run on the settings that passed their own rules (the
    # others at their defaults), so that they show with the rest.
    wrong = {key.split("-")[0] for key in errors}
    usable = {k: v for k, v in settings.items() if k not in wrong}
    try:
        checked = validate_block_settings(block.task, usable)
    except ValueError:
        checked = None
    if checked is not None:
        fit = fit_errors(block.task, checked, identity_count(study), study.n_lists)
        fit.pop("task", None)  # the lists are the study's: checked when the block is added
        for key, messages in fit.items():
            errors.setdefault(key, []).extend(messages)
    if errors or _fields_with_errors(form) or checked is None:
        return None, errors
    return stored_settings(checked), {}


def _scale_entries(form: BlockForm) -> list:
    """Return the scale rows of a rate block's form (none for other tasks)."""
    return list(form.scales.entries) if "scales" in form._fields else []


def _fields_with_errors(form: BlockForm) -> list:
    """Return every field of the form showing an error, scale rows' fields included."""
    fields = [f for name, f in form._fields.items() if name != "scales" and f.errors]
    # The scale list's own message (no scale at all), beside its rows' per-row errors.
    if "scales" in form._fields and any(isinstance(e, str) for e in form.scales.errors):
        fields.append(form.scales)
    for entry in _scale_entries(form):
        fields += [sub for sub in entry.form if sub.errors]
    return fields


def identity_count(study: Study) -> int:
    """Count the study's identities."""
    return db.session.scalar(sa.select(sa.func.count()).where(Identity.study_id == study.id))


def _edit_page(
    study: Study,
    role: str,
    block: Block,
    form: BlockForm,
    status: int = 200,
    error: str = "",
    problems: list[str] | None = None,
):
    """Render a block's settings page; read-only when the design is frozen or the role is viewer."""
    readonly = (
        study.design_locked or study.state == "archived" or ROLE_RANK[role] < ROLE_RANK["editor"]
    )
    return (
        render_template(
            "researcher/block_edit.html",
            study=study,
            role=role,
            block=block,
            form=form,
            readonly=readonly,
            error=error,
            problems=problems or [],
            task_label=TASK_LABELS[block.task],
            instructions_html=render_markdown(block.settings.get("instructions") or ""),
            questions_after=db.session.scalars(
                sa.select(StudyQuestion)
                .where(StudyQuestion.block_id == block.id)
                .order_by(StudyQuestion.position)
            ).all(),
        ),
        status,
    )


@bp.get("/studies/<int:study_id>/blocks/<int:block_id>")
@requires_role("viewer")
def block_edit(study: Study, role: str, block_id: int):
    """Show a block's settings, as a form for editors while the design is not frozen."""
    block = _block(study, block_id)
    form = block_form(block)
    _fill_form(form, block)
    return _edit_page(study, role, block, form)


@bp.post("/studies/<int:study_id>/blocks/<int:block_id>")
@requires_role("editor")
def block_save(study: Study, role: str, block_id: int):
    """Save a block's settings after the design's own checks."""
    study = lock_for_change(study)
    require_design_editable(study)
    block = _block(study, block_id)
    form = block_form(block, submitted=True)
    if not form.validate_on_submit() and form.errors.get("csrf_token"):
        abort(400, description=gettext("The form expired; reload the page and save again."))
    settings, errors = check_block_form(study, block, form)
    if settings is None:
        loose = _show_errors(form, errors)
        count = len(_fields_with_errors(form)) + len(loose)
        summary = ngettext(
            "Nothing was saved: %(num)s setting needs a change, marked below.",
            "Nothing was saved: %(num)s settings need a change, marked below.",
            count,
        )
        return _edit_page(study, role, block, form, 400, error=summary, problems=loose)
    block.name = form.name.data
    block.settings = settings
    audit.record("block.edit", researcher=current_user, study=study, block=block.name)
    db.session.commit()
    flash(gettext("Block %(name)s saved.", name=repr(block.name)), "success")
    return redirect(url_for("researcher.blocks", study_id=study.id))


@bp.post("/studies/<int:study_id>/blocks/<int:block_id>/move")
@requires_role("editor")
def block_move(study: Study, role: str, block_id: int):
    """Move a block one place up or down."""
    study = lock_for_change(study)
    require_design_editable(study)
    block = _block(study, block_id)
    direction = request.form.get("direction")
    require_button()
    if direction not in ("up", "down"):
        abort(400, description=gettext("Say whether to move the block up or down."))
    if move_block(study, block, direction):
        audit.record(
            "block.move",
            researcher=current_user,
            study=study,
            block=block.name,
            direction=direction,
        )
    db.session.commit()
    return redirect(url_for("researcher.blocks", study_id=study.id))


@bp.route("/studies/<int:study_id>/blocks/<int:block_id>/delete", methods=["GET", "POST"])
@requires_role("editor")
def block_delete(study: Study, role: str, block_id: int):
    """Ask, then delete a block of a design that is not frozen; the deletion can be undone."""
    if request.method == "GET":
        require_design_editable(study)
        block = _block(study, block_id)
        needed = _plan_needs(study, block)
        return confirm_page(
            study,
            role,
            title=gettext("Delete the block “%(name)s”?", name=block.name),
            lines=[
                gettext(
                    "The block %(name)s (%(task)s) and its settings are removed from the design; "
                    "the blocks after it move up.",
                    name=repr(block.name),
                    task=TASK_LABELS[block.task],
                ),
                *(
                    [
                        gettext(
                            "The preregistered plan names outcomes only this block measures "
                            "(%(outcomes)s): the study cannot open until the plan or the blocks "
                            "agree again.",
                            outcomes=", ".join(needed),
                        )
                    ]
                    if needed
                    else []
                ),
            ],
            note=gettext("You can undo this while the study is a draft."),
            undoable=True,
            action=url_for("researcher.block_delete", study_id=study.id, block_id=block.id),
            button=gettext("Delete the block"),
            back=url_for("researcher.blocks", study_id=study.id),
        )
    require_button()
    study = lock_for_change(study)
    require_design_editable(study)
    block = _block(study, block_id)
    name = block.name
    part = undo.keep_block(study, block, current_user._get_current_object())
    study.blocks.remove(block)
    db.session.delete(block)
    renumber_blocks(study)
    db.session.flush()
    forgotten = undo.prune(study)
    audit.record("block.delete", researcher=current_user, study=study, block=name)
    db.session.commit()
    undo.discard_unused(study, forgotten)
    offer_undo(study, part)
    return redirect(url_for("researcher.blocks", study_id=study.id))


def _plan_needs(study: Study, block: Block) -> list[str]:
    """Return the outcomes the saved plan names that no block but this one measures."""
    prereg = study.preregistration
    if prereg is None:
        return []
    plan = prereg.plan
    named = {h["outcome"] for h in plan.get("hypotheses", [])}
    named |= set(plan.get("primary_outcomes", [])) | set(plan.get("equivalence_bounds", {}))
    others = [b for b in study.blocks if b.id != block.id]
    remaining = set(outcomes_of(others))
    return sorted(o for o in named if o in outcomes_of([block]) and o not in remaining)
