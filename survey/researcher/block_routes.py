"""Blocks of a study: add, configure, reorder and delete, while the design is not frozen."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from survey import audit
from survey.block_settings import (
    DEFAULT_CHOOSE_QUESTION,
    DEFAULT_RECOGNISE_QUESTION,
    MEMORY_TASKS,
    validate_block_settings,
)
from survey.design import presentation_order
from survey.extensions import db
from survey.models import Block, Study
from survey.researcher import bp
from survey.researcher.access import ROLE_RANK, lock_for_change, requires_role
from survey.researcher.forms import TASK_LABELS, BlockAddForm, BlockForm, require_button
from survey.researcher.service import move_block, renumber_blocks, require_design_editable

CHECK_COUNT_RE = re.compile(r"(\d+)\s*checks?", re.IGNORECASE)
PRACTICE_VALUES = {"auto": None, "yes": True, "no": False}
SCALE_FIELDS = ("key", "question", "low_anchor", "high_anchor", "min", "max")
# Blank rows offered for new scales under the existing ones.
NEW_SCALE_ROWS = 1
# The form's fields that belong to one task only.
TASK_FIELDS = {
    "match": ("presentation", "exposure_ms", "confidence"),
    "rate": ("scales",),
    "choose": ("question",),
    "detect": ("confidence",),
    "learn": ("exposure_ms", "label", "orienting_question"),
    "recognise": ("question", "confidence", "name_recall"),
}
# The form's fields of every task but the memory ones (which study or test every identity).
COMMON_FIELDS = ("practice", "attention_checks", "n_identities")
# Field help that differs by task.
TASK_DESCRIPTIONS = {
    ("learn", "exposure_ms"): "How long each headshot stays, 200 to 10000 ms. Leave empty for "
    "self-paced: the participant moves on when ready.",
    ("recognise", "question"): "Asked of each new photo, answered yes or no, e.g. “Have you met "
    "this person before?”.",
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
            "attention_checks: write positions such as 3, 12 or a count such as 2 checks, "
            f"not {text!r}"
        )
    return [int(p) for p in parts]


def format_attention_checks(value: Any) -> str:
    """Write stored attention checks the way the form reads them."""
    if isinstance(value, int):
        return f"{value} checks" if value else ""
    return ", ".join(str(p) for p in value or [])


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


def _blocks_page(study: Study, role: str, add_form: BlockAddForm | None = None, status: int = 200):
    """Render the list of blocks with the add form."""
    order = [b.name for b in presentation_order(study.blocks)]
    return (
        render_template(
            "researcher/blocks.html",
            study=study,
            role=role,
            can_edit=ROLE_RANK[role] >= ROLE_RANK["editor"]
            and not study.design_locked
            and study.state != "archived",
            add_form=add_form or BlockAddForm(formdata=None),
            running_order=order,
            task_labels=TASK_LABELS,
        ),
        status,
    )


@bp.get("/studies/<int:study_id>/blocks")
@requires_role("viewer")
def blocks(study: Study, role: str):
    """List the study's blocks in order, with their settings."""
    return _blocks_page(study, role)


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
        form.name.errors.append(f"Another block is called {form.name.data!r}.")
        return _blocks_page(study, role, form, 400)
    position = max((b.position for b in study.blocks), default=0) + 1
    block = Block(
        study=study,
        position=position,
        name=form.name.data,
        task=form.task.data,
        settings=validate_block_settings(form.task.data, {}),
    )
    db.session.add(block)
    db.session.flush()
    audit.record(
        "block.add", researcher=current_user, study=study, block=block.name, task=block.task
    )
    db.session.commit()
    flash(f"Block {block.name!r} added with default settings; adjust them below.", "success")
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


def _settings_from_form(form: BlockForm, block: Block) -> dict[str, Any]:
    """Build the block's settings from the form (validated afterwards by the design)."""
    if block.task == "learn":
        return {
            "exposure_ms": form.exposure_ms.data,
            "label": form.label.data or "",
            "orienting_question": form.orienting_question.data or "",
        }
    if block.task == "recognise":
        return {
            "question": form.question.data or DEFAULT_RECOGNISE_QUESTION,
            "confidence": bool(form.confidence.data),
            "name_recall": bool(form.name_recall.data),
        }
    settings: dict[str, Any] = {
        "practice": PRACTICE_VALUES.get(form.practice.data),
        "attention_checks": parse_attention_checks(form.attention_checks.data),
        "n_identities": form.n_identities.data,
    }
    if block.task == "match":
        settings["presentation"] = form.presentation.data
        settings["exposure_ms"] = (
            form.exposure_ms.data if form.exposure_ms.data is not None else 1500
        )
        settings["confidence"] = bool(form.confidence.data)
    elif block.task == "detect":
        settings["confidence"] = bool(form.confidence.data)
    elif block.task == "choose":
        settings["question"] = form.question.data or ""
    elif block.task == "rate":
        scales = []
        for entry in form.scales:
            row = entry.data
            if row.get("remove"):
                continue
            scale = {k: row.get(k) for k in SCALE_FIELDS if row.get(k) not in (None, "")}
            if scale:
                scales.append(scale)
        settings["scales"] = scales
    return settings


def _field_for(form: BlockForm, message: str):
    """Return the form field a design message names (its first word), else None."""
    name = re.split(r"[\s\[.]", message, maxsplit=1)[0]
    return getattr(form, name, None) if name in form._fields else None


def _edit_page(
    study: Study, role: str, block: Block, form: BlockForm, status: int = 200, error: str = ""
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
            task_label=TASK_LABELS[block.task],
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
    if not form.validate_on_submit():
        return _edit_page(study, role, block, form, 400)
    if _name_taken(study, form.name.data, except_id=block.id):
        form.name.errors.append(f"Another block is called {form.name.data!r}.")
        return _edit_page(study, role, block, form, 400)
    try:
        settings = validate_block_settings(block.task, _settings_from_form(form, block))
    except ValueError as err:
        field = _field_for(form, str(err))
        if field is not None:
            field.errors = [*field.errors, str(err)]
        return _edit_page(study, role, block, form, 400, error=str(err))
    block.name = form.name.data
    block.settings = settings
    audit.record("block.edit", researcher=current_user, study=study, block=block.name)
    db.session.commit()
    flash(f"Block {block.name!r} saved.", "success")
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
        abort(400, description="Say whether to move the block up or down.")
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


@bp.post("/studies/<int:study_id>/blocks/<int:block_id>/delete")
@requires_role("editor")
def block_delete(study: Study, role: str, block_id: int):
    """Delete a block of a design that is not frozen."""
    study = lock_for_change(study)
    require_design_editable(study)
    block = _block(study, block_id)
    require_button()
    name = block.name
    study.blocks.remove(block)
    db.session.delete(block)
    renumber_blocks(study)
    audit.record("block.delete", researcher=current_user, study=study, block=name)
    db.session.commit()
    flash(f"Block {name!r} deleted.", "success")
    return redirect(url_for("researcher.blocks", study_id=study.id))
