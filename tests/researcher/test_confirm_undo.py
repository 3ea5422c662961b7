"""Confirmation before deleting, freezing and opening; undoing deletions of a draft's design."""

from __future__ import annotations

import re

import sqlalchemy as sa

from survey.extensions import db
from survey.models import Block, DeletedPart, Identity, Image, Preregistration, Study, StudyMember
from survey.researcher import undo
from survey.researcher.service import plan_row_values
from tests.researcher.helpers import blocks


def text(response) -> str:
    """Return a response's body as text."""
    return response.get_data(as_text=True)


def undo_url(page: str) -> str:
    """Return the address of the Undo button a page offers."""
    return re.search(r'action="(/r/studies/\d+/undo/\d+)"', page).group(1)


def study_row(app, study_id: int) -> Study:
    """Return the study (detached)."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        db.session.expunge(study)
        return study


def add_block(app, study_id: int, name: str, task: str, position: int) -> int:
    """Add a block directly; return its id."""
    with app.app_context():
        block = Block(study_id=study_id, name=name, task=task, position=position, settings={})
        db.session.add(block)
        db.session.commit()
        return block.id


def test_deleting_a_block_asks_first_and_undo_restores_its_place(app, team, owner_client):
    add_block(app, team.study_id, "real or ai", "detect", 3)
    before = [(b.id, b.name, b.position, b.settings) for b in blocks(app, team.study_id)]
    middle = before[1][0]
    url = f"/r/studies/{team.study_id}/blocks/{middle}/delete"
    listing = text(owner_client.get(f"/r/studies/{team.study_id}/blocks"))
    # The list links to the confirmation page; no one-click delete form.
    assert f'href="{url}"' in listing and f'action="{url}"' not in listing
    asked = owner_client.get(url)
    assert asked.status_code == 200
    page = text(asked)
    assert "Delete the block “impressions”?" in page and "You can undo this" in page
    assert f'action="{url}"' in page and len(blocks(app, team.study_id)) == 3
    assert owner_client.post(url).status_code == 302
    assert [b.name for b in blocks(app, team.study_id)] == ["recognition", "real or ai"]
    assert [b.position for b in blocks(app, team.study_id)] == [1, 2]
    page = text(owner_client.get(f"/r/studies/{team.study_id}/blocks"))
    assert "Deleted block &#39;impressions&#39;." in page
    assert owner_client.post(undo_url(page)).status_code == 302
    after = [(b.id, b.name, b.position, b.settings) for b in blocks(app, team.study_id)]
    assert after == before
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeletedPart)) == 0


def test_undo_is_refused_once_the_study_has_opened(app, team, owner_client):
    bid = blocks(app, team.study_id)[1].id
    owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}/delete")
    page = text(owner_client.get(f"/r/studies/{team.study_id}/blocks"))
    url = undo_url(page)
    # A rate block gone, the match block still runs: the study opens, and the design freezes.
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"}).status_code
        == 302
    )
    refused = owner_client.post(url)
    assert refused.status_code == 409
    assert "deletions can no longer be undone" in text(refused)
    assert [b.name for b in blocks(app, team.study_id)] == ["recognition"]
    with app.app_context():
        # Opening forgot the kept deletions.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeletedPart)) == 0


def test_undo_refuses_a_part_whose_name_or_code_was_taken_meanwhile(app, team, owner_client):
    bid = blocks(app, team.study_id)[1].id
    owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}/delete")
    url = undo_url(text(owner_client.get(f"/r/studies/{team.study_id}/blocks")))
    # Another editor adds a block with the same name before the undo.
    editor = team.client(app, "editor")
    editor.post(f"/r/studies/{team.study_id}/blocks", data={"name": "impressions", "task": "rate"})
    refused = owner_client.post(url)
    assert refused.status_code == 409
    assert "Another block is called &#39;impressions&#39; now" in text(refused)
    assert [b.name for b in blocks(app, team.study_id)] == ["recognition", "impressions"]
    with app.app_context():
        identity = db.session.scalar(sa.select(Identity).where(Identity.code == "P001"))
        identity_id = identity.id
    owner_client.post(f"/r/studies/{team.study_id}/stimuli/identities/{identity_id}/delete")
    url = undo_url(text(owner_client.get(f"/r/studies/{team.study_id}/stimuli")))
    with app.app_context():
        db.session.add(Identity(study_id=team.study_id, code="P001"))
        db.session.commit()
    refused = owner_client.post(url)
    assert refused.status_code == 409 and "code P001 was added since" in text(refused)


def test_undo_of_an_image_whose_identity_was_deleted_asks_for_that_first(app, team, owner_client):
    with app.app_context():
        image = db.session.scalar(
            sa.select(Image).join(Identity).where(Identity.code == "P002", Image.source == "ai")
        )
        image_id, identity_id = image.id, image.identity_id
    base = f"/r/studies/{team.study_id}/stimuli"
    owner_client.post(f"{base}/images/{image_id}/delete")
    image_undo = undo_url(text(owner_client.get(base)))
    owner_client.post(f"{base}/identities/{identity_id}/delete")
    identity_undo = undo_url(text(owner_client.get(base)))
    refused = owner_client.post(image_undo)
    assert refused.status_code == 409 and "Identity P002 was deleted since" in text(refused)
    assert owner_client.post(identity_undo).status_code == 302
    assert owner_client.post(image_undo).status_code == 302
    with app.app_context():
        identity = db.session.get(Identity, identity_id)
        assert sorted(im.source for im in identity.images) == ["ai", "photo", "real"]


def test_only_editors_undo(app, team, owner_client):
    bid = blocks(app, team.study_id)[1].id
    owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}/delete")
    url = undo_url(text(owner_client.get(f"/r/studies/{team.study_id}/blocks")))
    assert team.client(app, "viewer").post(url).status_code == 403
    assert team.client(app, "stranger").post(url).status_code == 404
    assert team.client(app, "editor").post(url).status_code == 302


def test_old_deletions_are_forgotten_with_their_files(app, team, owner_client, monkeypatch):
    monkeypatch.setattr(undo, "KEEP", 1)
    base = f"/r/studies/{team.study_id}/stimuli"
    with app.app_context():
        first, second = db.session.scalars(
            sa.select(Image).where(Image.study_id == team.study_id).order_by(Image.id).limit(2)
        ).all()
        keys = [first.storage_key, first.display_key]
        ids = (first.id, second.id)
    store_root = app.config["MEDIA_DIR"]
    owner_client.post(f"{base}/images/{ids[0]}/delete")
    assert all((__import__("pathlib").Path(store_root) / k).exists() for k in keys)
    owner_client.post(f"{base}/images/{ids[1]}/delete")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeletedPart)) == 1
    assert not any((__import__("pathlib").Path(store_root) / k).exists() for k in keys)


def test_removing_a_member_asks_first(app, team, owner_client):
    with app.app_context():
        member_id = db.session.scalar(
            sa.select(StudyMember.id).where(StudyMember.researcher_id == team.viewer)
        )
        owner_member = db.session.scalar(
            sa.select(StudyMember.id).where(StudyMember.researcher_id == team.owner)
        )
    url = f"/r/studies/{team.study_id}/members/{member_id}/remove"
    page = text(owner_client.get(f"/r/studies/{team.study_id}/members"))
    assert f'href="{url}"' in page and f'action="{url}"' not in page
    asked = owner_client.get(url)
    assert asked.status_code == 200 and "Remove viewer from this study?" in text(asked)
    last = owner_client.get(f"/r/studies/{team.study_id}/members/{owner_member}/remove")
    assert last.status_code == 409 and "make someone else owner first" in text(last)
    assert "Leave the study</button>" not in text(last)
    assert owner_client.post(url).status_code == 302
    with app.app_context():
        assert db.session.get(StudyMember, member_id) is None


def save_plan(app, study_id: int, plan: dict, frozen: bool = False) -> None:
    """Store a plan for the study."""
    from analysis.plan import validate_plan
    from survey.models import utcnow

    with app.app_context():
        values = plan_row_values(validate_plan(plan))
        db.session.add(
            Preregistration(study_id=study_id, frozen_at=utcnow() if frozen else None, **values)
        )
        db.session.commit()


def test_freezing_the_plan_asks_first(app, team, owner_client):
    save_plan(app, team.study_id, {"primary_outcomes": ["trust"]})
    url = f"/r/studies/{team.study_id}/preregistration/freeze"
    page = text(owner_client.get(f"/r/studies/{team.study_id}/preregistration"))
    assert f'href="{url}"' in page and f'action="{url}"' not in page
    asked = text(owner_client.get(url))
    assert "Freeze the plan now?" in asked and "This cannot be undone." in asked
    with app.app_context():
        assert db.session.scalar(sa.select(Preregistration.frozen_at)) is None
    assert owner_client.post(url).status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(Preregistration.frozen_at)) is not None


def test_a_deleted_block_the_plan_needs_stops_the_study_opening(app, team, owner_client):
    save_plan(app, team.study_id, {"primary_outcomes": ["trust"]}, frozen=True)
    bid = blocks(app, team.study_id)[1].id
    asked = text(owner_client.get(f"/r/studies/{team.study_id}/blocks/{bid}/delete"))
    assert "The preregistered plan names outcomes only this block measures (trust)" in asked
    owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}/delete")
    message = (
        "The preregistered plan names trust (primary outcome), but no block measures it now: "
        "add back a block that measures it (the plan is frozen)."
    )
    overview = text(owner_client.get(f"/r/studies/{team.study_id}"))
    assert message in overview
    # The Open button is not styled as the thing to do while the study cannot open.
    assert re.search(r'class="button secondary"\s+href="[^"]*state\?to=open"', overview)
    confirm = owner_client.get(f"/r/studies/{team.study_id}/state?to=open")
    assert confirm.status_code == 409 and message in text(confirm)
    assert "Open the study</button>" not in text(confirm)
    opened = owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    assert opened.status_code == 409 and message in text(opened)
    assert study_row(app, team.study_id).state == "draft"
    # Undoing the deletion lets it open, and Open is the thing to do again.
    page = text(owner_client.get(f"/r/studies/{team.study_id}/blocks"))
    owner_client.post(undo_url(page))
    overview = text(owner_client.get(f"/r/studies/{team.study_id}"))
    assert message not in overview
    assert re.search(r'class="button\s*"\s+href="[^"]*state\?to=open"', overview)
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"}).status_code
        == 302
    )


def test_a_deletion_can_be_made_for_good_with_its_files(app, team, owner_client):
    with app.app_context():
        identity = db.session.scalar(sa.select(Identity).where(Identity.code == "P003"))
        identity_id = identity.id
        keys = [k for im in identity.images for k in (im.storage_key, im.display_key)]
    base = f"/r/studies/{team.study_id}/stimuli"
    owner_client.post(f"{base}/identities/{identity_id}/delete")
    page = text(owner_client.get(base))
    root = __import__("pathlib").Path(app.config["MEDIA_DIR"])
    assert all((root / k).exists() for k in keys)
    forget_url = re.search(r'action="(/r/studies/\d+/undo/\d+/forget)"', page).group(1)
    assert team.client(app, "viewer").post(forget_url).status_code == 403
    assert owner_client.post(forget_url).status_code == 302
    assert not any((root / k).exists() for k in keys)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeletedPart)) == 0
    assert owner_client.post(forget_url).status_code == 404


def test_undo_of_an_image_goes_back_to_its_identity_by_code_not_by_a_reused_id(
    app, team, owner_client
):
    # SQLite gives a deleted row's id to the next row; PostgreSQL may restore an identity
    # under a new id. Either way the image belongs to the identity with its code.
    with app.app_context():
        image = db.session.scalar(
            sa.select(Image).join(Identity).where(Identity.code == "P002", Image.source == "ai")
        )
        image_id, identity_id = image.id, image.identity_id
    base = f"/r/studies/{team.study_id}/stimuli"
    owner_client.post(f"{base}/images/{image_id}/delete")
    image_undo = undo_url(text(owner_client.get(base)))
    owner_client.post(f"{base}/identities/{identity_id}/delete")
    identity_undo = undo_url(text(owner_client.get(base)))
    with app.app_context():
        db.session.add(Identity(id=identity_id, study_id=team.study_id, code="P777"))
        db.session.commit()
    refused = owner_client.post(image_undo)
    assert refused.status_code == 409 and "Identity P002 was deleted since" in text(refused)
    with app.app_context():
        assert db.session.get(Identity, identity_id).images == []
    # The identity comes back under a new id; the image follows it there.
    assert owner_client.post(identity_undo).status_code == 302
    assert owner_client.post(image_undo).status_code == 302
    with app.app_context():
        assert db.session.get(Identity, identity_id).images == []
        p002 = db.session.scalar(
            sa.select(Identity).where(Identity.study_id == team.study_id, Identity.code == "P002")
        )
        assert p002.id != identity_id
        assert sorted(im.source for im in p002.images) == ["ai", "photo", "real"]


def test_the_state_page_without_a_change_goes_to_the_overview(app, team, owner_client):
    response = owner_client.get(f"/r/studies/{team.study_id}/state")
    assert response.status_code == 302
    assert response.location.endswith(f"/r/studies/{team.study_id}")
    refused = owner_client.get(f"/r/studies/{team.study_id}/state?to=archived-twice")
    assert refused.status_code == 409
    assert study_row(app, team.study_id).state == "draft"
