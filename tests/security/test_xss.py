"""Hostile text in every field a researcher or participant can fill, rendered on every page:
it must appear only escaped, run no script, and never be evaluated as a template.

Rows are written directly, so fields the forms restrict (block names, identity codes) are
tried too: the pages must be safe whatever the database holds. Payloads keep within each
column's length, so PostgreSQL stores them whole.
"""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from analysis.plan import validate_plan
from survey.extensions import db
from survey.models import (
    AuditEvent,
    Image,
    Participant,
    Preregistration,
    RecruitmentId,
    Researcher,
    Response,
    Study,
    Trial,
)
from survey.participant.starting import start_participant
from tests.security.helpers import (
    SSTI,
    SSTI_RAN,
    active_content,
    build_url,
    participant_client,
    participant_with,
    routes,
    url_values,
)


def payload(tag: str, room: int = 200) -> str:
    """Return a hostile text marked with `tag`, as long as the column has room for."""
    full = f'"><img src=x onerror=alert(1)><script>x{tag}</script>{SSTI}[a](javascript:alert(1))'
    return full if len(full) <= room else f"<script>x{tag}</script>"[:room]


def marker(tag: str) -> str:
    """Return how the payload's script tag reads once escaped."""
    return html.escape(f"<script>x{tag}</script>", quote=True)


FIELDS = {
    # tag: where it is stored
    "title": "study title",
    "desc": "study description",
    "cons": "consent Markdown",
    "inst": "instructions Markdown",
    "debr": "debrief Markdown",
    "curl": "completion link",
    "blk": "block name",
    "q": "scale question",
    "lo": "scale low anchor",
    "hi": "scale high anchor",
    "code": "identity code",
    "age": "identity age band",
    "gen": "identity gender",
    "eth": "identity ethnicity",
    "note": "identity consent note",
    "gtr": "image generator",
    "file": "image file name",
    "name": "researcher name",
    "why": "audit detail",
    "hyp": "preregistered hypothesis",
    "pid": "recruitment id",
    "demo": "demographics answer",
}
# Where each text is meant to be seen; the test checks it arrives there, escaped.
SHOWN_ON = {
    "title": "researcher.study",
    "desc": "researcher.study_edit",
    "cons": "participant.entry",
    "inst": "participant.instructions",
    "debr": "participant.done",
    "curl": "participant.done",
    "blk": "researcher.blocks",
    "q": "researcher.block_edit",
    "lo": "researcher.block_edit",
    "hi": "researcher.block_edit",
    "code": "researcher.stimuli",
    "age": "researcher.stimuli",
    "gen": "researcher.stimuli",
    "eth": "researcher.stimuli",
    "gtr": "researcher.stimuli",
    "name": "researcher.members",
    "hyp": "researcher.preregistration",
}


@pytest.fixture
def hostile(app, world):
    """Fill every text of the world's study with hostile payloads; add a completed participant."""
    with app.app_context():
        study = db.session.get(Study, world.study_id)
        study.title = payload("title")
        study.description = payload("desc")
        study.consent_text = payload("cons", 10_000)
        study.instructions_text = payload("inst", 10_000)
        study.debrief_text = payload("debr", 10_000)
        study.completion_url = "https://x.example/" + payload("curl")
        study.completion_code = payload("ccode", 64)
        for block in study.blocks:
            block.name = payload(f"blk{block.id}", 64)
            settings = dict(block.settings)
            if block.task == "rate":
                settings["scales"] = [
                    dict(
                        scale,
                        question=payload("q"),
                        low_anchor=payload("lo", 100),
                        high_anchor=payload("hi", 100),
                    )
                    for scale in settings["scales"]
                ]
            block.settings = settings
        for identity in study.identities:
            identity.code = payload(f"code{identity.id}", 32)
            identity.age_band, identity.gender = payload("age", 32), payload("gen", 32)
            identity.ethnicity, identity.consent_note = payload("eth", 64), payload("note")
        for image in db.session.scalars(sa.select(Image).where(Image.study_id == study.id)):
            image.generator, image.original_filename = payload("gtr"), payload(f"file{image.id}")
        for researcher in db.session.scalars(sa.select(Researcher)):
            researcher.name = payload("name", 120)
        db.session.add(
            AuditEvent(
                study_id=study.id,
                researcher_id=world.owner,
                action="participant.delete",
                detail={"reason": payload("why")},
                researcher_email=payload("mail", 254),
            )
        )
        plan = validate_plan(
            {
                "hypotheses": [{"outcome": "trust", "direction": "less", "text": payload("hyp")}],
                "primary_outcomes": ["trust"],
            }
        )
        db.session.add(
            Preregistration(study_id=study.id, plan=plan, plan_json="{}", sha256="0" * 64)
        )
        db.session.commit()
        done = start_participant(study)
        done.status, done.demographics = (
            "completed",
            {"age": payload("demo"), "gender": payload("demo")},
        )
        db.session.add(
            RecruitmentId(
                participant_id=done.id,
                study_id=study.id,
                platform="prolific",
                external_id=payload("pid", 128),
                params={"STUDY_ID": payload("par")},
            )
        )
        for trial in db.session.scalars(sa.select(Trial).where(Trial.participant_id == done.id)):
            trial.answered_at = done.started_at
            db.session.add(
                Response(trial_id=trial.id, participant_id=done.id, measure="same", value="1")
            )
        db.session.commit()
        block_ids = [b.id for b in study.blocks]
        return done.public_id, block_ids


def pages(app, world, clients, extra_urls=()):
    """Yield (endpoint, url, who, response) for every GET route as every client."""
    for rule, _m in routes(app, ("GET",)):
        urls = [build_url(app, rule, url_values(rule, world))]
        if "block_id" in rule.arguments:
            urls += [
                build_url(app, rule, {**url_values(rule, world), "block_id": b}) for b in extra_urls
            ]
        for url in urls:
            for who, client in clients.items():
                response = client.get(url)
                response.get_data()
                response.close()
                yield rule.endpoint, url, who, response


@pytest.mark.slow
def test_hostile_text_is_escaped_on_every_page(app, world, hostile):
    done_id, block_ids = hostile
    clients = {
        "owner": world.client(app, "owner"),
        "viewer": world.client(app, "viewer"),
        "participant": participant_client(app, world),
        "completed": participant_with(app, world, done_id),
        "visitor": world.client(app),
    }
    seen: dict[str, set[str]] = {}
    for endpoint, url, who, response in pages(app, world, clients, block_ids):
        where = f"{who} GET {url} ({endpoint}) -> {response.status_code}"
        assert response.status_code < 500, where
        text = response.get_data(as_text=True)
        if response.mimetype != "text/html":
            # JSON and files are never rendered as pages: nosniff and their own type.
            assert response.mimetype in (
                "application/json",
                "text/css",
                "image/jpeg",
                "image/png",
                "image/svg+xml",
                "text/csv",
                "application/zip",
                "text/javascript",
            ), where
            continue
        assert active_content(text) == [], where
        assert SSTI_RAN not in text, where
        assert "<script>x" not in text, where
        for tag in re.findall(r"&lt;script&gt;x([a-z]+)\d*&lt;/script&gt;", text):
            seen.setdefault(tag, set()).add(endpoint)
    # A text's own page really showed it, escaped (so the checks above looked at it).
    missing = {
        tag: endpoint for tag, endpoint in SHOWN_ON.items() if endpoint not in seen.get(tag, set())
    }
    assert missing == {}, seen


def test_the_participant_pages_show_hostile_study_texts_escaped(app, world, hostile):
    client = app.test_client()
    pages_seen = [client.get(f"/s/{world.slug}")]
    token = re.search(
        r'name="token" type="hidden" value="([^"]+)"', pages_seen[0].get_data(as_text=True)
    ).group(1)
    pages_seen.append(
        client.post(
            f"/s/{world.slug}/consent", data={"token": token, "agree": "y"}, follow_redirects=True
        )
    )
    pages_seen.append(client.get(f"/s/{world.slug}/trial"))
    for response in pages_seen:
        text = response.get_data(as_text=True)
        assert response.status_code == 200
        assert active_content(text) == [] and SSTI_RAN not in text and "<script>x" not in text
    # The consent page showed the Markdown's link as text: a javascript: link is no link.
    consent = pages_seen[0].get_data(as_text=True)
    assert marker("cons") in consent and 'href="javascript' not in consent


def test_markdown_links_are_limited_to_web_addresses(app, world):
    with app.app_context():
        study = db.session.get(Study, world.study_id)
        study.consent_text = (
            "[a](javascript:alert(1)) [b](JaVaScRiPt:alert(1)) [c](java\tscript:alert(1)) "
            "[d](data:text/html,<script>alert(1)</script>) [e](vbscript:msgbox) "
            '<a href="javascript:alert(1)">f</a> ![g](https://evil.example/pixel.png) '
            "[ok](https://example.org/info)"
        )
        db.session.commit()
    page = app.test_client().get(f"/s/{world.slug}").get_data(as_text=True)
    assert active_content(page) == []
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert "https://example.org/info" in hrefs
    assert not [h for h in hrefs if "script" in h.lower() or h.startswith("data:")]
    # No image from another host: a study page makes no outside request.
    assert not re.search(r"<img[^>]+evil\.example", page)


@pytest.mark.parametrize("field", ["title", "description"])
def test_hostile_text_through_the_study_forms_is_stored_as_typed_and_escaped(app, world, field):
    client = world.client(app, "owner")
    response = client.post("/r/studies/new", data={"title": "Draft", field: payload("form")})
    assert response.status_code == 302
    with app.app_context():
        study = db.session.scalar(
            sa.select(Study).where(Study.id != world.study_id).order_by(Study.id.desc())
        )
        assert getattr(study, field) == payload("form")
        new_id = study.id
    for url in (f"/r/studies/{new_id}", f"/r/studies/{new_id}/edit", "/r/studies"):
        text = client.get(url).get_data(as_text=True)
        assert active_content(text) == [] and "<script>x" not in text
    assert marker("form") in client.get(f"/r/studies/{new_id}/edit").get_data(as_text=True)


def test_hostile_names_through_sign_up_and_members_are_escaped(app, world):
    app.config["RATELIMIT_ENABLED"] = False
    newcomer = app.test_client()
    response = newcomer.post(
        "/r/signup",
        data={
            "name": payload("nm", 120),
            "email": "mallory@example.org",
            "password": "a long enough secret",
            "confirm": "a long enough secret",
        },
    )
    assert response.status_code == 302
    owner = world.client(app, "owner")
    response = owner.post(
        f"/r/studies/{world.study_id}/members",
        data={"email": "mallory@example.org", "role": "viewer"},
    )
    assert response.status_code == 302
    for url in (
        f"/r/studies/{world.study_id}/members",
        f"/r/studies/{world.study_id}/audit",
        "/r/account",
    ):
        text = owner.get(url).get_data(as_text=True)
        assert active_content(text) == [] and "<script>x" not in text, url
    assert marker("nm") in owner.get(f"/r/studies/{world.study_id}/members").get_data(as_text=True)
    # A hostile email is refused by the form, and the refusal echoes it escaped.
    response = owner.post(
        f"/r/studies/{world.study_id}/members", data={"email": payload("em"), "role": "viewer"}
    )
    assert response.status_code == 400
    assert active_content(response.get_data(as_text=True)) == []


@pytest.mark.slow
def test_query_parameters_are_never_reflected_unescaped(app, world):
    names = (
        "next",
        "invite",
        "page",
        "status",
        "preview",
        "platform",
        "external_id",
        "public_id",
        "download",
        "PROLIFIC_PID",
        "STUDY_ID",
        "SESSION_ID",
        "workerId",
        "assignmentId",
        "turkSubmitTo",
        "pid",
        "q",
    )
    clients = {
        "owner": world.client(app, "owner"),
        "participant": participant_client(app, world),
        "visitor": world.client(app),
    }
    for rule, _m in routes(app, ("GET",)):
        url = build_url(app, rule, url_values(rule, world))
        for who, client in clients.items():
            response = client.get(url, query_string={name: payload("qs") for name in names})
            response.get_data()
            response.close()
            where = f"{who} {url} -> {response.status_code}"
            assert response.status_code < 500, where
            if response.mimetype == "text/html":
                text = response.get_data(as_text=True)
                assert (
                    active_content(text) == [] and "<script>x" not in text and SSTI_RAN not in text
                ), where


def test_a_hostile_scale_and_block_name_are_escaped_on_the_trial_page(app, world, hostile):
    with app.app_context():
        participant = db.session.scalar(
            sa.select(Participant).where(Participant.public_id == world.participant_public_id)
        )
        trials = db.session.scalars(
            sa.select(Trial).where(Trial.participant_id == participant.id).order_by(Trial.position)
        ).all()
        first_rate = next(t for t in trials if t.task == "rate" and not t.is_attention)
        for trial in trials:
            if trial.position < first_rate.position:
                trial.answered_at = participant.started_at
        db.session.commit()
    response = participant_client(app, world).get(f"/s/{world.slug}/trial")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert active_content(text) == [] and "<script>x" not in text and SSTI_RAN not in text
    assert marker("q") in text and marker("lo") in text and marker("hi") in text
