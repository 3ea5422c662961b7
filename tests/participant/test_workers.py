"""Several server processes on one database, one connection per request (a proxy's way).

Nothing a worker remembers may make it serve a trial page that another worker has made stale:
a trial answered since, or a participant who has withdrawn. These tests start real gunicorn
servers on the test database and send every request on a new connection, choosing the server
as a proxy without keep-alive may.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa

from bench.servers import Gunicorn, ServerSettings
from survey.extensions import db
from survey.models import Response, Trial
from survey.participant.simulate import agree, form_token, open_trial, parse_trial_form
from tests.participant.support import first_answers, participants, trial_id

pytestmark = pytest.mark.slow


class Server:
    """A gunicorn server of the app on the test database (stopped by the fixture)."""

    def __init__(self, app, database_url: str, workers: int) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": app.secret_key,
            "MEDIA_DIR": app.config["MEDIA_DIR"],
            "LIKENESS_ENV": "development",
        }
        self.gunicorn = Gunicorn(env, ServerSettings(workers, "gthread", 2)).start()
        self.url = f"http://127.0.0.1:{self.gunicorn.port}"


class Reply:
    """A response as the test client's helpers read it."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.location = response.headers.get("Location")
        self.text = response.text

    def get_data(self, as_text: bool = False) -> str:
        """Return the body as text."""
        return self.text


class Browser:
    """One participant's browser: a cookie jar, and a new connection for every request.

    `via` names the server the next request goes to (as a proxy would choose it).
    """

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.via = 0
        self.session = requests.Session()
        self.session.headers["Connection"] = "close"

    def get(self, path: str) -> Reply:
        """GET a path from the chosen server, not following redirects."""
        url = self.servers[self.via].url + path
        return Reply(self.session.get(url, allow_redirects=False, timeout=30))

    def post(self, path: str, data: dict[str, str]) -> Reply:
        """POST a form to the chosen server, not following redirects."""
        url = self.servers[self.via].url + path
        return Reply(self.session.post(url, data=data, allow_redirects=False, timeout=30))

    def trial_form(self):
        """GET the trial page, passing the pages between trials that come first (the demo's
        break and block instructions); return its form (None when it is not a trial page)."""
        page = open_trial(self, "demo")
        return parse_trial_form(page.text) if page.status_code == 200 else None

    def answer(self, form) -> Reply:
        """Answer a trial form with first choices."""
        return self.post(form.action, {**first_answers(form), **form.hidden, "rt_ms": "800"})


@pytest.fixture
def two_servers(app, demo, database_url) -> Iterator[list[Server]]:
    """Two single-worker servers on the demo study's database."""
    started: list[Server] = []
    try:
        for _ in range(2):
            started.append(Server(app, database_url, workers=1))
        yield started
    finally:
        for server in started:
            server.gunicorn.stop()


def answered(app, trial: int) -> bool:
    """Tell whether a trial is answered in the database."""
    with app.app_context():
        return db.session.get(Trial, trial).answered_at is not None


def stored_answers(app) -> int:
    """Return how many answer rows the database holds."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Response))


def test_a_worker_never_shows_a_trial_answered_through_another_worker(app, two_servers):
    browser = Browser(two_servers)
    assert agree(browser, "demo").status_code == 303
    first = browser.trial_form()
    assert browser.answer(first).status_code == 303  # answered through server 0
    # The redirect's GET reaches server 1, and so does the answer to the page it shows.
    browser.via = 1
    second = browser.trial_form()
    assert trial_id(second) != trial_id(first)
    assert browser.answer(second).status_code == 303
    assert answered(app, trial_id(second))
    before = stored_answers(app)
    # The next GET reaches server 0 again: it must show the trial after the second.
    browser.via = 0
    third = browser.trial_form()
    assert trial_id(third) not in (trial_id(first), trial_id(second))
    assert not answered(app, trial_id(third))
    # And what is answered on it is stored: no answer is dropped as a repeat.
    assert browser.answer(third).status_code == 303
    assert answered(app, trial_id(third))
    assert stored_answers(app) == before + len(third.choices)


def test_a_withdrawn_participant_is_never_shown_a_trial_by_another_worker(app, two_servers):
    browser = Browser(two_servers)
    assert agree(browser, "demo").status_code == 303
    assert browser.answer(browser.trial_form()).status_code == 303  # through server 0
    # Withdrawn through server 1 before the redirect was followed.
    browser.via = 1
    page = browser.get("/s/demo/withdraw")
    reply = browser.post(
        "/s/demo/withdraw", {"csrf_token": form_token(page.text) or "", "confirm": "y"}
    )
    assert reply.status_code == 303
    assert participants(app)[0].status == "withdrawn"
    for via in (0, 1):
        browser.via = via
        after = browser.get("/s/demo/trial")
        assert after.status_code == 302 and after.headers["Location"].endswith("/s/demo/withdrawn")


def test_participants_spread_over_two_workers_see_only_current_trials(app, demo, database_url):
    """Two workers of one server, participants at once, each request on a new connection."""
    server = Server(app, database_url, workers=2)
    problems: list[str] = []
    accepted: dict[int, int] = {}

    def participant(index: int) -> None:
        browser = Browser([server])
        rng = random.Random(index)
        if agree(browser, "demo", f"?PROLIFIC_PID=W{index}").status_code != 303:
            problems.append(f"participant {index} could not start")
            return
        form = browser.trial_form()
        while form is not None:
            if answered(app, trial_id(form)):
                problems.append(f"participant {index} was shown answered trial {trial_id(form)}")
            answers = form.answer(rng.choice)
            reply = browser.post(form.action, {**answers, **form.hidden, "rt_ms": "700"})
            if reply.status_code != 303:
                problems.append(f"participant {index}: answer got HTTP {reply.status_code}")
                return
            accepted[trial_id(form)] = len(answers)
            form = browser.trial_form()

    try:
        threads = [threading.Thread(target=participant, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        server.gunicorn.stop()
    assert problems == []
    # Every answer the server accepted is stored, with all its measures.
    with app.app_context():
        stored = dict(
            db.session.execute(
                sa.select(Response.trial_id, sa.func.count()).group_by(Response.trial_id)
            ).all()
        )
    assert stored == accepted
    assert all(p.status == "completed" for p in participants(app))
