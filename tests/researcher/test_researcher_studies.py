"""Studies: create, edit texts and settings, states, duplicate, delete, members, definitions."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from survey.block_settings import stored_settings, validate_block_settings
from survey.extensions import db
from survey.markup import render_markdown
from survey.media import storage
from survey.models import AuditEvent, Block, Identity, Image, Preregistration, Study, StudyMember
from survey.researcher.service import slugify


def study_row(app, study_id: int) -> Study:
    """Return the study as stored now (detached)."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        db.session.expunge(study)
        return study


def actions(app, study_id: int | None = None) -> list[str]:
    """Return the audit actions recorded (for one study), oldest first."""
    with app.app_context():
        query = sa.select(AuditEvent.action).order_by(AuditEvent.id)
        if study_id is not None:
            query = query.where(AuditEvent.study_id == study_id)
        return db.session.scalars(query).all()


def count(app, model) -> int:
    """Count the rows of a table."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


EDIT = {
    "title": "Trust in headshots",
    "slug": "trust",
    "description": "",
    "consent_text": "You may stop at any time.",
    "instructions_text": "Answer quickly.",
    "debrief_text": "Thanks.",
    "completion_code": "C0DE-1",
    "completion_url": "https://app.prolific.com/submissions/complete?cc=C0DE-1",
    "target_n": "120",
    "n_lists": "2",
    "assign_by": "started",
}


# --- creating -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Trust in AI headshots", "trust-in-ai-headshots"),
        ("Über Café — 2025!", "uber-cafe-2025"),
        ("A", "study-a"),
        ("!!!", "study"),
        ("x" * 300, "x" * 56),
    ],
)
def test_slugs_are_made_from_titles(title, slug):
    assert slugify(title) == slug


def test_create_a_draft_study_with_a_unique_link(app, client, make_researcher, auth):
    owner = make_researcher()
    auth.sign_in(owner)
    first = client.post(
        "/r/studies/new", data={"title": "Trust in AI headshots", "description": "pilot"}
    )
    second = client.post("/r/studies/new", data={"title": "Trust in AI headshots"})
    assert first.status_code == second.status_code == 302
    with app.app_context():
        studies = db.session.scalars(sa.select(Study).order_by(Study.id)).all()
        assert [s.slug for s in studies] == ["trust-in-ai-headshots", "trust-in-ai-headshots-2"]
        assert all(s.state == "draft" for s in studies)
        member = db.session.scalar(
            sa.select(StudyMember).where(StudyMember.study_id == studies[0].id)
        )
        assert (member.researcher_id, member.role) == (owner, "owner")
    listing = client.get("/r/studies").get_data(as_text=True)
    assert "/s/trust-in-ai-headshots-2" in listing
    assert actions(app) == ["study.create", "study.create"]


@pytest.mark.parametrize(
    ("title", "message"), [("", "Give the study a title."), ("x" * 201, "200 characters")]
)
def test_create_rejects_bad_titles(app, client, make_researcher, title, message, auth):
    auth.sign_in(make_researcher())
    response = client.post("/r/studies/new", data={"title": title})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(app, Study) == 0


def test_study_forms_need_their_csrf_token(app, client, make_researcher, auth):
    auth.sign_in(make_researcher())
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/r/studies/new", data={"title": "No token"})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert count(app, Study) == 0


def test_studies_list_shows_only_my_studies(app, team):
    page = team.client(app, "viewer").get("/r/studies").get_data(as_text=True)
    assert "Trust in headshots" in page and "Someone else" not in page


# --- editing ------------------------------------------------------------------------------


def test_edit_texts_and_settings(app, team, owner_client):
    response = owner_client.post(f"/r/studies/{team.study_id}/edit", data=EDIT)
    assert response.status_code == 302
    study = study_row(app, team.study_id)
    assert (study.consent_text, study.completion_code, study.target_n) == (
        "You may stop at any time.",
        "C0DE-1",
        120,
    )
    assert study.completion_url.startswith("https://app.prolific.com/")
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "study.edit"))
        assert set(event.detail["fields"]) >= {"consent_text", "completion_code", "target_n"}
    cleared = owner_client.post(
        f"/r/studies/{team.study_id}/edit", data={**EDIT, "target_n": "", "completion_url": ""}
    )
    assert cleared.status_code == 302
    assert study_row(app, team.study_id).target_n is None


def test_markdown_is_previewed_safely_and_not_saved(app, team, owner_client):
    text = "**Welcome** <script>alert(1)</script> [site](javascript:alert(2))"
    response = owner_client.post(
        f"/r/studies/{team.study_id}/edit", data={**EDIT, "consent_text": text, "preview": "1"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>Welcome</strong>" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert str(render_markdown(text)) in page
    assert study_row(app, team.study_id).consent_text == ""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": ""}, "Give the study a title."),
        ({"slug": "Bad Slug"}, "Use lower-case letters, digits and single hyphens"),
        ({"slug": "ab"}, "3 to 64 characters"),
        ({"slug": "other"}, "Another study uses the link name"),
        ({"completion_url": "http://example.org/done"}, "Give a full https:// address"),
        ({"completion_url": "javascript:alert(1)"}, "Give a full https:// address"),
        ({"completion_code": "has space"}, "Use letters, digits"),
        (
            {"target_n": "0"},
            "The target number of participants must be a whole number between 1 and 1,000,000; "
            "you wrote 0.",
        ),
        (
            {"target_n": "many"},
            "The target number of participants must be a whole number between 1 and 1,000,000; "
            "you wrote &#39;many&#39;.",
        ),
        (
            {"n_lists": "0"},
            "Counterbalancing lists must be a whole number between 1 and 24; you wrote 0.",
        ),
        ({"n_lists": ""}, "Give the number of counterbalancing lists, e.g. 2."),
        (
            {"n_lists": "3"},
            "Counterbalancing lists must be a multiple of 2 because the study has match, rate or "
            "detect blocks",
        ),
        ({"assign_by": "whoever"}, "Not a valid choice."),
        ({"consent_text": "x" * 20001}, "20000 characters"),
    ],
)
def test_edit_rejects_bad_input(app, team, owner_client, fields, message):
    response = owner_client.post(f"/r/studies/{team.study_id}/edit", data={**EDIT, **fields})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    study = study_row(app, team.study_id)
    assert (study.slug, study.consent_text, study.title) == ("trust", "", "Trust in headshots")


def test_edit_shows_every_error_at_once_and_keeps_what_was_typed(app, team, owner_client):
    response = owner_client.post(
        f"/r/studies/{team.study_id}/edit",
        data={**EDIT, "title": "", "n_lists": "3", "slug": "other", "consent_text": "Typed"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Give the study a title." in page
    assert "Counterbalancing lists must be a multiple of 2" in page
    assert "Another study uses the link name" in page
    errors = re.findall(r'<ul class="field-errors"[^>]*>(.*?)</ul>', page, re.S)
    assert len(errors) == 3 and not any("n_lists" in e or "slug" in e for e in errors)
    assert re.search(r">\s*Typed</textarea>", page) and 'value="3"' in page
    assert study_row(app, team.study_id).n_lists == 2


MEMORY_LISTS = (
    "A memory study needs the lists in fours (4, 8, 12…) so every face is studied real, studied "
    "AI and a foil equally often; you wrote {}."
)


def test_a_memory_study_refuses_lists_not_in_fours(app, team, owner_client):
    with app.app_context():
        study = db.session.get(Study, team.study_id)
        study.n_lists = 4
        for position, (name, task) in enumerate((("meet", "learn"), ("test", "recognise")), 3):
            db.session.add(Block(study=study, position=position, name=name, task=task))
        db.session.commit()
    url = f"/r/studies/{team.study_id}/edit"
    for lists in ("2", "6", "3"):
        response = owner_client.post(url, data={**EDIT, "n_lists": lists})
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        errors = re.findall(r'<ul class="field-errors"[^>]*>(.*?)</ul>', page, re.S)
        # One plain sentence beside the field (3 lists: not the match blocks' one as well).
        assert [re.sub(r"<[^>]+>", "", e).strip() for e in errors] == [MEMORY_LISTS.format(lists)]
        study = study_row(app, team.study_id)
        assert (study.n_lists, study.consent_text) == (4, "")
    assert owner_client.post(url, data={**EDIT, "n_lists": "8"}).status_code == 302
    assert study_row(app, team.study_id).n_lists == 8


# --- the automatic return at the end (survey/ending.py) ---------------------------------------


def test_the_automatic_return_is_off_until_a_delay_is_given(app, team, owner_client):
    page = owner_client.get(f"/r/studies/{team.study_id}/edit").get_data(as_text=True)
    assert "Send participants back automatically after (seconds)" in page
    assert 'name="return_redirect_s" type="number" value=""' in page
    assert owner_client.post(f"/r/studies/{team.study_id}/edit", data=EDIT).status_code == 302
    assert "return_redirect_s" not in (study_row(app, team.study_id).settings or {})

    on = {**EDIT, "return_redirect_s": "30"}
    assert owner_client.post(f"/r/studies/{team.study_id}/edit", data=on).status_code == 302
    assert study_row(app, team.study_id).settings["return_redirect_s"] == 30
    page = owner_client.get(f"/r/studies/{team.study_id}/edit").get_data(as_text=True)
    assert 'name="return_redirect_s" type="number" value="30"' in page
    with app.app_context():
        event = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "study.edit").order_by(AuditEvent.id)
        ).all()[-1]
        assert event.detail["fields"] == ["return_redirect_s"]

    off = {**EDIT, "return_redirect_s": ""}
    assert owner_client.post(f"/r/studies/{team.study_id}/edit", data=off).status_code == 302
    assert "return_redirect_s" not in study_row(app, team.study_id).settings


def test_the_automatic_return_keeps_the_other_study_settings(app, team, owner_client):
    with app.app_context():
        db.session.execute(
            sa.update(Study)
            .where(Study.id == team.study_id)
            .values(settings={"demographics": False})
        )
        db.session.commit()
    on = {**EDIT, "return_redirect_s": "5"}
    assert owner_client.post(f"/r/studies/{team.study_id}/edit", data=on).status_code == 302
    assert study_row(app, team.study_id).settings == {"demographics": False, "return_redirect_s": 5}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"return_redirect_s": "4"}, "between 5 and 120 seconds; you wrote 4."),
        ({"return_redirect_s": "121"}, "between 5 and 120 seconds; you wrote 121."),
        ({"return_redirect_s": "-10"}, "between 5 and 120 seconds; you wrote -10."),
        ({"return_redirect_s": "2.5"}, "Not a valid integer value."),
        ({"return_redirect_s": "soon"}, "Not a valid integer value."),
        (
            {"return_redirect_s": "30", "completion_url": ""},
            "An automatic return needs a completion link",
        ),
    ],
)
def test_a_bad_return_delay_is_refused_next_to_its_field(app, team, owner_client, fields, message):
    response = owner_client.post(f"/r/studies/{team.study_id}/edit", data={**EDIT, **fields})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    errors = re.search(
        r'<ul class="field-errors" id="return_redirect_s-errors">(.*?)</ul>', page, re.S
    )
    assert errors and message in errors.group(1)
    study = study_row(app, team.study_id)
    assert study.consent_text == "" and "return_redirect_s" not in (study.settings or {})


@pytest.mark.parametrize("value", [4, 121, "30", 2.5, True])
def test_a_definition_with_a_bad_return_delay_creates_nothing(app, team, owner_client, value):
    definition = owner_client.get(f"/r/studies/{team.study_id}/definition.json").get_json()
    definition["study"]["settings"] = {"return_redirect_s": value}
    before = count(app, Study)
    response = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert response.status_code == 400
    assert "study.settings.return_redirect_s" in response.get_data(as_text=True)
    assert count(app, Study) == before


def test_a_definition_carries_the_return_delay(app, team, owner_client):
    on = {**EDIT, "return_redirect_s": "45"}
    assert owner_client.post(f"/r/studies/{team.study_id}/edit", data=on).status_code == 302
    definition = owner_client.get(f"/r/studies/{team.study_id}/definition.json").get_json()
    assert definition["study"]["settings"]["return_redirect_s"] == 45
    imported = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert imported.status_code == 302
    new_id = int(imported.location.rsplit("/", 1)[1])
    assert study_row(app, new_id).settings["return_redirect_s"] == 45


def test_open_study_keeps_its_link_and_lists(app, team, owner_client):
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"}).status_code
        == 302
    )
    page = owner_client.get(f"/r/studies/{team.study_id}/edit").get_data(as_text=True)
    assert re.search(r'id="slug"[^>]*readonly', page)
    renamed = owner_client.post(
        f"/r/studies/{team.study_id}/edit", data={**EDIT, "slug": "renamed"}
    )
    assert (
        renamed.status_code == 400
        and "cannot change once the study has opened" in renamed.get_data(as_text=True)
    )
    relisted = owner_client.post(f"/r/studies/{team.study_id}/edit", data={**EDIT, "n_lists": "4"})
    assert relisted.status_code == 400 and "part of the frozen design" in relisted.get_data(
        as_text=True
    )
    # Texts can still be corrected, and the change is audited.
    assert (
        owner_client.post(
            f"/r/studies/{team.study_id}/edit", data={**EDIT, "debrief_text": "Thank you!"}
        ).status_code
        == 302
    )
    assert study_row(app, team.study_id).debrief_text == "Thank you!"


# --- states -------------------------------------------------------------------------------


def test_opening_shows_what_the_design_still_needs(app, client, make_researcher, make_study, auth):
    owner = make_researcher()
    study_id = make_study(owner)
    auth.sign_in(owner)
    response = client.post(f"/r/studies/{study_id}/state", data={"state": "open"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "The study cannot open yet." in page and "Add at least one block" in page
    assert study_row(app, study_id).state == "draft"


def test_opening_names_identities_without_headshots(app, team, owner_client):
    with app.app_context():
        db.session.execute(
            sa.delete(Image).where(
                Image.source == "ai",
                Image.identity_id.in_(sa.select(Identity.id).where(Identity.code == "P003")),
            )
        )
        db.session.commit()
    response = owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    assert response.status_code == 409
    assert "Identity P003 has no ai headshot." in response.get_data(as_text=True)
    assert study_row(app, team.study_id).design_frozen_at is None


def test_the_state_cycle_freezes_the_design_once(app, team, owner_client):
    url = f"/r/studies/{team.study_id}/state"
    assert owner_client.post(url, data={"state": "open"}).status_code == 302
    study = study_row(app, team.study_id)
    assert (
        study.state == "open"
        and study.design_frozen_at is not None
        and len(study.design_sha256) == 64
    )
    frozen_at = study.design_frozen_at
    for state in ("closed", "open", "closed", "archived", "closed"):
        assert owner_client.post(url, data={"state": state}).status_code == 302, state
        assert study_row(app, team.study_id).state == state
    assert study_row(app, team.study_id).design_frozen_at == frozen_at
    assert actions(app, team.study_id) == [
        "study.open",
        "study.closed",
        "study.open",
        "study.closed",
        "study.archived",
        "study.closed",
    ]


def test_the_overview_state_buttons_post_one_state_each(app, team, owner_client):
    page = owner_client.get(f"/r/studies/{team.study_id}").get_data(as_text=True)
    # Opening is asked on a confirmation page first, which posts the one state.
    link = re.search(r'href="(/r/studies/\d+/state\?to=open)"', page).group(1)
    confirm = owner_client.get(link)
    assert confirm.status_code == 200 and study_row(app, team.study_id).state == "draft"
    page = confirm.get_data(as_text=True)
    assert "Open the study to participants?" in page and "The design" in page
    form = re.search(
        r'<form[^>]*action="/r/studies/\d+/state"[^>]*>(.*?)</form>', page, re.DOTALL
    ).group(1)
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form)
    assert [name for name, _v in fields].count("state") == 1
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/state", data=dict(fields)).status_code == 302
    )
    assert study_row(app, team.study_id).state == "open"


@pytest.mark.parametrize("state", ["archived", "closed", "draft", "published", ""])
def test_impossible_state_changes_are_refused(app, team, owner_client, state):
    response = owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": state})
    assert response.status_code == 409
    assert "A draft study cannot be moved to" in response.get_data(as_text=True)
    assert study_row(app, team.study_id).state == "draft"


def test_editors_change_state_viewers_do_not(app, team):
    url = f"/r/studies/{team.study_id}/state"
    assert team.client(app, "viewer").post(url, data={"state": "open"}).status_code == 403
    assert team.client(app, "editor").post(url, data={"state": "open"}).status_code == 302
    assert study_row(app, team.study_id).state == "open"


def test_an_archived_study_cannot_be_edited(app, team, owner_client):
    url = f"/r/studies/{team.study_id}/state"
    for state in ("open", "closed", "archived"):
        owner_client.post(url, data={"state": state})
    response = owner_client.post(f"/r/studies/{team.study_id}/edit", data=EDIT)
    assert response.status_code == 409 and "archived" in response.get_data(as_text=True)


def test_overview_links_every_part_and_previews(app, team, owner_client):
    page = owner_client.get(f"/r/studies/{team.study_id}").get_data(as_text=True)
    for path in (
        "stimuli",
        "exports",
        "blocks",
        "monitor",
        "preregistration",
        "members",
        "definition.json",
    ):
        assert f"/r/studies/{team.study_id}/{path}" in page
    assert 'action="/s/trust/preview"' in page
    assert "http://localhost/s/trust" in page
    assert "The design can run." in page


# --- duplicating and deleting -------------------------------------------------------------


def test_duplicate_copies_the_design_into_a_new_draft_with_its_own_files(app, team, owner_client):
    with app.app_context():
        db.session.add(
            Preregistration(
                study_id=team.study_id,
                plan={"alpha": 0.05},
                plan_json='{"alpha":0.05}',
                sha256="0" * 64,
            )
        )
        db.session.commit()
    owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    # A viewer changes nothing, and a copy would take the study's photographs along.
    assert (
        team.client(app, "viewer").post(f"/r/studies/{team.study_id}/duplicate").status_code == 403
    )
    editor = team.client(app, "editor")
    response = editor.post(f"/r/studies/{team.study_id}/duplicate")
    assert response.status_code == 302
    copy_id = int(response.location.rsplit("/", 1)[1])
    with app.app_context():
        source, copy = db.session.get(Study, team.study_id), db.session.get(Study, copy_id)
        # Participants of the copy see the same title; the team tells the copy by its name.
        assert (copy.state, copy.name, copy.title) == (
            "draft",
            "Trust in headshots (copy)",
            "Trust in headshots",
        )
        assert copy.slug == "trust-in-headshots"  # the source's link is "trust", set by hand
        assert copy.design_frozen_at is None and copy.preregistration.frozen_at is None
        assert [(b.name, b.task, b.settings) for b in copy.blocks] == [
            (b.name, b.task, b.settings) for b in source.blocks
        ]
        assert [i.code for i in copy.identities] == [i.code for i in source.identities]
        assert sorted(i.sha256 for i in copy.images) == sorted(i.sha256 for i in source.images)
        members = [(m.researcher_id, m.role) for m in copy.members]
        assert members == [(team.editor, "owner")]
        store = storage()
        for image in copy.images:
            assert image.storage_key.startswith(f"{copy_id}/") and store.exists(image.storage_key)
            assert store.exists(image.display_key)
    assert "study.duplicate" in actions(app, team.study_id)


def test_duplicate_with_a_missing_file_writes_nothing(app, team, owner_client):
    with app.app_context():
        image = db.session.scalars(sa.select(Image).order_by(Image.id.desc())).first()
        storage().delete(image.display_key)
    response = owner_client.post(f"/r/studies/{team.study_id}/duplicate")
    assert response.status_code == 409 and "missing from storage" in response.get_data(as_text=True)
    assert count(app, Study) == 2
    with app.app_context():
        folder = storage().root / "3"
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def test_delete_needs_the_owner_and_the_link_name(app, team, owner_client):
    url = f"/r/studies/{team.study_id}/delete"
    assert team.client(app, "editor").post(url, data={"confirm": "trust"}).status_code == 403
    wrong = owner_client.post(url, data={"confirm": "not-it"})
    assert wrong.status_code == 400 and "Type trust exactly" in wrong.get_data(as_text=True)
    with app.app_context():
        keys = db.session.scalars(
            sa.select(Image.storage_key).where(Image.study_id == team.study_id)
        ).all()
        store = storage()
    assert keys and all(store.exists(k) for k in keys)
    assert owner_client.post(url, data={"confirm": "trust"}).status_code == 302
    with app.app_context():
        assert db.session.get(Study, team.study_id) is None
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(Image).where(Image.study_id == team.study_id)
            )
            == 0
        )
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "study.delete"))
        assert (
            event.study_id is None
            and event.detail["slug"] == "trust"
            and event.researcher_id == team.owner
        )
    assert not any(store.exists(k) for k in keys)
    assert "study.delete" in owner_client.get("/r/account").get_data(as_text=True)


# --- members ------------------------------------------------------------------------------


def test_owner_adds_changes_and_removes_members(app, team, owner_client, make_researcher, auth):
    newcomer = make_researcher(email="new@example.org")
    url = f"/r/studies/{team.study_id}/members"
    assert (
        owner_client.post(url, data={"email": "NEW@example.org", "role": "editor"}).status_code
        == 302
    )
    with app.app_context():
        member = db.session.scalar(
            sa.select(StudyMember).where(StudyMember.researcher_id == newcomer)
        )
        member_id = member.id
        assert member.role == "editor"
    assert owner_client.post(f"{url}/{member_id}/role", data={"role": "viewer"}).status_code == 302
    newcomer_client = app.test_client()
    auth.sign_in(newcomer, client=newcomer_client)
    assert newcomer_client.get(f"/r/studies/{team.study_id}").status_code == 200
    assert (
        newcomer_client.post(
            f"/r/studies/{team.study_id}/state", data={"state": "open"}
        ).status_code
        == 403
    )
    assert owner_client.post(f"{url}/{member_id}/remove").status_code == 302
    assert newcomer_client.get(f"/r/studies/{team.study_id}").status_code == 404
    assert actions(app, team.study_id)[-3:] == ["member.add", "member.role", "member.remove"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "viewer@example.org"}, "is a member already (viewer)"),
        ({"email": ""}, "Enter the researcher&#39;s email."),
        ({"role": "admin"}, "Not a valid choice."),
    ],
)
def test_adding_members_rejects_bad_input(app, team, owner_client, fields, message):
    data = {"email": "stranger@example.org", "role": "viewer", **fields}
    response = owner_client.post(f"/r/studies/{team.study_id}/members", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(app, StudyMember) == 4


def flashed(client, response) -> str:
    """Return the flash message a redirect leads to."""
    page = client.get(response.location).get_data(as_text=True)
    return re.search(r'class="flash[^"]*"[^>]*>(.*?)</', page, re.S).group(1).strip()


def test_adding_an_email_without_an_account_answers_as_with_one(
    app, team, owner_client, make_researcher
):
    """The answer does not tell whether an email has an account; probing is rate limited."""
    make_researcher(email="known@example.org")
    url = f"/r/studies/{team.study_id}/members"
    known = owner_client.post(url, data={"email": "known@example.org", "role": "viewer"})
    said_known = flashed(owner_client, known)
    unknown = owner_client.post(url, data={"email": "unknown@example.org", "role": "viewer"})
    said_unknown = flashed(owner_client, unknown)
    assert (
        (known.status_code, known.location) == (unknown.status_code, unknown.location) == (302, url)
    )
    assert said_known.replace("known@", "@") == said_unknown.replace("unknown@", "@")
    assert count(app, StudyMember) == 5
    # Each probe of an email without an account counts as a failed sign-in of the address.
    app.config["LOGIN_MAX_PER_ADDRESS"] = 3
    for n in range(2):
        assert owner_client.post(url, data={"email": f"probe{n}@example.org"}).status_code == 302
    assert owner_client.post(url, data={"email": "probe9@example.org"}).status_code == 429
    assert count(app, StudyMember) == 5


def test_the_last_owner_stays(app, team, owner_client):
    with app.app_context():
        own = db.session.scalar(
            sa.select(StudyMember.id).where(
                StudyMember.researcher_id == team.owner, StudyMember.study_id == team.study_id
            )
        )
    url = f"/r/studies/{team.study_id}/members/{own}"
    demote = owner_client.post(f"{url}/role", data={"role": "editor"})
    assert demote.status_code == 409 and "needs an owner" in demote.get_data(as_text=True)
    remove = owner_client.post(f"{url}/remove")
    assert remove.status_code == 409 and "last owner" in remove.get_data(as_text=True)
    # With a second owner, the first may step down.
    with app.app_context():
        db.session.execute(
            sa.update(StudyMember)
            .where(StudyMember.researcher_id == team.editor)
            .values(role="owner")
        )
        db.session.commit()
    assert owner_client.post(f"{url}/remove").status_code == 302
    assert owner_client.get(f"/r/studies/{team.study_id}").status_code == 404


def test_membership_ids_of_another_study_are_404(app, team, owner_client):
    with app.app_context():
        foreign = db.session.scalar(
            sa.select(StudyMember.id).where(StudyMember.researcher_id == team.stranger)
        )
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/members/{foreign}/remove").status_code == 404
    )
    assert (
        owner_client.post(
            f"/r/studies/{team.study_id}/members/{foreign}/role", data={"role": "viewer"}
        ).status_code
        == 404
    )
    assert count(app, StudyMember) == 4


# --- definitions --------------------------------------------------------------------------


def test_definition_round_trip_creates_an_equal_draft(app, team, owner_client):
    owner_client.post(f"/r/studies/{team.study_id}/edit", data=EDIT)
    response = owner_client.get(f"/r/studies/{team.study_id}/definition.json")
    assert response.status_code == 200
    assert 'attachment; filename="study-trust.json"' == response.headers["Content-Disposition"]
    definition = response.get_json()
    assert definition["format"] == "likeness-study/1"
    assert len(definition["identities"]) == 8 and len(definition["identities"][0]["images"]) == 3
    assert "participants" not in definition and "storage_key" not in json.dumps(definition)
    imported = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert imported.status_code == 302
    new_id = int(imported.location.rsplit("/", 1)[1])
    with app.app_context():
        source, copy = db.session.get(Study, team.study_id), db.session.get(Study, new_id)
        assert copy.slug == "trust-in-headshots" and copy.state == "draft"
        assert (copy.consent_text, copy.completion_url, copy.target_n) == (
            source.consent_text,
            source.completion_url,
            source.target_n,
        )
        assert [(b.name, b.settings) for b in copy.blocks] == [
            (b.name, stored_settings(validate_block_settings(b.task, b.settings)))
            for b in source.blocks
        ]
        assert [(i.code, i.gender) for i in copy.identities] == [
            (i.code, i.gender) for i in source.identities
        ]
        assert copy.images == []
    assert "study.import" in actions(app, new_id)


def definition(**changes) -> str:
    """Return a small valid definition with some parts replaced."""
    base = {
        "format": "likeness-study/1",
        "study": {"title": "Imported", "n_lists": 2},
        "blocks": [{"name": "impressions", "task": "rate", "settings": {}}],
        "identities": [{"code": "P001"}, {"code": "P002"}],
        "preregistration": None,
    }
    base.update(changes)
    return json.dumps(base)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "The file is not valid JSON"),
        ('{"alpha": NaN}', "NaN"),
        ("[]", "the definition must be an object"),
        (definition(format="other/2"), "this is not a Likeness study definition"),
        (definition(study={"title": ""}), "study.title is missing or empty"),
        (
            definition(study={"title": "x", "n_lists": 0}),
            "study.n_lists must be a whole number from 1 to 24",
        ),
        (
            definition(study={"title": "x", "completion_url": "http://x.org"}),
            "must be an https:// address",
        ),
        (definition(blocks=[{"name": "b", "task": "dance"}]), "blocks[0].task must be one of"),
        (
            definition(blocks=[{"name": "b", "task": "match", "settings": {"exposure_ms": 5}}]),
            "blocks[0].settings: Exposure must be a whole number between 200 and 10,000 ms; you "
            "wrote 5.",
        ),
        (
            definition(blocks=[{"name": "b", "task": "rate"}, {"name": "b", "task": "detect"}]),
            "is used by another block",
        ),
        (definition(identities=[{"code": "P 1"}]), "identities[0].code"),
        (definition(identities=[{"code": "P1"}, {"code": "P1"}]), "is used by another identity"),
        (definition(preregistration={"plan": {"alpha": 2}}), "preregistration.plan: alpha"),
        ("", "Choose a definition file or paste its JSON."),
    ],
)
def test_bad_definitions_create_nothing(app, client, make_researcher, text, message, auth):
    auth.sign_in(make_researcher())
    response = client.post("/r/studies/import", data={"text": text})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert count(app, Study) == count(app, Block) == count(app, Identity) == 0


MEMORY_BLOCKS = [{"name": "meet", "task": "learn"}, {"name": "test", "task": "recognise"}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # The block settings in the workspace's words, every problem of the block at once.
        (
            {"blocks": [{"name": "b", "task": "rate", "settings": {"scales": ["trust"]}}]},
            "blocks[0].settings: Scale 1 is not a rating scale.",
        ),
        (
            {"blocks": [{"name": "b", "task": "rate", "settings": {"colour": 1, "practice": 2}}]},
            "blocks[0].settings: Practice trial: choose when this block runs first, yes or no; "
            "you wrote 2. A rate block has no setting called 'colour'.",
        ),
        (
            {"blocks": [{"name": "b", "task": "rate", "settings": "all"}]},
            "blocks[0].settings: The block's settings cannot be read; you wrote 'all'.",
        ),
        (
            {
                "study": {"title": "x", "n_lists": 4},
                "blocks": [
                    MEMORY_BLOCKS[0],
                    {**MEMORY_BLOCKS[1], "settings": {"name_recall": "y"}},
                ],
            },
            "blocks[1].settings: Name recall: choose yes or no; you wrote 'y'.",
        ),
        (
            {"blocks": [{"name": "b", "task": "detect", "settings": {"attention_checks": -2}}]},
            "blocks[0].settings: Attention checks: the number of checks cannot be negative; you "
            "wrote -2.",
        ),
        (
            {"blocks": [{"name": "b", "task": "learn", "settings": {"label": "x" * 121}}]},
            "blocks[0].settings: Name label: at most 120 characters, so that it fits under the "
            "photo on a phone; it has 121.",
        ),
        # The lists as the workspace checks them.
        (
            {"study": {"title": "x", "n_lists": 2}, "blocks": MEMORY_BLOCKS},
            "blocks[0]: The study has 2 counterbalancing lists; learn and recognise blocks need "
            "the lists in fours (4, 8, 12…), so that every face is studied real, studied AI and a "
            "foil equally often. Change the number of lists in the study's settings first.",
        ),
        (
            {"study": {"title": "x", "n_lists": 3}},
            "blocks[0]: The study has 3 counterbalancing lists; match, rate and detect blocks "
            "need a multiple of 2",
        ),
        # The block flow as the workspace checks it.
        (
            {"study": {"title": "x", "settings": {"break_message": ["Rest."]}}},
            "study.settings: Break message: write a text, or leave it empty.",
        ),
        (
            {
                "study": {"title": "x", "n_lists": 4, "settings": {"block_order": "random"}},
                "blocks": MEMORY_BLOCKS,
            },
            "study.settings: Block order: the learn and recognise blocks (meet, test) must run in "
            "the order listed",
        ),
    ],
)
def test_a_definition_is_checked_in_the_workspaces_words(
    app, client, make_researcher, auth, changes, message
):
    auth.sign_in(make_researcher())
    response = client.post("/r/studies/import", data={"text": definition(**changes)})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert count(app, Study) == count(app, Block) == count(app, Identity) == 0


def test_a_memory_definition_in_four_lists_with_a_role_label_is_imported(
    app, client, make_researcher, auth
):
    auth.sign_in(make_researcher())
    learn = {**MEMORY_BLOCKS[0], "settings": {"label": "Your new colleague"}}
    text = definition(study={"title": "Meet", "n_lists": 4}, blocks=[learn, MEMORY_BLOCKS[1]])
    assert client.post("/r/studies/import", data={"text": text}).status_code == 302
    with app.app_context():
        study = db.session.scalar(sa.select(Study))
        assert study.n_lists == 4
        assert [(b.task, b.settings.get("label")) for b in study.blocks] == [
            ("learn", "Your new colleague"),
            ("recognise", None),
        ]


def nested(depth: int, leaf: str = "1") -> str:
    """Return JSON text of objects nested `depth` deep."""
    return '{"a":' * depth + leaf + "}" * depth


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # These gave a 500 with a traceback: recursion while parsing, or text the database refuses.
        ("[" * 100_000 + "]" * 100_000, "nests objects and lists more than 32 levels deep"),
        (nested(100_000), "nests objects and lists more than 32 levels deep"),
        (
            definition(study={"title": "x", "settings": json.loads(nested(900))}),
            "more than 32 levels deep",
        ),
        (definition(study={"title": "x", "description": "\ud800"}), "lone surrogate"),
        (definition(study={"title": "x", "debrief_text": "a\x00b"}), "NUL character"),
        (definition(study={"title": "x", "settings": {"k\x00": 1}}), "A key holds a NUL character"),
        # JSON of the wrong types, at each level.
        ("null", "the definition must be an object"),
        ('"likeness-study/1"', "the definition must be an object"),
        (definition(study=[]), "study must be an object"),
        (definition(study={"title": ["x"]}), "study.title must be text"),
        (
            definition(study={"title": "x", "target_n": "5"}),
            "study.target_n must be a positive whole number",
        ),
        (definition(study={"title": "x", "settings": [1]}), "study.settings must be an object"),
        (definition(blocks={}), "blocks must be a list"),
        (definition(blocks=["rate"]), "blocks[0] must be an object"),
        (definition(blocks=[{"name": "b", "task": "rate", "settings": "x"}]), "blocks[0].settings"),
        (definition(identities="P001"), "identities must be a list"),
        (definition(identities=[{"code": 7}]), "identities[0].code"),
        (definition(preregistration={"plan": [1]}), "preregistration.plan"),
    ],
)
def test_hostile_and_mistyped_definitions_get_400_not_500(
    app, client, make_researcher, text, message, auth
):
    auth.sign_in(make_researcher())
    response = client.post("/r/studies/import", data={"text": text})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert count(app, Study) == count(app, Block) == count(app, Identity) == 0


def test_definition_file_upload(app, client, make_researcher, auth):
    import io

    auth.sign_in(make_researcher())
    upload = (io.BytesIO(definition().encode()), "study.json")
    response = client.post(
        "/r/studies/import", data={"file": upload}, content_type="multipart/form-data"
    )
    assert response.status_code == 302
    with app.app_context():
        study = db.session.scalar(sa.select(Study))
        assert (study.title, study.slug, len(study.blocks)) == ("Imported", "imported", 1)
    binary = (io.BytesIO(b"\xff\xfe\x00garbage"), "photo.jpg")
    refused = client.post(
        "/r/studies/import", data={"file": binary}, content_type="multipart/form-data"
    )
    assert refused.status_code == 400 and "not UTF-8 text" in refused.get_data(as_text=True)
