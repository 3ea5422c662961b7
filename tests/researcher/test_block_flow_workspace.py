"""The block flow in the workspace: a block's instructions and breaks, the study's block order and
breaks between blocks, and questions asked after a block, each checked when saved in plain words."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import sqlalchemy as sa

from survey.extensions import db
from survey.models import Study, StudyQuestion
from tests.researcher.helpers import MATCH, block_id, blocks


def field_errors(page: str) -> list[str]:
    """Return the error texts shown beside the form's fields."""
    return [
        html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", block)).strip())
        for block in re.findall(r'<ul class="field-errors"[^>]*>(.*?)</ul>', page, re.S)
    ]


def settings(app, study_id: int) -> dict:
    with app.app_context():
        return dict(db.session.get(Study, study_id).settings or {})


def test_a_blocks_instructions_and_break_are_saved_and_checked(app, team, owner_client):
    bid = block_id(app, team.study_id, "recognition")
    url = f"/r/studies/{team.study_id}/blocks/{bid}"
    refused = owner_client.post(url, data={**MATCH, "instructions": "Look.", "break_every": "1"})
    assert refused.status_code == 400
    assert field_errors(refused.get_data(as_text=True)) == [
        "Break every must be a whole number of trials between 2 and 1,000, or empty for no "
        "break within the block; you wrote 1."
    ]
    # 8 identities and a practice trial: a break every 8 trials would never come.
    never = owner_client.post(url, data={**MATCH, "break_every": "8"})
    assert never.status_code == 400
    assert (
        "Break every: a break after every 8 trials never comes in this block, which has 8 "
        "trials; choose fewer, or leave it empty for no break within the block."
        in field_errors(never.get_data(as_text=True))
    )
    assert "break_every" not in blocks(app, team.study_id)[0].settings
    saved = owner_client.post(
        url, data={**MATCH, "instructions": "**Same person?** Look closely.", "break_every": "4"}
    )
    assert saved.status_code == 302
    stored = blocks(app, team.study_id)[0].settings
    assert stored["instructions"] == "**Same person?** Look closely." and stored["break_every"] == 4
    page = owner_client.get(url).get_data(as_text=True)
    assert "<strong>Same person?</strong> Look closely." in page
    # Emptied again: no page, no break, nothing stored for either.
    owner_client.post(url, data=MATCH)
    assert not {"instructions", "break_every"} & set(blocks(app, team.study_id)[0].settings)


def test_the_block_order_and_breaks_are_saved_and_checked(app, team, owner_client):
    url = f"/r/studies/{team.study_id}/blocks/flow"
    refused = owner_client.post(
        url,
        data={"block_order": "sideways", "blocks_last": ["nothing"], "break_message": "x" * 1001},
    )
    assert refused.status_code == 400
    assert field_errors(refused.get_data(as_text=True)) == [
        "Block order: choose fixed, randomised or counterbalanced; you wrote 'sideways'.",
        "Blocks kept at the end: the study has no block called 'nothing'.",
        "Break message: at most 1,000 characters; this has 1,001.",
    ]
    assert settings(app, team.study_id) == {}
    saved = owner_client.post(
        url,
        data={
            "block_order": "counterbalanced",
            "blocks_last": ["recognition"],
            "block_breaks": "y",
            "break_message": "Stretch.",
        },
    )
    assert saved.status_code == 303
    assert settings(app, team.study_id) == {
        "block_order": "counterbalanced",
        "blocks_last": ["recognition"],
        "block_breaks": True,
        "break_message": "Stretch.",
    }
    page = owner_client.get(f"/r/studies/{team.study_id}/blocks").get_data(as_text=True)
    assert 'value="counterbalanced" selected' in page or 'selected value="counterbalanced"' in page


def test_the_order_is_frozen_with_the_design_but_the_message_can_be_corrected(
    app, team, owner_client
):
    url = f"/r/studies/{team.study_id}/blocks/flow"
    owner_client.post(url, data={"block_order": "random", "block_breaks": "y"})
    with app.app_context():
        db.session.execute(
            sa.update(Study)
            .where(Study.id == team.study_id)
            .values(design_frozen_at=datetime.now(UTC), state="open")
        )
        db.session.commit()
    changed = owner_client.post(url, data={"block_order": "fixed", "block_breaks": "y"})
    assert changed.status_code == 400
    assert (
        "The block order is part of the frozen design and cannot change now that the study has "
        "opened." in field_errors(changed.get_data(as_text=True))
    )
    corrected = owner_client.post(
        url, data={"block_order": "random", "block_breaks": "y", "break_message": "Rest."}
    )
    assert corrected.status_code == 303
    assert settings(app, team.study_id)["break_message"] == "Rest."
    assert settings(app, team.study_id)["block_order"] == "random"


def test_a_viewer_cannot_change_the_block_flow(app, team):
    viewer = team.client(app, "viewer")
    response = viewer.post(
        f"/r/studies/{team.study_id}/blocks/flow", data={"block_order": "random"}
    )
    assert response.status_code == 403
    assert settings(app, team.study_id) == {}


def test_a_question_can_be_asked_right_after_a_block(app, team, owner_client):
    bid = block_id(app, team.study_id, "impressions")
    data = {"code": "effort", "text": "How hard was it?", "kind": "likert", "min": "1", "max": "5"}
    gone = owner_client.post(
        f"/r/studies/{team.study_id}/questions", data={**data, "asked": "999999"}
    )
    assert gone.status_code == 400
    assert (
        "Asked: choose the questions page or one of this study's blocks; that block is gone."
        in field_errors(gone.get_data(as_text=True))
    )
    added = owner_client.post(f"/r/studies/{team.study_id}/questions", data={**data, "asked": bid})
    assert added.status_code == 303
    with app.app_context():
        question = db.session.scalar(sa.select(StudyQuestion).where(StudyQuestion.code == "effort"))
        assert question.block_id == bid
    page = owner_client.get(f"/r/studies/{team.study_id}/questions").get_data(as_text=True)
    assert "Asked right after the block “impressions”." in page
    edit = owner_client.get(f"/r/studies/{team.study_id}/blocks/{bid}").get_data(as_text=True)
    assert "Asked right after this block: <code>effort</code>" in edit
