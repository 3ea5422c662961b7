"""Learn and recognise blocks in the workspace: added, configured, their bad inputs refused."""

from __future__ import annotations

import pytest

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
        ({"label": "Dr Ortiz"}, "Name label: write {name} once, where the person"),
    ],
)
def test_learn_settings_reject_bad_input(app, team, owner_client, fields, message):
    add(owner_client, team.study_id, "meet", "learn")
    bid = block_id(app, team.study_id, "meet")
    before = blocks(app, team.study_id)[-1].settings
    response = owner_client.post(
        f"/r/studies/{team.study_id}/blocks/{bid}", data={**LEARN, **fields}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert blocks(app, team.study_id)[-1].settings == before


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
