"""Only what was meant to be public: the study's four texts, chosen authors, the preview of the
public page and the confirmation before publishing."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import AuditEvent, Researcher, Study, StudyMember
from tests.findings.support import (
    fill,
    member,
    owner_id,
    page_text,
    publish_findings,
)
from tests.helpers import ROOT

NAME = "INTERNAL-name-manipulation-AIvsReal"
PRIVATE = "PRIVATE-note-do-not-share"
SUMMARY = "We asked people for first impressions of faces."
TITLE = "First impressions of faces"


def set_texts(app, study_id: int, **texts) -> None:
    """Give the study its internal name, title, private description and public summary."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        for key, value in texts.items():
            setattr(study, key, value)
        db.session.commit()


def chart_titles(monkeypatch) -> list[tuple[str, str]]:
    """Record the texts that go onto every chart card (title, footer) as it is drawn."""
    import analysis.figures

    drawn: list[tuple[str, str]] = []
    real = analysis.figures.claim_card

    def recording(results, finding, study_title, footer, fmt="png"):
        drawn.append((study_title, footer))
        return real(results, finding, study_title, footer, fmt)

    monkeypatch.setattr(analysis.figures, "claim_card", recording)
    return drawn


@pytest.fixture
def filled(app, client, demo, analyses, auth):
    """The demo with 20 simulated participants, closed, its four texts set, report computed."""
    fill(app, demo, 20, seed=3)
    set_texts(app, demo, name=NAME, title=TITLE, description=PRIVATE, public_summary=SUMMARY)
    auth.sign_in(owner_id(app))
    assert client.get(f"/r/studies/{demo}/report").status_code == 200
    return demo


@pytest.mark.once
def test_private_texts_never_leave_the_workspace(app, client, filled, monkeypatch):
    demo = filled
    drawn = chart_titles(monkeypatch)
    # The workspace shows the internal name and the private note to the team.
    overview = page_text(client.get(f"/r/studies/{demo}"))
    assert NAME in overview and PRIVATE in overview and TITLE in overview
    assert publish_findings(client, demo).status_code == 302

    visitor = app.test_client()
    public = visitor.get("/f/demo")
    embed = visitor.get("/f/demo/embed")
    findings = visitor.get("/f/demo/findings.json")
    for response in (public, embed, findings):
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert NAME not in text and PRIVATE not in text
    public_text = page_text(public)
    assert TITLE in public_text and SUMMARY in public_text
    assert f"Findings: {TITLE}" in public.get_data(as_text=True)  # the embed snippet's title
    assert TITLE in page_text(embed)
    # Chart cards: what is drawn on them, and their alt text.
    for outcome in ("trust", "recognition_accuracy"):
        assert visitor.get(f"/f/demo/charts/{outcome}.png").status_code == 200
    assert drawn and all(NAME not in t + f and PRIVATE not in t + f for t, f in drawn)
    assert {t for t, _f in drawn} == {TITLE}
    alts = re.findall(r'alt="([^"]+)"', public.get_data(as_text=True))
    assert alts and all(TITLE in alt and NAME not in alt for alt in alts)

    # Exports and the reproduction bundle carry neither.
    psychds = client.post(f"/r/studies/{demo}/exports/psych-ds.zip")
    assert psychds.status_code == 200
    with zipfile.ZipFile(io.BytesIO(psychds.data)) as archive:
        description = json.loads(archive.read("dataset_description.json"))
        everything = b"".join(archive.read(n) for n in archive.namelist()).decode("utf-8")
    assert description["name"] == TITLE and description["description"] == SUMMARY
    assert NAME not in everything and PRIVATE not in everything
    for name in ("trials.csv", "participants.csv", "stimuli.csv", "codebook.csv", "codebook.json"):
        response = client.post(f"/r/studies/{demo}/exports/{name}")
        assert response.status_code == 200, name
        text = response.get_data(as_text=True)
        assert NAME not in text and PRIVATE not in text, name
    with app.app_context():
        report_id = db.session.scalar(
            sa.text("SELECT id FROM report WHERE published_at IS NOT NULL")
        )
    bundle = client.get(f"/r/studies/{demo}/report/{report_id}/reproduction.zip")
    assert bundle.status_code == 200
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        everything = b"".join(archive.read(n) for n in archive.namelist()).decode("utf-8")
    assert TITLE in everything and NAME not in everything and PRIVATE not in everything


def test_psych_ds_without_a_public_summary_describes_the_data_not_the_private_note(app, demo):
    from survey.exports import dataset_description

    set_texts(app, demo, name=NAME, title=TITLE, description=PRIVATE, public_summary="")
    with app.app_context():
        description = dataset_description(demo)
    assert description["description"] == f"Data of the Likeness study {TITLE}."
    assert PRIVATE not in json.dumps(description) and NAME not in json.dumps(description)


def test_authors_are_chosen_by_the_owner_by_display_name(
    app, client, filled, make_researcher, auth
):
    demo = filled
    viewer = member(app, demo, "viewer", "vera.viewer@example.org", make_researcher)
    editor = member(app, demo, "editor", "ed.nameless@example.org", make_researcher)
    with app.app_context():
        db.session.get(Researcher, viewer).name = "Vera Viewer"
        db.session.get(Researcher, editor).name = ""
        # Nobody but the demo's owner was chosen: adding members made no authors.
        owner_member = db.session.scalar(
            sa.select(StudyMember).where(
                StudyMember.study_id == demo, StudyMember.researcher_id == owner_id(app)
            )
        )
        owner_member.is_author = False
        ids = {
            rid: db.session.scalar(
                sa.select(StudyMember.id).where(
                    StudyMember.study_id == demo, StudyMember.researcher_id == rid
                )
            )
            for rid in (viewer, editor, owner_id(app))
        }
        assert not any(db.session.get(StudyMember, i).is_author for i in ids.values())
        db.session.commit()
    assert publish_findings(client, demo).status_code == 302

    # No authors: the citation starts with the title; no email part anywhere.
    text = page_text(app.test_client().get("/f/demo"))
    assert "By " not in text.split("What the study found")[0]
    assert re.search(rf"{re.escape(TITLE)} \(\d{{4}}\)\. Likeness findings, published", text)
    for part in ("vera.viewer", "ed.nameless", "Vera Viewer", "Demo researcher"):
        assert part not in text

    # Only the owner chooses; a member without a display name cannot be chosen.
    url = f"/r/studies/{demo}/members/{ids[viewer]}/author"
    for who in (viewer, editor):
        auth.sign_in(who)
        assert client.post(url, data={"is_author": "1"}).status_code == 403
    auth.sign_in(owner_id(app))
    nameless = client.post(
        f"/r/studies/{demo}/members/{ids[editor]}/author", data={"is_author": "1"}
    )
    assert nameless.status_code == 409 and "no display name" in page_text(nameless)
    assert client.post(url, data={"is_author": "maybe"}).status_code == 400
    members_page = page_text(client.get(f"/r/studies/{demo}/members"))
    assert "Cannot be listed: no display name" in members_page
    assert client.post(url, data={"is_author": "1"}).status_code == 302
    owner_url = f"/r/studies/{demo}/members/{ids[owner_id(app)]}/author"
    assert client.post(owner_url, data={"is_author": "1"}).status_code == 302

    text = page_text(app.test_client().get("/f/demo"))
    assert "By Demo researcher, Vera Viewer" in text
    assert re.search(r"Demo researcher, Vera Viewer \(\d{4}\)\. " + re.escape(TITLE), text)
    assert "vera.viewer" not in text and "ed.nameless" not in text
    assert "Demo researcher, Vera Viewer" in page_text(app.test_client().get("/f/demo/embed"))
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent.detail)
            .where(AuditEvent.action == "member.author")
            .order_by(AuditEvent.id)
        ).all()
    assert [(e["member"], e["is_author"]) for e in events] == [
        ("vera.viewer@example.org", True),
        ("demo", True),
    ]

    # Taken off again, and a display name removed on the account page, both end the credit.
    assert client.post(url, data={"is_author": "0"}).status_code == 302
    assert "Vera Viewer" not in page_text(app.test_client().get("/f/demo"))
    assert client.post("/r/account/name", data={"name": ""}).status_code == 302
    text = page_text(app.test_client().get("/f/demo"))
    assert "Demo researcher" not in text and re.search(rf"{re.escape(TITLE)} \(\d{{4}}\)", text)


def test_adding_a_viewer_never_makes_an_author(app, client, demo, make_researcher, auth):
    make_researcher(email="new.viewer@example.org", name="New Viewer")
    auth.sign_in(owner_id(app))
    response = client.post(
        f"/r/studies/{demo}/members", data={"email": "new.viewer@example.org", "role": "viewer"}
    )
    assert response.status_code == 302
    with app.app_context():
        added = db.session.scalar(
            sa.select(StudyMember)
            .join(Researcher)
            .where(Researcher.email == "new.viewer@example.org")
        )
        assert added.role == "viewer" and added.is_author is False


def test_a_researcher_sets_a_display_name_on_the_account_page(app, client, make_researcher, auth):
    rid = make_researcher(email="ada@example.org", name="")
    auth.sign_in(rid)
    assert "Display name" in page_text(client.get("/r/account"))
    assert client.post("/r/account/name", data={"name": "A. Lovelace"}).status_code == 302
    refused = client.post("/r/account/name", data={"name": "two\nlines"})
    assert refused.status_code == 400 and "one line" in page_text(refused)
    with app.app_context():
        assert db.session.get(Researcher, rid).name == "A. Lovelace"
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "researcher.name")
            )
            == 1
        )


@pytest.mark.once
def test_the_preview_shows_the_team_what_would_be_public(
    app, client, filled, make_researcher, monkeypatch, auth
):
    demo = filled
    drawn = chart_titles(monkeypatch)
    response = client.get(f"/r/studies/{demo}/findings/preview")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "noindex" in response.headers["X-Robots-Tag"]
    html_text = response.get_data(as_text=True)
    assert '<meta name="robots" content="noindex, nofollow">' in html_text
    text = page_text(response)
    assert "Preview — not public" in text
    assert TITLE in text and SUMMARY in text
    assert NAME not in html_text and PRIVATE not in html_text
    # Charts and JSON come from team routes: nothing under /f/ exists before publishing.
    assert "/f/demo/charts/" not in html_text
    chart = re.search(r'src="(/r/studies/\d+/findings/preview/charts/trust\.svg)"', html_text)
    assert chart is not None
    chart_response = client.get(chart.group(1))
    assert chart_response.status_code == 200 and chart_response.mimetype == "image/svg+xml"
    assert chart_response.headers["Cache-Control"] == "private, no-store"
    assert drawn == [(TITLE, drawn[0][1])]
    findings = client.get(f"/r/studies/{demo}/findings/preview/findings.json")
    assert findings.status_code == 200 and findings.get_json()["n_participants"] == 20
    assert app.test_client().get("/f/demo").status_code == 404

    # Editors may preview; viewers, strangers and visitors may not.
    editor = member(app, demo, "editor", "editor@example.org", make_researcher)
    viewer = member(app, demo, "viewer", "viewer@example.org", make_researcher)
    stranger = make_researcher(email="stranger@example.org")
    urls = (
        f"/r/studies/{demo}/findings/preview",
        f"/r/studies/{demo}/findings/preview/charts/trust.svg",
        f"/r/studies/{demo}/findings/preview/findings.json",
    )
    for who, status in ((editor, 200), (viewer, 403), (stranger, 404)):
        other = app.test_client()
        auth.sign_in(who, client=other)
        for url in urls:
            got = other.get(url)
            assert got.status_code == status, (who, url)
            assert "no-store" in got.headers["Cache-Control"]
    for url in urls:
        anonymous = app.test_client().get(url)
        assert anonymous.status_code == 302 and anonymous.location.startswith("/r/login")


def test_the_preview_needs_a_finished_report(app, client, demo, auth):
    auth.sign_in(owner_id(app))
    response = client.get(f"/r/studies/{demo}/findings/preview")
    assert response.status_code == 404
    assert "no finished report of the current data" in page_text(response)


@pytest.mark.once
def test_publishing_shows_what_becomes_public_and_needs_the_confirmation(app, client, filled):
    demo = filled
    page = client.get(f"/r/studies/{demo}/report/publish")
    assert page.status_code == 200
    text = page_text(page)
    assert "What becomes public" in text and TITLE in text and SUMMARY in text
    assert "None chosen" not in text and "Demo researcher" in text
    assert "20 included participants" in text
    assert NAME not in page.get_data(as_text=True).split("<h1>")[1].split("Never public")[0]
    assert f'href="/r/studies/{demo}/findings/preview"' in page.get_data(as_text=True)
    report_id = int(re.search(r'name="report_id" value="(\d+)"', page.get_data(as_text=True))[1])
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))

    # A post without the confirmation, or naming another report, publishes nothing.
    refused = client.post(f"/r/studies/{demo}/report/publish")
    assert refused.status_code == 400 and "review what becomes public" in page_text(refused)
    assert (
        client.post(f"/r/studies/{demo}/report/publish", data={"report_id": "x"}).status_code == 400
    )
    stale = client.post(
        f"/r/studies/{demo}/report/publish",
        data={"report_id": report_id + 99},
        follow_redirects=True,
    )
    assert "New data arrived after you reviewed what becomes public" in page_text(stale)
    with app.app_context():
        assert db.session.get(Study, demo).findings_published_at is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before
    assert app.test_client().get("/f/demo").status_code == 404

    done = client.post(f"/r/studies/{demo}/report/publish", data={"report_id": report_id})
    assert done.status_code == 302
    assert app.test_client().get("/f/demo").status_code == 200
    # The report page links to the confirmation, not to a one-click publish.
    report_page = client.get(f"/r/studies/{demo}/report").get_data(as_text=True)
    assert f'href="/r/studies/{demo}/report/publish"' in report_page
    assert f'action="/r/studies/{demo}/report/publish"' not in report_page


def test_the_confirmation_page_says_why_it_cannot_publish(app, client, demo, analyses, auth):
    fill(app, demo, 5, close=False)
    auth.sign_in(owner_id(app))
    client.get(f"/r/studies/{demo}/report")
    text = page_text(client.get(f"/r/studies/{demo}/report/publish"))
    assert "cannot be published now" in text and "Close it first" in text
    assert "at least 20 included participants; this report includes 5" in text
    assert 'name="report_id"' not in client.get(f"/r/studies/{demo}/report/publish").get_data(
        as_text=True
    )


def test_the_study_form_separates_the_four_texts(app, client, demo, auth):
    auth.sign_in(owner_id(app))
    page = client.get(f"/r/studies/{demo}/edit")
    text = page_text(page)
    for label in (
        "Internal name",
        "Title participants see",
        "Private description",
        "Public summary",
    ):
        assert label in text
    assert "must not give away what the study compares" in text
    assert "never on the public page, never in an export" in text
    with app.app_context():
        study = db.session.get(Study, demo)
        data = {
            "name": "Team name",
            "title": study.title,
            "slug": study.slug,
            "description": "note",
            "public_summary": "For studios.",
            "n_lists": study.n_lists,
            "assign_by": study.assign_by,
        }
    response = client.post(f"/r/studies/{demo}/edit", data=data)
    assert response.status_code == 302
    with app.app_context():
        study = db.session.get(Study, demo)
        assert (study.name, study.description, study.public_summary) == (
            "Team name",
            "note",
            "For studios.",
        )
    # The workspace shows the internal name; participants see the title.
    assert "Team name" in page_text(client.get("/r/studies"))
    participant = app.test_client().get("/s/demo")
    assert "Team name" not in participant.get_data(as_text=True)
    # An empty internal name falls back to the title.
    assert client.post(f"/r/studies/{demo}/edit", data={**data, "name": ""}).status_code == 302
    with app.app_context():
        assert db.session.get(Study, demo).name == db.session.get(Study, demo).title


def test_a_new_study_gets_its_name_or_its_title(app, client, make_researcher, auth):
    rid = make_researcher()
    auth.sign_in(rid)
    client.post("/r/studies/new", data={"title": "Faces", "name": "Pilot: AI vs real"})
    client.post("/r/studies/new", data={"title": "Faces again"})
    with app.app_context():
        rows = db.session.execute(
            sa.select(Study.name, Study.title, Study.slug).order_by(Study.id)
        ).all()
    # The link is made from the title participants see, never from the internal name.
    assert [tuple(r) for r in rows] == [
        ("Pilot: AI vs real", "Faces", "faces"),
        ("Faces again", "Faces again", "faces-again"),
    ]


def test_the_migration_fills_the_internal_name_from_the_title(app):
    from flask_migrate import downgrade, upgrade

    migrations = str(ROOT / "migrations")
    with app.app_context():
        db.session.remove()
        downgrade(directory=migrations, revision="0003_participant_starts")
        try:
            with db.engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO researcher (id, email, name, password_hash, is_admin, "
                        "session_version, created_at) "
                        "VALUES (1, 'r@example.org', 'R', 'x', false, 0, CURRENT_TIMESTAMP)"
                    )
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO study (id, slug, title, description, state, consent_text, "
                        "instructions_text, debrief_text, completion_code, completion_url, "
                        "n_lists, assign_by, settings, participants_started, created_at) "
                        "VALUES (1, 'old', 'An old study', 'note', 'draft', '', '', '', '', '', 2, "
                        "'started', '{}', 0, CURRENT_TIMESTAMP)"
                    )
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO study_member (study_id, researcher_id, role) "
                        "VALUES (1, 1, 'owner')"
                    )
                )
        finally:
            upgrade(directory=migrations)
        row = db.session.execute(
            sa.text("SELECT name, title, description, public_summary FROM study WHERE id = 1")
        ).one()
        assert tuple(row) == ("An old study", "An old study", "note", "")
        assert db.session.scalar(sa.text("SELECT is_author FROM study_member")) in (False, 0)


def test_the_study_definition_leaves_the_private_description_behind(app, client, demo, auth):
    set_texts(app, demo, name=NAME, description=PRIVATE)
    auth.sign_in(owner_id(app))
    response = client.get(f"/r/studies/{demo}/definition.json")
    assert response.status_code == 200
    definition = response.get_json()
    assert PRIVATE not in response.get_data(as_text=True)
    # The internal name travels with the team's own copy of the design, and comes back on import.
    assert definition["study"]["name"] == NAME
    imported = client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert imported.status_code == 302
    with app.app_context():
        copy = db.session.scalar(sa.select(Study).order_by(Study.id.desc()).limit(1))
        assert (copy.name, copy.description) == (NAME, "")
