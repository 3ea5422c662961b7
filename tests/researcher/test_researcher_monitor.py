"""The monitor: counts per list, status and condition, timing, attention checks, recent answers,
previews apart, and a paginated table, on 2,000 participants inserted in bulk."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import (
    Block,
    Identity,
    Image,
    Participant,
    RecruitmentId,
    Response,
    Trial,
    utcnow,
)

N = 2000
STATUSES = ("completed", "completed", "in_progress", "withdrawn")  # by index % 4
WITH_TRIALS = 100  # participants given trials and answers


@pytest.fixture
def crowd(app, team, owner_client):
    """Open the team's study and insert 2,000 participants (and 5 preview runs) in bulk."""
    owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    now = utcnow()
    base = now - timedelta(hours=5)
    durations = []
    with app.app_context():
        rate = db.session.scalar(
            sa.select(Block.id).where(Block.study_id == team.study_id, Block.task == "rate")
        )
        match = db.session.scalar(
            sa.select(Block.id).where(Block.study_id == team.study_id, Block.task == "match")
        )
        identity = db.session.scalar(
            sa.select(Identity.id).where(Identity.study_id == team.study_id)
        )
        image = db.session.scalar(sa.select(Image.id).where(Image.identity_id == identity))
        rows = []
        for i in range(N):
            status = STATUSES[i % 4]
            started = base + timedelta(seconds=i)
            completed = (
                started + timedelta(seconds=600 + (i * 7) % 900) if status == "completed" else None
            )
            if completed:
                durations.append((completed - started).total_seconds())
            rows.append(
                {
                    "study_id": team.study_id,
                    "list_index": i % 2,
                    "seed": i,
                    "status": status,
                    "started_at": started,
                    "completed_at": completed,
                    "source": "prolific",
                    "device": "mobile" if i % 3 else "desktop",
                }
            )
        rows += [
            {
                "study_id": team.study_id,
                "list_index": 0,
                "seed": 1,
                "status": "completed",
                "is_preview": True,
                "started_at": base,
                "completed_at": base + timedelta(seconds=5),
            }
            for _ in range(5)
        ]
        db.session.execute(sa.insert(Participant), rows)
        ids = db.session.scalars(
            sa.select(Participant.id)
            .where(Participant.is_preview.is_(False))
            .order_by(Participant.id)
            .limit(WITH_TRIALS)
        ).all()
        db.session.execute(
            sa.insert(RecruitmentId),
            [
                {
                    "participant_id": pid,
                    "study_id": team.study_id,
                    "platform": "prolific",
                    "external_id": f"PID{pid:05d}",
                }
                for pid in ids
            ],
        )
        trials = []
        for n, pid in enumerate(ids):
            common = {"participant_id": pid, "identity_id": identity, "image_id": image}
            recent = now - timedelta(minutes=2) if n < 30 else base
            trials += [
                {
                    **common,
                    "block_id": rate,
                    "position": 1,
                    "task": "rate",
                    "condition": "real",
                    "answered_at": recent,
                },
                {
                    **common,
                    "block_id": rate,
                    "position": 2,
                    "task": "rate",
                    "condition": "ai",
                    "answered_at": None,
                },
                {
                    **common,
                    "block_id": match,
                    "position": 3,
                    "task": "match",
                    "condition": "ai",
                    "answered_at": base,
                },
                {
                    **common,
                    "block_id": rate,
                    "position": 4,
                    "task": "rate",
                    "condition": "real",
                    "is_attention": True,
                    "attention_answer": "2",
                    "answered_at": base,
                },
                {
                    **common,
                    "block_id": rate,
                    "position": 5,
                    "task": "rate",
                    "condition": "ai",
                    "is_practice": True,
                    "answered_at": base,
                },
            ]
        db.session.execute(sa.insert(Trial), trials)
        answered = db.session.execute(
            sa.select(Trial.id, Trial.participant_id, Trial.position)
            .where(Trial.answered_at.is_not(None))
            .order_by(Trial.id)
        ).all()
        responses = []
        for trial_id, pid, position in answered:
            if position == 4:  # every tenth participant fails the attention check
                value = "5" if pid % 10 == 0 else "2"
                responses.append(
                    {
                        "trial_id": trial_id,
                        "participant_id": pid,
                        "measure": "attention",
                        "value": value,
                    }
                )
            else:
                responses.append(
                    {"trial_id": trial_id, "participant_id": pid, "measure": "trust", "value": "4"}
                )
        db.session.execute(sa.insert(Response), responses)
        db.session.commit()
        failing = {pid for _t, pid, position in answered if position == 4 and pid % 10 == 0}
    return {"durations": durations, "failing": failing, "last_pid": ids[-1]}


@pytest.mark.slow
def test_counts_are_right_for_thousands_of_participants(app, team, owner_client, crowd):
    figures = owner_client.get(f"/r/studies/{team.study_id}/monitor.json").get_json()
    total = figures["participants"]["total"]
    assert total == {
        "started": N,
        "completed": N // 2,
        "in_progress": N // 4,
        "withdrawn": N // 4,
        "expired": 0,
    }
    by_list = {row["list"]: row for row in figures["participants"]["lists"]}
    # Even indexes go to list A: statuses completed (i % 4 == 0) and in progress (i % 4 == 2).
    assert by_list["A"] == {
        "list": "A",
        "started": N // 2,
        "completed": N // 4,
        "in_progress": N // 4,
        "withdrawn": 0,
        "expired": 0,
    }
    assert by_list["B"] == {
        "list": "B",
        "started": N // 2,
        "completed": N // 4,
        "in_progress": 0,
        "withdrawn": N // 4,
        "expired": 0,
    }
    assert figures["previews"]["started"] == 5 and figures["previews"]["completed"] == 5
    assert figures["median_completion_s"] == pytest.approx(
        statistics.median(crowd["durations"]), abs=0.01
    )
    conditions = {(c["task"], c["condition"]): c for c in figures["conditions"]}
    assert conditions[("rate", "real")] == {
        "task": "rate",
        "condition": "real",
        "scheduled": WITH_TRIALS,
        "answered": WITH_TRIALS,
        "participants": WITH_TRIALS,
    }
    assert (
        conditions[("rate", "ai")]["answered"] == 0
        and conditions[("rate", "ai")]["scheduled"] == WITH_TRIALS
    )
    assert conditions[("match", "ai")]["answered"] == WITH_TRIALS
    assert len(conditions) == 3  # practice and attention-check trials are not counted
    assert figures["attention"] == {
        "answered": WITH_TRIALS,
        "failed": len(crowd["failing"]),
        "participants_failing": len(crowd["failing"]),
    }
    assert figures["answers_per_minute"] == pytest.approx(30 / 10)


def test_recent_answers_are_short_ids_without_recruitment_ids(app, team, owner_client, crowd):
    figures = owner_client.get(f"/r/studies/{team.study_id}/monitor.json").get_json()
    recent = figures["recent_answers"]
    assert len(recent) == 20
    with app.app_context():
        last = db.session.get(Participant, crowd["last_pid"]).public_id
    assert recent[0]["participant"] == last[:8]
    assert recent[0]["trial"] == 5 and recent[0]["measure"] == "trust"
    body = owner_client.get(f"/r/studies/{team.study_id}/monitor").get_data(as_text=True)
    assert "PID0" not in body and "PID0" not in str(figures)
    assert last not in body  # only shortened ids


def test_the_participant_table_is_paginated(app, team, owner_client, crowd):
    url = f"/r/studies/{team.study_id}/monitor"
    first = owner_client.get(url).get_data(as_text=True)
    assert "Participants (2000)" in first and "Page 1 of 40" in first
    assert first.count("<td><code>") == 50 + 20  # table rows + last answers
    last = owner_client.get(url, query_string={"page": 40}).get_data(as_text=True)
    assert "Page 40 of 40" in last and "Next page" not in last
    beyond = owner_client.get(url, query_string={"page": 999}).get_data(as_text=True)
    assert "Page 40 of 40" in beyond
    completed = owner_client.get(url, query_string={"status": "completed"}).get_data(as_text=True)
    assert "Participants (1000)" in completed and "Page 1 of 20" in completed
    previews = owner_client.get(url, query_string={"preview": "1"}).get_data(as_text=True)
    assert "Preview runs (5)" in previews
    bad = owner_client.get(url, query_string={"status": "sleeping"})
    assert bad.status_code == 400 and "status must be one of" in bad.get_data(as_text=True)


def test_the_monitor_of_an_empty_study(app, team, owner_client):
    figures = owner_client.get(f"/r/studies/{team.study_id}/monitor.json").get_json()
    assert figures["participants"]["total"]["started"] == 0
    assert [row["list"] for row in figures["participants"]["lists"]] == ["A", "B"]
    assert figures["median_completion_s"] is None and figures["recent_answers"] == []
    page = owner_client.get(f"/r/studies/{team.study_id}/monitor").get_data(as_text=True)
    assert "No answers yet." in page and "No one yet." in page and "js/monitor.js" in page
