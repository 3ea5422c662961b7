"""Participant routes: link → consent → instructions → trials → questions → debrief."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import abort, current_app, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from itsdangerous import BadSignature, URLSafeSerializer
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from survey import design, ending, i18n, study_texts
from survey import flow as block_flow
from survey import questions as questions_module
from survey.block_settings import NAME_PLACEHOLDER, names_people
from survey.errors import render_error
from survey.extensions import db
from survey.i18n import N_, participant_language
from survey.markup import render_markdown
from survey.media import storage
from survey.models import Image, Participant, StudyQuestion, new_public_id
from survey.participant import answers, bp, delay, forms, service, starting, statements, tickets
from survey.participant import csrf as participant_csrf
from survey.participant.hotdb import hot_path
from survey.participant.recruitment import (
    Recruitment,
    device_from_user_agent,
    platform_name,
    recruitment_from_args,
    same_attempt,
)
from survey.researcher.auth_routes import client_address

COOKIE = "likeness_participant"
COOKIE_MAX_AGE = 30 * 24 * 3600
IMAGE_MAX_AGE = 365 * 24 * 3600
# An image id always names the same file: caches keep it for a year without asking again.
IMAGE_CACHE_CONTROL = f"public, max-age={IMAGE_MAX_AGE}, immutable"
UNAVAILABLE = {
    "unknown": (
        404,
        N_("This study link is not valid"),
        N_(
            "Check that you copied the whole link, or ask the researcher who sent it for a new one."
        ),
    ),
    "bad_link": (
        400,
        N_("This study link is incomplete"),
        N_(
            "The link is missing a valid participant "
            "id from the recruitment site. Go back to the site and open the study again."
        ),
    ),
    "draft": (
        403,
        N_("This study has not opened yet"),
        N_("The researcher has not opened this study to participants yet. Please try again later."),
    ),
    "closed": (
        410,
        N_("This study is closed"),
        N_("This study no longer takes new participants. Thank you for your interest."),
    ),
    "broken": (
        409,
        N_("This study cannot start yet"),
        N_(
            "The study's design has a problem that the "
            "researcher needs to fix. Please try again later."
        ),
    ),
    "changed": (
        409,
        N_("This study cannot start"),
        N_(
            "The study's materials changed after it opened, so it cannot be run as registered. "
            "The researcher needs to look into it; please try again later."
        ),
    ),
    "full": (
        403,
        N_("This study is full"),
        N_("This study has all the participants it needs. Thank you for your interest."),
    ),
    "busy": (
        429,
        N_("Please try again in a few minutes"),
        N_(
            "Many people have just started this study from your network or at the same moment, "
            "so new participants are let in a few at a time. Nothing was recorded. Please wait a "
            "few minutes, then open the study link again."
        ),
    ),
    "expired": (
        410,
        N_("Your time for this study has run out"),
        N_(
            "You started this study too long ago to continue, so your place was given to someone "
            "else. The answers you gave are kept as an unfinished session; you can still withdraw "
            "them. If you think this is a mistake, please write to the researcher."
        ),
    ),
    "elsewhere": (
        409,
        N_("You already started this study in another browser"),
        N_(
            "To continue, go back to the browser and device where you started. If you cannot, "
            "open the study again from the link on the recruitment site (it brings your session "
            "along), or write to the researcher. Nothing was changed."
        ),
    ),
}


# --- the participant cookie -------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    """Return the signer of participant cookies."""
    return URLSafeSerializer(current_app.secret_key, salt="likeness-participant")


def _consent_signer() -> URLSafeSerializer:
    """Return the signer of consent tokens (apart from the cookies': a token is never one)."""
    return URLSafeSerializer(current_app.secret_key, salt="likeness-consent")


def _consent_public_id(nonce: str) -> str:
    """Return the id a consent token's nonce gives the participant this browser starts.

    An HMAC of the nonce and the browser's form key (its own HttpOnly cookie): a double click
    in one browser starts one participant, while the page's HTML, which holds only the nonce,
    names no participant and opens no one's session in another browser.
    """
    key = participant_csrf.browser_key()
    if key is None:  # no form key (only when the form check is off): no double-click guard
        return new_public_id()
    secret = current_app.secret_key
    secret_bytes = secret.encode() if isinstance(secret, str) else bytes(secret)
    digest = hmac.new(
        secret_bytes, f"likeness-consent:{nonce}:{key}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _cookie_public_id() -> str | None:
    """Return the participant id from the signed cookie, or None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    key = (current_app.secret_key, raw)
    verified = hot_path.state().verified_cookies
    known = verified.get(key)
    if known is not None:
        return known
    try:
        value = _serializer().loads(raw)
    except BadSignature:
        return None
    if not isinstance(value, str):
        return None
    return verified.put(key, value)


def _remember(response: WerkzeugResponse, slug: str, public_id: str) -> WerkzeugResponse:
    """Set the participant cookie for this study's pages only."""
    response.set_cookie(
        COOKIE,
        _serializer().dumps(public_id),
        max_age=COOKIE_MAX_AGE,
        path=f"/s/{slug}",
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )
    return response


Flow = tuple[service.StudyView, service.ParticipantView | None]


def _flow_or_404(
    slug: str, public_id: str | None = None, recruitment: Recruitment | None = None
) -> Flow:
    """Return a link's study and the participant named (None if none), or the 404 page.

    Every page after it speaks the participant's language (`_speak`).
    """
    found = service.flow(slug, public_id, recruitment)
    if found is None:
        abort(_unavailable("unknown"))
    _speak(*found)
    return found


def _speak(study: service.StudyView, participant: service.ParticipantView | None) -> str:
    """Make the participant's language the page's: the one stored at the consent, or before it
    the one the request asks for among the study's (survey/i18n.py)."""
    consented = participant is not None and participant.consented_at is not None
    return i18n.activate_for(study, participant.language if consented else None)


# --- pages ------------------------------------------------------------------------------------


@bp.after_request
def _no_store(response: WerkzeugResponse) -> WerkzeugResponse:
    """Keep flow pages out of caches (images keep their own long-lived headers)."""
    if request.endpoint != "participant.image":
        response.headers["Cache-Control"] = "no-store"
    # Every view here commits what it writes or rolls it back itself; what is left open is a
    # read, ended without the ROLLBACK that would cost the hot queries their prepared plans.
    service.end_read()
    return participant_csrf.keep_key(response)


@bp.errorhandler(CSRFError)
def _expired(exc: CSRFError):
    """Explain an expired form and offer the way back into the study; nothing was stored."""
    slug = (request.view_args or {}).get("slug")
    target = url_for("participant.entry", slug=slug) if slug else url_for("main.index")
    found = service.flow(slug, _cookie_public_id()) if slug else None
    if found is not None:
        _speak(*found)
    page = _page(
        "participant/message.html",
        title=_("This page had expired"),
        message=_(
            "Nothing was saved from it. Continue where you left off; you may need to "
            "answer the last question again."
        ),
        action_url=target,
        action_label=_("Continue the study"),
    )
    return page, 400


def _page(
    template: str,
    study: service.StudyView | None = None,
    participant: service.ParticipantView | None = None,
    **context,
) -> str:
    """Render a flow page with the header's study title, preview flag and withdraw link (in the
    language `_speak` chose)."""
    context.setdefault("survey_slug", study.slug if study is not None else None)
    context.setdefault("survey_title", _title(study) if study is not None else None)
    context.setdefault(
        "participant_here", participant is not None and participant.status != "withdrawn"
    )
    context.setdefault("preview_run", participant is not None and participant.is_preview)
    context.setdefault("csrf_token", participant_csrf.token)
    return render_template(template, study=study, participant=participant, **context)


def _title(study: service.StudyView) -> str:
    """Return the study's title in the page's language (else the default language's)."""
    return study_texts.text_for(study, study_texts.TITLE_KEY, i18n.current_language())


def _unavailable(
    reason: str,
    detail: str = "",
    retry_after: int | None = None,
    study: service.StudyView | None = None,
    participant: service.ParticipantView | None = None,
) -> WerkzeugResponse:
    """Render the page for an unknown, incomplete, draft, closed, full or busy study link."""
    status, title, message = UNAVAILABLE[reason]
    page = _page(
        "participant/message.html",
        study=study,
        participant=participant,
        title=_(title),
        message=_(message),
        detail=detail,
        reason=reason,
    )
    response = current_app.response_class(page, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _may_resume(
    participant_id: int,
    public_id: str,
    recruitment: Recruitment,
    cookie_public_id: str | None,
) -> bool:
    """Tell whether this browser may resume the participant its link's recruitment id names.

    Its own cookie, or the same attempt's session parameter, is needed: a platform id alone
    is often known to others.
    """
    if cookie_public_id is not None and hmac.compare_digest(
        cookie_public_id.encode(), public_id.encode()
    ):
        return True
    return same_attempt(participant_id, recruitment)


def _study_closed(slug: str, title: str, is_preview: bool) -> WerkzeugResponse:
    """Tell a participant in progress that the study closed: nothing more is stored (410).

    `title` is the study's in the page's language (`_title`)."""
    page = _page(
        "participant/message.html",
        survey_slug=slug,
        survey_title=title,
        participant_here=True,
        preview_run=is_preview,
        title=_("This study has closed"),
        message=_(
            "The researcher closed this study before you finished, so no more answers can "
            "be saved. The answers you already gave are kept as an unfinished response; if you "
            "would rather have them deleted, you can withdraw. Thank you for your time."
        ),
        action_url=url_for("participant.withdraw", slug=slug),
        action_label=_("Withdraw and delete my answers"),
        reason="closed",
    )
    return current_app.response_class(page, status=410)


def _next_url(slug: str, participant: service.ParticipantView) -> str:
    """Return where a returning participant continues."""
    if participant.status == "withdrawn":
        return url_for("participant.withdrawn", slug=slug)
    if participant.consented_at is None or participant.status == "expired":
        return url_for("participant.entry", slug=slug)
    if participant.status == "completed":
        if _block_questions_due(participant):
            return url_for("participant.step", slug=slug)
        return url_for("participant.done", slug=slug)
    if not participant.answered_any:
        return url_for("participant.instructions", slug=slug)
    return url_for("participant.trial", slug=slug)


def _render_consent(
    study: service.StudyView,
    status: int = 200,
    error: str = "",
    participant: service.ParticipantView | None = None,
) -> tuple[str, int]:
    """Render the consent page; its token gives a double-clicked agreement one participant.

    The language chosen on it travels in the link's query (?lang=), kept by the form's action
    and by each link of the language menu (shown when the study has more than one language).
    """
    form = forms.ConsentForm(token=_consent_signer().dumps(secrets.token_urlsafe(16)))
    language = _speak(study, participant)
    query = request.query_string.decode("ascii", "replace")
    if i18n.LANG_PARAM not in request.args and language != i18n.study_languages(study)[0]:
        # Chosen by the browser: the agreement starts the participant in the same language.
        query = "&".join(part for part in (query, f"{i18n.LANG_PARAM}={language}") if part)
    action = url_for("participant.consent", slug=study.slug) + (f"?{query}" if query else "")
    return (
        _page(
            "participant/consent.html",
            study=study,
            participant=participant,
            form=form,
            action=action,
            error=error,
            consent_html=render_markdown(study_texts.text_for(study, "consent", language)),
            language_links=_language_links(study, language),
        ),
        status,
    )


def _language_links(study: service.StudyView, current: str) -> list[tuple[str, str, str, bool]]:
    """Return the consent page's language menu as (code, name, link, is current); empty for a
    study in one language. Each link is the study link with the same query and ?lang=."""
    languages = i18n.study_languages(study)
    if len(languages) < 2:
        return []
    args = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    return [
        (
            code,
            i18n.LANGUAGES[code],
            url_for("participant.entry", slug=study.slug)
            + "?"
            + urlencode([*args, (i18n.LANG_PARAM, code)]),
            code == current,
        )
        for code in languages
    ]


@bp.get("/s/<slug>")
def entry(slug: str):
    """The study link: resume a known participant, else show the consent page."""
    try:
        recruitment = recruitment_from_args(request.args)
    except ValueError as exc:
        _flow_or_404(slug)
        return _unavailable("bad_link", str(exc))
    # With a recruitment id, its participant; without one, this browser's.
    cookie_public_id = _cookie_public_id()
    study, participant = _flow_or_404(
        slug, None if recruitment is not None else cookie_public_id, recruitment
    )
    if (
        participant is not None
        and recruitment is not None
        and not _may_resume(participant.id, participant.public_id, recruitment, cookie_public_id)
    ):
        return _unavailable("elsewhere")
    if participant is not None and participant.status == "expired":
        response = _unavailable("expired", study=study, participant=participant)
        return _remember(response, slug, participant.public_id)
    if participant is not None and participant.consented_at is not None:
        return _remember(redirect(_next_url(slug, participant)), slug, participant.public_id)
    if participant is None:
        if not study.is_open:
            return _unavailable("draft" if study.state == "draft" else "closed")
        if starting.is_full(study):
            return _unavailable("full")
    return _render_consent(study, participant=participant)


@bp.post("/s/<slug>/consent")
@participant_csrf.protected
def consent(slug: str):
    """Agree (start, or resume) or decline."""
    try:
        recruitment = recruitment_from_args(request.args)
    except ValueError as exc:
        recruitment, bad_link = None, str(exc)
    else:
        bad_link = ""
    # A link without a recruitment id resumes this browser's participant; one with an id
    # resumes that id's participant (found by the start itself).
    cookie_public_id = _cookie_public_id()
    study, existing = _flow_or_404(slug, cookie_public_id if recruitment is None else None)
    form = forms.ConsentForm()
    if not form.validate_on_submit():
        return _render_consent(study, 400, _("The form could not be read. Please agree again."))
    if bad_link:
        return _unavailable("bad_link", bad_link)
    try:
        nonce = _consent_signer().loads(form.token.data or "")
    except BadSignature:
        nonce = None
    if not isinstance(nonce, str):
        return _render_consent(
            study, 400, _("The form was damaged on its way. Please agree again.")
        )
    public_id = _consent_public_id(nonce)
    if form.decline.data:
        return _page(
            "participant/message.html",
            study=study,
            title=_("You chose not to take part"),
            message=_("Nothing was recorded. You can close this page."),
        )
    if existing is None:
        try:
            start = starting.start_or_resume(
                study,
                recruitment=recruitment,
                device=device_from_user_agent(request.user_agent.string),
                public_id=public_id,
                address=client_address(),
                simulated=request.environ.get(starting.SIMULATED_ENVIRON) is True,
                language=i18n.participant_language(study),
            )
        except starting.StudyUnavailable as exc:
            return _unavailable(exc.reason, retry_after=exc.retry_after)
        except design.DesignError as exc:
            return _unavailable("broken", " ".join(exc.problems))
        if start.started:
            # Consented just now, nothing answered yet: on to the instructions.
            response = redirect(url_for("participant.instructions", slug=slug), 303)
            return _remember(response, slug, start.public_id)
        if (
            recruitment is not None
            and start.public_id != public_id  # not this browser's double click
            and not _may_resume(
                start.participant_id, start.public_id, recruitment, cookie_public_id
            )
        ):
            return _unavailable("elsewhere")
        existing = _flow_or_404(slug, start.public_id)[1]
        if existing is None:  # deleted since (a researcher removed its data)
            return redirect(url_for("participant.entry", slug=slug), 303)
    if existing.consented_at is None:  # a preview run started before its consent
        service.consent(db.session.get(Participant, existing.id), i18n.participant_language(study))
        existing = _flow_or_404(slug, existing.public_id)[1]
    return _remember(redirect(_next_url(slug, existing), 303), slug, existing.public_id)


def _participant_or_entry(slug: str) -> Flow:
    """Return the study and this browser's participant (None when it has none)."""
    return _flow_or_404(slug, _cookie_public_id())


@bp.get("/s/<slug>/instructions")
def instructions(slug: str):
    """Show the study's instructions before the first trial."""
    study, participant = _participant_or_entry(slug)
    if (
        participant is None
        or participant.consented_at is None
        or participant.status != "in_progress"
    ):
        return redirect(
            url_for("participant.entry", slug=slug)
            if participant is None
            else _next_url(slug, participant)
        )
    if not statements.takes_answers(study.state, participant.is_preview):
        return _study_closed(slug, _title(study), participant.is_preview)
    return _page(
        "participant/instructions.html",
        study=study,
        participant=participant,
        instructions_html=render_markdown(
            study_texts.text_for(study, "instructions", participant_language(study))
        ),
    )


def _questions_html(
    questions: tuple[forms.Question, ...], is_attention: bool, language: str
) -> Markup:
    """Render a trial's questions once per distinct set and language (they repeat on every
    trial of a block; a set rendered for one language is never shown in another)."""
    rendered = hot_path.state().questions_html
    key = (questions, is_attention, language)
    html = rendered.get(key)
    if html is None:
        template = current_app.jinja_env.get_template("participant/_questions.html")
        html = rendered.put(
            key, Markup(template.render(questions=questions, is_attention=is_attention))
        )
    return html


def _figures(trial: answers.TrialView) -> list[tuple[str, str, str, str]]:
    """Return the images of a trial page as (public id, alt text, role, caption); the words are
    catalog entries, translated by the page."""
    if trial.task == "choose":
        return [
            (trial.images[0], N_("Left photo"), "left", N_("Left")),
            (trial.images[1], N_("Right photo"), "right", N_("Right")),
        ]
    if trial.task == "match":
        return [
            (trial.images[0], N_("Headshot"), "headshot", ""),
            (trial.probe, N_("Photo to compare"), "probe", ""),
        ]
    if trial.task == "learn":
        # A label with {name} names the person; one without (a role) is shown as written.
        label = trial.settings.get("label") or ""
        caption = label
        if names_people(label):
            caption = label.replace(NAME_PLACEHOLDER, trial.label) if trial.label else ""
        return [(trial.images[0], N_("Photo of a person to remember"), "single", caption)]
    return [(trial.images[0], N_("Photo"), "single", "")]


def _render_trial(slug: str, state: answers.PageState, error: str = "", status: int = 200):
    """Render the current trial of a participant."""
    settings, title = _trial_texts(state)
    language = i18n.current_language()
    trial = dataclasses.replace(state.current, settings=settings)
    questions = forms.questions_for(trial.task, trial.settings, trial.is_attention)
    instruction = (
        forms.attention_instruction(questions[0], trial.attention_answer)
        if trial.is_attention
        else ""
    )
    return (
        _page(
            "participant/trial.html",
            survey_slug=slug,
            survey_title=title,
            participant_here=True,
            preview_run=state.is_preview,
            state=state,
            trial=trial,
            questions=questions,
            questions_html=_questions_html(questions, trial.is_attention, language),
            figures=_figures(trial),
            image_base=request.script_root + "/img/",
            instruction=instruction,
            error=error,
        ),
        status,
    )


def _trial_texts(state: answers.PageState) -> tuple[dict, str]:
    """Return the current trial's block settings and the study's title in the page's language
    (the block's texts of a preview's draft may still change: read every time)."""
    return study_texts.trial_texts(
        state.current.block_id,
        state.current.settings,
        not state.is_preview,
        i18n.current_language(),
        state.study_title,
        state.title_written,
    )


@bp.get("/s/<slug>/trial")
def trial(slug: str):
    """Show the first unanswered trial (or move on when none is left).

    Read from the database on every request, in one statement: a page kept from an earlier
    request could show a trial answered since through another worker, or one of a participant
    who has withdrawn.
    """
    public_id = _cookie_public_id()
    state = answers.page_state(slug, public_id, current_app.secret_key)
    if state is None or not state.consented:
        return redirect(url_for("participant.entry", slug=slug))
    i18n.activate(state.language)
    if state.status == "withdrawn":
        return redirect(url_for("participant.withdrawn", slug=slug))
    if state.status == "expired":
        return redirect(url_for("participant.entry", slug=slug))
    if state.current is None:
        return redirect(_after_trials(slug, public_id))
    if state.step_due:
        # Block instructions, a break or a block's questions come first.
        return redirect(url_for("participant.step", slug=slug))
    if not state.taking_answers:
        return _study_closed(slug, _trial_texts(state)[1], state.is_preview)
    held = delay.held_back(public_id, state.current.task, state.current.settings)
    if held is not None:
        # The test phase waits behind its distractor or second session: this page was not
        # served with the trial, so the trial keeps no shown_at from it.
        delay.unstamp(state.current.id)
        return redirect(url_for(f"participant.{held}", slug=slug))
    return _render_trial(slug, state)


def _after_trials(slug: str, public_id: str) -> str:
    """Complete a participant with every trial answered; return the questions or the debrief."""
    study, participant = _flow_or_404(slug, public_id)
    if participant is None:
        return url_for("participant.entry", slug=slug)
    if participant.status == "in_progress":
        # The last answer completes its participant; this completes one stored otherwise.
        answers.complete_if_done(db.session.get(Participant, participant.id))
        study, participant = _flow_or_404(slug, public_id)
    if participant.status == "completed" and _block_questions_due(participant):
        if statements.takes_answers(study.state, participant.is_preview):
            return url_for("participant.step", slug=slug)
    if _asks_demographics(study) and not participant.demographics:
        return url_for("participant.questions", slug=slug)
    return url_for("participant.done", slug=slug)


def _block_questions_due(participant: service.ParticipantView) -> bool:
    """Tell whether a participant who has answered every trial still has a block's questions
    to answer (the last block's, or any the participant went past)."""
    if participant.next_step_at is None:
        return False
    where = service.flow_position(participant.id)
    return block_flow.pending(where.steps, where.passed, where.total + 1, True) is not None


def _asks_demographics(study: service.StudyView) -> bool:
    """Tell whether the study asks questions after the trials (it has some not asked after a
    block, and the old study setting that turned the demographics off is not set)."""
    if (study.settings or {}).get("demographics", True) is False:
        return False
    return (
        db.session.scalar(
            sa.select(StudyQuestion.id)
            .where(StudyQuestion.study_id == study.id, StudyQuestion.block_id.is_(None))
            .limit(1)
        )
        is not None
    )


@bp.post("/s/<slug>/trial/<int:trial_id>")
@participant_csrf.protected
def answer(slug: str, trial_id: int):
    """Validate and store one answer, then go to the next unanswered trial."""
    public_id = _cookie_public_id()
    if public_id is None:
        return redirect(url_for("participant.entry", slug=slug), 303)
    # The page's ticket says what the answer is validated with: one statement stores it.
    target = answers.ticket_target(
        current_app.secret_key, slug, public_id, trial_id, request.form.get(tickets.FIELD, "")
    )
    if target is not None and delay.held_back(public_id, target.task, target.settings):
        return redirect(url_for("participant.trial", slug=slug), 303)
    if target is not None:
        questions = forms.questions_for(target.task, target.settings, target.is_attention)
        values = forms.chosen(questions, request.form)
        if values is not None and _store(target, questions, values) == answers.STORED:
            return redirect(url_for("participant.trial", slug=slug), 303)
    # No ticket, an invalid answer, or nothing claimed (answered already, not the current
    # trial, not this participant's, the study closed): the database says which, and what to
    # answer.
    target = answers.answer_target(slug, public_id, trial_id)
    if target is None:
        return render_error(
            404,
            _("This question is not part of your study"),
            _("Nothing was saved. Continue with your own questions from the study link."),
        )
    i18n.activate(target.language)
    if target.answered:
        # A double click, a reload, the back button: nothing new; on to the current trial.
        return redirect(url_for("participant.trial", slug=slug), 303)
    if not target.taking_answers:
        return _closed_since(slug, public_id)
    if not target.current:
        return render_error(
            400,
            _("Please answer the questions in order"),
            _(
                "That answer was for a later question, so it was not saved. "
                "Reload the study page to continue with the current one."
            ),
        )
    if delay.held_back(public_id, target.task, target.settings):
        # A test answer before its distractor or second session: nothing stored; the trial
        # page leads there.
        return redirect(url_for("participant.trial", slug=slug), 303)
    questions = forms.questions_for(target.task, target.settings, target.is_attention)
    form, valid = forms.read_answer(questions, request.form)
    if not valid:
        state = answers.page_state(slug, public_id, current_app.secret_key)
        message = _(
            "Your answer was not saved: %(reason)s", reason=forms.answer_error(questions, form)
        )
        if state is None or state.current is None:
            return render_error(400, _("Your answer was not saved"), message)
        return _render_trial(slug, state, message, 400)
    # Stored, or found answered meanwhile by a racing repeat of this POST, or refused by a
    # close in between: the trial page says which.
    _store(target, questions, forms.answers(questions, form))
    return redirect(url_for("participant.trial", slug=slug), 303)


def _closed_since(slug: str, public_id: str) -> WerkzeugResponse:
    """Answer a POST that the study's close refused: the "this study has closed" page."""
    study, participant = _flow_or_404(slug, public_id)
    if participant is not None and participant.status == "expired":
        # Refused because the participant's time ran out, not because the study closed.
        return _unavailable("expired", study=study, participant=participant)
    return _study_closed(slug, _title(study), participant is not None and participant.is_preview)


def _store(
    target: answers.AnswerTarget, questions: tuple[forms.Question, ...], values: dict[str, str]
) -> str:
    """Store a validated answer (each question's value); return the outcome (`answers.STORED`)."""
    return answers.store_answer(
        target,
        forms.measures(questions, values, target.left_source),
        answers.clean_rt(request.form.get("rt_ms")),
        answers.clean_timing(request.form, target.task, target.settings),
    )


def _unless_completed(
    slug: str, study: service.StudyView, participant: service.ParticipantView | None
) -> WerkzeugResponse | None:
    """The redirect of a page after the trials for a participant who has not completed them,
    or has a block's questions still to answer (to the link, or to where the participant
    stands); None for one who has."""
    if participant is None:
        return redirect(url_for("participant.entry", slug=slug))
    if participant.status != "completed" or (
        statements.takes_answers(study.state, participant.is_preview)
        and _block_questions_due(participant)
    ):
        return redirect(_next_url(slug, participant))
    return None


@bp.route("/s/<slug>/questions", methods=["GET", "POST"])
@participant_csrf.protected
def questions(slug: str):
    """Ask the study's questions once the trials are done; nothing is stored until all pass."""
    study, participant = _participant_or_entry(slug)
    elsewhere = _unless_completed(slug, study, participant)
    if elsewhere is not None:
        return elsewhere
    if (
        not _asks_demographics(study)
        or participant.demographics
        # A study that closed since the last answer takes no more answers: on to the debrief.
        or not statements.takes_answers(study.state, participant.is_preview)
    ):
        return redirect(url_for("participant.done", slug=slug), 303)
    asked = study_texts.asked_in(
        study, service.study_questions(study.id), participant_language(study)
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        if "skip" in request.form and not any(q.required for q in asked):
            return redirect(url_for("participant.done", slug=slug), 303)
        values, errors = questions_module.read_answers(asked, request.form)
        if not errors:
            service.save_demographics(db.session.get(Participant, participant.id), values)
            return redirect(url_for("participant.done", slug=slug), 303)
    return _page(
        "participant/questions.html",
        study=study,
        participant=participant,
        questions=asked,
        errors=errors,
        posted=request.form if request.method == "POST" else None,
        can_skip=not any(q.required for q in asked),
    ), 400 if errors else 200


@bp.route("/s/<slug>/step", methods=["GET", "POST"])
@participant_csrf.protected
def step(slug: str):
    """A page between trials: a block's instructions, a break, or a block's questions.

    Passing it is one conditional UPDATE of the page's number (`service.pass_step`): a reload,
    the back button or a second click passes nothing twice and stores no answer twice; a GET
    writes nothing.
    """
    study, participant = _participant_or_entry(slug)
    if participant is None:
        return redirect(url_for("participant.entry", slug=slug))
    if participant.consented_at is None or participant.status not in ("in_progress", "completed"):
        return redirect(_next_url(slug, participant))
    if not statements.takes_answers(study.state, participant.is_preview):
        if participant.status == "completed":
            return redirect(url_for("participant.done", slug=slug), 303)
        return _study_closed(slug, _title(study), participant.is_preview)
    where = service.flow_position(participant.id)
    found = block_flow.pending(
        where.steps, where.passed, where.current, participant.status == "completed"
    )
    onward = redirect(url_for("participant.trial", slug=slug), 303)
    if found is None:
        return onward
    number, due = found
    language = participant_language(study)
    asked = (
        study_texts.asked_in(study, service.block_questions(study.id, due["block"]), language)
        if due["kind"] == "questions"
        else []
    )
    errors: dict[str, str] = {}
    if request.method == "POST":
        if request.form.get("step") != str(number):
            # A page passed already (a reload, the back button, a double click): nothing more.
            return onward
        values: dict = {}
        if asked and not ("skip" in request.form and not any(q.required for q in asked)):
            values, errors = questions_module.read_answers(asked, request.form)
        if not errors:
            following = block_flow.next_at(where.steps, number + 1)
            service.pass_step(participant.id, where.passed, number, following, values)
            return onward
    order = where.block_order
    return _page(
        "participant/step.html",
        study=study,
        participant=participant,
        step=due,
        number=number,
        answered=int(due["at"]) - 1,
        total=where.total,
        instructions_html=(
            render_markdown(_block_instructions(study, due["block"], language))
            if due["kind"] == "instructions"
            else ""
        ),
        message=_break_message(study, language) if due["kind"] == "break" else "",
        block_number=(order.index(due["block"]) + 1) if due["block"] in order else None,
        blocks=len(order),
        questions=asked,
        errors=errors,
        posted=request.form if request.method == "POST" else None,
        can_skip=not any(q.required for q in asked),
    ), 400 if errors else 200


def _block_instructions(study: service.StudyView, block_name: str, language: str) -> str:
    """Return a block's instructions in the participant's language (else the default's)."""
    block_id, default = service.block_instructions(study.id, block_name)
    if block_id is None:
        return default
    return study_texts.text_for(study, f"block:{block_id}:instructions", language, default)


def _break_message(study: service.StudyView, language: str) -> str:
    """Return the study's break message in the participant's language (else the default's)."""
    message = block_flow.flow_settings(study.settings).message
    if not message.strip():
        return ""
    return study_texts.text_for(study, block_flow.MESSAGE_KEY, language, message)


@bp.get("/s/<slug>/done")
def done(slug: str):
    """The debrief: completion code, and the way back to the recruitment platform."""
    study, participant = _participant_or_entry(slug)
    elsewhere = _unless_completed(slug, study, participant)
    if elsewhere is not None:
        return elsewhere
    completion_url = study.completion_url if study.completion_url.startswith("https://") else ""
    platform = platform_name(participant, completion_url)
    # Only when the researcher asked for it; a preview run stays on the page.
    redirect_after = (
        ending.redirect_delay(study.settings)
        if completion_url and not participant.is_preview
        else None
    )
    return _page(
        "participant/done.html",
        study=study,
        participant=participant,
        debrief_html=render_markdown(
            study_texts.text_for(study, "debrief", participant_language(study))
        ),
        completion_url=completion_url,
        platform=platform,
        redirect_after=redirect_after,
        countdown_texts=_countdown_texts(platform, redirect_after or 0),
    )


def _countdown_texts(platform: str, seconds: int) -> list[str]:
    """Return the debrief's countdown note for each number of seconds left, 0 to `seconds`,
    in the page's language: the script shows them, and needs no plural rules of its own."""
    button = _("Return to %(platform)s", platform=platform)
    return [
        ngettext(
            "Taking you back to %(platform)s automatically in %(seconds)s second. "
            "To go now, select “%(button)s”.",
            "Taking you back to %(platform)s automatically in %(seconds)s seconds. "
            "To go now, select “%(button)s”.",
            left,
            platform=platform,
            seconds=i18n.format_number(left),
            button=button,
        )
        for left in range(seconds + 1)
    ]


@bp.route("/s/<slug>/withdraw", methods=["GET", "POST"])
@participant_csrf.protected
def withdraw(slug: str):
    """Confirm, then delete the participant's answers and mark them withdrawn."""
    study, participant = _participant_or_entry(slug)
    if participant is None:
        return redirect(url_for("participant.entry", slug=slug))
    if participant.status == "withdrawn":
        return redirect(url_for("participant.withdrawn", slug=slug), 303)
    form = forms.WithdrawForm()
    if form.validate_on_submit():
        service.withdraw(db.session.get(Participant, participant.id))
        return redirect(url_for("participant.withdrawn", slug=slug), 303)
    return _page(
        "participant/withdraw.html",
        study=study,
        participant=participant,
        form=form,
        back_url=_next_url(slug, participant),
        advice=ending.withdraw_advice(participant.source),
    )


@bp.get("/s/<slug>/withdrawn")
def withdrawn(slug: str):
    """Confirm a withdrawal."""
    study, participant = _participant_or_entry(slug)
    if participant is None or participant.status != "withdrawn":
        return redirect(url_for("participant.entry", slug=slug))
    return _page(
        "participant/message.html",
        study=study,
        participant=participant,
        title=_("You have withdrawn"),
        message=_("Your answers have been deleted. Thank you for your time."),
        advice=ending.withdraw_advice(participant.source),
    )


@bp.route("/s/<slug>/preview", methods=["GET", "POST"])
def preview(slug: str):
    """Let a researcher of the study run it as a flagged preview participant (drafts too)."""
    from survey.researcher.access import role_on

    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    study = service.study_by_slug(slug)
    if study is None or role_on(study.id) is None:
        abort(404)
    _speak(study, None)
    if not statements.takes_answers(study.state, True):
        return render_error(
            409,
            _("A closed study cannot be previewed"),
            _(
                "A closed or archived study stores no answers, a preview run's neither. "
                "Reopen the study to preview it."
            ),
        )
    form = forms.PreviewForm()
    if not form.validate_on_submit():
        return _page("participant/preview.html", study=study, form=form)
    try:
        participant = starting.start_participant(
            study,
            device=device_from_user_agent(request.user_agent.string),
            preview=True,
            consented=False,
            language=i18n.participant_language(study),
        )
    except starting.StudyUnavailable as exc:
        return _unavailable(exc.reason)
    except design.DesignError as exc:
        return _unavailable("broken", " ".join(exc.problems))
    response = redirect(url_for("participant.entry", slug=slug), 303)
    return _remember(response, slug, participant.public_id)


# --- images -----------------------------------------------------------------------------------


# Image ids' display files' storage keys are remembered by each worker (`hot_path`): a launch
# asks for the same few dozen images thousands of times a minute, and an id never changes its
# file. A deleted image's file is deleted too, so a remembered key then meets the storage's 404;
# only a later upload of the very same file to the same study would make its old id serve it
# again.
_DISPLAY_KEY = sa.select(Image.display_key).where(Image.public_id == sa.bindparam("public_id"))


def _display_key(public_id: str) -> str | None:
    """Return the storage key of an image's display file, or None for an unknown id."""
    known = hot_path.state().display_keys
    key = known.get(public_id)
    if key is None:
        key = db.session.scalar(_DISPLAY_KEY, {"public_id": public_id})
        service.end_read()
        if key is not None:
            known.put(public_id, key)
    return key


@bp.get("/img/<public_id>")
def image(public_id: str):
    """Send an image's display-size file; its content never changes, so caches keep it."""
    display_key = _display_key(public_id)
    if display_key is None:
        abort(404)
    etag = f"{public_id}-display"
    if request.if_none_match.contains(etag):
        response = current_app.response_class(status=304)
    else:
        try:
            source = storage().open(display_key)
        except (FileNotFoundError, ValueError):
            abort(404)
        mimetype = "image/webp" if display_key.endswith(".webp") else "image/jpeg"
        response = send_file(source, mimetype=mimetype, conditional=False)
    response.set_etag(etag)
    # Replaces send_file's own "no-cache", which contradicted "immutable".
    response.headers["Cache-Control"] = IMAGE_CACHE_CONTROL
    return response
