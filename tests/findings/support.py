"""Simulated participants for the report tests, answering through the participant service.

`simulate` starts participants and records their answers with the same functions the
participant routes call (start_participant, answer_target, store_answer), with effects chosen
per test: a clear trust drop, no recognition difference, and so on. Also the plan, the
effects and the publishing steps several findings tests share.

Holds no tests and no fixtures (those are in tests/conftest.py and tests/findings/conftest.py).
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import random
import re
from dataclasses import dataclass

import sqlalchemy as sa

from analysis.plan import validate_plan
from analysis.report import analyse
from survey import jobs
from survey.block_settings import validate_block_settings
from survey.extensions import db
from survey.findings import service
from survey.findings.methods import methods_paragraph
from survey.models import (
    Preregistration,
    Researcher,
    Study,
    StudyMember,
    Trial,
    utcnow,
)
from survey.participant import answers, starting
from survey.participant.recruitment import Recruitment
from survey.studies import change_state


@dataclass(frozen=True)
class Effects:
    """How simulated participants answer: effects of an AI headshot and error rates."""

    rating_drop: float = 0.8  # AI minus real on every rating scale (points)...
    scale_drops: tuple[
        tuple[str, float], ...
    ] = ()  # ...unless named here: (("professional", 0.0),)
    rating_sd: float = 0.7
    match_real: float = 0.85  # P(correct) on match trials with a real headshot
    match_ai: float = 0.70
    detect: float = 0.65  # P(correct) on detect trials
    choose_real: float = 0.70  # P(choosing the real headshot)
    fail_attention: float = 0.0
    stop_early: float = 0.0


def _attention_value(trial: Trial, passes: bool) -> str:
    """The answer to an attention check: the instructed one, or another when failing."""
    answer = trial.attention_answer or ""
    if passes:
        return answer
    other = {"1": "0", "0": "1", "real": "ai", "ai": "real", "left": "right", "right": "left"}
    return other.get(answer, "1" if answer != "1" else "2")


def _answers(
    trial: Trial, settings: dict, rng: random.Random, bias: float, effects: Effects
) -> list[tuple[str, str]]:
    """The (measure, value) pairs a simulated participant gives on one trial."""
    if trial.task == "rate":
        out = []
        drops = dict(effects.scale_drops)
        for scale in settings["scales"]:
            low, high = scale["min"], scale["max"]
            drop = drops.get(scale["key"], effects.rating_drop)
            centre = (low + high) / 2 + bias + (-drop / 2 if trial.condition == "ai" else drop / 2)
            value = round(rng.gauss(centre, effects.rating_sd))
            out.append((scale["key"], str(min(high, max(low, value)))))
        return out
    confidence = (
        [("confidence", str(rng.randint(2, 5)))] if settings.get("confidence", True) else []
    )
    if trial.task == "match":
        p = effects.match_real if trial.condition == "real" else effects.match_ai
        same = trial.is_match if rng.random() < p else not trial.is_match
        return [("same", "1" if same else "0")] + confidence
    if trial.task == "detect":
        right = rng.random() < effects.detect
        other = "ai" if trial.condition == "real" else "real"
        return [("source", trial.condition if right else other)] + confidence
    if trial.task == "learn":
        return [("seen", "1")]
    if trial.task == "recognise":
        # Met before: most people studied (fewer of those met in an AI headshot), few foils.
        p = {"real": 0.8, "ai": 0.65}.get(trial.condition or "", 0.2)
        old = "1" if rng.random() < p else "0"
        name = [("name", str(rng.randint(1, 4)))] if old == "1" and settings["name_recall"] else []
        return [("old", old)] + confidence + name
    return [("choice", "real" if rng.random() < effects.choose_real else "ai")]


def simulate(
    study_id: int,
    n: int,
    *,
    seed: int = 0,
    effects: Effects | None = None,
    device_cycle: tuple[str, ...] = ("desktop", "mobile", "desktop"),
    prolific: bool = False,
) -> list[str]:
    """Start n participants and answer their trials; return their public ids (app context needed).

    With `prolific`, each participant arrives with a Prolific id PROLIFIC-<seed>-<index>.
    """
    effects = effects or Effects()
    study = db.session.get(Study, study_id)
    slug = study.slug
    ids = []
    for index in range(n):
        recruitment = Recruitment("prolific", f"PROLIFIC-{seed}-{index:03d}") if prolific else None
        participant = starting.start_participant(
            study, device=device_cycle[index % len(device_cycle)], recruitment=recruitment
        )
        public_id, participant_id = participant.public_id, participant.id
        ids.append(public_id)
        # Random streams keyed by what is shown, not by the shuffled order: the same seed gives
        # the same answers whatever order the schedule put the trials in.
        person = random.Random(f"{seed}:{index}")
        bias = person.gauss(0, 0.5)
        passes = person.random() >= effects.fail_attention
        stop_at = person.randint(3, 10) if person.random() < effects.stop_early else None
        trials = db.session.scalars(
            sa.select(Trial).where(Trial.participant_id == participant_id).order_by(Trial.position)
        ).all()
        for trial in trials:
            if stop_at is not None and trial.position >= stop_at:
                break
            rng = random.Random(
                f"{seed}:{index}:{trial.block_id}:{trial.identity_id}:"
                f"{trial.condition}:{trial.is_match}:{trial.is_practice}"
            )
            target = answers.answer_target(slug, public_id, trial.id)
            if trial.is_attention:
                measures = [("attention", _attention_value(trial, passes))]
            else:
                measures = _answers(trial, target.settings, rng, bias, effects)
            outcome = answers.store_answer(
                target, measures, round(rng.lognormvariate(6.9, 0.35), 1)
            )
            assert outcome == answers.STORED, (trial.position, outcome)
        study = db.session.get(Study, study_id)
    return ids


def page_text(response) -> str:
    """The visible text of a page: tags dropped, entities decoded, spaces collapsed."""
    text = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return re.sub(r"\s+", " ", html.unescape(text))


def owner_id(app) -> int:
    """The demo researcher (the demo study's owner)."""
    with app.app_context():
        return db.session.scalar(sa.select(Researcher.id).where(Researcher.email == "demo"))


def member(app, study_id: int, role: str, email: str, make_researcher) -> int:
    """A researcher with a role on the study."""
    rid = make_researcher(email=email)
    with app.app_context():
        db.session.add(StudyMember(study_id=study_id, researcher_id=rid, role=role))
        db.session.commit()
    return rid


def fill(
    app,
    study_id: int,
    n: int = 6,
    *,
    close: bool = True,
    seed: int = 0,
    effects: Effects | None = None,
    **options,
) -> list[str]:
    """Simulate n participants in the study and (by default) close it."""
    with app.app_context():
        ids = simulate(study_id, n, seed=seed, effects=effects or Effects(), **options)
    if close:
        set_state(app, study_id, "closed")
    return ids


def set_state(app, study_id: int, state: str) -> None:
    """Open, close or archive the study as a researcher would (audited, checked)."""
    with app.app_context():
        change_state(db.session.get(Study, study_id), state, None)
        db.session.commit()


FAST = functools.partial(analyse, mixed_models=False)


def count_analyses(monkeypatch) -> list:
    """Make the report analyse without mixed models (seconds faster); return the list of calls."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return FAST(*args, **kwargs)

    monkeypatch.setattr(service, "analyse", counted)
    return calls


def publish_findings(client, study_id: int, follow_redirects: bool = False):
    """Publish as an owner does: open the confirmation page, then post its confirmation.

    When the page offers no confirmation (the findings cannot be published), the post names
    the report of the current data if there is one, so the refusal comes from the server.
    """
    page = client.get(f"/r/studies/{study_id}/report/publish").get_data(as_text=True)
    found = re.search(r'name="report_id" value="(\d+)"', page)
    if found is None:
        with client.application.app_context():
            study = db.session.get(Study, study_id)
            report = service.finished_current_report(study)
            report_id = report.id if report is not None else 0
    else:
        report_id = int(found.group(1))
    response = client.post(
        f"/r/studies/{study_id}/report/publish",
        data={"report_id": report_id},
        follow_redirects=follow_redirects,
    )
    # Publishing queues the public charts' job: let its thread (the embedded default) finish.
    assert jobs.join_threads(300), "the public charts' job did not finish in 5 minutes"
    return response


PLAN = {
    "hypotheses": [
        {
            "outcome": "trust",
            "direction": "less",
            "text": "AI headshots are trusted less than real photographs",
        }
    ],
    "primary_outcomes": ["trust", "professional", "recognition_accuracy"],
    "equivalence_bounds": {"professional": [-0.5, 0.5]},
}
# A clear trust drop, no difference in professional ratings (inside ±0.5), no difference in
# recognition and no bounds for it: the three verdicts, one per outcome.
GUARD_EFFECTS = Effects(
    rating_drop=1.0,
    scale_drops=(("professional", 0.0),),
    rating_sd=0.6,
    match_real=0.75,
    match_ai=0.75,
)


def preregister(app, study_id: int, plan: dict) -> None:
    """Store a frozen preregistration plan for the study."""
    plan = validate_plan(plan)
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"))
    with app.app_context():
        db.session.add(
            Preregistration(
                study_id=study_id,
                plan=plan,
                plan_json=text,
                sha256=hashlib.sha256(text.encode()).hexdigest(),
                frozen_at=utcnow(),
            )
        )
        db.session.commit()


def publish(client, study_id: int):
    """Publish through the confirmation page."""
    return publish_findings(client, study_id)


RESULTS = {"tests": [], "correction": "holm", "alpha": 0.05, "families": []}
SAMPLE = {"recruited": 10, "included": 10}


def paragraph(*blocks: tuple[str, dict], n_identities: int = 8, n_lists: int = 2) -> str:
    """The methods paragraph of a design of these (task, settings) blocks, defaults filled in."""
    design = {
        "n_identities": n_identities,
        "n_lists": n_lists,
        "assign_by": "started",
        "blocks": [
            {"name": f"b{i}", "task": task, "settings": validate_block_settings(task, settings)}
            for i, (task, settings) in enumerate(blocks, 1)
        ],
    }
    return methods_paragraph(design, RESULTS, SAMPLE, {})


def block_text(text: str, index: int) -> str:
    """The words of the block numbered `index` in the paragraph."""
    start = text.index(f"({index}) ")
    end = text.find(f"; ({index + 1}) ", start)
    return text[start : end if end >= 0 else text.index(". ", start)]
