"""Studies: the list, creation, the overview, editing, states, copies, members and definitions."""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from survey import audit, media, ratelimit
from survey.block_settings import CONDITION_TASKS, CONDITIONS, MEMORY_CELLS, MEMORY_TASKS
from survey.ending import RETURN_REDIRECT_KEY, redirect_delay
from survey.extensions import db
from survey.i18n import N_, gettext, study_languages
from survey.markup import render_markdown
from survey.models import Image, Participant, Researcher, Study, StudyMember, utcnow
from survey.researcher import bp, undo
from survey.researcher.access import ROLE_RANK, lock_for_change, requires_role
from survey.researcher.auth_routes import client_address
from survey.researcher.confirm import confirm_page
from survey.researcher.definition import export_definition, import_definition, parse_definition
from survey.researcher.forms import (
    MemberAddForm,
    MemberAuthorForm,
    MemberRoleForm,
    StateForm,
    StudyCreateForm,
    StudyDeleteForm,
    StudyEditForm,
    StudyImportForm,
    require_button,
)
from survey.researcher.service import (
    create_study,
    delete_study,
    duplicate_study,
    require_not_archived,
    slug_taken,
    unreferenced,
)
from survey.studies import TRANSITIONS, StateError, change_state, design_problems
from survey.study_texts import check_languages, with_languages

STATE_ACTIONS = {
    ("draft", "open"): N_("Open to participants"),
    ("open", "closed"): N_("Close"),
    ("closed", "open"): N_("Reopen"),
    ("closed", "archived"): N_("Archive"),
    ("archived", "closed"): N_("Unarchive"),
}
# What a recruitment platform's link adds to the participant link: its placeholders, which it
# fills with the participant's ids (MTurk adds its ids to the plain link).
RECRUITMENT_QUERIES = {
    "prolific": "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
    "&SESSION_ID={{%SESSION_ID%}}",
    "sona": "?id=%SURVEY_CODE%",
}
# Texts a researcher can preview as participants will see them.
MARKDOWN_FIELDS = ("consent_text", "instructions_text", "debrief_text")
EDITABLE_FIELDS = (
    "name",
    "title",
    "slug",
    "description",
    "public_summary",
    *MARKDOWN_FIELDS,
    "completion_code",
    "completion_url",
    "target_n",
    "n_lists",
    "assign_by",
)


def participant_counts(study_ids: list[int]) -> dict[int, dict[str, int]]:
    """Count real participants (not preview runs, not simulated) per study and status, in one
    query."""
    counts: dict[int, dict[str, int]] = {i: {} for i in study_ids}
    if not study_ids:
        return counts
    rows = db.session.execute(
        sa.select(Participant.study_id, Participant.status, sa.func.count())
        .where(
            Participant.study_id.in_(study_ids),
            Participant.is_preview.is_(False),
            Participant.is_simulated.is_(False),
        )
        .group_by(Participant.study_id, Participant.status)
    )
    for study_id, status, n in rows:
        counts[study_id][status] = n
    return counts


@bp.get("/studies")
@login_required
def studies():
    """List the studies the researcher is a member of, newest first."""
    rows = db.session.execute(
        sa.select(Study, StudyMember.role)
        .join(StudyMember, StudyMember.study_id == Study.id)
        .where(StudyMember.researcher_id == current_user.id)
        .order_by(Study.created_at.desc(), Study.id.desc())
    ).all()
    counts = participant_counts([study.id for study, _role in rows])
    return render_template("researcher/studies.html", rows=rows, counts=counts)


@bp.route("/studies/new", methods=["GET", "POST"])
@login_required
def study_new():
    """Create a draft study; its link name is made from the title."""
    form = StudyCreateForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("researcher/study_new.html", form=form), 400
        study = create_study(
            form.title.data,
            current_user,
            name=form.name.data or form.title.data,
            description=form.description.data or "",
        )
        audit.record("study.create", researcher=current_user, study=study)
        db.session.commit()
        flash(
            gettext(
                "Study created as a draft. Its participant link is %(link)s.",
                link=f"/s/{study.slug}",
            ),
            "success",
        )
        return redirect(url_for("researcher.study", study_id=study.id))
    return render_template("researcher/study_new.html", form=form)


@bp.route("/studies/import", methods=["GET", "POST"])
@login_required
def study_import():
    """Create a draft study from a study definition (JSON); nothing is created when it is bad."""
    form = StudyImportForm()
    if request.method == "GET":
        return render_template("researcher/study_import.html", form=form)
    if not form.validate_on_submit():
        return render_template("researcher/study_import.html", form=form), 400
    upload = form.file.data
    data = (
        upload.read()
        if upload is not None and getattr(upload, "filename", "")
        else (form.text.data or "")
    )
    if not data:
        form.file.errors.append(gettext("Choose a definition file or paste its JSON."))
        return render_template("researcher/study_import.html", form=form), 400
    try:
        study = import_definition(parse_definition(data), current_user)
    except ValueError as err:
        db.session.rollback()
        return render_template("researcher/study_import.html", form=form, error=str(err)), 400
    db.session.commit()
    flash(
        gettext(
            "Study imported as a draft. Upload its stimulus set next: the identities are ready."
        ),
        "success",
    )
    return redirect(url_for("researcher.study", study_id=study.id))


def _overview(
    study: Study, role: str, status: int = 200, problems: list[str] | None = None, error: str = ""
):
    """Render the study's overview page."""
    counts = participant_counts([study.id])[study.id]
    previews = db.session.scalar(
        sa.select(sa.func.count()).where(
            Participant.study_id == study.id, Participant.is_preview.is_(True)
        )
    )
    simulated = db.session.scalar(
        sa.select(sa.func.count()).where(
            Participant.study_id == study.id,
            Participant.is_preview.is_(False),
            Participant.is_simulated.is_(True),
        )
    )
    n_images = db.session.scalar(sa.select(sa.func.count()).where(Image.study_id == study.id))
    if problems is None and study.state == "draft":
        problems = design_problems(study)
    transitions = [
        (to, gettext(STATE_ACTIONS[(study.state, to)])) for to in TRANSITIONS.get(study.state, ())
    ]
    link = url_for("main.index", _external=True) + f"s/{study.slug}"
    return (
        render_template(
            "researcher/study.html",
            study=study,
            role=role,
            can_edit=ROLE_RANK[role] >= ROLE_RANK["editor"],
            is_owner=role == "owner",
            counts=counts,
            started=sum(counts.values()),
            previews=previews,
            simulated=simulated,
            n_images=n_images,
            problems=problems or [],
            transitions=transitions,
            participant_link=link,
            recruitment_links={name: link + query for name, query in RECRUITMENT_QUERIES.items()},
            error=error,
        ),
        status,
    )


@bp.get("/studies/<int:study_id>")
@requires_role("viewer")
def study(study: Study, role: str):
    """Show a study: its state, what it still needs, its participants, and every action."""
    return _overview(study, role)


STATE_CONFIRM = {
    "open": (
        N_("Open the study to participants?"),
        [
            N_("Participants with the link can take part from now on."),
            N_(
                "The design (blocks, stimuli and lists) freezes for good, and so does the "
                "preregistered plan if it is not frozen yet: to change them later you duplicate "
                "the study. Deleted blocks, identities and images can no longer be brought back."
            ),
        ],
        N_("Open the study"),
    ),
    "closed": (
        N_("Close the study?"),
        [N_("No new participant can start; participants under way are told it closed.")],
        N_("Close the study"),
    ),
    "archived": (
        N_("Archive the study?"),
        [N_("Nothing in an archived study can change until it is moved back to closed.")],
        N_("Archive the study"),
    ),
}


def _cannot_move(study: Study, target: str) -> str:
    """Say that the study cannot go from its state to `target` (perhaps none was given)."""
    if not target:
        return gettext("A %(state)s study cannot be moved to nothing.", state=study.state)
    return gettext(
        "A %(state)s study cannot be moved to %(target)s.", state=study.state, target=target
    )


def _state_confirm(study: Study, role: str, target: str):
    """The confirmation page of a state change, with what still stops the study opening."""
    if target not in TRANSITIONS.get(study.state, ()):
        return _overview(study, role, 409, error=_cannot_move(study, target))
    action = gettext(STATE_ACTIONS[(study.state, target)])
    title, lines, button = STATE_CONFIRM.get(target, (None, [], None))
    if study.design_frozen_at is not None and target == "open":
        lines = [N_("Participants with the link can take part again.")]
    problems = design_problems(study) if target == "open" else []
    return confirm_page(
        study,
        role,
        409 if problems else 200,
        title=gettext(title) if title else gettext("%(action)s?", action=action),
        lines=[gettext(line) for line in lines],
        problems=problems,
        problems_lead=gettext("The study cannot open yet:"),
        action=url_for("researcher.study_state", study_id=study.id),
        hidden={"state": target},
        button=gettext(button) if button else action,
        button_class="" if target == "open" else "danger",
        back=url_for("researcher.study", study_id=study.id),
    )


@bp.route("/studies/<int:study_id>/state", methods=["GET", "POST"])
@requires_role("editor")
def study_state(study: Study, role: str):
    """Open, close, reopen, archive or unarchive the study; opening checks and freezes the
    design. The GET page asks first."""
    if request.method == "GET":
        target = request.args.get("to", "")
        if not target:
            # No change asked for (a bookmarked or hand-typed address): the overview offers them.
            return redirect(url_for("researcher.study", study_id=study.id))
        return _state_confirm(study, role, target)
    form = StateForm()
    form_ok = form.validate_on_submit()
    # Checked on the locked row: an upload or another state change waits, or is seen whole.
    study = lock_for_change(study, "editor")
    if not form_ok or form.state.data not in TRANSITIONS.get(study.state, ()):
        return _overview(study, role, 409, error=_cannot_move(study, form.state.data))
    target = form.state.data
    if target == "open":
        problems = design_problems(study)
        if problems:
            return _overview(
                study, role, 409, problems=problems, error=gettext("The study cannot open yet.")
            )
    try:
        change_state(study, target, current_user)
    except StateError as err:
        db.session.rollback()
        return _overview(study, role, 409, error=str(err))
    # Opening freezes the design: deletions kept for undoing are forgotten with their files.
    forgotten = undo.forget_all(study) if study.design_locked else []
    db.session.commit()
    undo.discard_unused(study, forgotten)
    flash(gettext("The study is now %(state)s.", state=study.state), "success")
    return redirect(url_for("researcher.study", study_id=study.id))


def _edit_page(study: Study, form: StudyEditForm, status: int = 200, previews: dict | None = None):
    """Render the edit page with the texts rendered as participants see them."""
    if previews is None:
        previews = {name: render_markdown(getattr(study, name) or "") for name in MARKDOWN_FIELDS}
    return render_template(
        "researcher/study_edit.html", study=study, form=form, previews=previews
    ), status


@bp.route("/studies/<int:study_id>/edit", methods=["GET", "POST"])
@requires_role("editor")
def study_edit(study: Study, role: str):
    """Edit texts and settings; the link name only as a draft, the lists only before opening."""
    if request.method == "GET":
        form = StudyEditForm(obj=study)
        form.return_redirect_s.data = redirect_delay(study.settings)
        languages = study_languages(study)
        form.languages.data, form.default_language.data = languages, languages[0]
        return _edit_page(study, form)
    require_not_archived(study)
    form = StudyEditForm()
    form_ok = form.validate_on_submit()
    if form_ok and "preview" in request.form:
        previews = {
            name: render_markdown(getattr(form, name).data or "") for name in MARKDOWN_FIELDS
        }
        return _edit_page(study, form, previews=previews)
    if form.errors.get("csrf_token"):
        return _edit_page(study, form, 400)
    # The checks against the study hold when the change is written: they run under its lock,
    # and with the form's own, so that every problem shows at once.
    study = lock_for_change(study, "editor")
    require_not_archived(study)
    if not form.slug.errors and form.slug.data != study.slug:
        if study.state != "draft":
            form.slug.errors.append(
                gettext("The link name cannot change once the study has opened: links are out.")
            )
        elif slug_taken(form.slug.data, except_id=study.id):
            form.slug.errors.append(
                gettext("Another study uses the link name %(slug)s.", slug=repr(form.slug.data))
            )
    if form.n_lists.errors or form.n_lists.data is None:
        pass
    elif study.design_locked:
        if form.n_lists.data != study.n_lists:
            form.n_lists.errors.append(
                gettext("The lists are part of the frozen design and cannot change now.")
            )
    elif form.n_lists.data % MEMORY_CELLS and any(b.task in MEMORY_TASKS for b in study.blocks):
        form.n_lists.errors.append(
            gettext(
                "A memory study needs the lists in fours (4, 8, 12…) so every face is studied "
                "real, studied AI and a foil equally often; you wrote %(wrote)s.",
                wrote=form.n_lists.data,
            )
        )
    elif form.n_lists.data % len(CONDITIONS) and any(
        b.task in CONDITION_TASKS for b in study.blocks
    ):
        form.n_lists.errors.append(
            gettext(
                "Counterbalancing lists must be a multiple of %(number)s because the study "
                "has match, rate or detect blocks (each identity is shown real in half the lists "
                "and AI in the other half); you wrote %(wrote)s.",
                number=len(CONDITIONS),
                wrote=form.n_lists.data,
            )
        )
    if not form.languages.data and (study.design_locked or "default_language" not in request.form):
        # Not sent (frozen languages are shown disabled): they stay as they are.
        languages, problem = study_languages(study), None
    else:
        languages, problem = check_languages(form.languages.data, form.default_language.data)
    if problem:
        form.languages.errors.append(problem)
    elif languages != study_languages(study) and study.design_locked:
        form.languages.errors.append(
            gettext(
                "The languages are part of the frozen design and cannot change now: "
                "participants have taken the study in them."
            )
        )
    delay = form.return_redirect_s.data
    if delay is not None and not form.completion_url.data:
        form.return_redirect_s.errors.append(
            gettext(
                "An automatic return needs a completion link to go to: give the completion link "
                "above, or leave this empty."
            )
        )
    if form.errors or form.return_redirect_s.errors or form.languages.errors:
        return _edit_page(study, form, 400)
    changed = []
    # The internal name left empty: the title stands in (the team always has a name to see).
    form.name.data = form.name.data or form.title.data
    for name in EDITABLE_FIELDS:
        value = getattr(form, name).data
        if name != "target_n" and value is None:
            value = ""
        if value != getattr(study, name):
            setattr(study, name, value)
            changed.append(name)
    settings = dict(study.settings or {})
    if settings.get(RETURN_REDIRECT_KEY) != delay:
        if delay is None:
            settings.pop(RETURN_REDIRECT_KEY, None)
        else:
            settings[RETURN_REDIRECT_KEY] = delay
        # A new dict: the JSON column sees the change.
        study.settings = settings
        changed.append(RETURN_REDIRECT_KEY)
    if languages != study_languages(study):
        study.settings = with_languages(study.settings, languages)
        changed.append("languages")
    if changed:
        audit.record("study.edit", researcher=current_user, study=study, fields=changed)
    db.session.commit()
    flash(gettext("Saved.") if changed else gettext("Nothing changed."), "success")
    return redirect(url_for("researcher.study_edit", study_id=study.id))


@bp.post("/studies/<int:study_id>/duplicate")
@requires_role("editor")
def study_duplicate(study: Study, role: str):
    """Copy the study's design, texts and plan into a new draft that the researcher owns."""
    require_button()
    try:
        copy = duplicate_study(study, current_user)
    except FileNotFoundError as err:
        db.session.rollback()
        abort(
            409,
            description=gettext(
                "An image file of this study is missing from storage (%(error)s); it cannot be "
                "copied.",
                error=err,
            ),
        )
    db.session.commit()
    flash(gettext("Copied into the new draft %(name)s.", name=repr(copy.name)), "success")
    return redirect(url_for("researcher.study", study_id=copy.id))


@bp.route("/studies/<int:study_id>/delete", methods=["GET", "POST"])
@requires_role("owner")
def study_delete(study: Study, role: str):
    """Delete the study with all its data and images after typing its link name."""
    form = StudyDeleteForm()
    if request.method == "GET":
        return render_template("researcher/study_delete.html", study=study, form=form)
    if not form.validate_on_submit():
        return render_template("researcher/study_delete.html", study=study, form=form), 400
    if form.confirm.data != study.slug:
        form.confirm.errors.append(gettext("Type %(slug)s exactly to confirm.", slug=study.slug))
        return render_template("researcher/study_delete.html", study=study, form=form), 400
    study = lock_for_change(study, "owner")
    title = study.name
    keys = delete_study(study, current_user)
    db.session.commit()
    media.delete_files(unreferenced(keys))
    flash(gettext("The study %(name)s and all its data are deleted.", name=repr(title)), "success")
    return redirect(url_for("researcher.studies"))


@bp.get("/studies/<int:study_id>/definition.json")
@requires_role("viewer")
def study_definition(study: Study, role: str):
    """Download the study's definition (texts, settings, blocks, identities; no data)."""
    body = json.dumps(
        export_definition(study, utcnow()), indent=2, sort_keys=True, ensure_ascii=False
    )
    audit.record("study.export_definition", researcher=current_user, study=study)
    db.session.commit()
    return current_app.response_class(
        body + "\n",
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="study-{study.slug}.json"'},
    )


# --- members ------------------------------------------------------------------------------


def _members_page(
    study: Study, role: str, add_form: MemberAddForm | None = None, status: int = 200
):
    """Render the members page."""
    members = db.session.execute(
        sa.select(StudyMember, Researcher)
        .join(Researcher, Researcher.id == StudyMember.researcher_id)
        .where(StudyMember.study_id == study.id)
        .order_by(Researcher.email)
    ).all()
    return (
        render_template(
            "researcher/members.html",
            study=study,
            role=role,
            members=members,
            add_form=add_form or MemberAddForm(formdata=None),
        ),
        status,
    )


MEMBER_ADDED = {
    "viewer": N_(
        "If %(email)s has an account here, they are now a viewer and listed below. If not, ask "
        "them to sign up with this email first, then add them again."
    ),
    "editor": N_(
        "If %(email)s has an account here, they are now an editor and listed below. If not, ask "
        "them to sign up with this email first, then add them again."
    ),
    "owner": N_(
        "If %(email)s has an account here, they are now an owner and listed below. If not, ask "
        "them to sign up with this email first, then add them again."
    ),
}


def member_added(email: str, role: str) -> str:
    """Say what adding a member did, in the same words whether the email has an account or not."""
    return gettext(MEMBER_ADDED[role], email=email)


def _owner_count(study: Study) -> int:
    """Count the study's owners."""
    return db.session.scalar(
        sa.select(sa.func.count()).where(
            StudyMember.study_id == study.id, StudyMember.role == "owner"
        )
    )


def _member(study: Study, member_id: int) -> StudyMember:
    """Return a membership of this study, or 404."""
    member = db.session.get(StudyMember, member_id)
    if member is None or member.study_id != study.id:
        abort(404)
    return member


@bp.get("/studies/<int:study_id>/members")
@requires_role("viewer")
def members(study: Study, role: str):
    """List the study's researchers and their roles."""
    return _members_page(study, role)


@bp.post("/studies/<int:study_id>/members")
@requires_role("owner")
def member_add(study: Study, role: str):
    """Add a researcher with an account to the study."""
    form = MemberAddForm()
    if not form.validate_on_submit():
        return _members_page(study, role, form, 400)
    email = form.email.data.lower()
    # An email without an account gets the same answer as one with, and counts as a failed
    # sign-in of the owner's address: probing which emails have accounts is rate limited.
    attempt, limit = ratelimit.open_attempt(email, client_address())
    if limit is not None:
        abort(429, description=limit.message)
    researcher = db.session.scalar(sa.select(Researcher).where(Researcher.email == email))
    if researcher is None:
        ratelimit.close_attempt(attempt, False)
        db.session.commit()
        flash(member_added(email, form.role.data), "success")
        return redirect(url_for("researcher.members", study_id=study.id))
    # Finding an account is no sign-in to it: the attempt is not kept.
    ratelimit.forget_attempt(attempt)
    exists = db.session.scalar(
        sa.select(StudyMember).where(
            StudyMember.study_id == study.id, StudyMember.researcher_id == researcher.id
        )
    )
    if exists is not None:
        db.session.commit()
        form.email.errors.append(
            gettext(
                "%(email)s is a member already (%(role)s).",
                email=researcher.email,
                role=exists.role,
            )
        )
        return _members_page(study, role, form, 400)
    db.session.add(StudyMember(study=study, researcher=researcher, role=form.role.data))
    audit.record(
        "member.add",
        researcher=current_user,
        study=study,
        member=researcher.email,
        role=form.role.data,
    )
    db.session.commit()
    flash(member_added(email, form.role.data), "success")
    return redirect(url_for("researcher.members", study_id=study.id))


@bp.post("/studies/<int:study_id>/members/<int:member_id>/role")
@requires_role("owner")
def member_role(study: Study, role: str, member_id: int):
    """Change a member's role; the last owner stays an owner."""
    form = MemberRoleForm()
    if not form.validate_on_submit():
        abort(400, description=gettext("Choose one of the roles owner, editor or viewer."))
    # Owners are counted under the study's lock: two owners demoting each other at once
    # are served one after the other, and the second finds the first is the last owner.
    study = lock_for_change(study, "owner")
    member = _member(study, member_id)
    if member.role == "owner" and form.role.data != "owner" and _owner_count(study) == 1:
        abort(409, description=gettext("A study needs an owner: make someone else owner first."))
    previous, member.role = member.role, form.role.data
    audit.record(
        "member.role",
        researcher=current_user,
        study=study,
        member=member.researcher.email,
        role=member.role,
        previous=previous,
    )
    db.session.commit()
    flash(
        gettext("%(email)s is now %(role)s.", email=member.researcher.email, role=member.role),
        "success",
    )
    return redirect(url_for("researcher.members", study_id=study.id))


@bp.post("/studies/<int:study_id>/members/<int:member_id>/author")
@requires_role("owner")
def member_author(study: Study, role: str, member_id: int):
    """List a member as an author of the public findings page, or take them off the list.

    Only members with a display name can be listed: an email is never shown publicly.
    """
    form = MemberAuthorForm()
    if not form.validate_on_submit():
        abort(
            400,
            description=gettext(
                "The form expired or was incomplete; reload the members page and try again."
            ),
        )
    study = lock_for_change(study, "owner")
    member = _member(study, member_id)
    wanted = form.is_author.data == "1"
    if wanted and not (member.researcher.name or "").strip():
        abort(
            409,
            description=gettext(
                "%(email)s has no display name, so they cannot be listed as an author: an email "
                "is never shown publicly. Ask them to set a display name on their account page "
                "first.",
                email=member.researcher.email,
            ),
        )
    if member.is_author != wanted:
        member.is_author = wanted
        audit.record(
            "member.author",
            researcher=current_user,
            study=study,
            member=member.researcher.email,
            is_author=wanted,
        )
    db.session.commit()
    who = member.researcher.name or member.researcher.email
    flash(
        gettext("%(name)s is now listed as an author of the public findings page.", name=who)
        if wanted
        else gettext("%(name)s is not listed as an author of the public findings page.", name=who),
        "success",
    )
    return redirect(url_for("researcher.members", study_id=study.id))


@bp.route("/studies/<int:study_id>/members/<int:member_id>/remove", methods=["GET", "POST"])
@requires_role("owner")
def member_remove(study: Study, role: str, member_id: int):
    """Ask, then remove a member from the study; the last owner cannot be removed."""
    if request.method == "GET":
        member = _member(study, member_id)
        who = member.researcher.name or member.researcher.email
        yourself = member.researcher_id == current_user.id
        last_owner = member.role == "owner" and _owner_count(study) == 1
        return confirm_page(
            study,
            role,
            409 if last_owner else 200,
            title=gettext("Leave this study?")
            if yourself
            else gettext("Remove %(name)s from this study?", name=who),
            lines=[
                gettext("You lose access to the study at once; another owner can add you again.")
                if yourself
                else gettext(
                    "%(email)s (%(role)s) loses access to the study at once. You can add them "
                    "again later.",
                    email=member.researcher.email,
                    role=member.role,
                ),
            ],
            problems=[gettext("A study needs an owner: make someone else owner first.")]
            if last_owner
            else [],
            problems_lead=gettext("This member cannot be removed now."),
            action=url_for("researcher.member_remove", study_id=study.id, member_id=member.id),
            button=gettext("Leave the study") if yourself else gettext("Remove the member"),
            back=url_for("researcher.members", study_id=study.id),
        )
    require_button()
    study = lock_for_change(study, "owner")
    member = _member(study, member_id)
    if member.role == "owner" and _owner_count(study) == 1:
        abort(
            409,
            description=gettext("The last owner cannot be removed: make someone else owner first."),
        )
    email = member.researcher.email
    db.session.delete(member)
    audit.record("member.remove", researcher=current_user, study=study, member=email)
    db.session.commit()
    flash(gettext("%(email)s is no longer a member.", email=email), "success")
    if member.researcher_id == current_user.id:
        return redirect(url_for("researcher.studies"))
    return redirect(url_for("researcher.members", study_id=study.id))
