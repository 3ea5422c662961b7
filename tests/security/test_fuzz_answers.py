"""Property-based fuzzing of the answer POST: whatever is posted, to whichever trial, the server
answers below 500, a refused answer stores nothing, and what is stored is always a valid
answer to the participant's own current trial, stored once and in order."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey.extensions import db
from survey.models import Block, Participant, Response, Study, Trial
from survey.participant import answers, forms
from survey.participant.answers import RT_MAX_MS
from survey.participant.starting import start_participant
from survey.questions import legacy_questions
from tests.security.helpers import fingerprint, participant_client, participant_with

pytestmark = pytest.mark.slow

FIELD_NAMES = [
    "same",
    "confidence",
    "source",
    "choice",
    "attention",
    "scale_trust",
    "rt_ms",
    "csrf_token",
    "participant",
    "trial_id",
    "measure",
    "value",
]
HOSTILE = [
    "",
    "1",
    "0",
    "2",
    "5",
    "7",
    "8",
    "-1",
    "real",
    "ai",
    "left",
    "right",
    "up",
    "1.0",
    " 1",
    "1 ",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "NaN",
    "Infinity",
    "-0",
    "1e309",
    "99999999999999999999",
    "\u202e1",
    "１",
    "٣",
    "true",
    "null",
    "[]",
    "{}",
]
fields = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(min_size=1, max_size=12),
    st.sampled_from(HOSTILE) | st.text(max_size=40).filter(lambda t: "\x00" not in t),
    max_size=8,
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def allowed_answers(trial: Trial, block: Block) -> dict[str, set[str]]:
    """Return, per stored measure, the values a valid answer to the trial may store."""
    questions = forms.questions_for(
        trial.task, answers.block_settings(block.id, trial.task, block.settings), trial.is_attention
    )
    allowed = {}
    for question in questions:
        values = {value for value, _label, _key in question.choices}
        allowed[question.measure] = {"real", "ai"} if question.measure == "choice" else values
    return allowed


def assert_invariants(app) -> None:
    """Every stored answer is valid, complete for its trial, and answered in order."""
    with app.app_context():
        trials = db.session.execute(
            sa.select(Trial, Block)
            .join(Block, Block.id == Trial.block_id)
            .order_by(Trial.participant_id, Trial.position)
        ).all()
        stored: dict[int, dict[str, Response]] = {}
        for response in db.session.scalars(sa.select(Response)):
            stored.setdefault(response.trial_id, {})[response.measure] = response
        unanswered_seen: dict[int, bool] = {}
        for trial, block in trials:
            answers = stored.get(trial.id, {})
            if trial.answered_at is None:
                assert answers == {}, ("answers on an unanswered trial", trial.id)
                unanswered_seen[trial.participant_id] = True
                continue
            assert not unanswered_seen.get(trial.participant_id), (
                "answered out of order",
                trial.id,
            )
            allowed = allowed_answers(trial, block)
            assert set(answers) == set(allowed), (trial.id, set(answers), set(allowed))
            for measure, response in answers.items():
                assert response.value in allowed[measure], (trial.id, measure, response.value)
                assert response.participant_id == trial.participant_id
                assert response.rt_ms is None or 0 < response.rt_ms < RT_MAX_MS


def current_trial(app, world, public_id: str) -> tuple[int, dict[str, list[str]]] | None:
    """Return the current trial's id and its questions' field names and values."""
    with app.app_context():
        state = answers.page_state(world.slug, public_id)
        if state is None or state.current is None:
            return None
        trial = state.current
        questions = forms.questions_for(trial.task, trial.settings, trial.is_attention)
        return trial.id, {q.name: [value for value, _l, _k in q.choices] for q in questions}


def fresh_participant(app, world, answered: int) -> tuple[str, list[int]]:
    """Start a participant with its first `answered` trials answered; return its id and trials."""
    with app.app_context():
        participant = start_participant(db.session.get(Study, world.study_id))
        rows = db.session.execute(
            sa.select(Trial, Block)
            .join(Block, Block.id == Trial.block_id)
            .where(Trial.participant_id == participant.id)
            .order_by(Trial.position)
        ).all()
        for trial, block in rows[:answered]:
            trial.answered_at = participant.started_at
            for measure, values in allowed_answers(trial, block).items():
                db.session.add(
                    Response(
                        trial_id=trial.id,
                        participant_id=participant.id,
                        measure=measure,
                        value=min(values),
                    )
                )
        db.session.commit()
        return participant.public_id, [trial.id for trial, _b in rows]


examples = st.fixed_dictionaries(
    {
        "answered": st.integers(0, 40),
        "target": st.sampled_from(["current", "own", "other", "unknown"]),
        "pick": st.integers(0, 10**6),
        "unknown_id": st.integers(1, 2**31 - 1),
        "mode": st.sampled_from(["valid", "mutated", "garbage"]),
        "choices": st.lists(st.integers(0, 100), min_size=3, max_size=3),
        "rt": st.sampled_from(["", "812.5", "-3", "NaN", "1e12", "abc", "0", "600000"]),
        "extra": fields,
    }
)


@given(example=examples)
@FUZZ
def test_fuzzed_answers_never_crash_and_store_only_valid_answers_in_order(app, world, example):
    public_id, own = fresh_participant(app, world, example["answered"])
    client = participant_with(app, world, public_id)
    current = current_trial(app, world, public_id)
    target = example["target"] if current else "own"
    trial_id = {
        "current": current[0] if current else None,
        "own": own[example["pick"] % len(own)],
        # The world's participant: another person's trial.
        "other": world.trial_id,
        "unknown": example["unknown_id"],
    }[target]
    if example["mode"] == "garbage" or current is None:
        form = dict(example["extra"])
    else:
        form = {
            name: values[pick % len(values)]
            # Three picks are drawn; a trial may ask fewer questions (or more, left unanswered).
            for (name, values), pick in zip(current[1].items(), example["choices"], strict=False)
        }
        form["rt_ms"] = example["rt"]
        if example["mode"] == "mutated":
            form.update(example["extra"])
    before = fingerprint(app)
    response = client.post(f"/s/{world.slug}/trial/{trial_id}", data=form)
    assert response.status_code < 500, (trial_id, form)
    if response.status_code >= 400:
        assert fingerprint(app) == before, (
            "a refused answer changed the database",
            response.status_code,
            form,
        )
    if target == "other":
        # Whatever happened, nothing was stored on another participant's trial.
        assert fingerprint(app) == before
    assert_invariants(app)


def test_the_fuzzing_really_reaches_stored_answers(app, world):
    """Valid answers are stored (so the fuzzing above checks real writes), once each."""
    client = participant_client(app, world)
    for _ in range(5):
        trial_id, questions = current_trial(app, world, world.participant_public_id)
        form = {name: values[0] for name, values in questions.items()} | {"rt_ms": "640"}
        assert client.post(f"/s/{world.slug}/trial/{trial_id}", data=form).status_code == 303
        # The same answer again is harmless: nothing new is stored.
        before = fingerprint(app)
        assert client.post(f"/s/{world.slug}/trial/{trial_id}", data=form).status_code == 303
        assert fingerprint(app) == before
    assert_invariants(app)
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(Trial).where(Trial.answered_at.is_not(None))
            )
            == 5
        )


@pytest.mark.parametrize("rt", ["0.01", "0.04", "1e-9"])
def test_a_response_time_that_rounds_to_zero_is_stored_as_missing(app, world, rt):
    """Times outside (0, 10 min) are faults stored as missing, rounding to 0.1 ms included."""
    client = participant_client(app, world)
    trial_id, questions = current_trial(app, world, world.participant_public_id)
    form = {name: values[0] for name, values in questions.items()} | {"rt_ms": rt}
    assert client.post(f"/s/{world.slug}/trial/{trial_id}", data=form).status_code == 303
    with app.app_context():
        assert db.session.scalars(
            sa.select(Response.rt_ms).where(Response.trial_id == trial_id)
        ).all() == [None] * len(questions)


def completed_participant(app, world) -> str:
    """Start a participant and mark every trial answered (no demographics yet); return its id."""
    public_id, _trials = fresh_participant(app, world, 10_000)
    with app.app_context():
        db.session.execute(
            sa.update(Participant)
            .where(Participant.public_id == public_id)
            .values(status="completed")
        )
        db.session.commit()
    return public_id


# The world study asks the questions studies asked before the builder (age 16-110, gender).
GENDERS = [value for value, _label in legacy_questions()[1]["spec"]["options"]]


@given(
    form=st.fixed_dictionaries(
        {},
        optional={
            "age": st.sampled_from(HOSTILE + ["30", "16", "110", "15", "111"])
            | st.integers(-(2**70), 2**70).map(str),
            "gender": st.sampled_from(HOSTILE + GENDERS),
            "save": st.sampled_from(["Send and finish", "", "x"]),
            "skip": st.sampled_from(["Skip", ""]),
        },
    )
)
@FUZZ
def test_fuzzed_demographics_store_only_allowed_values(app, world, form):
    public_id = completed_participant(app, world)
    client = participant_with(app, world, public_id)
    before = fingerprint(app)
    response = client.post(f"/s/{world.slug}/questions", data=form)
    assert response.status_code < 500, form
    if response.status_code >= 400:
        assert fingerprint(app) == before, form
    with app.app_context():
        stored = db.session.scalar(
            sa.select(Participant.demographics).where(Participant.public_id == public_id)
        )
    assert set(stored) <= {"age", "gender"}
    assert stored.get("age") is None or (
        isinstance(stored["age"], int) and 16 <= stored["age"] <= 110
    )
    assert stored.get("gender") in (None, *GENDERS)
