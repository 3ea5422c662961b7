"""`flask simulate-participants`: simulated participants through the real pages, with an effect."""

from __future__ import annotations

import random
import statistics

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Participant, Response, Trial
from survey.participant.simulate import Person
from tests.helpers import set_study


@pytest.mark.slow
def test_simulated_participants_answer_through_the_pages(app, runner, demo):
    result = runner.invoke(
        args=["simulate-participants", "--study", "demo", "-n", "12", "--seed", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "Simulated 12 participants in 'demo'" in result.output
    with app.app_context():
        people = db.session.scalars(sa.select(Participant)).all()
        assert len(people) == 12
        assert {p.status for p in people} <= {"completed", "in_progress"}
        completed = [p for p in people if p.status == "completed"]
        assert f"{len(completed)} completed" in result.output
        assert len(completed) >= 9
        assert {p.device for p in people} <= {"mobile", "desktop"}
        rts = db.session.scalars(sa.select(Response.rt_ms)).all()
        assert rts and all(rt is not None and 100 < rt < 20000 for rt in rts)
        # Every answered trial has its answers, and nothing else was stored.
        answered = db.session.scalar(
            sa.select(sa.func.count()).select_from(Trial).where(Trial.answered_at.is_not(None))
        )
        with_answers = db.session.scalar(sa.select(sa.func.count(sa.distinct(Response.trial_id))))
        assert answered == with_answers > 0


def counts(app) -> tuple[int, int]:
    """Return (participants with a recruitment id, all participants)."""
    with app.app_context():
        total = db.session.scalar(sa.select(sa.func.count()).select_from(Participant))
        recruited = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Participant)
            .where(Participant.source == "prolific")
        )
    return recruited, total


@pytest.mark.slow
def test_the_same_seed_resumes_rather_than_duplicates(app, runner, demo):
    runner.invoke(args=["simulate-participants", "--study", "demo", "-n", "6", "--seed", "11"])
    recruited, total = counts(app)
    assert recruited > 0
    result = runner.invoke(
        args=["simulate-participants", "--study", "demo", "-n", "6", "--seed", "11"]
    )
    assert result.exit_code == 0, result.output
    assert f"{recruited} resumed an earlier run" in result.output
    # Participants with a recruitment id come back as themselves; plain-link ones are new.
    assert counts(app) == (recruited, total + (total - recruited))


def test_simulated_answers_carry_a_modest_effect_of_ai_headshots():
    rng = random.Random(5)
    people = [Person.draw(random.Random(rng.getrandbits(64))) for _ in range(300)]
    trust = {"real": [], "ai": []}
    correct = {"real": [], "ai": []}
    says_ai = {"real": [], "ai": []}
    scales = {"scale_trust": [str(v) for v in range(1, 8)]}
    for person in people:
        for condition in ("real", "ai"):
            for k in range(4):
                trial = {
                    "condition": condition,
                    "identity": f"P{k}",
                    "is_match": k % 2 == 0,
                    "left_source": "real",
                    "attention_answer": None,
                }
                trust[condition].append(int(person.answer(trial, scales)["scale_trust"]))
                same = person.answer(trial, {"same": ["1", "0"], "confidence": list("12345")})
                correct[condition].append((same["same"] == "1") == trial["is_match"])
                says_ai[condition].append(
                    person.answer(trial, {"source": ["real", "ai"]})["source"] == "ai"
                )
    mean = statistics.mean
    assert -0.6 < mean(trust["ai"]) - mean(trust["real"]) < -0.1
    assert mean(correct["ai"]) < mean(correct["real"]) - 0.03
    assert mean(says_ai["ai"]) > mean(says_ai["real"]) + 0.05
    assert 0.25 < mean(says_ai["real"]) < 0.6  # near chance, as in published detection studies


def test_careless_participants_fail_attention_checks_more_often():
    check = {
        "condition": "real",
        "identity": "P1",
        "is_match": None,
        "left_source": None,
        "attention_answer": "2",
    }
    choices = {"attention": [str(v) for v in range(1, 8)]}
    rng = random.Random(9)
    passed = {True: [], False: []}
    for _ in range(400):
        person = Person.draw(random.Random(rng.getrandbits(64)))
        passed[person.careless].append(person.answer(check, choices)["attention"] == "2")
    assert statistics.mean(passed[False]) > 0.95 > 0.7 > statistics.mean(passed[True])


def test_an_unknown_or_closed_study_is_refused(app, runner, demo):
    result = runner.invoke(args=["simulate-participants", "--study", "nope"])
    assert result.exit_code != 0 and "no study has the slug 'nope'" in result.output
    set_study(app, demo, state="closed")
    result = runner.invoke(args=["simulate-participants", "--study", "demo"])
    assert result.exit_code != 0 and "study 'demo' is closed; open it first" in result.output
