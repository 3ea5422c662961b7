"""The study's questions: write, edit, reorder and delete them while the study is a draft.

Every change locks the study's row and checks, under the lock and in the writing
transaction, that the study is still a draft (`require_questions_editable`).
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from survey import audit
from survey.extensions import db
from survey.i18n import gettext
from survey.i18n import lazy_gettext as _l
from survey.models import Study, StudyQuestion
from survey.question_labels import KIND_LABELS, describe, kind_label
from survey.questions import KINDS, check_code, clean_spec, spec_as_form
from survey.researcher import bp, undo
from survey.researcher.access import ROLE_RANK, lock_for_change, requires_role
from survey.researcher.confirm import confirm_page, offer_undo
from survey.researcher.forms import require_button
from survey.researcher.service import move_question, require_questions_editable

SPEC_FIELDS = ("options", "min", "max", "anchors", "max_length")


class QuestionForm(FlaskForm):
    """One question: its code, text, kind, whether it must be answered, and the kind's settings."""

    code = StringField(
        _l("Short code"),
        validators=[InputRequired(message=_l("Give the question a short code, such as age_band."))],
        description=_l("Names the question's column in participants.csv, e.g. age_band."),
    )
    text = StringField(
        _l("Question"),
        validators=[
            InputRequired(message=_l("Write the question participants read.")),
            Length(max=500, message=_l("A question has at most 500 characters.")),
        ],
    )
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, _l(KIND_LABELS[k])) for k in KINDS])
    required = BooleanField(_l("Participants must answer it"))
    options = TextAreaField(
        _l("Options (multiple choice and checkboxes)"),
        description=_l(
            "One per line: a label, or a short value, “=” and the label "
            "(prefer_not_to_say = Prefer not to say)."
        ),
    )
    min = StringField(
        _l("Lowest point or smallest number"), description=_l("Rating scale or number.")
    )
    max = StringField(
        _l("Highest point or largest number"), description=_l("Rating scale or number.")
    )
    anchors = TextAreaField(
        _l("Labelled points (rating scale)"),
        description=_l("One per line: a point, “=” and its label (1 = Not at all)."),
    )
    max_length = StringField(_l("Longest answer in characters (short text)"), default="200")
    asked = SelectField(
        _l("Asked"),
        choices=[],
        validate_choice=False,
        description=_l(
            "On the questions page after every trial, or on a page of its own right "
            "after a block's last trial. Either way the answer is a column of participants.csv."
        ),
    )


def question_form(study: Study, **options) -> QuestionForm:
    """Return the question form with the study's blocks to ask it after."""
    form = QuestionForm(**options)
    form.asked.choices = [SelectChoice("", gettext("On the questions page, after the trials"))] + [
        SelectChoice(str(b.id), gettext("Right after the block “%(name)s”", name=b.name))
        for b in study.blocks
    ]
    return form


def _question(study: Study, question_id: int) -> StudyQuestion:
    """Return a question of this study, or 404."""
    question = db.session.get(StudyQuestion, question_id)
    if question is None or question.study_id != study.id:
        abort(404)
    return question


def _can_edit(study: Study, role: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK["editor"] and study.state == "draft"


def _page(study: Study, role: str, form: QuestionForm, editing=None, status: int = 200):
    return (
        render_template(
            "researcher/questions.html",
            study=study,
            role=role,
            can_edit=_can_edit(study, role),
            form=form,
            editing=editing,
            kind_label=kind_label,
            describe=describe,
            deleted=[p for p in undo.undoable(study) if p.kind == "question"],
        ),
        status,
    )


def _validate(form: QuestionForm, study: Study, except_id: int | None) -> dict | None:
    """Return the question's fields, or None with every error put next to its field."""
    valid = form.validate_on_submit()
    code = (form.code.data or "").strip()
    taken = {q.code for q in study.questions if q.id != except_id}
    if code and (problem := check_code(code, taken)):
        form.code.errors = [*form.code.errors, problem]
    spec = clean_spec(form.kind.data, {f: form[f].data for f in SPEC_FIELDS})
    for name, messages in spec.errors.items():
        target = form[name] if name in SPEC_FIELDS else form.kind
        target.errors = [*target.errors, *messages]
    blocks = {str(b.id): b.id for b in study.blocks}
    asked = form.asked.data or ""
    if asked and asked not in blocks:
        form.asked.errors = [
            *form.asked.errors,
            gettext(
                "Asked: choose the questions page or one of this study's blocks; "
                "that block is gone."
            ),
        ]
    if not valid or spec.errors or form.code.errors or form.asked.errors:
        return None
    return {
        "code": code,
        "text": form.text.data.strip(),
        "kind": form.kind.data,
        "required": bool(form.required.data),
        "spec": spec.values,
        "block_id": blocks.get(asked),
    }


@bp.get("/studies/<int:study_id>/questions")
@requires_role("viewer")
def questions(study: Study, role: str):
    """List the study's questions in order, with the form to add one."""
    return _page(study, role, question_form(study, formdata=None))


@bp.post("/studies/<int:study_id>/questions")
@requires_role("editor")
def question_add(study: Study, role: str):
    """Add a question at the end; every error is shown next to its field and nothing is saved."""
    study = lock_for_change(study)
    require_questions_editable(study)
    form = question_form(study)
    fields = _validate(form, study, None)
    if fields is None:
        return _page(study, role, form, status=400)
    position = max((q.position for q in study.questions), default=0) + 1
    db.session.add(StudyQuestion(study=study, position=position, **fields))
    audit.record("question.add", researcher=current_user, study=study, code=fields["code"])
    db.session.commit()
    flash(gettext("Question %(code)s added.", code=fields["code"]), "success")
    return redirect(url_for("researcher.questions", study_id=study.id), 303)


@bp.get("/studies/<int:study_id>/questions/<int:question_id>")
@requires_role("viewer")
def question_edit(study: Study, role: str, question_id: int):
    """Show a question in the form, to edit it in place (the form shows to editors only)."""
    question = _question(study, question_id)
    form = question_form(
        study,
        formdata=None,
        data={
            "code": question.code,
            "text": question.text,
            "kind": question.kind,
            "required": question.required,
            "asked": str(question.block_id or ""),
            **spec_as_form(question.kind, question.spec),
        },
    )
    return _page(study, role, form, editing=question)


@bp.post("/studies/<int:study_id>/questions/<int:question_id>")
@requires_role("editor")
def question_save(study: Study, role: str, question_id: int):
    """Save an edited question (its code, text, kind and settings), or show every error."""
    study = lock_for_change(study)
    require_questions_editable(study)
    question = _question(study, question_id)
    form = question_form(study)
    fields = _validate(form, study, question.id)
    if fields is None:
        return _page(study, role, form, editing=question, status=400)
    for name, value in fields.items():
        setattr(question, name, value)
    audit.record("question.edit", researcher=current_user, study=study, code=fields["code"])
    db.session.commit()
    flash(gettext("Question %(code)s saved.", code=fields["code"]), "success")
    return redirect(url_for("researcher.questions", study_id=study.id), 303)


@bp.post("/studies/<int:study_id>/questions/<int:question_id>/move")
@requires_role("editor")
def question_move(study: Study, role: str, question_id: int):
    """Move a question one place up or down."""
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        abort(400, description=gettext("Move a question up or down."))
    study = lock_for_change(study)
    require_questions_editable(study)
    move_question(study, _question(study, question_id), direction)
    db.session.commit()
    return redirect(url_for("researcher.questions", study_id=study.id), 303)


@bp.route("/studies/<int:study_id>/questions/<int:question_id>/delete", methods=["GET", "POST"])
@requires_role("editor")
def question_delete(study: Study, role: str, question_id: int):
    """Ask, then delete a question; answers already stored under its code stay in the export.

    The deletion can be undone while the study is a draft.
    """
    if request.method == "GET":
        require_questions_editable(study)
        question = _question(study, question_id)
        return confirm_page(
            study,
            role,
            title=gettext("Delete the question %(code)s?", code=question.code),
            lines=[
                gettext(
                    "“%(text)s” (%(kind)s) is removed from the questions page; the questions "
                    "after it move up.",
                    text=question.text,
                    kind=kind_label(question.kind),
                ),
                gettext(
                    "Answers already given to it stay in participants.csv, in the column %(code)s.",
                    code=question.code,
                ),
            ],
            note=gettext("You can undo this while the study is a draft."),
            undoable=True,
            action=url_for(
                "researcher.question_delete", study_id=study.id, question_id=question.id
            ),
            button=gettext("Delete the question"),
            back=url_for("researcher.questions", study_id=study.id),
        )
    require_button()
    study = lock_for_change(study)
    require_questions_editable(study)
    question = _question(study, question_id)
    code = question.code
    part = undo.keep_question(study, question, current_user._get_current_object())
    db.session.delete(question)
    db.session.flush()
    forgotten = undo.prune(study)
    audit.record("question.delete", researcher=current_user, study=study, code=code)
    db.session.commit()
    undo.discard_unused(study, forgotten)
    offer_undo(study, part)
    return redirect(url_for("researcher.questions", study_id=study.id), 303)
