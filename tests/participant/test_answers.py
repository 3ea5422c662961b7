"""Answers: each task's checks, repeated and forged POSTs, trials out of turn, response times."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from survey import create_app
from survey.extensions import db
from survey.models import Block, Response, Trial
from survey.participant import answers, hotdb, routes
from survey.participant.simulate import agree
from tests.helpers import DEMO_TRIALS, refreeze
from tests.participant.support import (
    TASK_FIELDS,
    advance_to,
    answer_trials,
    count,
    first_answers,
    participants,
    responses,
    trial_at,
    trial_form,
    trial_id,
)

# An answer is posted as a browser posts it, with the page's signed ticket (stored by the one
# claiming statement), and without one (read from the database first): both must behave alike.
VIA = pytest.mark.parametrize("via", ["ticket", "database"])


def post(client, form, data: dict[str, str], via: str):
    """POST an answer to a trial form, with the page's hidden fields when `via` is "ticket"."""
    hidden = form.hidden if via == "ticket" else {}
    assert via != "ticket" or hidden.get("ticket"), "the trial page carries no ticket"
    return client.post(form.action, data={**hidden, **data})


def trial_row(app, trial: int) -> Trial:
    """Load a trial."""
    with app.app_context():
        return db.session.get(Trial, trial)


@pytest.mark.parametrize(
    ("fields", "posted", "stored"),
    [
        (TASK_FIELDS["match"], {"same": "0", "confidence": "4"}, {"same": "0", "confidence": "4"}),
        (
            TASK_FIELDS["rate"],
            {"scale_trust": "7", "scale_professional": "1"},
            {"trust": "7", "professional": "1"},
        ),
        (
            TASK_FIELDS["detect"],
            {"source": "ai", "confidence": "5"},
            {"source": "ai", "confidence": "5"},
        ),
    ],
)
@VIA
def test_each_task_stores_its_measures(app, client, demo, lookups, fields, posted, stored, via):
    agree(client, "demo")
    form = advance_to(client, fields)
    lookups.clear()
    response = post(client, form, {**posted, "rt_ms": "1234.5"}, via)
    assert response.status_code == 303
    assert responses(app, trial_id(form)) == {m: (v, 1234.5) for m, v in stored.items()}
    # With the ticket, the answer needed no query of its own before the one that stores it.
    assert lookups == ([] if via == "ticket" else [trial_id(form)])


@VIA
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_choice_of_side_is_stored_as_the_source_shown_there(
    app, client, demo, lookups, side, via
):
    agree(client, "demo")
    form = advance_to(client, TASK_FIELDS["choose"])
    lookups.clear()
    assert post(client, form, {"choice": side}, via).status_code == 303
    left = trial_row(app, trial_id(form)).left_source
    expected = left if side == "left" else ({"real", "ai"} - {left}).pop()
    assert responses(app, trial_id(form)) == {"choice": (expected, None)}
    assert lookups == ([] if via == "ticket" else [trial_id(form)])


def test_every_choice_of_side_is_stored_right_through_the_tickets(app, client, demo):
    agree(client, "demo")
    stored = 0
    while (form := trial_form(client)) is not None:
        side = "right" if trial_id(form) % 2 else "left"
        data = {"choice": side} if "choice" in form.choices else first_answers(form)
        assert post(client, form, data, "ticket").status_code == 303
        if "choice" in form.choices:
            left = trial_row(app, trial_id(form)).left_source
            expected = left if side == "left" else ({"real", "ai"} - {left}).pop()
            assert responses(app, trial_id(form)) == {"choice": (expected, None)}
            stored += 1
    assert stored >= 4


def test_an_attention_check_is_recorded_as_such(app, client, demo):
    agree(client, "demo")
    form = advance_to(client, {"attention"})
    page = client.get("/s/demo/trial").get_data(as_text=True)
    trial = trial_row(app, trial_id(form))
    assert trial.is_attention and trial.attention_answer is not None
    assert "Attention check: for this one, choose" in page
    client.post(form.action, data={"attention": form.choices["attention"][-1]})
    assert responses(app, trial_id(form)) == {"attention": (form.choices["attention"][-1], None)}


def test_the_rate_attention_check_names_the_value_to_choose(app, client, demo):
    agree(client, "demo")
    advance_to(client, TASK_FIELDS["rate"])
    form = advance_to(client, {"attention"})
    trial = trial_row(app, trial_id(form))
    page = client.get("/s/demo/trial").get_data(as_text=True)
    assert f"Attention check: for this photo, choose {trial.attention_answer}." in page
    assert form.choices["attention"] == [str(v) for v in range(1, 8)]


@pytest.mark.parametrize(
    ("fields", "posted", "message"),
    [
        (TASK_FIELDS["match"], {"same": "2", "confidence": "3"}, "Not a valid choice"),
        (TASK_FIELDS["match"], {"same": "1", "confidence": "6"}, "Not a valid choice"),
        (TASK_FIELDS["match"], {"same": "1", "confidence": "0"}, "Not a valid choice"),
        (TASK_FIELDS["match"], {"confidence": "3"}, "Please answer “Same person?”"),
        (
            TASK_FIELDS["rate"],
            {"scale_trust": "8", "scale_professional": "4"},
            "Not a valid choice",
        ),
        (
            TASK_FIELDS["rate"],
            {"scale_trust": "-1", "scale_professional": "4"},
            "Not a valid choice",
        ),
        (TASK_FIELDS["rate"], {"scale_trust": "4"}, "Please answer “How professional"),
        (
            TASK_FIELDS["rate"],
            {"scale_trust": "4.5", "scale_professional": "4"},
            "Not a valid choice",
        ),
        (TASK_FIELDS["detect"], {"source": "fake", "confidence": "3"}, "Not a valid choice"),
        (TASK_FIELDS["detect"], {"source": "real", "confidence": "99"}, "Not a valid choice"),
        (TASK_FIELDS["choose"], {"choice": "middle"}, "Not a valid choice"),
        (TASK_FIELDS["choose"], {"choice": ""}, "Please answer “Which photo do you trust more?”"),
        ({"attention"}, {"attention": "maybe"}, "Not a valid choice"),
    ],
)
@VIA
def test_a_forged_or_out_of_range_answer_gets_a_400_and_stores_nothing(
    app, client, demo, fields, posted, message, via
):
    agree(client, "demo")
    form = advance_to(client, fields)
    before = count(app, Response)
    response = post(client, form, posted, via)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Your answer was not saved" in text and message in text
    assert count(app, Response) == before
    assert trial_row(app, trial_id(form)).answered_at is None
    # The participant can still answer the same trial properly.
    assert trial_id(trial_form(client)) == trial_id(form)
    assert client.post(form.action, data=first_answers(form)).status_code == 303


@pytest.mark.slow
@VIA
def test_a_repeated_post_stores_nothing_and_cannot_change_the_answer(app, client, demo, via):
    agree(client, "demo")
    form = advance_to(client, TASK_FIELDS["detect"])
    assert (
        post(client, form, {"source": "real", "confidence": "2", "rt_ms": "800"}, via).status_code
        == 303
    )
    stored = responses(app, trial_id(form))
    total = count(app, Response)
    # A double click, a reload that re-posts, the back button: the same or another answer.
    for data in ({"source": "real", "confidence": "2"}, {"source": "ai", "confidence": "5"}):
        again = post(client, form, data, via)
        assert again.status_code == 303 and again.headers["Location"].endswith("/s/demo/trial")
    # Even a forged value on an answered trial changes nothing (and is no error).
    assert post(client, form, {"source": "nonsense"}, via).status_code == 303
    assert responses(app, trial_id(form)) == stored and count(app, Response) == total
    assert trial_id(trial_form(client)) != trial_id(form)


def test_an_answer_to_a_later_trial_is_refused(app, client, demo):
    agree(client, "demo")
    current = trial_form(client)
    (p,) = participants(app)
    later = trial_at(app, p.id, 5).id
    response = client.post(f"/s/demo/trial/{later}", data={"same": "1", "confidence": "3"})
    assert response.status_code == 400
    assert "Please answer the questions in order" in response.get_data(as_text=True)
    assert count(app, Response) == 0
    assert trial_id(trial_form(client)) == trial_id(current)


def test_an_answer_to_another_participants_trial_is_refused(app, client, demo):
    agree(client, "demo")
    other = app.test_client()
    agree(other, "demo")
    theirs = trial_form(other)
    response = client.post(theirs.action, data=first_answers(theirs))
    assert response.status_code == 404
    assert "This question is not part of your study" in response.get_data(as_text=True)
    assert client.post("/s/demo/trial/999999", data={"same": "1"}).status_code == 404
    assert count(app, Response) == 0


def test_an_answer_posted_under_another_studys_link_is_refused(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    response = client.post(form.action.replace("/s/demo/", "/s/other/"), data=first_answers(form))
    assert response.status_code in (303, 404)
    assert count(app, Response) == 0


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("850.25", 850.2),
        ("", None),
        ("0", None),
        ("-3", None),
        ("abc", None),
        ("nan", None),
        ("inf", None),
        # Implausible but possible times are kept (the export flags them), not dropped.
        ("600000", 600000.0),
        ("600001", 600001.0),
        ("599999", 599999.0),
        ("12", 12.0),
        ("2591999999", 2591999999.0),
        # Longer than a trial page can stay open (the participant cookie lasts 30 days).
        ("2592000000", None),
        ("1e12", None),
        ("0.04", None),
        ("0.05", 0.1),
        ("1e400", None),
    ],
)
def test_a_bad_response_time_is_stored_as_missing_never_refused(app, client, demo, raw, stored):
    agree(client, "demo")
    form = trial_form(client)
    response = client.post(form.action, data={**first_answers(form), "rt_ms": raw})
    assert response.status_code == 303
    assert {rt for _, rt in responses(app, trial_id(form)).values()} == {stored}


def test_the_last_answer_completes_the_participant(app, client, demo):
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS - 1)
    assert participants(app)[0].status == "in_progress"
    answer_trials(client, 1)
    (p,) = participants(app)
    assert p.status == "completed" and p.completed_at is not None


def test_concurrent_duplicate_posts_store_the_answer_once(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    cookie = client.get_cookie("likeness_participant", path="/s/demo")
    barrier = threading.Barrier(6)
    statuses = []

    def post() -> None:
        twin = app.test_client()
        twin.set_cookie("likeness_participant", cookie.value, path="/s/demo")
        barrier.wait()
        statuses.append(twin.post(form.action, data=first_answers(form)).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [303] * 6
    assert len(responses(app, trial_id(form))) == len(form.choices)
    assert count(app, Response) == len(form.choices)


@pytest.mark.slow
def test_store_answer_reports_repeats_and_order_and_the_unique_key_guards_a_race(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    (p,) = participants(app)
    with app.test_request_context():
        later = answers.answer_target("demo", p.public_id, trial_id(form) + 1)
        assert later is not None and not later.current and not later.answered
        assert answers.store_answer(later, [("same", "1")], None) == answers.NOT_CURRENT
        target = answers.answer_target("demo", p.public_id, trial_id(form))
        assert target.current and not target.answered
        assert (
            answers.store_answer(target, [("same", "1"), ("confidence", "2")], None)
            == answers.STORED
        )
        # The same target again (looked up before the first was stored): the claim finds the
        # trial answered and stores nothing.
        assert answers.store_answer(target, [("same", "0")], None) == answers.REPEAT
        assert answers.answer_target("demo", p.public_id, trial_id(form)).answered
        # A claim that slipped through (as if two requests claimed at once) hits the unique key.
        db.session.execute(
            sa.update(Trial).where(Trial.id == trial_id(form)).values(answered_at=None)
        )
        db.session.commit()
        assert answers.store_answer(target, [("same", "0")], None) == answers.REPEAT
        # Another participant's trial is nobody's here.
        assert answers.answer_target("demo", "not-a-participant", trial_id(form)) is None
    assert responses(app, trial_id(form)) == {"same": ("1", None), "confidence": ("2", None)}


def test_sequential_match_pages_carry_the_exposure_and_both_photos(app, client, demo):
    with app.app_context():
        block = db.session.scalar(sa.select(Block).where(Block.task == "match"))
        block.settings = {**block.settings, "presentation": "sequential", "exposure_ms": 800}
        db.session.commit()
        refreeze(demo)
    agree(client, "demo")
    page = client.get("/s/demo/trial").get_data(as_text=True)
    assert 'data-sequential data-exposure-ms="800"' in page
    # Both photos are in the page, so that without the script they show side by side.
    assert page.count('alt="Photo to compare"') == page.count('alt="Headshot"') == 1


def _drop_hot_connection(app) -> None:
    """Kill the hot path's open connection at the database's end, as a server restart would."""
    dead = hotdb.connection()
    if hotdb.is_postgres():
        backend = dead.info.backend_pid
        with app.app_context():
            killed = db.session.scalar(
                sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}
            )
            db.session.commit()
        assert killed
    else:
        dead.connection.driver_connection.close()


def test_a_dropped_connection_is_replaced_and_the_answer_stored_once(app, client, demo):
    agree(client, "demo")
    form = trial_form(client)
    (p,) = participants(app)
    with app.test_request_context():
        _drop_hot_connection(app)
        target = answers.answer_target("demo", p.public_id, trial_id(form))
        assert target is not None and target.current
        _drop_hot_connection(app)
        assert answers.store_answer(target, [("same", "1"), ("confidence", "4")], 812.5) == (
            answers.STORED
        )
        _drop_hot_connection(app)
        assert answers.page_state("demo", p.public_id).current.position == 2
    assert responses(app, trial_id(form)) == {"same": ("1", 812.5), "confidence": ("4", 812.5)}
    # Through the pages too: the next answer is taken after its connection was dropped.
    second = trial_form(client)
    with app.test_request_context():
        _drop_hot_connection(app)
    assert client.post(second.action, data=first_answers(second)).status_code == 303
    assert len(responses(app, trial_id(second))) == len(second.choices)


def test_an_unreachable_database_gives_the_try_again_page_not_a_crash(app, tmp_path):
    """The trial page and the answer answer 503 (Retry-After) when no connection can be had."""
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() == "postgresql":
        unreachable = url.set(host="127.0.0.1", port=1)  # nothing listens on port 1
    else:
        unreachable = url.set(database=str(tmp_path / "no-such-folder" / "likeness.db"))
    broken = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": unreachable.render_as_string(hide_password=False),
            "SECRET_KEY": "test-secret-key-not-for-production",
            "MEDIA_DIR": str(tmp_path / "media"),
            "WTF_CSRF_ENABLED": False,
        }
    )
    client = broken.test_client()
    with broken.test_request_context():
        cookie = routes._serializer().dumps("a-participant-id-00000")
    client.set_cookie(routes.COOKIE, cookie, path="/s/demo")
    try:
        for response in (
            client.get("/s/demo/trial"),
            client.post("/s/demo/trial/1", data={"same": "1", "confidence": "3"}),
        ):
            assert response.status_code == 503, response.status_code
            assert response.headers["Retry-After"]
            assert "Please try again in a moment" in response.get_data(as_text=True)
    finally:
        hotdb.hot_path.dispose(broken)


@pytest.mark.parametrize(
    "posted",
    [
        [("same", "1"), ("confidence", "4")],
        [("same", "0"), ("confidence", "5"), ("rt_ms", "812.5")],
        [("same", "1")],
        [("same", ""), ("confidence", "4")],
        [("same", "2"), ("confidence", "4")],
        [("same", " 1"), ("confidence", "4")],
        [("same", "1"), ("confidence", "6")],
        [("same", "1"), ("same", "7"), ("confidence", "3")],
        [("same", "7"), ("same", "1"), ("confidence", "3")],
        [("confidence", "4")],
        [],
    ],
)
def test_the_quick_check_of_an_answer_agrees_with_its_form(posted):
    # A valid answer is stored without building its form: both must accept the same posts.
    from werkzeug.datastructures import MultiDict

    from survey.participant import forms

    questions = forms.questions_for("match", {}, False)
    form, valid = forms.read_answer(questions, MultiDict(posted))
    values = forms.chosen(questions, MultiDict(posted))
    assert (values is not None) == valid
    if valid:
        assert values == forms.answers(questions, form)
