"""Redirects: the completion link is an https address set by a researcher, and no URL or form
parameter (next= included) can send anyone to another site."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Study
from tests.security.helpers import build_url, participant_client, routes, url_values

# Where a link or a redirect may point is decided from the request and the study's settings,
# the same on either database: run once, on SQLite.
pytestmark = pytest.mark.once

EVIL = [
    "https://evil.example/",
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "http:evil.example",
    "https:/evil.example",
    "javascript:alert(1)",
    "/\t/evil.example",
    "%2F%2Fevil.example",
]
# Names a redirect target is commonly read from.
TARGET_PARAMS = (
    "next",
    "url",
    "return",
    "return_to",
    "redirect",
    "redirect_to",
    "continue",
    "target",
    "dest",
)
BAD_COMPLETION_URLS = [
    "http://app.prolific.com/submissions/complete?cc=X",
    "javascript:alert(1)",
    "//app.prolific.com/complete",
    "https:app.prolific.com",
    "https://",
    "data:text/html,<script>alert(1)</script>",
    "ftp://files.example/x",
    "https://app.prolific.com/ complete",
    "/s/trust/done",
]


def assert_stays_on_site(response, where: str) -> None:
    """Check that a redirect, if any, leads to this site."""
    location = response.headers.get("Location")
    if location is None:
        return
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost"), (where, location)
    assert parts.scheme in ("", "http", "https"), (where, location)
    assert not location.startswith(("//", "/\\", "\\")), (where, location)


def edit_data(study: Study, **fields) -> dict:
    """Return the study form's data as it stands, with some fields changed."""
    data = {
        name: getattr(study, name)
        for name in (
            "title",
            "slug",
            "description",
            "consent_text",
            "instructions_text",
            "debrief_text",
            "completion_code",
            "completion_url",
            "n_lists",
            "assign_by",
        )
    }
    data["target_n"] = "" if study.target_n is None else study.target_n
    return {**data, **fields}


def study_row(app, study_id: int) -> Study:
    """Return the study, detached."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        db.session.expunge(study)
        return study


@pytest.mark.parametrize("url", BAD_COMPLETION_URLS)
def test_the_study_form_accepts_only_https_completion_links(app, world, url):
    client = world.client(app, "editor")
    response = client.post(
        f"/r/studies/{world.study_id}/edit",
        data=edit_data(study_row(app, world.study_id), completion_url=url),
    )
    assert response.status_code == 400
    assert "Give a full https:// address" in response.get_data(as_text=True)
    assert study_row(app, world.study_id).completion_url == ""


def test_an_https_completion_link_is_kept(app, world):
    client = world.client(app, "editor")
    good = "https://app.prolific.com/submissions/complete?cc=C1A2B3"
    response = client.post(
        f"/r/studies/{world.study_id}/edit",
        data=edit_data(study_row(app, world.study_id), completion_url=good),
    )
    assert response.status_code == 302
    assert study_row(app, world.study_id).completion_url == good


@pytest.mark.parametrize("url", BAD_COMPLETION_URLS[:6])
def test_an_imported_definition_cannot_bring_a_bad_completion_link(app, world, url):
    client = world.client(app, "owner")
    definition = json.loads(
        client.get(f"/r/studies/{world.study_id}/definition.json").get_data(as_text=True)
    )
    definition["study"]["completion_url"] = url
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(Study))
    response = client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert response.status_code == 400
    assert "must be an https:// address" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Study)) == before


def complete(app, world, completion_url: str) -> None:
    """Store a completion link as is (as an old row might hold it) and complete the participant."""
    with app.app_context():
        db.session.execute(
            sa.update(Study).where(Study.id == world.study_id).values(completion_url=completion_url)
        )
        db.session.execute(
            sa.update(Participant)
            .where(Participant.public_id == world.participant_public_id)
            .values(status="completed", demographics={"age": "skip"})
        )
        db.session.commit()


def test_the_debrief_links_the_researchers_https_link(app, world):
    complete(app, world, "https://app.prolific.com/submissions/complete?cc=C1A2B3")
    page = participant_client(app, world).get(f"/s/{world.slug}/done")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'href="https://app.prolific.com/submissions/complete?cc=C1A2B3"' in text
    assert "data-redirect-after" not in text and 'http-equiv="refresh"' not in text


def test_the_debrief_refreshes_only_to_the_researchers_https_link(app, world):
    complete(app, world, "https://app.prolific.com/submissions/complete?cc=C1A2B3")
    with app.app_context():
        db.session.execute(
            sa.update(Study)
            .where(Study.id == world.study_id)
            .values(settings={"return_redirect_s": 20})
        )
        db.session.commit()
    text = participant_client(app, world).get(f"/s/{world.slug}/done").get_data(as_text=True)
    assert (
        '<meta http-equiv="refresh" content="20; '
        'url=https://app.prolific.com/submissions/complete?cc=C1A2B3">'
    ) in text


@pytest.mark.parametrize("url", ["javascript:alert(1)", "http://evil.example/", "//evil.example/"])
def test_the_debrief_never_links_a_stored_non_https_link(app, world, url):
    complete(app, world, url)
    with app.app_context():
        # Even with the automatic return asked for, a bad link is never followed.
        db.session.execute(
            sa.update(Study)
            .where(Study.id == world.study_id)
            .values(settings={"return_redirect_s": 20})
        )
        db.session.commit()
    page = participant_client(app, world).get(f"/s/{world.slug}/done")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert (
        "evil.example" not in text
        and "javascript:" not in text
        and "data-redirect-after" not in text
        and 'http-equiv="refresh"' not in text
    )


@pytest.mark.slow
def test_no_parameter_of_any_route_redirects_off_site(app, world):
    clients = {
        "owner": world.client(app, "owner"),
        "participant": participant_client(app, world),
        "visitor": world.client(app),
    }
    checked = 0
    for method in ("GET", "POST"):
        for rule, _m in routes(app, (method,)):
            base = build_url(app, rule, url_values(rule, world))
            for who, client in clients.items():
                for evil in EVIL[:4] + ["javascript:alert(1)"]:
                    query = {name: evil for name in TARGET_PARAMS}
                    response = client.open(base, method=method, query_string=query, data=query)
                    response.close()
                    assert response.status_code < 500, (who, method, base, evil)
                    assert_stays_on_site(response, f"{who} {method} {base} {evil!r}")
                    checked += 1
    assert checked > 1000


@pytest.mark.parametrize("evil", EVIL)
def test_sign_in_never_follows_next_off_site(app, client, make_researcher, evil):
    make_researcher(email="ada@example.org")
    response = client.post(
        "/r/login",
        query_string={"next": evil},
        data={"identifier": "ada@example.org", "password": "correct horse battery", "next": evil},
    )
    assert response.status_code == 302
    assert response.location == "/r/studies"
    # The page that asks for sign-in carries the local path only.
    assert client.get("/r/login", query_string={"next": evil}).location == "/r/studies"
    client.post("/r/logout")
    page = client.get("/r/login", query_string={"next": evil}).get_data(as_text=True)
    assert "evil.example" not in page and "javascript:" not in page
