"""Undoing the deletion of a design part (a block, an identity, an image, a question) while the
study is a draft."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from survey import audit, media
from survey.extensions import db
from survey.i18n import gettext
from survey.models import Block, DeletedPart, Identity, Image, Researcher, Study, StudyQuestion
from survey.researcher.service import IDENTITY_FIELDS, IMAGE_FIELDS, renumber_blocks
from survey.study_texts import add_part_texts, part_texts

# Deletions kept per study; older ones can no longer be undone.
KEEP = 30
# The rows' own columns as well as what a copy carries over, so undo puts back all of it.
IDENTITY_COLUMNS = ("id", *IDENTITY_FIELDS)
IMAGE_COLUMNS = ("id", "identity_id", "public_id", *IMAGE_FIELDS, "storage_key", "display_key")
BLOCK_COLUMNS = ("id", "position", "name", "task", "settings")
QUESTION_COLUMNS = ("id", "position", "code", "kind", "text", "required", "spec")


class UndoRefused(Exception):
    """The deletion cannot be undone now; the message says why, in plain words."""


def _image_data(image: Image) -> dict[str, Any]:
    """Return an image row as JSON."""
    data = {c: getattr(image, c) for c in IMAGE_COLUMNS}
    data["created_at"] = image.created_at.isoformat() if image.created_at else None
    return data


def _keys(part: DeletedPart) -> list[str]:
    """Return the storage keys of the image files a kept part holds."""
    images = part.data.get("images") or ([part.data["image"]] if "image" in part.data else [])
    return [key for image in images for key in (image["storage_key"], image["display_key"])]


def _keep(study: Study, researcher: Researcher, kind: str, label: str, data: dict) -> DeletedPart:
    """Add a kept part to the session (the caller deletes the rows and commits)."""
    part = DeletedPart(
        study_id=study.id, kind=kind, label=label[:300], data=data, deleted_by_id=researcher.id
    )
    db.session.add(part)
    return part


def keep_block(study: Study, block: Block, researcher: Researcher) -> DeletedPart:
    """Keep a block about to be deleted."""
    data = {c: getattr(block, c) for c in BLOCK_COLUMNS}
    # Its texts in the study's other languages go with it (their rows cascade) and come back.
    data["texts"] = part_texts("block", block.id)
    return _keep(study, researcher, "block", f"block {block.name!r}", data)


def keep_question(study: Study, question: StudyQuestion, researcher: Researcher) -> DeletedPart:
    """Keep a question about to be deleted."""
    data = {c: getattr(question, c) for c in QUESTION_COLUMNS}
    return _keep(study, researcher, "question", f"question {question.code}", data)


def keep_identity(study: Study, identity: Identity, researcher: Researcher) -> DeletedPart:
    """Keep an identity about to be deleted, with its images."""
    images = sorted(identity.images, key=lambda im: im.id)
    data = {c: getattr(identity, c) for c in IDENTITY_COLUMNS}
    data["images"] = [_image_data(im) for im in images]
    n = len(images)
    label = f"identity {identity.code} and its {n} {'image' if n == 1 else 'images'}"
    return _keep(study, researcher, "identity", label, data)


def keep_image(study: Study, image: Image, researcher: Researcher) -> DeletedPart:
    """Keep an image about to be deleted."""
    label = f"the {image.source} {image.role} of {image.identity.code}"
    data = {"image": _image_data(image), "identity_code": image.identity.code}
    return _keep(study, researcher, "image", label, data)


def undoable(study: Study) -> list[DeletedPart]:
    """Return the study's kept deletions, newest first (none once the design is frozen)."""
    if study.state != "draft" or study.design_locked:
        return []
    return list(
        db.session.scalars(
            sa.select(DeletedPart)
            .where(DeletedPart.study_id == study.id)
            .order_by(DeletedPart.id.desc())
        )
    )


def prune(study: Study) -> list[str]:
    """Forget all but the KEEP newest deletions; return the file keys to check after commit."""
    old = db.session.scalars(
        sa.select(DeletedPart)
        .where(DeletedPart.study_id == study.id)
        .order_by(DeletedPart.id.desc())
        .offset(KEEP)
    ).all()
    return _forget(old)


def forget_all(study: Study) -> list[str]:
    """Forget every kept deletion of the study (it opened); return the file keys to check."""
    return _forget(
        db.session.scalars(sa.select(DeletedPart).where(DeletedPart.study_id == study.id)).all()
    )


def forget(study: Study, parts: list[DeletedPart]) -> list[str]:
    """Forget these kept deletions of the study now; return the file keys to check."""
    return _forget([p for p in parts if p.study_id == study.id])


def _forget(parts: list[DeletedPart]) -> list[str]:
    """Delete kept parts; return their file keys (removed after commit unless still used)."""
    keys = [key for part in parts for key in _keys(part)]
    for part in parts:
        db.session.delete(part)
    return keys


def discard_unused(study: Study, keys: list[str]) -> None:
    """Remove the files that no image row and no kept part of the study still use.

    Call it after the commit that forgot the parts (or the rollback of a failed upload).
    """
    keys = list(dict.fromkeys(keys))
    if not keys:
        return
    used = set(
        db.session.scalars(sa.select(Image.storage_key).where(Image.storage_key.in_(keys)))
    ) | set(db.session.scalars(sa.select(Image.display_key).where(Image.display_key.in_(keys))))
    for part in db.session.scalars(sa.select(DeletedPart).where(DeletedPart.study_id == study.id)):
        used.update(_keys(part))
    media.delete_files([key for key in keys if key not in used])


def _free_id(model, wanted: int) -> int | None:
    """Return the id to restore a row with: its own when free, else None (a new one)."""
    return wanted if db.session.get(model, wanted) is None else None


def _restore_image(study: Study, data: dict, identity_id: int) -> None:
    """Insert an image row as it was (files are still in storage)."""
    values = {c: data[c] for c in IMAGE_COLUMNS if c not in ("id", "identity_id")}
    if data.get("created_at"):
        values["created_at"] = datetime.fromisoformat(data["created_at"])
    free = _free_id(Image, data["id"])
    image = Image(study_id=study.id, identity_id=identity_id, **values)
    if free is not None:
        image.id = free
    db.session.add(image)


def _check_images(study: Study, images: list[dict]) -> None:
    """Refuse when an image's content is in the study again, or its files are gone."""
    hashes = [im["sha256"] for im in images]
    taken = db.session.execute(
        sa.select(Image.sha256, Identity.code)
        .join(Identity, Identity.id == Image.identity_id)
        .where(Image.study_id == study.id, Image.sha256.in_(hashes))
    ).first()
    if taken is not None:
        raise UndoRefused(
            gettext(
                "The same image was added again since (now an image of %(identity)s): delete "
                "that one first to bring this back.",
                identity=taken[1],
            )
        )
    public = db.session.scalar(
        sa.select(Image.public_id).where(Image.public_id.in_([im["public_id"] for im in images]))
    )
    if public is not None:
        raise UndoRefused(
            gettext("An image with the same public id exists elsewhere; it cannot return.")
        )
    store = media.storage()
    for image in images:
        for key in (image["storage_key"], image["display_key"]):
            if not store.exists(key):
                raise UndoRefused(
                    gettext(
                        "The image file is no longer in storage, so the deletion cannot be "
                        "undone. Upload the image again instead."
                    )
                )


def _undo_block(study: Study, data: dict) -> None:
    """Put a block back at its place in the running order."""
    if db.session.scalar(
        sa.select(Block.id).where(Block.study_id == study.id, Block.name == data["name"])
    ):
        raise UndoRefused(
            gettext(
                "Another block is called %(name)s now: rename it first to bring this back.",
                name=repr(data["name"]),
            )
        )
    renumber_blocks(study)
    for block in study.blocks:
        if block.position >= data["position"]:
            block.position += 1
    free = _free_id(Block, data["id"])
    block = Block(
        study=study,
        position=data["position"],
        name=data["name"],
        task=data["task"],
        settings=data["settings"],
    )
    if free is not None:
        block.id = free
    db.session.add(block)
    db.session.flush()
    add_part_texts(study.id, "block", block.id, data.get("texts") or {})
    renumber_blocks(study)


def _undo_identity(study: Study, data: dict) -> None:
    """Put an identity back with its images."""
    if db.session.scalar(
        sa.select(Identity.id).where(Identity.study_id == study.id, Identity.code == data["code"])
    ):
        raise UndoRefused(
            gettext(
                "An identity with the code %(code)s was added since: delete it first to bring "
                "this one back.",
                code=data["code"],
            )
        )
    _check_images(study, data["images"])
    free = _free_id(Identity, data["id"])
    identity = Identity(study_id=study.id, **{c: data[c] for c in IDENTITY_COLUMNS if c != "id"})
    if free is not None:
        identity.id = free
    db.session.add(identity)
    db.session.flush()
    for image in data["images"]:
        _restore_image(study, image, identity.id)


def _undo_image(study: Study, data: dict) -> None:
    """Put an image back on its identity, which must still be there."""
    image = data["image"]
    # By code: the identity may have come back under a new id, and its old id may now be
    # another identity's (SQLite reuses the highest deleted id).
    identity = db.session.scalar(
        sa.select(Identity).where(
            Identity.study_id == study.id, Identity.code == data["identity_code"]
        )
    )
    if identity is None:
        raise UndoRefused(
            gettext(
                "Identity %(code)s was deleted since: undo that deletion first.",
                code=data["identity_code"],
            )
        )
    _check_images(study, [image])
    _restore_image(study, image, identity.id)


def _undo_question(study: Study, data: dict) -> None:
    """Put a question back at its place on the questions page."""
    if db.session.scalar(
        sa.select(StudyQuestion.id).where(
            StudyQuestion.study_id == study.id, StudyQuestion.code == data["code"]
        )
    ):
        raise UndoRefused(
            gettext(
                "Another question has the code %(code)s now: change its code first to bring "
                "this one back.",
                code=data["code"],
            )
        )
    ordered = sorted(study.questions, key=lambda q: (q.position, q.id))
    for position, question in enumerate(ordered, start=1):
        question.position = position + (position >= data["position"])
    free = _free_id(StudyQuestion, data["id"])
    question = StudyQuestion(
        study=study,
        position=min(data["position"], len(ordered) + 1),
        **{c: data[c] for c in ("code", "kind", "text", "required", "spec")},
    )
    if free is not None:
        question.id = free
    db.session.add(question)


UNDO = {
    "block": _undo_block,
    "identity": _undo_identity,
    "image": _undo_image,
    "question": _undo_question,
}


def undo(study: Study, part_id: int, researcher: Researcher) -> str:
    """Undo one kept deletion of a locked draft study; return what came back, in words.

    Call it on the row `lock_for_change` returned; the caller commits. UndoRefused says why
    it cannot (the study opened, the part was undone already or forgotten, a conflict).
    """
    if study.state != "draft" or study.design_locked:
        raise UndoRefused(
            gettext(
                "The study has opened, so its design is frozen: deletions can no longer be undone."
            )
        )
    part = db.session.get(DeletedPart, part_id)
    if part is None or part.study_id != study.id:
        raise UndoRefused(
            gettext("There is nothing to undo: it was undone already, or is too old to bring back.")
        )
    UNDO[part.kind](study, part.data)
    label = part.label
    audit.record(f"{part.kind}.undo_delete", researcher=researcher, study=study, part=label)
    db.session.delete(part)
    db.session.flush()
    return label
