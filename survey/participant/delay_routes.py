"""Participant pages of a memory study's delay: the timed distractor, the end of the first
session with its return link, and the return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import abort, current_app, redirect, request, url_for
from flask_babel import format_date, format_time, ngettext
from flask_babel import gettext as _
from markupsafe import Markup

from survey import i18n
from survey.extensions import db
from survey.models import Participant
from survey.participant import bp, delay, service, statements
from survey.participant import csrf as participant_csrf
from survey.participant.routes import (
    _flow_or_404,
    _next_url,
    _page,
    _participant_or_entry,
    _remember,
    _study_closed,
    _title,
    _unavailable,
)


def _gate(slug: str, gate: str) -> tuple[service.StudyView, Participant, delay.Delay]:
    """Return (study, participant row, delay) when this browser's participant stands at the
    gate; else answer with the way to where the participant stands (abort)."""
    study, view = _participant_or_entry(slug)
    if view is None or view.consented_at is None or view.status != "in_progress":
        target = url_for("participant.entry", slug=slug) if view is None else _next_url(slug, view)
        abort(redirect(target))
    if not statements.takes_answers(study.state, view.is_preview):
        abort(_study_closed(slug, _title(study), view.is_preview))
    participant = db.session.get(Participant, view.id)
    wait = delay.study_delay(study.id)
    if wait is None or delay.pending(participant, wait) != gate or not _at_test(participant):
        abort(redirect(url_for("participant.trial", slug=slug), 303))
    return study, participant, wait


def _at_test(participant: Participant) -> bool:
    """Tell whether the participant's next unanswered trial is a test (recognise) trial."""
    trial = next((t for t in participant.trials if t.answered_at is None), None)
    return trial is not None and trial.task == "recognise"


@bp.route("/s/<slug>/distractor", methods=["GET", "POST"])
@participant_csrf.protected
def distractor(slug: str):
    """A set time of simple sums before the test phase; it cannot be left early."""
    study, participant, wait = _gate(slug, delay.DISTRACTOR)
    error, status = "", 200
    if request.method == "POST":
        action = request.form.get("action")
        if action == "start":
            delay.start_distractor(participant.id)
            return redirect(url_for("participant.distractor", slug=slug), 303)
        if action == "continue":
            if delay.end_distractor(participant.id, wait):
                return redirect(url_for("participant.trial", slug=slug), 303)
            db.session.refresh(participant)
            error = _("The task is not over yet: please keep going until the time is up.")
            status = 409
        elif action == "answer":
            answer = delay.read_answer(request.form.get("answer"))
            number = request.form.get("number", "")
            if answer is None or not number.isdigit():
                error = _("Type the result as a number, for example %(example)s.", example=42)
                status = 400
            else:
                delay.count_answer(participant, int(number), answer, wait)
                return redirect(url_for("participant.distractor", slug=slug), 303)
        else:
            abort(400)
    left = delay.seconds_left(participant, wait)
    number = participant.distractor_answered
    return (
        _page(
            "participant/distractor.html",
            study=study,
            participant=_participant_or_entry(slug)[1],
            started=participant.distractor_started_at is not None,
            seconds=wait.distractor_s,
            left=left,
            number=number,
            problem=delay.problem(participant.seed, number)[0],
            error=error,
            countdown_texts=_countdown_texts(left),
        ),
        status,
    )


def _countdown_texts(seconds: int) -> list[str]:
    """Return the distractor's "time left" line for each number of seconds, 0 to `seconds`, in
    the page's language: the script shows them, and needs no plural rules of its own."""
    return [
        ngettext(
            "Time left: %(seconds)s second",
            "Time left: %(seconds)s seconds",
            left,
            seconds=i18n.format_number(left),
        )
        for left in range(seconds + 1)
    ]


@bp.route("/s/<slug>/later", methods=["GET", "POST"])
@participant_csrf.protected
def later(slug: str):
    """The end of the first session: the return link and code, and when the test opens."""
    study, participant, wait = _gate(slug, delay.LATER)
    if request.method == "POST":
        delay.start_waiting(participant, wait)
        return redirect(url_for("participant.later", slug=slug), 303)
    return _page(
        "participant/later.html",
        study=study,
        participant=_participant_or_entry(slug)[1],
        row=participant,
        delay_days=wait.delay_hours // 24 if wait.delay_hours % 24 == 0 else 0,
        delay_hours=wait.delay_hours,
        code_page_html=_link_html(url_for("participant.come_back", slug=slug, _external=True)),
        **_return_context(slug, participant),
    )


def _return_context(slug: str, participant: Participant) -> dict:
    """What the pages of a second session show: the link, the code and when it opens."""
    if participant.return_code is None:
        return {"link": "", "code": "", "due_html": "", "open": False}
    link = url_for("participant.come_back", slug=slug, code=participant.return_code, _external=True)
    due = participant.return_due_at
    return {
        "link": link,
        "code": delay.shown_code(participant.return_code),
        "due_html": _due_html(due) if due is not None else "",
        "open": due is not None and due <= delay.utcnow(),
    }


def _link_html(url: str) -> Markup:
    """Return a link to `url` showing the address (left to right in any page)."""
    return Markup('<a href="{0}" dir="ltr">{0}</a>').format(url)


def _due_html(due: datetime) -> Markup:
    """Return when a second session opens, in the page's language and in UTC; the script
    rewrites it in the browser's own time with the words of `data-local`. The minute shown is
    rounded up, so that a participant who comes at the time shown finds the session open."""
    if due.second or due.microsecond:
        due = due.replace(second=0, microsecond=0) + timedelta(minutes=1)
    shown = _(
        "%(date)s at %(time)s UTC",
        date=format_date(due, "full"),
        time=format_time(due, "short"),
    )
    return Markup('<strong><time datetime="{}" data-local="{}">{}</time></strong>').format(
        due.astimezone(UTC).isoformat(timespec="seconds"),
        _("%(time)s, your local time"),
        shown,
    )


@bp.route("/s/<slug>/return", methods=["GET", "POST"])
@participant_csrf.protected
def come_back(slug: str):
    """The return link of a second session (or the form to type its code)."""
    study, _view = _flow_or_404(slug)
    raw = request.values.get("code")
    code = delay.clean_code(raw)
    participant = delay.by_code(study.id, code) if code else None
    if participant is not None and participant.consented_at is not None:
        i18n.activate_for(study, participant.language)  # the language the study was begun in
    if participant is None:
        status = 200 if raw is None else 404
        error = (
            ""
            if raw is None
            else _("That code is not one of this study's. Check it and try again.")
        )
        return _page(
            "participant/come_back.html", study=study, error=error, typed=raw or ""
        ), status
    if participant.status == "expired":
        return _unavailable("expired", study=study)
    if participant.status != "in_progress":
        return _page(
            "participant/message.html",
            study=study,
            title=_("This session has ended"),
            message=_(
                "The study has nothing more for this code: it was finished or withdrawn. "
                "Thank you for taking part."
            ),
        ), 410
    context = _return_context(slug, participant)
    if request.method == "POST":
        if delay.come_back(participant.id):
            response = redirect(url_for("participant.trial", slug=slug), 303)
            return _remember(response, slug, participant.public_id)
        return _page(
            "participant/come_back.html", study=study, row=participant, early=True, **context
        ), 403
    if not context["open"]:
        response = current_app.response_class(
            _page("participant/come_back.html", study=study, row=participant, early=True, **context)
        )
        response.headers["Retry-After"] = str(
            max(1, int((participant.return_due_at - delay.utcnow()).total_seconds()))
        )
        return response
    return _page("participant/come_back.html", study=study, row=participant, **context)
