"""What researcher actions do to the database: create, duplicate and delete studies, move
blocks, delete a participant's data. The routes check roles and forms, then call these.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import unicodedata

import sqlalchemy as sa
from flask import abort

from survey import audit, media
from survey.extensions import db
from survey.i18n import N_, gettext
from survey.models import (
    Block,
    Identity,
    Image,
    Participant,
    Preregistration,
    RecruitmentId,
    Researcher,
    Response,
    Study,
    StudyMember,
    StudyQuestion,
    Trial,
)
from survey.participant import service as participant_service
from survey.participant.recruitment import Recruitment, find_by_recruitment
from survey.questions import default_questions
from survey.study_texts import copy_texts

SLUG_MAX = 64
# Study fields a copy or a definition carries over (texts and settings, not state or data).
COPIED_FIELDS = (
    "description",
    "consent_text",
    "instructions_text",
    "debrief_text",
    "completion_code",
    "completion_url",
    "target_n",
    "n_lists",
    "assign_by",
    "settings",
)
IDENTITY_FIELDS = ("code", "age_band", "gender", "ethnicity", "consent_recorded", "consent_note")
# What describes an image, apart from where its files are stored.
IMAGE_FIELDS = (
    "role",
    "source",
    "generator",
    "original_filename",
    "sha256",
    "width",
    "height",
    "content_type",
    "byte_size",
)


def slugify(title: str) -> str:
    """Turn a title into a link name: lower-case ASCII letters, digits and single hyphens."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    slug = slug[: SLUG_MAX - 8].strip("-")
    return slug if len(slug) >= 3 else f"study-{slug}".strip("-")


def slug_taken(slug: str, except_id: int | None = None) -> bool:
    """Tell whether another study uses this link name."""
    query = sa.select(Study.id).where(Study.slug == slug)
    if except_id is not None:
        query = query.where(Study.id != except_id)
    return db.session.scalar(query) is not None


def unique_slug(title: str) -> str:
    """Return a link name made from the title that no study uses yet (-2, -3 … appended)."""
    base = slugify(title)
    slug, n = base, 1
    while slug_taken(slug):
        n += 1
        slug = f"{base}-{n}"
    return slug


def create_study(
    title: str, owner: Researcher, questions: list[dict] | None = None, **fields
) -> Study:
    """Add a draft study owned by the researcher; committed by the caller.

    It starts with `questions` (dicts of StudyQuestion fields), by default the demographics of
    `survey.questions.default_questions`.
    """
    study = Study(title=title, slug=fields.pop("slug", None) or unique_slug(title), **fields)
    db.session.add(study)
    db.session.add(StudyMember(study=study, researcher=owner, role="owner"))
    for position, q in enumerate(default_questions() if questions is None else questions, start=1):
        db.session.add(StudyQuestion(study=study, position=position, **q))
    db.session.flush()
    return study


def require_design_editable(study: Study) -> None:
    """Refuse (409) a change to a frozen design or an archived study."""
    if study.design_locked:
        abort(
            409,
            description=gettext(
                "The design of this study is frozen: it opened on %(opened)s UTC. Duplicate the "
                "study to change its design.",
                opened=f"{study.design_frozen_at:%Y-%m-%d %H:%M}",
            ),
        )
    require_not_archived(study)


def attach_questions(study: Study, after: dict[str, str]) -> None:
    """Ask the study's questions named in `after` (code -> block name) right after that block."""
    blocks = {b.name: b for b in study.blocks}
    for question in study.questions:
        if question.code in after:
            question.block = blocks[after[question.code]]


def require_questions_editable(study: Study) -> None:
    """Refuse (409) a change to the questions unless the study is a draft (call under the lock)."""
    require_design_editable(study)
    if study.state != "draft":
        abort(409, description=gettext("Questions can change only while the study is a draft."))


def move_question(study: Study, question: StudyQuestion, direction: str) -> bool:
    """Swap a question with its neighbour above or below; return whether it moved."""
    ordered = sorted(study.questions, key=lambda q: (q.position, q.id))
    for position, q in enumerate(ordered, start=1):
        q.position = position
    index = ordered.index(question)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(ordered):
        return False
    ordered[index].position, ordered[other].position = other + 1, index + 1
    return True


def require_not_archived(study: Study) -> None:
    """Refuse (409) any change to an archived study."""
    if study.state == "archived":
        abort(
            409,
            description=gettext("This study is archived. Move it back to closed to change it."),
        )


def _copied_key(old_key: str, study_id: int) -> str:
    """Return the storage key of a copied file: the same name under the new study's folder."""
    rest = old_key.split("/", 1)[1] if "/" in old_key else old_key
    return f"{study_id}/{rest}"


def duplicate_study(source: Study, researcher: Researcher) -> Study:
    """Copy a study's texts, settings, blocks, identities, images and plan into a new draft.

    Image files are copied under the new study's folder, so deleting an image of one study never
    removes a file the other still shows. Collaborators and data are not copied. On failure the
    files already written are removed and the error is raised for the caller to roll back.
    """
    # Participants of the copy see the same title; the team tells the two apart by name.
    name = gettext("%(name)s (copy)", name=source.name)[:200]
    new = create_study(
        source.title,
        researcher,
        questions=[
            {f: copy.deepcopy(getattr(q, f)) for f in ("code", "kind", "text", "required", "spec")}
            for q in source.questions
        ],
        name=name,
        **{f: copy.deepcopy(getattr(source, f)) for f in COPIED_FIELDS},
    )
    for block in source.blocks:
        db.session.add(
            Block(
                study=new,
                position=block.position,
                name=block.name,
                task=block.task,
                settings=copy.deepcopy(block.settings),
            )
        )
    attach_questions(new, {q.code: q.block.name for q in source.questions if q.block is not None})
    store = media.storage()
    written: list[str] = []
    try:
        for identity in source.identities:
            new_identity = Identity(study=new, **{f: getattr(identity, f) for f in IDENTITY_FIELDS})
            db.session.add(new_identity)
            for image in sorted(identity.images, key=lambda im: im.id):
                keys = {}
                for attr in ("storage_key", "display_key"):
                    old_key = getattr(image, attr)
                    new_key = _copied_key(old_key, new.id)
                    if new_key not in written:
                        store.put(new_key, store.get(old_key), image.content_type)
                        written.append(new_key)
                    keys[attr] = new_key
                copied = {f: getattr(image, f) for f in IMAGE_FIELDS}
                db.session.add(Image(study=new, identity=new_identity, **copied, **keys))
        if source.preregistration is not None:
            prereg = source.preregistration
            db.session.add(
                Preregistration(
                    study=new,
                    plan=copy.deepcopy(prereg.plan),
                    plan_json=prereg.plan_json,
                    sha256=prereg.sha256,
                    created_by_id=researcher.id,
                )
            )
        db.session.flush()
        # Blocks and questions are matched by their names and codes, unique within a study.
        blocks = {b.name: b.id for b in new.blocks}
        questions = {q.code: q.id for q in new.questions}
        copy_texts(
            source,
            new,
            {b.id: blocks[b.name] for b in source.blocks},
            {q.id: questions[q.code] for q in source.questions},
        )
        db.session.flush()
    except Exception:
        media.delete_files(written)
        raise
    audit.record("study.duplicate", researcher=researcher, study=source, copy=new.slug)
    audit.record("study.create", researcher=researcher, study=new, copied_from=source.slug)
    return new


def delete_study(study: Study, researcher: Researcher) -> list[str]:
    """Delete the study with all its rows; return the storage keys to remove after commit.

    The audit event stays (its study id becomes empty) and names the study it was.
    """
    keys = set(
        db.session.scalars(sa.select(Image.storage_key).where(Image.study_id == study.id)).all()
    ) | set(
        db.session.scalars(sa.select(Image.display_key).where(Image.study_id == study.id)).all()
    )
    from survey.researcher.undo import forget_all

    # The files of deletions kept for undoing go with the study.
    keys |= set(forget_all(study))
    audit.record(
        "study.delete",
        researcher=researcher,
        study=study,
        slug=study.slug,
        title=study.name,
        state=study.state,
    )
    db.session.flush()
    db.session.execute(sa.delete(Study).where(Study.id == study.id))
    db.session.expunge(study)
    return sorted(keys)


def unreferenced(keys: list[str]) -> list[str]:
    """Return the keys no image row refers to any more."""
    if not keys:
        return []
    used = set(
        db.session.scalars(sa.select(Image.storage_key).where(Image.storage_key.in_(keys))).all()
    ) | set(
        db.session.scalars(sa.select(Image.display_key).where(Image.display_key.in_(keys))).all()
    )
    return [k for k in keys if k not in used]


def renumber_blocks(study: Study) -> None:
    """Number the study's blocks 1, 2, … in their current order."""
    for position, block in enumerate(
        sorted(study.blocks, key=lambda b: (b.position, b.id)), start=1
    ):
        block.position = position


def move_block(study: Study, block: Block, direction: str) -> bool:
    """Swap a block with its neighbour above or below; return whether it moved."""
    renumber_blocks(study)
    ordered = sorted(study.blocks, key=lambda b: b.position)
    index = ordered.index(block)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(ordered):
        return False
    ordered[index].position, ordered[other].position = (
        ordered[other].position,
        ordered[index].position,
    )
    return True


def study_outcomes(study: Study) -> list[str]:
    """Return the outcomes the study's blocks measure, in the data contract's names."""
    return outcomes_of(study.blocks)


def outcomes_of(blocks) -> list[str]:
    """Return the outcomes these blocks measure, in the data contract's names."""
    outcomes: list[str] = []
    by_task = {
        "match": ["recognition_accuracy", "d_prime", "criterion"],
        "choose": ["choice_real"],
        "detect": ["detection_accuracy", "detection_d_prime"],
    }
    for block in blocks:
        if block.task == "rate":
            names = [s.get("key") for s in block.settings.get("scales") or [{"key": "trust"}]]
        else:
            names = by_task.get(block.task, [])
        outcomes += [n for n in names if isinstance(n, str) and n not in outcomes]
    return outcomes


def plan_problems(study: Study) -> list[str]:
    """List how the saved plan disagrees with the design: outcomes no block measures any more.

    A frozen plan cannot change, so the blocks must come back; a plan not frozen yet can be
    edited instead. Either way the study cannot open while they disagree.
    """
    prereg = study.preregistration
    if prereg is None or study.design_frozen_at is not None:
        # A frozen design opened with its plan: reopening it is no new promise.
        return []
    plan = prereg.plan or {}
    measured = set(study_outcomes(study))
    uses = [
        *((N_("primary outcome"), o) for o in plan.get("primary_outcomes", [])),
        *((N_("hypothesis"), h.get("outcome")) for h in plan.get("hypotheses", [])),
        *((N_("equivalence bounds"), o) for o in plan.get("equivalence_bounds", {})),
    ]
    missing: dict[str, list[str]] = {}
    for use, outcome in uses:
        if outcome and outcome not in measured and use not in missing.get(outcome, []):
            missing.setdefault(outcome, []).append(use)
    message = (
        N_(
            "The preregistered plan names %(outcome)s (%(uses)s), but no block measures it now: "
            "add back a block that measures it (the plan is frozen)."
        )
        if prereg.frozen_at is not None
        else N_(
            "The preregistered plan names %(outcome)s (%(uses)s), but no block measures it now: "
            "add back a block that measures it, or change the plan."
        )
    )
    return [
        gettext(message, outcome=outcome, uses=", ".join(gettext(use) for use in uses))
        for outcome, uses in missing.items()
    ]


def plan_row_values(plan: dict) -> dict:
    """Return a plan with its canonical JSON text and that text's SHA-256, as stored."""
    plan_json = json.dumps(plan, sort_keys=True, separators=(",", ":"))
    return {
        "plan": plan,
        "plan_json": plan_json,
        "sha256": hashlib.sha256(plan_json.encode()).hexdigest(),
    }


# The monitor shows this many leading characters of an opaque participant id.
SHORT_ID = 8


class AmbiguousId(ValueError):
    """A short participant id that starts the ids of several participants."""


def normalise_public_id(text: str) -> str:
    """Return an opaque participant id as typed or pasted, without what a spreadsheet adds.

    The exports write an id that starts with "-" (or another formula character) with a leading
    apostrophe, so that no spreadsheet runs it (survey.exports.cells.safe_cell); a copied cell
    may keep the apostrophe, or quotes. Neither is ever part of an id (ids are URL-safe base64).
    """
    text = text.strip().strip('"').strip()
    return text[1:] if text.startswith("'") else text


def find_participant(
    study: Study,
    *,
    platform: str = "",
    external_id: str = "",
    public_id: str = "",
    allow_short: bool = False,
) -> Participant | None:
    """Return the study's participant with this recruitment id or opaque id, if any.

    A withdrawn participant is found by its recruitment id too: the id is kept as a digest.
    With `allow_short`, an opaque id as exported (with a spreadsheet's apostrophe) or as the
    monitor shows it (its first SHORT_ID characters, or more) is found too; AmbiguousId when
    the characters start more than one participant's id.
    """
    if public_id and allow_short:
        wanted = normalise_public_id(public_id)
        found = participant_service.find_participant(study.id, wanted)
        if found is not None or len(wanted) < SHORT_ID:
            return found
        matches = db.session.scalars(
            sa.select(Participant)
            .where(
                Participant.study_id == study.id,
                Participant.public_id.startswith(wanted, autoescape=True),
                # Ids are case-sensitive; SQLite's LIKE is not.
                sa.func.substr(Participant.public_id, 1, len(wanted)) == wanted,
            )
            .limit(2)
        ).all()
        if len(matches) > 1:
            raise AmbiguousId(
                gettext(
                    "Several participants' ids start with %(start)s; give more of the id, "
                    "e.g. the whole id from an export.",
                    start=wanted,
                )
            )
        return matches[0] if matches else None
    if public_id:
        return participant_service.find_participant(study.id, public_id)
    if platform and external_id:
        recruitment = Recruitment(platform, external_id)
        return find_by_recruitment(study.id, recruitment)
    return None


def delete_participant_data(
    study: Study, participant: Participant, researcher: Researcher, reason: str
) -> None:
    """Delete a participant's answers, trials and demographics, as a withdrawal does; audited.

    The row stays, marked withdrawn, with its recruitment id kept only as a digest (see
    survey.participant.service): the monitor's counts stay true, the audit log can name the
    opaque id, the same recruitment id cannot start again, and nothing left identifies the
    person. Withdrawn participants are never exported or analysed. Commits.
    """
    answers = db.session.scalar(
        sa.select(sa.func.count()).where(Response.participant_id == participant.id)
    )
    audit.record(
        "participant.delete",
        researcher=researcher,
        study=study,
        participant=participant.public_id,
        reason=reason,
        previous_status=participant.status,
        answers_deleted=answers,
        preview=participant.is_preview,
    )
    if participant.status == "withdrawn":
        db.session.commit()
    else:
        participant_service.withdraw(participant)


def _simulated(study_id: int) -> sa.ColumnElement[bool]:
    """The study's simulated participants (started by flask simulate-participants)."""
    return sa.and_(
        Participant.study_id == study_id,
        Participant.is_simulated.is_(True),
        Participant.is_preview.is_(False),
    )


def simulated_summary(study: Study) -> dict[str, int]:
    """How many simulated participants the study has, how many completed, how many answers."""
    people = db.session.execute(
        sa.select(sa.func.count(), sa.func.count(Participant.completed_at)).where(
            _simulated(study.id)
        )
    ).one()
    answers = db.session.scalar(
        sa.select(sa.func.count(Response.id))
        .join(Participant, Participant.id == Response.participant_id)
        .where(_simulated(study.id))
    )
    return {
        "participants": int(people[0]),
        "completed": int(people[1]),
        "answers": int(answers or 0),
    }


def delete_simulated(study: Study, researcher: Researcher, expected: int) -> dict[str, int]:
    """Delete every simulated participant of a locked study, with their trials and answers; audited.

    Call it on the row `lock_for_change` returned: it runs in that transaction and commits.
    Refused (ValueError, nothing deleted) for an archived study, a study without simulated
    participants, or when their number is not the `expected` one the confirmation showed.
    Real participants are never touched. The reports that included simulated participants
    are deleted with them (none is ever published); the reports of the real participants
    stay, so published findings do not change.
    """
    from survey.findings.service import forget_reports

    if study.state == "archived":
        raise ValueError(
            gettext(
                "This study is archived. Move it back to closed to delete its simulated "
                "participants."
            )
        )
    summary = simulated_summary(study)
    if summary["participants"] == 0:
        raise ValueError(gettext("This study has no simulated participants to delete."))
    if summary["participants"] != expected:
        raise ValueError(
            gettext(
                "The study has %(now)s simulated participants now, not the %(confirmed)s you "
                "confirmed (more were simulated, or someone deleted them meanwhile). Check the "
                "number below and confirm again.",
                now=summary["participants"],
                confirmed=expected,
            )
        )
    ids = sa.select(Participant.id).where(_simulated(study.id))
    # Lock order: the study row (taken by the caller), then trials, then participants.
    db.session.execute(
        sa.delete(Response)
        .where(Response.participant_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.delete(Trial)
        .where(Trial.participant_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.delete(RecruitmentId)
        .where(RecruitmentId.participant_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    deleted = db.session.execute(
        sa.delete(Participant)
        .where(_simulated(study.id))
        .execution_options(synchronize_session=False)
    ).rowcount
    reports = forget_reports(study.id, only_simulated=True)
    audit.record(
        "participants.delete_simulated",
        researcher=researcher,
        study=study,
        participants=deleted,
        completed=summary["completed"],
        answers_deleted=summary["answers"],
        reports_deleted=reports,
    )
    db.session.commit()
    return {"participants": deleted, "answers": summary["answers"], "reports": reports}
