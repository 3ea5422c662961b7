"""Learn and recognise blocks in the workspace: added, configured, their bad inputs refused."""

from __future__ import annotations

import pytest

from survey.extensions import db
from survey.models import Study
from tests.researcher.helpers import block_id, blocks

LEARN = {
    "name": "meet",
    "exposure_ms": "2500",
    "label": "Your new colleague Dr {name}",
    "orienting_question": "How friendly does this person look?",
}
RECOGNISE = {"name": "meet again", "question": "Have you met this person before?"}


def add(owner_client, study_id: int, name: str, task: str):
    return owner_client.post(f"/r/studies/{study_id}/blocks", data={"name": name, "task": task})


@pytest.fixture
def four_lists(app, team):
    """Counterbalance the team's study over four lists, as learn and recognise blocks need."""
    with app.app_context():
        db.session.get(Study, team.study_id).n_lists = 4
        db.session.commit()


@pytest.mark.parametrize("task", ["learn", "recognise"])
def test_a_memory_block_is_refused_while_the_lists_are_not_in_fours(app, team, owner_client, task):
    before = blocks(app, team.study_id)
    response = add(owner_client, team.study_id, "meet", task)
    assert response.status_code == 400
    assert (
        "The study has 2 counterbalancing lists; learn and recognise blocks need the lists in "
        "fours (4, 8, 12…), so that every face is studied real, studied AI and a foil equally "
        "often. Change the number of lists in the study's settings first."
    ) in response.get_data(as_text=True).replace("&#39;", "'")
    assert [b.id for b in blocks(app, team.study_id)] == [b.id for b in before]


@pytest.mark.usefixtures("four_lists")
def test_add_and_configure_learn_and_recognise_blocks(app, team, owner_client):
    assert add(owner_client, team.study_id, "meet", "learn").status_code == 302
    assert add(owner_client, team.study_id, "meet again", "recognise").status_code == 302
    learn, recognise = blocks(app, team.study_id)[-2:]
    assert learn.settings == {"exposure_ms": 3000, "label": "", "orienting_question": ""}
    assert recognise.settings["question"] == "Have you met this person before?"

    url = f"/r/studies/{team.study_id}/blocks/{learn.id}"
    page = owner_client.get(url).get_data(as_text=True)
    assert "Study phase (learn)" in page and 'name="label"' in page
    # The settings of other tasks are not offered.
    assert 'name="attention_checks"' not in page and 'name="practice"' not in page
    assert "Leave empty for self-paced" in page
    assert owner_client.post(url, data=LEARN).status_code == 302
    assert blocks(app, team.study_id)[-2].settings == {
        "exposure_ms": 2500,
        "label": "Your new colleague Dr {name}",
        "orienting_question": "How friendly does this person look?",
    }
    # Empty exposure: self-paced.
    assert owner_client.post(url, data={**LEARN, "exposure_ms": ""}).status_code == 302
    assert blocks(app, team.study_id)[-2].settings["exposure_ms"] is None
    page = owner_client.get(url).get_data(as_text=True)
    assert 'value="Your new colleague Dr {name}"' in page

    url = f"/r/studies/{team.study_id}/blocks/{recognise.id}"
    page = owner_client.get(url).get_data(as_text=True)
    assert "Test phase (recognise)" in page and 'name="name_recall"' in page
    data = {**RECOGNISE, "name_recall": "y"}  # confidence unticked: not sent
    assert owner_client.post(url, data=data).status_code == 302
    assert blocks(app, team.study_id)[-1].settings == {
        "question": "Have you met this person before?",
        "confidence": False,
        "name_recall": True,
        "distractor_s": 0,
        "delay_hours": 0,
    }
    listing = owner_client.get(f"/r/studies/{team.study_id}/blocks").get_data(as_text=True)
    assert "Self-paced, labelled “Your new colleague Dr {name}”" in listing
    assert "“Have you met this person before?”, with name recall." in listing


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"exposure_ms": "100"},
            "Exposure must be a whole number between 200 and 10,000 ms, or empty to let "
            "participants continue when ready; you wrote 100.",
        ),
        ({"exposure_ms": "soon"}, "or empty to let participants continue when ready; you wrote"),
        (
            {"label": "Dr {name} or {name}"},
            "Name label: write {name} at most once, where the person's name goes (for example "
            "Your new colleague Dr {name}), or a role alone such as Your new colleague; you "
            "wrote 'Dr {name} or {name}'.",
        ),
        (
            {"label": "Your new colleague, " + "x" * 110},
            "Name label: at most 120 characters, so that it fits under the photo on a phone; it "
            "has 130.",
        ),
    ],
)
@pytest.mark.usefixtures("four_lists")
def test_learn_settings_reject_bad_input(app, team, owner_client, fields, message):
    add(owner_client, team.study_id, "meet", "learn")
    bid = block_id(app, team.study_id, "meet")
    before = blocks(app, team.study_id)[-1].settings
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}", data={**LEARN, **fields}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert blocks(app, team.study_id)[-1].settings == before


@pytest.mark.usefixtures("four_lists")
def test_a_role_without_a_name_is_a_label_kept_as_written(app, team, owner_client):
    add(owner_client, team.study_id, "meet", "learn")
    bid = block_id(app, team.study_id, "meet")
    role = {**LEARN, "label": "Your new colleague"}
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/blocks/{bid}", data=role).status_code == 302
    )
    assert blocks(app, team.study_id)[-1].settings["label"] == "Your new colleague"
    listing = owner_client.get(f"/r/studies/{team.study_id}/blocks").get_data(as_text=True)
    assert "labelled “Your new colleague”" in listing


@pytest.mark.usefixtures("four_lists")
def test_the_delay_before_the_test_phase_is_set_and_checked_in_plain_words(app, team, owner_client):
    add(owner_client, team.study_id, "meet again", "recognise")
    bid = block_id(app, team.study_id, "meet again")
    url = f"/r/studies/{team.study_id}/blocks/{bid}"
    page = owner_client.get(url).get_data(as_text=True)
    assert "Delay before the test" in page and "Prolific" in page
    data = {**RECOGNISE, "confidence": "y", "distractor_s": "90", "delay_hours": "48"}
    assert owner_client.post(url, data=data).status_code == 302
    settings = blocks(app, team.study_id)[-1].settings
    assert (settings["distractor_s"], settings["delay_hours"]) == (90, 48)
    listing = owner_client.get(f"/r/studies/{team.study_id}/blocks").get_data(as_text=True)
    assert "second session after 48 h; 90 s distractor first." in listing

    bad = {**data, "distractor_s": "900", "delay_hours": "two days"}
    response = owner_client.post(url, data=bad)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert (
        "Distractor before the test must be a whole number between 0 and 600 s; you wrote 900."
        in text
    )
    assert "Second session after must be a whole number between 0 and 720 hours" in text
    assert blocks(app, team.study_id)[-1].settings == settings
    # Emptied: no delay.
    assert (
        owner_client.post(url, data={**data, "distractor_s": "", "delay_hours": "0"}).status_code
        == 302
    )
    settings = blocks(app, team.study_id)[-1].settings
    assert (settings["distractor_s"], settings["delay_hours"]) == (0, 0)
