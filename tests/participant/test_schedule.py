"""Starting participants: fewest-first lists under concurrent starts, balance, stored schedules."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

import pytest
import sqlalchemy as sa

from survey import design
from survey.extensions import db
from survey.models import Identity, Participant, Study, Trial
from survey.participant import service, starting
from survey.participant.recruitment import Recruitment
from survey.studies import design_sha256
from tests.helpers import DEMO_TRIALS, set_study


def start(app, study_id: int, **kwargs) -> Participant:
    """Start one participant through the service, in an application context of its own."""
    with app.app_context():
        participant = starting.start_participant(db.session.get(Study, study_id), **kwargs)
        db.session.refresh(participant)
        db.session.expunge(participant)
        return participant


def start_concurrently(app, study_id: int, n: int, **kwargs) -> tuple[list[Participant], list[str]]:
    """Start `n` participants at the same moment from `n` threads; return them and refusals."""
    barrier = threading.Barrier(n)
    started, refused, errors = [], [], []

    def run() -> None:
        try:
            with app.app_context():
                study = db.session.get(Study, study_id)
                db.session.rollback()
                barrier.wait()
                try:
                    participant = starting.start_participant(study, **kwargs)
                    started.append(participant.id)
                except starting.StudyUnavailable as exc:
                    refused.append(exc.reason)
        except Exception as exc:  # surfaced below: a thread must not swallow a failure
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with app.app_context():
        rows = db.session.scalars(sa.select(Participant).where(Participant.id.in_(started))).all()
        for row in rows:
            db.session.expunge(row)
    return rows, refused


def shown(app, participant_id: int) -> list[tuple[int, str, str | None, bool, bool, bool | None]]:
    """Return (position, task, identity, condition, practice, attention, is_match) per trial."""
    with app.app_context():
        return db.session.execute(
            sa.select(
                Trial.position,
                Trial.task,
                Identity.code,
                Trial.condition,
                Trial.is_practice,
                Trial.is_attention,
                Trial.is_match,
            )
            .join(Identity, Identity.id == Trial.identity_id)
            .where(Trial.participant_id == participant_id)
            .order_by(Trial.position)
        ).all()


def test_lists_and_conditions_balance_over_many_participants(app, demo):
    people = [start(app, demo) for _ in range(40)]
    assert Counter(p.list_index for p in people) == {0: 10, 1: 10, 2: 10, 3: 10}
    # identity -> condition -> participants who saw it so (match, rate, detect, learn)
    seen: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    # identity -> its memory role -> participants (studied real, studied ai, foil)
    roles: dict[str, Counter] = defaultdict(Counter)
    for p in people:
        trials = shown(app, p.id)
        conditions: dict[str, set[str]] = defaultdict(set)
        for _position, task, code, condition, _practice, _attention, _is_match in trials:
            if task == "recognise":
                roles[code][condition or "foil"] += 1
            elif task != "choose":
                conditions[code].add(condition)
                seen[code][condition].add(p.id)
        # Each identity in one condition only, the same in every match, rate and detect block.
        assert all(len(c) == 1 for c in conditions.values()), conditions
        # Choose blocks, which show both versions, come after all the others.
        tasks = [t[1] for t in trials]
        assert tasks.index("choose") > max(i for i, t in enumerate(tasks) if t != "choose")
        # Match: half same-identity probes, half foils, in each condition.
        regular = [t for t in trials if t[1] == "match" and not t[4] and not t[5]]
        for condition in ("real", "ai"):
            matches = Counter(t[6] for t in regular if t[3] == condition)
            assert matches[True] == matches[False] == 2
    # Each identity equally often in each condition across participants.
    assert len(seen) == 8
    for code, by_condition in seen.items():
        assert {c: len(ids) for c, ids in by_condition.items()} == {"real": 20, "ai": 20}, code
    # Memory: every identity a target as often as a foil, studied real as often as ai.
    assert all(r == {"real": 10, "ai": 10, "foil": 20} for r in roles.values()), roles


def test_a_new_participant_gets_the_list_with_the_fewest_participants(app, demo):
    first, second = start(app, demo), start(app, demo)
    assert (first.list_index, second.list_index) == (0, 1)
    # Withdrawn participants and preview runs do not count.
    with app.app_context():
        service.withdraw(db.session.get(Participant, second.id))
    assert start(app, demo, preview=True).list_index == 0
    assert start(app, demo).list_index == 1


def test_assignment_by_completed_counts_only_completed_participants(app, demo):
    set_study(app, demo, assign_by="completed")
    a = start(app, demo)
    b = start(app, demo)
    assert (a.list_index, b.list_index) == (0, 0)
    with app.app_context():
        db.session.execute(
            sa.update(Participant).where(Participant.id == a.id).values(status="completed")
        )
        db.session.commit()
    assert start(app, demo).list_index == 1


def test_concurrent_starts_take_one_slot_each(app, demo):
    people, refused = start_concurrently(app, demo, 12)
    assert not refused and len(people) == 12
    assert Counter(p.list_index for p in people) == {0: 3, 1: 3, 2: 3, 3: 3}
    with app.app_context():
        assert db.session.get(Study, demo).participants_started == 12
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Trial)) == 12 * DEMO_TRIALS


def test_concurrent_starts_cannot_overrun_target_n(app, demo):
    set_study(app, demo, target_n=5)
    people, refused = start_concurrently(app, demo, 10)
    assert len(people) == 5 and refused == ["full"] * 5
    assert Counter(p.list_index for p in people) == {0: 2, 1: 1, 2: 1, 3: 1}


def test_concurrent_starts_with_one_recruitment_id_make_one_participant(app, demo):
    recruitment = Recruitment("prolific", "same-person", {"STUDY_ID": "s"})
    people, refused = start_concurrently(app, demo, 6, recruitment=recruitment)
    assert not refused and len({p.id for p in people}) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Participant)) == 1


@pytest.mark.parametrize(
    ("state", "reason"), [("draft", "draft"), ("closed", "closed"), ("archived", "closed")]
)
def test_a_study_that_is_not_open_starts_nobody(app, demo, state, reason):
    set_study(app, demo, state=state)
    with pytest.raises(starting.StudyUnavailable) as raised:
        start(app, demo)
    assert raised.value.reason == reason
    with app.app_context():
        assert db.session.get(Study, demo).participants_started == 0
    # A preview run works on a study in any state, and is flagged.
    assert start(app, demo, preview=True).is_preview


def test_the_stored_schedule_regenerates_identically_from_the_seed(app, demo):
    people = [start(app, demo) for _ in range(4)]
    fingerprints = set()
    with app.app_context():
        for p in people:
            participant = db.session.get(Participant, p.id)
            stored = starting.stored_schedule(participant)
            assert 0 <= participant.seed < 2**63
            assert stored == starting.regenerate_schedule(participant)
            assert len(stored) == DEMO_TRIALS and [s.position for s in stored] == list(
                range(1, DEMO_TRIALS + 1)
            )
            fingerprints.add(design.schedule_fingerprint(stored))
    # Four seeds, four different orders.
    assert len(fingerprints) == 4


def test_a_design_that_cannot_run_starts_nobody_and_writes_nothing(app, demo):
    with app.app_context():
        identity = db.session.scalars(sa.select(Identity)).first()
        db.session.delete(identity)
        db.session.add(Identity(study_id=demo, code="P999"))  # no headshots at all
        db.session.flush()
        # Frozen as it is now, so that the start reaches the design's own checks.
        study = db.session.get(Study, demo)
        db.session.refresh(study)
        study.design_sha256 = design_sha256(study)
        db.session.commit()
    with pytest.raises(design.DesignError):
        start(app, demo)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Participant)) == 0
        assert db.session.get(Study, demo).participants_started == 0
