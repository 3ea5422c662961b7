"""Study life cycle: the design as data, the checks before opening, and the state changes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from survey import audit, design
from survey import flow as block_flow
from survey.extensions import db
from survey.models import Participant, Researcher, Study, utcnow

# Allowed state changes; the design freezes on the first opening.
TRANSITIONS = {
    "draft": ("open",),
    "open": ("closed",),
    "closed": ("open", "archived"),
    "archived": ("closed",),
}


class StateError(ValueError):
    """A study cannot move to the asked state; the message says why."""


def lock_study(study_id: int) -> Study | None:
    """Lock the study's row until the transaction ends; return it as committed now (None: gone).

    Every change to a study's design, state or owners calls this first and checks what it
    guards on the row it returns, so that two such changes (an upload and the opening, two
    owners demoting each other) run one after the other, never on the same stale reading.
    It ends the session's reads so far (nothing may be pending): the ORM objects read before
    are expired and load again, inside the locked transaction.
    """
    if db.session().in_transaction():
        db.session.commit()
    if db.session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks, and a transaction that has read cannot later write once
        # another writer committed: the first statement takes the database's write lock.
        table = Study.__table__
        db.session.execute(sa.update(table).where(table.c.id == study_id).values(id=table.c.id))
    return db.session.scalar(
        sa.select(Study)
        .where(Study.id == study_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def design_inputs(study: Study) -> tuple[list[design.IdentityInfo], list[design.BlockInfo]]:
    """Translate the study's identities, images and blocks into the schedule's inputs."""
    identities = []
    for identity in sorted(study.identities, key=lambda i: i.code):
        headshots = {}
        probes = []
        for image in sorted(identity.images, key=lambda im: im.id):
            if image.role == "headshot":
                headshots.setdefault(image.source, str(image.id))
            else:
                probes.append(str(image.id))
        identities.append(
            design.IdentityInfo(
                code=identity.code,
                gender=identity.gender,
                age_band=identity.age_band,
                headshots=headshots,
                probes=tuple(probes),
            )
        )
    blocks = [
        design.BlockInfo(name=b.name, task=b.task, settings=dict(b.settings)) for b in study.blocks
    ]
    return identities, blocks


def design_definition(study: Study) -> dict[str, Any]:
    """Return the study's design (blocks, identities, images, lists) as canonical data."""
    identities, blocks = design_inputs(study)
    images = {str(im.id): im.sha256 for im in study.images}
    return {
        "n_lists": study.n_lists,
        # The block order, only when it is not the default (survey/flow.py).
        **block_flow.design_entry(study.settings),
        "blocks": [{"name": b.name, "task": b.task, "settings": b.settings} for b in blocks],
        "identities": [
            {
                "code": i.code,
                "gender": i.gender,
                "age_band": i.age_band,
                "headshots": {src: images[key] for src, key in sorted(i.headshots.items())},
                "probes": sorted(images[key] for key in i.probes),
            }
            for i in identities
        ],
    }


def design_sha256(study: Study) -> str:
    """Hash the canonical design, so a report can name exactly what was run."""
    text = json.dumps(design_definition(study), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def design_problems(study: Study) -> list[str]:
    """List every reason the design cannot run yet, as sentences; empty when it can."""
    from survey.researcher.service import plan_problems
    from survey.study_texts import text_problems

    identities, blocks = design_inputs(study)
    if not blocks:
        problems = ["Add at least one block before opening the study."]
    else:
        flow = block_flow.flow_settings(study.settings)
        order = [
            m
            for ms in block_flow.flow_errors(
                flow.order, list(flow.last or ()), flow.breaks, flow.message, blocks
            ).values()
            for m in ms
        ]
        problems = design.check_design(identities, blocks, study.n_lists) + order
    return problems + plan_problems(study) + text_problems(study)


def change_state(study: Study, new_state: str, researcher: Researcher | None) -> None:
    """Move the study to a new state, freezing the design on first opening; audited."""
    if new_state not in TRANSITIONS.get(study.state, ()):
        raise StateError(f"A {study.state} study cannot be moved to {new_state}.")
    if new_state == "open":
        problems = design_problems(study)
        if problems:
            raise StateError("The study cannot open yet: " + " ".join(problems))
        now = utcnow()
        if study.design_frozen_at is None:
            study.design_frozen_at = now
            study.design_sha256 = design_sha256(study)
            prereg = study.preregistration
            if prereg is not None and prereg.frozen_at is None:
                prereg.frozen_at = now
        study.opened_at = now
    elif new_state == "closed":
        study.closed_at = utcnow()
    elif new_state == "archived":
        study.archived_at = utcnow()
    study.state = new_state
    audit.record(f"study.{new_state}", researcher=researcher, study=study)
    if new_state == "closed":
        _wait_for_answers_under_way()


def _wait_for_answers_under_way() -> None:
    """Order a close after every answer already being stored, and before every later one.

    An answer is stored by one statement that checks the study's state as its snapshot sees it
    (`survey.participant.answers`), and every such statement writes the participant table.
    On PostgreSQL the close therefore writes the new state (taking the study's row lock
    first, as a start does), then takes the participant table's SHARE lock until it commits:
    that waits for the answer statements under way to commit, and holds back the ones that
    come later until the close has committed, so that their snapshot sees the study closed.
    The lock is held only for the rest of the close's transaction. SQLite runs one writer at
    a time, and an answer's transaction reads the state after taking the write lock.
    """
    db.session.flush()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text(f"LOCK TABLE {Participant.__tablename__} IN SHARE MODE"))


def open_study(study: Study, researcher: Researcher | None) -> None:
    """Open a draft or closed study to participants after checking its design."""
    change_state(study, "open", researcher)
