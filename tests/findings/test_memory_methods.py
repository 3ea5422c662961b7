"""The methods paragraph and the codebook describe a memory (learn-then-recognise) design."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.io import load
from analysis.report import analyse
from survey.findings.methods import methods_paragraph
from tests.findings.support import block_text, fill, owner_id, page_text, paragraph

MEMORY = Path(__file__).resolve().parents[1] / "data" / "memory"


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({}, "each met once in its headshot (half of them real, half AI, by list), for 3000 ms"),
        ({"exposure_ms": 1200}, "for 1200 ms"),
        ({"exposure_ms": None}, "for as long as the participant chose (self-paced)"),
        (
            {"label": "Your new colleague Dr {name}"},
            "labelled “Your new colleague Dr <name>” with a fictional name per person",
        ),
        ({"label": "Your new colleague"}, "for 3000 ms, labelled “Your new colleague”"),
        ({"orienting_question": "How friendly?"}, "answering “How friendly?” (1–5)"),
    ],
)
def test_the_study_phase_is_told_as_it_ran(settings, said):
    text = paragraph(("learn", settings), ("rate", {}), ("recognise", {}), n_lists=4)
    assert said in block_text(text, 1)
    assert block_text(text, 2).startswith("(2) a first-impression block (b2)")
    assert "labelled" not in block_text(text, 1) or "label" in settings
    # A learn block has no practice trial, though it runs first.
    assert "practice" not in text


@pytest.mark.parametrize("recall", [True, False])
@pytest.mark.parametrize("confidence", [True, False])
def test_the_test_phase_is_told_as_it_ran(recall, confidence):
    text = paragraph(
        ("learn", {"label": "{name}"}),
        ("recognise", {"name_recall": recall, "confidence": confidence}),
        n_lists=4,
    )
    phase = block_text(text, 2)
    assert "every identity once in a new in-person photo" in phase
    assert "answering “Have you met this person before?”" in phase
    assert ("and how sure they were (1–5)" in phase) is confidence
    assert ("choosing the person's name from four studied names" in phase) is recall
    assert "met in its AI headshot and left unstudied (a foil) equally often" in text
    assert "as recognition probes" in text


@pytest.mark.slow
def test_the_analysis_sentence_names_the_shared_false_alarm_rate_and_the_glmm():
    results = analyse(load(MEMORY)).results
    design = {"n_identities": 16, "n_lists": 4, "blocks": []}
    text = methods_paragraph(design, results, {"recruited": 32, "included": 31}, {})
    assert "each participant's one false-alarm rate, over all foils, served both conditions" in text
    assert "(said old ~ condition + (1 | participant) + (1 | identity))" in text
    assert "memory sensitivity (d')" in text


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({}, "the test phase of the memory test (b2): every identity"),
        (
            {"distractor_s": 90},
            "(b2), after a 90-second distractor task of simple sums (not analysed): every",
        ),
        (
            {"delay_hours": 48},
            "(b2), in a second session at least 2 days later (participants came back through a "
            "personal return link or code): every",
        ),
        (
            {"delay_hours": 5, "distractor_s": 30},
            "in a second session at least 5 hours later (participants came back through a "
            "personal return link or code), then after a 30-second distractor task",
        ),
    ],
)
def test_the_delay_before_the_test_phase_is_told_as_it_ran(settings, said):
    text = paragraph(("learn", {}), ("recognise", settings), n_lists=4)
    assert said in block_text(text, 2)


@pytest.mark.slow
def test_the_report_shows_the_old_new_glmm_beside_the_memory_table(app, client, demo, auth):
    fill(app, demo, 16, seed=5)
    auth.sign_in(owner_id(app))
    text = page_text(client.get(f"/r/studies/{demo}/report"))
    assert "“Met before?” by status: old/new GLMM" in text
    assert "said_old ~ status + (1 | participant) + (1 | identity)" in text
    for row in (
        "Met in a real photo vs foil",
        "Met in an AI headshot vs foil",
        "AI vs real, people met",
    ):
        assert row in text
    assert "status overall: χ²(2) =" in text
