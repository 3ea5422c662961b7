"""The methods paragraph and the codebook describe a memory (learn-then-recognise) design."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path
from statistics import NormalDist, mean

import pytest
import sqlalchemy as sa

from analysis.io import load
from analysis.report import analyse
from survey import exports
from survey.extensions import db
from survey.findings import service
from survey.findings.methods import methods_paragraph
from survey.models import Participant, Report, Response, Trial
from tests.findings.support import block_text, fill, owner_id, page_text, paragraph

pytestmark = pytest.mark.once

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
    # The old/new GLMM over every test answer, as the report fits it (analysis/oldnew.py).
    assert (
        "with a logistic mixed model (said_old ~ status + (1 | participant) + (1 | identity)); "
        "its AI-versus-real contrast" in text
    )
    without = {**results, "memory": {**results["memory"], "old_new_glmm": None}}
    text = methods_paragraph(design, without, {"recruited": 32, "included": 31}, {})
    assert "said_old ~ status" not in text


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


def hand_memory(app, study_id: int) -> dict:
    """Memory d′ and c per encoding condition worked out from the stored answers, by the
    textbook: per participant, H = (hits + ½) / (met + 1) and F = (false alarms + ½) /
    (foils + 1) (log-linear), d′ = z(H) − z(F), c = −(z(H) + z(F)) / 2, then means over
    participants; raw rates as hits / met and false alarms / foils."""
    z = NormalDist().inv_cdf
    with app.app_context():
        rows = db.session.execute(
            sa.select(Participant.public_id, Trial.condition, Response.value)
            .join(Trial, Trial.participant_id == Participant.id)
            .join(Response, Response.trial_id == Trial.id)
            .where(
                Participant.study_id == study_id,
                Trial.task == "recognise",
                Response.measure == "old",
            )
        ).all()
    said: dict[tuple[str, str], list[int]] = defaultdict(list)
    for who, condition, value in rows:
        said[who, condition or "foil"].append(int(value))
    people = sorted({who for who, _status in said})
    out: dict = {"n": len(people), "fa": mean(mean(said[p, "foil"]) for p in people)}
    for condition in ("real", "ai"):
        d, c = [], []
        for p in people:
            met, foils = said[p, condition], said[p, "foil"]
            zh = z((sum(met) + 0.5) / (len(met) + 1))
            zf = z((sum(foils) + 0.5) / (len(foils) + 1))
            d.append(zh - zf)
            c.append(-(zh + zf) / 2)
        out[condition] = {
            "hit_rate": mean(mean(said[p, condition]) for p in people),
            "d_prime": mean(d),
            "criterion": mean(c),
        }
    return out


def test_the_report_shows_memory_d_prime_by_condition_as_worked_by_hand(
    app, client, demo, auth, analyses
):
    # The demo's memory test: 8 identities over 4 lists, so each participant meets 2 people in
    # a real photograph and 2 in an AI headshot, and sees 4 foils.
    fill(app, demo, 12, seed=7)
    hand = hand_memory(app, demo)
    assert hand["n"] == 12
    auth.sign_in(owner_id(app))
    response = client.get(f"/r/studies/{demo}/report")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    with app.app_context():
        results = service.results_json(db.session.scalar(sa.select(Report)))
    assert results["n_participants"] == 12
    memory = results["memory"]
    assert memory["false_alarm_rate"] == pytest.approx(hand["fa"], abs=1e-12)
    assert (memory["n_targets"], memory["n_foils"]) == (12 * 4, 12 * 4)
    for condition, label in (("real", "Real photograph"), ("ai", "AI headshot")):
        mine, worked = memory["conditions"][condition], hand[condition]
        assert mine["n_participants"] == 12
        for key in ("hit_rate", "d_prime", "criterion"):
            assert mine[key] == pytest.approx(worked[key], abs=1e-12), (condition, key)
        row = re.search(rf'<th scope="row">{label}</th>' + r"<td>([^<]*)</td>" * 5, html)
        assert row is not None, label
        assert row.groups() == (
            f"{worked['hit_rate'] * 100:.1f}%",
            f"{hand['fa'] * 100:.1f}%",
            f"{worked['d_prime']:.2f}",
            f"{worked['criterion']:.2f}",
            "12",
        )
    assert "Memory test: d′ by how people were met" in page_text(response)
    methods = re.search(r'<p class="methods" id="methods-text">(.*?)</p>', html, re.S)
    assert methods is not None
    assert "(said_old ~ status + (1 | participant) + (1 | identity))" in methods.group(1)
    # The hand values differ by condition: the rows are not one number shown twice.
    assert hand["real"]["d_prime"] != hand["ai"]["d_prime"]


def test_the_codebook_describes_the_memory_measures_and_columns(app, demo):
    with app.app_context():
        document = json.loads(exports.codebook_json(demo))
        rows = list(csv.DictReader(io.StringIO("".join(exports.codebook_csv(demo)))))
    memory = [m for m in document["measures"] if m["task"] in ("learn", "recognise")]
    assert [(m["block"], m["measure"], m["type"]) for m in memory] == [
        ("meet", "seen", "0/1"),
        ("meet again", "old", "0/1"),
        ("meet again", "name", "text"),
        ("meet again", "confidence", "integer"),
    ]
    by_measure = {m["measure"]: m for m in memory}
    assert by_measure["seen"]["values"] == "1 = the participant moved on from the headshot"
    assert by_measure["old"]["values"] == "1 = met before (yes), 0 = not met (no)"
    assert by_measure["old"]["question"] == "Did you meet this person as a new colleague?"
    assert "the name the person was studied with" in by_measure["name"]["values"]
    assert by_measure["confidence"]["values"] == "1 (Guessing) to 5 (Certain)"
    trials = {r["name"]: r for r in rows if r["file"] == "trials.csv"}
    studied = trials["studied"]
    assert (studied["type"], studied["values"]) == ("0/1", "0, 1, empty")
    assert "recognise only: 1 when the person was met in the learn block" in studied["description"]
    assert "foil (0), studied_real or studied_ai" in studied["description"]
    assert "recognise/old: old == studied" in trials["correct"]["description"]
    assert (
        "recognise: source of the headshot the person was studied with"
        in (trials["condition"]["description"])
    )
    # Each memory measure is also named where trials.csv's measure and value are described.
    for measure in ("seen", "old", "name"):
        assert measure in trials["measure"]["values"].split(", ")
