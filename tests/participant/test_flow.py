"""The participant flow through its pages: link, consent, trials, questions, debrief, withdrawal."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import (
    Image,
    Participant,
    RecruitmentId,
    Response,
    Study,
    StudyMember,
    Trial,
)
from survey.participant import starting
from survey.participant.recruitment import device_from_user_agent
from survey.participant.simulate import TOKEN, agree
from tests.helpers import DEMO_TRIALS, set_study
from tests.participant.support import answer_trials, count, first_answers, participants, trial_form

MOBILE_UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36"


# --- the whole way ------------------------------------------------------------------------------


def test_link_to_completion_code_stores_exactly_the_answers_given(app, client, demo):
    query = "?PROLIFIC_PID=5f0c1a2b3c4d5e6f7a8b9c0d&STUDY_ID=s123&SESSION_ID=x9"
    consent_page = client.get(f"/s/demo{query}")
    assert consent_page.status_code == 200
    assert "I agree, start the study" in consent_page.get_data(as_text=True)
    started = agree(client, "demo", query)
    assert started.status_code == 303 and started.headers["Location"].endswith(
        "/s/demo/instructions"
    )
    instructions = client.get("/s/demo/instructions").get_data(as_text=True)
    assert "Begin" in instructions and "practice" in instructions

    given = {}
    pages = 0
    while (form := trial_form(client)) is not None:
        pages += 1
        answers = first_answers(form)
        trial_id = int(form.action.rsplit("/", 1)[1])
        response = client.post(form.action, data={**answers, "rt_ms": str(500 + pages)})
        assert response.status_code == 303 and response.headers["Location"].endswith(
            "/s/demo/trial"
        )
        given[trial_id] = answers
    after = client.get("/s/demo/trial")
    assert after.headers["Location"].endswith("/s/demo/questions")
    questions = client.post(
        "/s/demo/questions", data={"age_band": "25_34", "gender": "woman", "save": "1"}
    )
    assert questions.headers["Location"].endswith("/s/demo/done")
    done = client.get("/s/demo/done").get_data(as_text=True)
    assert "LIKENESS-DEMO" in done and "Thank you" in done

    (p,) = participants(app)
    assert p.status == "completed" and p.completed_at is not None and p.consented_at is not None
    assert p.demographics == {"age_band": "25_34", "gender": "woman"}
    assert p.source == "prolific" and p.public_id != "5f0c1a2b3c4d5e6f7a8b9c0d"
    with app.app_context():
        trials = db.session.scalars(sa.select(Trial).where(Trial.participant_id == p.id)).all()
        stored = db.session.execute(
            sa.select(Response.trial_id, Response.measure, Response.value, Response.rt_ms)
        ).all()
        left_source = {t.id: t.left_source for t in trials}
        recruitment = db.session.scalar(sa.select(RecruitmentId))
        assert (recruitment.platform, recruitment.external_id) == (
            "prolific",
            "5f0c1a2b3c4d5e6f7a8b9c0d",
        )
        assert recruitment.params == {"STUDY_ID": "s123", "SESSION_ID": "x9"}
    assert pages == len(trials) == len(given)
    assert all(t.answered_at is not None for t in trials)
    expected = set()
    for trial_id, answers in given.items():
        for name, value in answers.items():
            measure = name.removeprefix("scale_")
            if measure == "choice":
                value = (
                    left_source[trial_id]
                    if value == "left"
                    else ({"real", "ai"} - {left_source[trial_id]}).pop()
                )
            expected.add((trial_id, measure, value))
    assert {(t, m, v) for t, m, v, _ in stored} == expected
    assert len(stored) == len(expected)
    assert all(rt is not None and rt > 500 for *_, rt in stored)


def test_every_task_and_an_attention_check_appear_in_the_demo(app, client, demo):
    agree(client, "demo")
    seen = set()
    while (form := trial_form(client)) is not None:
        seen.add(tuple(sorted(form.choices)))
        client.post(form.action, data=first_answers(form))
    assert {
        ("confidence", "same"),
        ("scale_professional", "scale_trust"),
        ("confidence", "source"),
        ("choice",),
        ("attention",),
    } <= seen


def test_trial_pages_show_progress_withdraw_link_and_no_condition(app, client, demo):
    agree(client, "demo")
    page = client.get("/s/demo/trial")
    text = page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert f'<progress id="progress" max="{DEMO_TRIALS}" value="0"' in text
    assert '<span class="long">Withdraw and delete my answers</span>' in text
    assert "Practice: this one does not count." in text
    # Nothing on the page tells the condition, the probe's identity or the instructed answer.
    assert not re.search(r"\b(real|ai)\b", text.split("<fieldset", 1)[0].split("data-trial", 1)[1])
    assert "is_match" not in text and "condition" not in text
    assert 'name="rt_ms"' in text and 'data-preload="/img/' in text


def _trial_page_through_the_layout(app) -> object:
    """Return trial.html's progress and form inside participant/layout.html, as it once was."""
    source = app.jinja_env.loader.get_source(app.jinja_env, "participant/trial.html")[0]
    progress = source[source.index('<div class="progress">') :]
    progress = progress[: progress.index("</div>\n") + len("</div>\n")]
    content = source[source.index("{% set sequential") :]
    content = content[: content.index("</form>\n") + len("</form>\n")]
    return app.jinja_env.from_string(
        '{% extends "participant/layout.html" %}\n'
        '{% set page_title = "Question " ~ trial.position ~ " of " ~ trial.total %}\n'
        "{% block survey_class %} trial-page{% endblock %}\n"
        f"{{% block progress %}}\n{progress}{{% endblock %}}\n"
        f"{{% block content %}}\n{content}{{% endblock %}}\n"
    )


def test_the_trial_page_matches_the_layout_of_every_participant_page(app, client, demo):
    # trial.html writes base.html and participant/layout.html out for speed: every trial page
    # (each task, practice, attention check, a refused answer) must be what they would give.
    from flask import template_rendered

    through_layout = _trial_page_through_the_layout(app)
    pages: list[tuple[str, str]] = []

    def compare(sender, template, context, **extra):
        if template.name == "participant/trial.html":
            pages.append((template.render(context), through_layout.render(context)))

    agree(client, "demo")
    with template_rendered.connected_to(compare, app):
        form = trial_form(client)
        refused = client.post(form.action, data={**form.hidden, "rt_ms": "900"})
        assert refused.status_code == 400
        while form is not None:
            client.post(form.action, data={**first_answers(form), **form.hidden, "rt_ms": "900"})
            form = trial_form(client)
    assert len(pages) >= DEMO_TRIALS + 1
    assert any('role="alert"' in flat for flat, _ in pages)
    for flat, inherited in pages:
        assert flat == inherited


def test_device_is_derived_from_the_user_agent_once(app, client, demo):
    client.get("/s/demo", headers={"User-Agent": MOBILE_UA})
    page = client.get("/s/demo").get_data(as_text=True)
    client.post(
        "/s/demo/consent",
        data={"token": TOKEN.search(page).group(1), "agree": "1"},
        headers={"User-Agent": MOBILE_UA},
    )
    assert participants(app)[0].device == "mobile"
    assert device_from_user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0") == "desktop"
    assert device_from_user_agent(None) == "desktop"


# --- pages for links that cannot start ----------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status", "title"),
    [
        ("draft", 403, "This study has not opened yet"),
        ("closed", 410, "This study is closed"),
        ("archived", 410, "This study is closed"),
    ],
)
def test_a_study_that_is_not_open_gets_a_clear_page(app, client, demo, state, status, title):
    set_study(app, demo, state=state)
    page = client.get("/s/demo?PROLIFIC_PID=abc")
    assert page.status_code == status
    assert title in page.get_data(as_text=True)
    consent = client.post("/s/demo/consent?PROLIFIC_PID=abc", data={"token": "x", "agree": "1"})
    assert consent.status_code == 400
    assert count(app, Participant) == 0


def test_consent_posted_after_the_study_closed_starts_nobody(app, client, demo):
    page = client.get("/s/demo").get_data(as_text=True)
    set_study(app, demo, state="closed")
    response = client.post(
        "/s/demo/consent", data={"token": TOKEN.search(page).group(1), "agree": "1"}
    )
    assert response.status_code == 410 and "This study is closed" in response.get_data(as_text=True)
    assert count(app, Participant) == 0


def test_an_unknown_link_gets_a_clear_404(client, app):
    page = client.get("/s/no-such-study")
    assert page.status_code == 404
    assert "This study link is not valid" in page.get_data(as_text=True)
    assert client.post("/s/no-such-study/consent", data={"agree": "1"}).status_code == 404
    assert client.get("/s/no-such-study/trial").status_code == 302


def test_a_full_study_turns_new_participants_away_but_lets_started_ones_continue(app, client, demo):
    set_study(app, demo, target_n=1)
    agree(client, "demo")
    newcomer = app.test_client()
    page = newcomer.get("/s/demo")
    assert page.status_code == 403 and "This study is full" in page.get_data(as_text=True)
    assert client.get("/s/demo").headers["Location"].endswith("/s/demo/instructions")
    assert trial_form(client) is not None


def test_full_counts_completed_participants_when_the_study_assigns_by_completed(app, client, demo):
    set_study(app, demo, target_n=1, assign_by="completed")
    agree(client, "demo")
    assert app.test_client().get("/s/demo").status_code == 200
    answer_trials(client, DEMO_TRIALS)
    assert app.test_client().get("/s/demo").status_code == 403


@pytest.mark.parametrize(
    "query",
    ["?PROLIFIC_PID={{%PROLIFIC_PID%}}", "?workerId=a%20b", "?PROLIFIC_PID=" + "x" * 200],
)
def test_a_malformed_recruitment_id_gets_a_400_and_starts_nobody(app, client, demo, query):
    page = client.get(f"/s/demo{query}")
    assert page.status_code == 400
    assert "This study link is incomplete" in page.get_data(as_text=True)
    assert (
        client.post(f"/s/demo/consent{query}", data={"token": "x", "agree": "1"}).status_code == 400
    )
    assert count(app, Participant) == 0


@pytest.mark.parametrize(
    ("query", "platform", "external_id", "params"),
    [
        (
            "?PROLIFIC_PID=abc&STUDY_ID=s&SESSION_ID=t",
            "prolific",
            "abc",
            {"STUDY_ID": "s", "SESSION_ID": "t"},
        ),
        (
            "?workerId=A1B2&assignmentId=X&hitId=H",
            "mturk",
            "A1B2",
            {"assignmentId": "X", "hitId": "H"},
        ),
        ("?id=12345", "sona", "12345", {}),
        ("?sona_id=777", "sona", "777", {}),
        ("?pid=panel-9", "link", "panel-9", {}),
    ],
)
def test_recruitment_ids_are_kept_apart_from_the_participant_id(
    app, client, demo, query, platform, external_id, params
):
    agree(client, "demo", query)
    (p,) = participants(app)
    with app.app_context():
        recruitment = db.session.scalar(sa.select(RecruitmentId))
        assert (recruitment.platform, recruitment.external_id, recruitment.params) == (
            platform,
            external_id,
            params,
        )
        assert recruitment.participant_id == p.id
    assert p.source == platform and p.public_id != external_id


# --- resuming -----------------------------------------------------------------------------------


def test_reload_and_back_resume_at_the_first_unanswered_trial(app, client, demo):
    agree(client, "demo")
    answered = answer_trials(client, 3)
    assert client.get("/s/demo").headers["Location"].endswith("/s/demo/trial")
    form = trial_form(client)
    assert int(form.action.rsplit("/", 1)[1]) not in {t for t, _ in answered}
    page = client.get("/s/demo/trial").get_data(as_text=True)
    assert 'value="3" aria-label="Progress"' in page


def test_a_recruitment_id_resumes_its_own_session_in_another_browser(app, client, demo):
    query = "?PROLIFIC_PID=returning1&STUDY_ID=s1&SESSION_ID=attempt-7f3a"
    agree(client, "demo", query)
    answer_trials(client, 4)
    other = app.test_client()  # the next day, another browser, no cookie
    resumed = other.get(f"/s/demo{query}")
    assert resumed.status_code == 302 and resumed.headers["Location"].endswith("/s/demo/trial")
    assert 'value="4" aria-label="Progress"' in other.get("/s/demo/trial").get_data(as_text=True)
    # Posting the consent again (an old tab) resumes too; it never starts a second participant.
    third = app.test_client()
    page = third.get("/s/demo").get_data(as_text=True)
    again = third.post(
        f"/s/demo/consent{query}", data={"token": TOKEN.search(page).group(1), "agree": "1"}
    )
    assert again.status_code == 303 and again.headers["Location"].endswith("/s/demo/trial")
    assert len(participants(app)) == 1


@pytest.mark.parametrize(
    "query",
    [
        "?PROLIFIC_PID=victim1",  # the platform id alone
        "?PROLIFIC_PID=victim1&STUDY_ID=s1&SESSION_ID=guessed",  # with another attempt's id
        "?workerId=VICTIM1",  # MTurk without the assignment
        "?sona_id=4242",  # SONA has no per-attempt parameter: only the own browser resumes
    ],
)
def test_a_recruitment_id_alone_does_not_hand_over_someone_elses_session(app, client, demo, query):
    own = {
        "?PROLIFIC_PID=victim1": "?PROLIFIC_PID=victim1&STUDY_ID=s1&SESSION_ID=real-session",
        "?PROLIFIC_PID=victim1&STUDY_ID=s1&SESSION_ID=guessed": (
            "?PROLIFIC_PID=victim1&STUDY_ID=s1&SESSION_ID=real-session"
        ),
        "?workerId=VICTIM1": "?workerId=VICTIM1&assignmentId=A9&hitId=H1",
        "?sona_id=4242": "?sona_id=4242",
    }[query]
    agree(client, "demo", own)
    answer_trials(client, 2)
    attacker = app.test_client()
    page = attacker.get(f"/s/demo{query}")
    assert page.status_code == 409
    assert "You already started this study in another browser" in page.text
    assert attacker.get_cookie("likeness_participant", path="/s/demo") is None
    # Posting a consent with the id is refused the same way, and withdraws nobody.
    token = TOKEN.search(attacker.get("/s/demo").text).group(1)
    posted = attacker.post(f"/s/demo/consent{query}", data={"token": token, "agree": "1"})
    assert posted.status_code == 409
    assert attacker.get_cookie("likeness_participant", path="/s/demo") is None
    assert attacker.post("/s/demo/withdraw", data={"confirm": "1"}).status_code == 302
    (victim,) = participants(app)
    assert victim.status == "in_progress" and count(app, Response) > 0
    # The participant's own browser still resumes with the same link.
    assert client.get(f"/s/demo{own}").headers["Location"].endswith("/s/demo/trial")


def test_a_double_clicked_consent_starts_one_participant(app, client, demo):
    page = client.get("/s/demo").get_data(as_text=True)
    data = {"token": TOKEN.search(page).group(1), "agree": "1"}
    first = client.post("/s/demo/consent", data=data)
    second = client.post("/s/demo/consent", data=data)
    assert first.status_code == second.status_code == 303
    assert len(participants(app)) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(Study.participants_started)) == 1
    # The token alone (read from the page's HTML) does not open that participant in another
    # browser: there it starts a participant of its own.
    other = app.test_client()
    other.get("/s/demo")
    assert other.post("/s/demo/consent", data=data).status_code == 303
    assert len({p.public_id for p in participants(app)}) == 2
    assert other.get_cookie("likeness_participant", path="/s/demo").value != (
        client.get_cookie("likeness_participant", path="/s/demo").value
    )


def test_a_forged_consent_token_is_refused(app, client, demo):
    response = client.post("/s/demo/consent", data={"token": "forged", "agree": "1"})
    assert response.status_code == 400
    assert "damaged" in response.get_data(as_text=True)
    assert count(app, Participant) == 0


def test_a_completed_participant_sees_the_debrief_again(app, client, demo):
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    assert client.get("/s/demo/trial").headers["Location"].endswith("/s/demo/questions")
    client.post("/s/demo/questions", data={"skip": "1"})
    assert participants(app)[0].demographics == {}
    assert client.get("/s/demo").headers["Location"].endswith("/s/demo/done")
    assert client.get("/s/demo/trial").headers["Location"].endswith("/s/demo/questions")
    assert "LIKENESS-DEMO" in client.get("/s/demo/done").get_data(as_text=True)


def test_declining_records_nothing(app, client, demo):
    page = client.get("/s/demo").get_data(as_text=True)
    response = client.post(
        "/s/demo/consent", data={"token": TOKEN.search(page).group(1), "decline": "1"}
    )
    assert response.status_code == 200
    assert "You chose not to take part" in response.get_data(as_text=True)
    assert count(app, Participant) == 0


def test_pages_after_consent_need_a_participant(app, client, demo):
    for path in (
        "/s/demo/instructions",
        "/s/demo/trial",
        "/s/demo/questions",
        "/s/demo/done",
        "/s/demo/withdraw",
        "/s/demo/withdrawn",
    ):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/s/demo"), (
            path
        )
    assert client.post("/s/demo/trial/1", data={"same": "1"}).status_code == 303
    assert count(app, Response) == 0


def test_pages_out_of_turn_send_the_participant_to_the_current_step(app, client, demo):
    agree(client, "demo")
    assert client.get("/s/demo/questions").headers["Location"].endswith("/s/demo/instructions")
    assert client.get("/s/demo/done").headers["Location"].endswith("/s/demo/instructions")
    assert client.get("/s/demo/withdrawn").headers["Location"].endswith("/s/demo")


# --- demographics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"age_band": "7", "save": "1"}, "Choose one of the options shown."),
        ({"gender": "robot", "age_band": "18_24", "save": "1"}, "Choose one of the options shown."),
        ({"ai_familiarity": "6", "save": "1"}, "Choose a point from 1 to 5."),
    ],
)
def test_demographics_are_validated(app, client, demo, data, message):
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    response = client.post("/s/demo/questions", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    # Nothing half-written: the valid answers beside the bad one are not stored either.
    assert participants(app)[0].demographics == {}


def test_demographics_are_stored_once_and_never_overwritten(app, client, demo):
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    client.post("/s/demo/questions", data={"ai_familiarity": "4", "save": "1"})
    again = client.post("/s/demo/questions", data={"ai_familiarity": "2", "save": "1"})
    assert again.headers["Location"].endswith("/s/demo/done")
    assert participants(app)[0].demographics == {"ai_familiarity": 4}


def test_a_study_can_leave_out_the_demographics(app, client, demo):
    set_study(app, demo, settings={"demographics": False})
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    assert client.get("/s/demo/trial").headers["Location"].endswith("/s/demo/done")
    assert client.get("/s/demo/questions").headers["Location"].endswith("/s/demo/done")


# --- completion ---------------------------------------------------------------------------------


def test_an_https_completion_url_gets_a_return_link_and_no_automatic_redirect(app, client, demo):
    set_study(app, demo, completion_url="https://app.prolific.com/submissions/complete?cc=C0DE")
    agree(client, "demo", "?PROLIFIC_PID=p1")
    answer_trials(client, DEMO_TRIALS)
    page = client.get("/s/demo/done").get_data(as_text=True)
    assert 'href="https://app.prolific.com/submissions/complete?cc=C0DE"' in page
    assert "Return to Prolific" in page
    # Off unless the researcher asks for it (tests/participant/test_ending.py).
    assert "data-redirect-after" not in page and 'http-equiv="refresh"' not in page


def test_a_completion_url_that_is_not_https_is_not_offered(app, client, demo):
    set_study(app, demo, completion_url="javascript:alert(1)")
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    page = client.get("/s/demo/done").get_data(as_text=True)
    assert "javascript:" not in page and "Return to" not in page


# --- withdrawal ---------------------------------------------------------------------------------


def test_withdrawal_asks_for_confirmation_then_deletes_the_answers(app, client, demo):
    query = "?PROLIFIC_PID=leaving1&STUDY_ID=s"
    agree(client, "demo", query)
    answer_trials(client, 5)
    confirm = client.get("/s/demo/withdraw")
    assert confirm.status_code == 200
    assert "Yes, withdraw and delete my answers" in confirm.get_data(as_text=True)
    assert count(app, Response) > 0
    response = client.post("/s/demo/withdraw", data={"confirm": "1"})
    assert response.headers["Location"].endswith("/s/demo/withdrawn")
    assert "Your answers have been deleted" in client.get("/s/demo/withdrawn").get_data(
        as_text=True
    )
    (p,) = participants(app)
    assert p.status == "withdrawn" and p.withdrawn_at is not None and p.demographics == {}
    assert count(app, Response) == count(app, Trial) == 0
    with app.app_context():
        recruitment = db.session.scalar(sa.select(RecruitmentId))
        # The platform id itself is gone; its digest still refuses a second start.
        assert (
            recruitment.external_id.startswith("sha256:")
            and "leaving1" not in recruitment.external_id
        )
        assert recruitment.params == {}
        assert starting.list_counts(db.session.get(Study, demo)) == [0, 0, 0, 0]
    assert client.get("/s/demo").headers["Location"].endswith("/s/demo/withdrawn")
    # Another browser with the same id starts nobody (and opens nobody's session).
    other = app.test_client()
    assert other.get(f"/s/demo{query}").status_code == 409
    assert agree(other, "demo", query).status_code == 409
    assert len(participants(app)) == 1


def test_withdrawal_is_offered_on_every_page_of_a_participant(app, client, demo):
    agree(client, "demo")
    for path in ("/s/demo/instructions", "/s/demo/trial"):
        assert "/s/demo/withdraw" in client.get(path).get_data(as_text=True), path
    answer_trials(client, DEMO_TRIALS)
    for path in ("/s/demo/questions", "/s/demo/done"):
        assert "/s/demo/withdraw" in client.get(path).get_data(as_text=True), path
    client.post("/s/demo/withdraw", data={"confirm": "1"})
    assert participants(app)[0].status == "withdrawn"


def test_answers_after_withdrawal_are_not_stored(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    client.post("/s/demo/withdraw", data={"confirm": "1"})
    response = client.post(form.action, data=first_answers(form))
    assert response.status_code == 404
    assert count(app, Response) == 0


# --- preview runs -------------------------------------------------------------------------------


def test_a_preview_needs_a_researcher_of_the_study(app, client, demo, make_researcher, auth):
    response = client.post("/s/demo/preview")
    assert response.status_code == 302 and "/r/login" in response.headers["Location"]
    stranger = make_researcher(email="stranger@example.org")
    auth.sign_in(stranger)
    assert client.post("/s/demo/preview").status_code == 404
    assert count(app, Participant) == 0


def test_a_viewer_previews_a_draft_study_as_a_flagged_participant(
    app, client, demo, make_researcher, auth
):
    set_study(app, demo, state="draft")
    viewer = make_researcher(email="viewer@example.org")
    with app.app_context():
        db.session.add(StudyMember(study_id=demo, researcher_id=viewer, role="viewer"))
        db.session.commit()
    auth.sign_in(viewer)
    assert "Start a preview run" in client.get("/s/demo/preview").get_data(as_text=True)
    started = client.post("/s/demo/preview", data={"start": "1"})
    assert started.headers["Location"].endswith("/s/demo")
    consent_page = client.get("/s/demo").get_data(as_text=True)
    assert "Preview" in consent_page and "I agree" in consent_page
    agree(client, "demo")
    assert "preview-flag" in client.get("/s/demo/trial").get_data(as_text=True)
    answer_trials(client, 2)
    (p,) = participants(app)
    assert p.is_preview and p.consented_at is not None
    with app.app_context():
        study = db.session.get(Study, demo)
        assert study.participants_started == 0
        assert starting.list_counts(study) == [0, 0, 0, 0]
    # The draft stays closed to everyone else.
    assert app.test_client().get("/s/demo").status_code == 403


# --- images and pages ---------------------------------------------------------------------------


def test_images_are_served_display_size_with_long_immutable_caching(app, client, demo):
    with app.app_context():
        image = db.session.scalars(sa.select(Image).order_by(Image.id)).first()
        public_id, display_key = image.public_id, image.display_key
    with client.get(f"/img/{public_id}") as response:
        body = response.data
    assert response.status_code == 200
    assert response.mimetype in ("image/jpeg", "image/webp")
    # One policy, nothing contradicting it (send_file alone would add "no-cache").
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"]
    with app.app_context():
        from survey.media import storage

        assert body == storage().get(display_key)
    again = client.get(f"/img/{public_id}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get("/img/not-an-image").status_code == 404


def test_study_texts_are_rendered_as_safe_markdown(app, client, demo):
    set_study(
        app, demo, consent_text="**Hello** <script>alert(1)</script> [x](javascript:alert(1))"
    )
    page = client.get("/s/demo").get_data(as_text=True)
    assert "<strong>Hello</strong>" in page
    assert "<script>alert" not in page and 'href="javascript' not in page


def test_an_expired_form_explains_itself_and_stores_nothing(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post(form.action, data=first_answers(form))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "This page had expired" in text and 'href="/s/demo"' in text
    assert count(app, Response) == 0


def test_with_csrf_on_a_real_form_round_trip_works(app, client, demo):
    app.config["WTF_CSRF_ENABLED"] = True
    assert agree(client, "demo").status_code == 303
    form = trial_form(client)
    response = client.post(form.action, data={**first_answers(form), "csrf_token": form.csrf_token})
    assert response.status_code == 303
    assert count(app, Response) >= 1


def test_a_consent_token_another_studys_participant_holds_starts_with_a_fresh_id(app, demo):
    with app.app_context():
        study = db.session.get(Study, demo)
        first = starting.start_or_resume(study, public_id="tokenholder1")
        assert first.started and first.public_id == "tokenholder1"
        # The same token again in the same study (a double click): that participant, resumed.
        again = starting.start_or_resume(study, public_id="tokenholder1")
        assert not again.started and again.participant.id == first.participant.id
        # Ids are unique across studies: when another study's participant holds the token's
        # id, the new participant gets an id of its own.
        other = Study(slug="other-study", title="Other", state="open")
        db.session.add(other)
        db.session.flush()
        db.session.get(Participant, first.participant.id).study_id = other.id
        db.session.commit()
        fresh = starting.start_or_resume(db.session.get(Study, demo), public_id="tokenholder1")
        assert fresh.started and fresh.public_id != "tokenholder1"
        assert db.session.get(Participant, fresh.participant.id).public_id == fresh.public_id
