"""The methods paragraph says what each block setting did, for every value it can take."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.findings import service
from survey.findings.methods import methods_paragraph
from survey.models import Block, Study
from tests.findings.support import RESULTS, SAMPLE, block_text, paragraph

pytestmark = pytest.mark.once


def test_side_by_side_match_shows_both_photos_untimed():
    """Side by side: both photos together, no exposure time."""
    text = block_text(paragraph(("match", {"presentation": "side_by_side"})), 1)
    assert "a headshot (real or AI) and an in-person probe photo side by side" in text
    assert " ms" not in text


@pytest.mark.parametrize("exposure", [200, 733, 1500, 10000])
def test_sequential_match_times_only_the_headshot(exposure):
    """Sequential: the headshot alone for the exposure time, then the probe until the answer."""
    text = block_text(
        paragraph(("match", {"presentation": "sequential", "exposure_ms": exposure})), 1
    )
    assert (
        f"one after the other (the headshot alone for {exposure} ms, then the probe photo "
        "until the answer)"
    ) in text
    assert text.count(" ms") == 1 and "ms each" not in text


@pytest.mark.parametrize("task", ["match", "detect"])
@pytest.mark.parametrize("confidence", [True, False])
def test_confidence_is_said_only_when_asked(task, confidence):
    """ "how sure they were (1–5)" only for a block that asked for confidence."""
    text = block_text(paragraph((task, {"confidence": confidence})), 1)
    assert ("and how sure they were (1–5)" in text) is confidence


@pytest.mark.parametrize("task", ["match", "rate", "choose", "detect"])
@pytest.mark.parametrize(
    "checks, said",
    [
        (2, "with 2 attention checks"),
        (1, "with 1 attention check "),
        ([3, 5], "with 2 attention checks"),
        ([4], "with 1 attention check "),
        (0, None),
        ([], None),
    ],
)
def test_attention_checks_as_a_count_or_positions(task, checks, said):
    """A count ("2 checks") and a list of positions are both told as the number of checks."""
    text = block_text(paragraph((task, {"attention_checks": checks})), 1)
    if said is None:
        assert "attention check" not in text
    else:
        assert said in text + " "


@pytest.mark.parametrize(
    "practice, first, said",
    [
        (True, True, True),
        (True, False, True),
        (False, True, False),
        (False, False, False),
        (None, True, True),
        (None, False, False),
    ],
)
def test_practice_trial_as_it_ran(practice, first, said):
    """Yes, no, or by default only in the block that runs first."""
    blocks = [("detect", {"practice": practice})]
    if not first:
        blocks.insert(0, ("rate", {"practice": False}))
    text = block_text(paragraph(*blocks), 1 if first else 2)
    assert ("opened by a practice trial (not analysed)" in text) is said


@pytest.mark.parametrize(
    "task, cap, said",
    [
        ("match", 4, "showing 4 of the 8 identities, split evenly between the conditions"),
        ("rate", 5, "showing 5 of the 8 identities, split evenly between the conditions"),
        ("choose", 2, "showing 2 of the 8 identities (drawn per participant)"),
        ("detect", 8, None),
        ("detect", 12, None),
        ("match", None, None),
    ],
)
def test_a_cap_on_the_identities_shown(task, cap, said):
    """A cap below the study's identities is told; one at or above it shows them all."""
    text = block_text(paragraph((task, {"n_identities": cap})), 1)
    if said is None:
        assert "showing" not in text
    else:
        assert said in text


def test_rating_scales_and_choose_question():
    """Each scale with its range and question; the choose block's own question."""
    scales = [
        {"key": "trust", "question": "Trust?", "min": 0, "max": 100},
        {"key": "looks_competent", "question": "Competent?", "min": -3, "max": 3},
    ]
    text = paragraph(("rate", {"scales": scales}), ("choose", {"question": "Which one?"}))
    assert "rated on trust (0–100, “Trust?”) and looks competent (-3–3, “Competent?”)" in text
    assert "answering “Which one?”" in block_text(text, 2)


def test_lists_and_probes_follow_the_blocks():
    """Counterbalancing is told for condition blocks only; probes for match blocks only."""
    match = paragraph(("match", {}), ("choose", {}), n_lists=4)
    assert "split into 4 counterbalancing lists" in match
    assert "in the recognition block each participant" in match
    assert "in-person photographs as recognition probes" in match
    both = paragraph(("rate", {}), ("detect", {}))
    assert "in the rating and detection blocks each participant" in both
    assert "recognition probes" not in both
    choose = paragraph(("choose", {}), n_lists=3)
    assert "Latin square" not in choose and "recognition probes" not in choose
    assert "no counterbalancing lists were needed" in choose


def test_blocks_are_told_in_the_order_they_ran(app, demo):
    """A choose block placed first still runs after the others, and is told last."""
    with app.app_context():
        blocks = db.session.scalars(
            sa.select(Block).where(Block.study_id == demo).order_by(Block.position)
        ).all()
        for position, block in enumerate([blocks[-1], *blocks[:-1]], start=1):
            block.position = position
        db.session.commit()
        study = db.session.get(Study, demo)
        db.session.refresh(study)
        assert study.blocks[0].task == "choose"
        facts = service.design_facts(study)
    assert [b["task"] for b in facts["blocks"]] == [
        "match",
        "rate",
        "detect",
        "learn",
        "recognise",
        "choose",
    ]
    text = methods_paragraph(facts, RESULTS, SAMPLE, {})
    assert "(6) a paired-preference block (preference)" in text
    assert "(1) a recognition block (recognition)" in text
    assert "opened by a practice trial" in block_text(text, 1)


def test_report_design_lists_blocks_in_running_order(app, client, demo, analyses, auth):
    """The report's Design section numbers the blocks as they ran, choose blocks last."""
    from tests.findings.support import fill, owner_id, page_text
    from tests.helpers import refreeze

    with app.app_context():
        blocks = db.session.scalars(
            sa.select(Block).where(Block.study_id == demo).order_by(Block.position)
        ).all()
        for position, block in enumerate([blocks[-1], *blocks[:-1]], start=1):
            block.position = position
        db.session.commit()
        refreeze(demo)
    fill(app, demo, 3)
    auth.sign_in(owner_id(app))
    text = page_text(client.get(f"/r/studies/{demo}/report"))
    assert "Block 1: recognition (match)" in text
    assert "Block 6: preference (choose)" in text
    assert "(6) a paired-preference block (preference)" in text


def test_consent_is_claimed_only_as_far_as_it_was_recorded(app, demo):
    """The paragraph says the people consented only when every identity's consent is recorded."""
    from survey.models import Identity

    with app.app_context():
        study = db.session.get(Study, demo)
        assert service.design_facts(study)["n_consented"] == 8
        all_recorded = methods_paragraph(service.design_facts(study), RESULTS, SAMPLE, {})
        identities = db.session.scalars(
            sa.select(Identity).where(Identity.study_id == demo).order_by(Identity.code)
        ).all()
        for identity in identities[:3]:
            identity.consent_recorded = False
        db.session.commit()
        db.session.refresh(study)
        some = methods_paragraph(service.design_facts(study), RESULTS, SAMPLE, {})
        for identity in identities:
            identity.consent_recorded = False
        db.session.commit()
        db.session.refresh(study)
        none = methods_paragraph(service.design_facts(study), RESULTS, SAMPLE, {})
    assert "8 identities (people who consented to the use of their images)" in all_recorded
    assert "consented" not in some and "consented" not in none
    assert "8 identities (image-use consent recorded for 5 of them)" in some
    # Nothing recorded in the study: the paragraph says nothing about consent either way.
    assert "The stimuli showed 8 identities, each in a real photographic headshot" in none


def test_sequential_phases_are_told_in_order_in_ms_exactly_as_run():
    """Fixation cross, headshot, mask, blank, probe: each phase set is told with its ms."""
    settings = {
        "presentation": "sequential",
        "exposure_ms": 733,
        "fixation_ms": 500,
        "mask_ms": 117,
        "isi_ms": 250,
    }
    text = block_text(paragraph(("match", settings)), 1)
    assert (
        "one after the other (a fixation cross for 500 ms, then the headshot alone for 733 ms, "
        "then a pattern mask for 117 ms, then a blank screen for 250 ms, then the probe photo "
        "until the answer)"
    ) in text
    # A phase of 0 ms is not told.
    text = block_text(paragraph(("match", {**settings, "fixation_ms": 0, "mask_ms": 0})), 1)
    assert "fixation" not in text and "mask" not in text
    assert "headshot alone for 733 ms, then a blank screen for 250 ms, then the probe" in text
