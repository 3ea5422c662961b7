"""Participants: a cookie opens only its own trials, in its own study; ids cannot be guessed;
and nothing a participant holds opens a researcher's page."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Image, Participant, Response, Study, Trial, new_public_id
from survey.participant.routes import COOKIE
from survey.participant.starting import start_participant
from tests.security.helpers import fingerprint, make_world, participant_client, participant_with


def start(app, world) -> str:
    """Start another participant of the world's study; return its public id."""
    with app.app_context():
        return start_participant(db.session.get(Study, world.study_id)).public_id


def first_trial(app, public_id: str) -> int:
    """Return the id of a participant's first trial."""
    with app.app_context():
        return db.session.scalar(
            sa.select(Trial.id)
            .join(Participant, Participant.id == Trial.participant_id)
            .where(Participant.public_id == public_id)
            .order_by(Trial.position)
        )


def a_valid_answer(page: str) -> tuple[str, dict[str, str]]:
    """Return the form action and a valid answer read from a trial page."""
    action = re.search(r'<form[^>]+action="([^"]*/trial/\d+)"', page).group(1)
    names = dict.fromkeys(
        re.findall(r'type="radio"[^>]*name="([^"]+)"', page)
        + re.findall(r'name="([^"]+)"[^>]*type="radio"', page)
    )
    values = {
        name: re.search(
            rf'name="{name}"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="{name}"', page
        )
        for name in names
    }
    return action, {name: next(g for g in match.groups() if g) for name, match in values.items()}


def test_a_cookie_cannot_answer_another_participants_trial(app, world):
    other = start(app, world)
    mine = participant_client(app, world)
    before = fingerprint(app)
    response = mine.post(
        f"/s/{world.slug}/trial/{first_trial(app, other)}", data={"same": "1", "confidence": "3"}
    )
    assert response.status_code == 404
    assert "not part of your study" in response.get_data(as_text=True)
    assert fingerprint(app) == before


def test_each_participant_sees_only_their_own_current_trial(app, world):
    other = start(app, world)
    mine, theirs = participant_client(app, world), participant_with(app, world, other)
    my_page = mine.get(f"/s/{world.slug}/trial").get_data(as_text=True)
    their_page = theirs.get(f"/s/{world.slug}/trial").get_data(as_text=True)
    assert f"/trial/{first_trial(app, world.participant_public_id)}" in my_page
    assert f"/trial/{first_trial(app, other)}" in their_page
    assert f"/trial/{first_trial(app, other)}" not in my_page
    # Answering one's own trial moves only oneself on.
    action, answer = a_valid_answer(my_page)
    assert mine.post(action, data=answer).status_code == 303
    with app.app_context():
        answered = db.session.scalars(sa.select(Participant.public_id).join(Response)).all()
    assert set(answered) == {world.participant_public_id}


@pytest.mark.slow
def test_a_participant_of_one_study_is_a_stranger_in_another(app, world):
    second = make_world(app, slug="second")
    # The first study's signed participant cookie, sent to the second study's pages.
    client = participant_with(app, second, world.participant_public_id)
    before = fingerprint(app)
    for url in (
        f"/s/{second.slug}/trial",
        f"/s/{second.slug}/instructions",
        f"/s/{second.slug}/done",
        f"/s/{second.slug}/questions",
        f"/s/{second.slug}/withdrawn",
    ):
        response = client.get(url)
        assert response.status_code == 302 and response.location.endswith(f"/s/{second.slug}"), url
    response = client.post(
        f"/s/{second.slug}/trial/{second.trial_id}", data={"same": "1", "confidence": "3"}
    )
    assert response.status_code == 404
    response = client.post(f"/s/{second.slug}/withdraw", data={"confirm": "y"})
    assert response.status_code == 302
    assert fingerprint(app) == before


@pytest.mark.parametrize("cookie", ["forged", "unsigned", "tampered", "other-key"])
def test_forged_participant_cookies_open_nothing(app, world, cookie):
    from itsdangerous import URLSafeSerializer

    genuine = participant_client(app, world).get_cookie(COOKIE, path=f"/s/{world.slug}").value
    value = {
        "forged": "eyJhIjoiYiJ9.forged",
        "unsigned": world.participant_public_id,
        "tampered": genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        "other-key": URLSafeSerializer("not the server's key", salt="likeness-participant").dumps(
            world.participant_public_id
        ),
    }[cookie]
    client = app.test_client()
    client.set_cookie(COOKIE, value, path=f"/s/{world.slug}")
    before = fingerprint(app)
    response = client.get(f"/s/{world.slug}/trial")
    assert response.status_code == 302 and response.location.endswith(f"/s/{world.slug}")
    response = client.post(
        f"/s/{world.slug}/trial/{world.trial_id}", data={"same": "1", "confidence": "3"}
    )
    assert response.status_code == 303 and response.location.endswith(f"/s/{world.slug}")
    assert fingerprint(app) == before


def test_a_withdrawn_participants_cookie_stores_nothing_more(app, world):
    client = participant_client(app, world)
    assert client.post(f"/s/{world.slug}/withdraw", data={"confirm": "y"}).status_code == 303
    before = fingerprint(app)
    response = client.post(
        f"/s/{world.slug}/trial/{world.trial_id}", data={"same": "1", "confidence": "3"}
    )
    assert response.status_code < 500
    assert fingerprint(app) == before
    assert client.get(f"/s/{world.slug}/trial").location.endswith("/withdrawn")


def test_participant_and_image_ids_carry_128_random_bits(app, world):
    ids = [new_public_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)  # 22 base64url chars = 132 bits
    # Every character position is used evenly: no counter or timestamp hides in the id.
    for position in range(21):
        counts = Counter(i[position] for i in ids)
        assert len(counts) > 55, position
    entropy = -sum(
        n / len(ids) * math.log2(n / len(ids))
        for n in Counter(c for i in ids for c in i[:21]).values()
    )
    assert entropy > 5.9  # of a possible 6 bits per character
    with app.app_context():
        stored = (
            db.session.scalars(sa.select(Participant.public_id)).all()
            + db.session.scalars(sa.select(Image.public_id)).all()
        )
    assert stored and all(len(i) >= 22 for i in stored)


def test_a_participant_holds_nothing_that_opens_researcher_pages(app, world):
    client = participant_client(app, world)
    client.get(f"/s/{world.slug}/trial")
    # Whatever cookies the survey set, sent everywhere, open no page of the workspace.
    for cookie in list(client._cookies.values()):
        client.set_cookie(cookie.key, cookie.value, path="/")
    for url in (
        "/r/studies",
        f"/r/studies/{world.study_id}",
        f"/r/studies/{world.study_id}/monitor",
        f"/r/studies/{world.study_id}/exports",
        f"/s/{world.slug}/preview",
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/r/login" in response.location, url
    response = client.post(f"/r/studies/{world.study_id}/exports/trials.csv")
    assert response.status_code == 302 and "/r/login" in response.location


def test_no_page_carries_the_participant_cookie_or_id(app, world):
    """HttpOnly hides the participant cookie from scripts: no page's HTML may hold it either.

    The consent page's hidden token used to be the very value the cookie took after agreeing,
    so whoever read that page (a cached copy, an injected script) held the participant's key.
    """
    from survey.participant.simulate import TOKEN, form_token, parse_trial_form

    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    pages = [client.get(f"/s/{world.slug}")]
    started = client.post(
        f"/s/{world.slug}/consent",
        data={
            "csrf_token": form_token(pages[0].text),
            "token": TOKEN.search(pages[0].text).group(1),
            "agree": "1",
        },
    )
    assert started.status_code == 303
    cookie = client.get_cookie(COOKIE, path=f"/s/{world.slug}").value
    with app.app_context():
        public_id = db.session.scalar(
            sa.select(Participant.public_id).order_by(Participant.id.desc()).limit(1)
        )
    for path in ("", "/instructions", "/trial", "/withdraw"):
        pages.append(client.get(f"/s/{world.slug}{path}", follow_redirects=True))
    while form := parse_trial_form((page := client.get(f"/s/{world.slug}/trial")).text):
        pages.append(page)
        answer = {name: values[0] for name, values in form.choices.items()}
        response = client.post(form.action, data={**answer, **form.hidden})
        assert response.status_code == 303
    for path in ("/questions", "/done", "/withdraw"):
        pages.append(client.get(f"/s/{world.slug}{path}", follow_redirects=True))
    withdraw = client.get(f"/s/{world.slug}/withdraw").text
    pages.append(
        client.post(
            f"/s/{world.slug}/withdraw",
            data={"csrf_token": form_token(withdraw), "confirm": "1"},
            follow_redirects=True,
        )
    )
    assert len(pages) > 10 and "You have withdrawn" in pages[-1].text
    for page in pages:
        assert page.status_code == 200, page.request.path
        assert cookie not in page.text, page.request.path
        assert public_id not in page.text, page.request.path
