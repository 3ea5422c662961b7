"""The Languages page: which study texts each chosen language still lacks, and writing them side
by side with the default language's."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from survey import audit
from survey.extensions import db
from survey.i18n import LANGUAGES, RTL_LANGUAGES, gettext, study_languages
from survey.models import Study
from survey.researcher import bp
from survey.researcher.access import ROLE_RANK, lock_for_change, requires_role
from survey.researcher.forms import ButtonForm
from survey.study_texts import catalogue, edit_refusal, language_name, save_translations
from survey.study_texts import translations as written_texts


@bp.get("/studies/<int:study_id>/texts")
@requires_role("viewer")
def study_texts(study: Study, role: str):
    """Show, per chosen language, which study texts are written and which are missing."""
    languages = study_languages(study)
    written = written_texts(study.id)
    texts = catalogue(study)
    lacking = {
        lang: sum(1 for t in texts if not written.get(lang, {}).get(t.key)) for lang in languages
    }
    return render_template(
        "researcher/texts.html",
        study=study,
        role=role,
        languages=languages,
        texts=texts,
        written=written,
        lacking=lacking,
        language_name=language_name,
    )


def _language(study: Study, language: str) -> str:
    """Return the language when the study offers it besides its default, else 404."""
    languages = study_languages(study)
    if language not in LANGUAGES or language not in languages[1:]:
        abort(
            404,
            description=gettext(
                "This study does not run in “%(language)s” besides its default language: "
                "choose its languages on the Settings page.",
                language=language,
            ),
        )
    return language


def _edit_page(
    study: Study,
    role: str,
    language: str,
    posted: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
):
    """Render one language's texts beside the default language's."""
    written = written_texts(study.id, language).get(language, {})
    can_edit = ROLE_RANK[role] >= ROLE_RANK["editor"]
    texts = catalogue(study)
    return (
        render_template(
            "researcher/texts_edit.html",
            study=study,
            role=role,
            language=language,
            default=study_languages(study)[0],
            language_name=language_name,
            rtl=language in RTL_LANGUAGES,
            texts=texts,
            values={t.key: (posted or {}).get(t.key, written.get(t.key, "")) for t in texts},
            locked={t.key: (not can_edit) or bool(edit_refusal(study, t.part)) for t in texts},
            refusals={part: edit_refusal(study, part) for part in ("study", "block", "question")},
            errors=errors or {},
            can_edit=can_edit and study.state != "archived",
            form=ButtonForm(),
        ),
        status,
    )


@bp.get("/studies/<int:study_id>/texts/<lang>")
@requires_role("viewer")
def study_texts_language(study: Study, role: str, lang: str):
    """Show one language's texts beside the default language's, to write or correct them."""
    return _edit_page(study, role, _language(study, lang))


@bp.post("/studies/<int:study_id>/texts/<lang>")
@requires_role("editor")
def study_texts_save(study: Study, role: str, lang: str):
    """Save one language's texts; nothing is saved when one of them is refused."""
    form = ButtonForm()
    if not form.validate_on_submit():
        abort(400, description=gettext("The form was incomplete; reload the page and try again."))
    # Checked and written under the study's lock: an opening meanwhile is seen whole.
    study = lock_for_change(study, "editor")
    language = _language(study, lang)
    posted = {k: v for k, v in request.form.items() if k != "csrf_token"}
    errors, changed = save_translations(study, language, posted)
    if errors:
        db.session.rollback()
        return _edit_page(study, role, language, posted, errors, 400)
    if changed:
        audit.record(
            "study.texts", researcher=current_user, study=study, language=language, keys=changed
        )
    db.session.commit()
    flash(
        gettext("The %(language)s texts are saved.", language=language_name(language))
        if changed
        else gettext("Nothing changed."),
        "success",
    )
    return redirect(url_for("researcher.study_texts_language", study_id=study.id, lang=language))
