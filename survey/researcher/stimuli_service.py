"""What stimulus uploads and deletions do to the database and storage; the routes call these."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

import sqlalchemy as sa
from flask import abort

from survey import audit, media
from survey.extensions import db
from survey.i18n import N_, gettext
from survey.models import DeletedPart, Identity, Image, Researcher, Study
from survey.researcher import undo
from survey.researcher.access import lock_for_change
from survey.stimuli.images import MAX_IMAGE_BYTES, ImageError, ProcessedImage, process_image
from survey.stimuli.manifest import (
    DESCRIPTORS,
    Problem,
    StimulusIdentity,
    StimulusSet,
    read_stimulus_zip,
)
from survey.storage import key_for

ROLE_ORDER = {("headshot", "real"): 0, ("headshot", "ai"): 1, ("probe", "photo"): 2}
# How an identity's descriptor in an upload contradicts the study's, by descriptor.
DESCRIPTOR_CONFLICT = {
    "age_band": N_("identity %(code)s has age band '%(new)s' here but '%(old)s' in the study"),
    "gender": N_("identity %(code)s has gender '%(new)s' here but '%(old)s' in the study"),
    "ethnicity": N_("identity %(code)s has ethnicity '%(new)s' here but '%(old)s' in the study"),
}
# What the gallery says an identity lacks, by the missing image's source.
LACKING = {
    "real": N_("real headshot"),
    "ai": N_("ai headshot"),
    "photo": N_("probe photo (needed by match blocks)"),
}


def refuse_if_frozen(study: Study) -> None:
    """Answer 409 when the study's design is frozen (it froze when the study opened)."""
    if study.design_locked:
        abort(
            409,
            description=gettext(
                "This study's design is frozen since it opened, so its stimuli cannot change. "
                "Duplicate the study to work on a new version."
            ),
        )


def _study_hashes(study: Study) -> set[str]:
    """Return the SHA-256 of every image already in the study."""
    return set(db.session.scalars(sa.select(Image.sha256).where(Image.study_id == study.id)))


def _existing_identities(study: Study) -> dict[str, Identity]:
    """Return the study's identities by code."""
    rows = db.session.scalars(sa.select(Identity).where(Identity.study_id == study.id))
    return {identity.code: identity for identity in rows}


def _descriptor_conflicts(person: StimulusIdentity, existing: Identity | None) -> list[str]:
    """Say how an uploaded identity's descriptors contradict the same code in the study."""
    if existing is None:
        return []
    conflicts = []
    for column in DESCRIPTORS:
        new, old = getattr(person, column), getattr(existing, column)
        if new and old and new.casefold() != old.casefold():
            conflicts.append(
                gettext(DESCRIPTOR_CONFLICT[column], code=person.code, new=new, old=old)
            )
    if person.consent is False and existing.consent_recorded:
        conflicts.append(
            gettext(
                "identity %(code)s: consent says no here but is recorded as given in the study",
                code=person.code,
            )
        )
    return conflicts


def _headshots_in_study(study: Study) -> set[tuple[str, str]]:
    """Return (identity code, source) of every headshot already in the study."""
    stmt = (
        sa.select(Identity.code, Image.source)
        .join(Image, Image.identity_id == Identity.id)
        .where(Identity.study_id == study.id, Image.role == "headshot")
    )
    return {(code, source) for code, source in db.session.execute(stmt)}


def check_against_study(study: Study, stimulus_set: StimulusSet) -> None:
    """Add to the set's problems the descriptors that contradict the study's identities.

    A headshot the ZIP lacks but the study already has is no problem (a ZIP may add probes
    to identities uploaded before): the reader was told of them.
    """
    existing = _existing_identities(study)
    for person in stimulus_set.identities.values():
        for message in _descriptor_conflicts(person, existing.get(person.code)):
            stimulus_set.add_problem(Problem(person.row, None, message))


def read_set(
    study: Study, fileobj: IO[bytes], *, max_pixels: int, max_seconds: float
) -> StimulusSet:
    """Read and check a stimulus ZIP against the study's images and identities; write nothing."""
    stimulus_set = read_stimulus_zip(
        fileobj,
        existing_hashes=_study_hashes(study),
        existing_headshots=_headshots_in_study(study),
        max_pixels=max_pixels,
        max_seconds=max_seconds,
    )
    check_against_study(study, stimulus_set)
    return stimulus_set


def _identity_for(study: Study, code: str, descriptors: dict[str, str], consent: bool) -> Identity:
    """Return the study's identity with this code, creating it or filling in empty descriptors."""
    identity = db.session.scalar(
        sa.select(Identity).where(Identity.study_id == study.id, Identity.code == code)
    )
    if identity is None:
        identity = Identity(study=study, code=code)
        db.session.add(identity)
    for column, value in descriptors.items():
        if value and not getattr(identity, column):
            setattr(identity, column, value)
    if consent:
        identity.consent_recorded = True
    return identity


def _planned_keys(study: Study, processed: ProcessedImage) -> list[str]:
    """Return the storage keys an image of the study is written under (original, display)."""
    return [
        key_for(study.id, processed.sha256, processed.ext, "original"),
        key_for(study.id, processed.sha256, processed.display_ext, "display"),
    ]


class _Import:
    """One upload's transaction: rows in the session, files noted for removal on failure."""

    def __init__(self, study: Study) -> None:
        """Start with nothing written."""
        self.study = study
        self.written: list[str] = []

    def image(self, identity: Identity, processed: ProcessedImage, **fields: str) -> Image:
        """Store an image's files and row, noting its files before they are written."""
        self.written.extend(_planned_keys(self.study, processed))
        return media.store_image(self.study, identity, processed, **fields)

    def run(
        self,
        add: Callable[[_Import], None],
        researcher: Researcher,
        lock: Callable[[Study], Study] | None = None,
        **detail,
    ) -> None:
        """Add the upload's rows and files with `add`, audit and commit; undo it all on failure.

        The images were processed before; the rows and files are written under the study's
        lock, after checking again that the design is not frozen (the study may have opened
        while the upload was read).
        """
        try:
            self.study = (lock or lock_for_change)(self.study)
            refuse_if_frozen(self.study)
            add(self)
            db.session.flush()
            audit.record("stimuli.upload", researcher=researcher, study=self.study, **detail)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            # Rows another upload committed keep their files, and so do deletions kept for
            # undo (the same image has the same keys).
            undo.discard_unused(self.study, self.written)
            raise


def import_set(
    study: Study,
    stimulus_set: StimulusSet,
    researcher: Researcher,
    lock: Callable[[Study], Study] | None = None,
    **detail: int,
) -> int:
    """Import a checked stimulus set in one transaction; return the number of images stored.

    `lock` locks the study's row and checks the uploader's role under it (by default the
    signed-in researcher's, `lock_for_change`; a background job checks the uploader's).
    """

    def add(job: _Import) -> None:
        """Create or fill in the identities, then store every image."""
        for person in stimulus_set.identities.values():
            descriptors = {column: getattr(person, column) for column in DESCRIPTORS}
            _identity_for(study, person.code, descriptors, person.consent_recorded)
        db.session.flush()
        identities = _existing_identities(study)
        for item in stimulus_set.images:
            job.image(
                identities[item.identity],
                item.image,
                role=item.role,
                source=item.source,
                generator=item.generator,
                filename=item.original_filename[-255:],
            )

    _Import(study).run(
        add,
        researcher,
        lock,
        images=len(stimulus_set.images),
        identities=len(stimulus_set.identities),
        **detail,
    )
    return len(stimulus_set.images)


def check_image(
    study: Study, fileobj: IO[bytes], filename: str
) -> tuple[ProcessedImage | None, str | None]:
    """Process an uploaded image; return it, or None and the reason it cannot be used."""
    try:
        processed = process_image(fileobj.read(MAX_IMAGE_BYTES + 1), filename=filename)
    except ImageError as exc:
        return None, str(exc)
    duplicate = db.session.scalar(
        sa.select(Image).where(Image.study_id == study.id, Image.sha256 == processed.sha256)
    )
    if duplicate is not None:
        return None, gettext(
            "%(file)s: the same image is already in this study (%(code)s, %(source)s %(role)s).",
            file=filename,
            code=duplicate.identity.code,
            source=duplicate.source,
            role=duplicate.role,
        )
    return processed, None


def identity_conflicts(study: Study, code: str, descriptors: dict[str, str]) -> list[str]:
    """Say how descriptors given for one identity contradict the same code in the study."""
    existing = _existing_identities(study).get(code)
    return _descriptor_conflicts(StimulusIdentity(code, 0, **descriptors), existing)


def add_image(
    study: Study,
    researcher: Researcher,
    processed: ProcessedImage,
    *,
    code: str,
    descriptors: dict[str, str],
    role: str,
    source: str,
    generator: str,
    filename: str,
) -> None:
    """Store one checked image in one transaction, creating or filling in its identity."""

    def add(job: _Import) -> None:
        """Create or fill in the identity, then store the image."""
        identity = _identity_for(study, code, descriptors, consent=False)
        db.session.flush()
        job.image(
            identity, processed, role=role, source=source, generator=generator, filename=filename
        )

    _Import(study).run(add, researcher, images=1, identity=code)


def _delete(study: Study, researcher: Researcher, part: DeletedPart, action: str, **detail):
    """Commit a deletion kept for undoing; its files stay until the deletion is forgotten."""
    db.session.flush()
    forgotten = undo.prune(study)
    audit.record(action, researcher=researcher, study=study, **detail)
    db.session.commit()
    undo.discard_unused(study, forgotten)


def image_to_delete(study: Study, image_id: int) -> Image:
    """Return an image of the study, or 404."""
    image = db.session.get(Image, image_id)
    if image is None or image.study_id != study.id:
        abort(404)
    return image


def identity_to_delete(study: Study, identity_id: int) -> Identity:
    """Return an identity of the study, or 404."""
    identity = db.session.get(Identity, identity_id)
    if identity is None or identity.study_id != study.id:
        abort(404)
    return identity


def delete_image(study: Study, image_id: int, researcher: Researcher) -> DeletedPart:
    """Delete one image of the study (not once frozen), kept for undoing; return the kept part."""
    study = lock_for_change(study, "editor")
    refuse_if_frozen(study)
    image = image_to_delete(study, image_id)
    part = undo.keep_image(study, image, researcher)
    db.session.delete(image)
    _delete(
        study,
        researcher,
        part,
        "stimuli.delete_image",
        image=image.public_id,
        sha256=image.sha256,
        identity=image.identity.code,
    )
    return part


def delete_identity(study: Study, identity_id: int, researcher: Researcher) -> DeletedPart:
    """Delete an identity and its images (not once frozen), kept for undoing; return the part."""
    study = lock_for_change(study, "editor")
    refuse_if_frozen(study)
    identity = identity_to_delete(study, identity_id)
    n_images = len(identity.images)
    code = identity.code
    part = undo.keep_identity(study, identity, researcher)
    db.session.delete(identity)
    _delete(
        study,
        researcher,
        part,
        "stimuli.delete_identity",
        identity=code,
        images=n_images,
    )
    return part


GALLERY_PAGE_SIZE = 24


def _entries(identities: list[Identity], images: list[Image]) -> list[dict]:
    """Return each identity with its images in the order real, ai, probes, and what it lacks."""
    by_identity: dict[int, list[Image]] = {}
    for image in images:
        by_identity.setdefault(image.identity_id, []).append(image)
    result = []
    for identity in identities:
        own = sorted(
            by_identity.get(identity.id, []), key=lambda im: (ROLE_ORDER[im.role, im.source], im.id)
        )
        sources = {im.source for im in own}
        lacks = [gettext(LACKING[s]) for s in ("real", "ai") if s not in sources]
        if "photo" not in sources:
            lacks.append(gettext(LACKING["photo"]))
        result.append({"identity": identity, "images": own, "lacks": lacks})
    return result


def gallery(study: Study) -> list[dict]:
    """Return every identity of the study with its images, by code."""
    identities = db.session.scalars(
        sa.select(Identity).where(Identity.study_id == study.id).order_by(Identity.code)
    ).all()
    images = db.session.scalars(
        sa.select(Image).where(Image.study_id == study.id).order_by(Image.id)
    ).all()
    return _entries(list(identities), list(images))


def _like(text: str) -> str:
    """Return `text` for a LIKE pattern (escape character \\), its wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def gallery_page(study: Study, query: str = "", page: int = 1, lacking: bool = False) -> dict:
    """Return one page of the gallery: identities whose code or descriptors contain `query`
    (any case), optionally only those missing an image, with the page's images and totals."""
    stmt = sa.select(Identity).where(Identity.study_id == study.id)
    query = query.strip()[:100]
    if query:
        # A code matches anywhere in it; a descriptor from the start of one of its words, so
        # that "man" does not find every "woman".
        escaped = _like(query.lower()) + "%"
        stmt = stmt.where(
            sa.or_(
                sa.func.lower(Identity.code).like(f"%{escaped}", escape="\\"),
                *(
                    sa.or_(
                        sa.func.lower(column).like(escaped, escape="\\"),
                        sa.func.lower(column).like(f"% {escaped}", escape="\\"),
                    )
                    for column in (Identity.gender, Identity.age_band, Identity.ethnicity)
                ),
            )
        )
    if lacking:
        complete = (
            sa.select(Image.identity_id)
            .where(Image.study_id == study.id)
            .group_by(Image.identity_id)
            .having(sa.func.count(sa.distinct(Image.source)) == 3)
        )
        stmt = stmt.where(Identity.id.not_in(complete))
    matching = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    pages = max(1, -(-matching // GALLERY_PAGE_SIZE))
    page = min(max(1, page), pages)
    identities = list(
        db.session.scalars(
            stmt.order_by(Identity.code)
            .offset((page - 1) * GALLERY_PAGE_SIZE)
            .limit(GALLERY_PAGE_SIZE)
        )
    )
    images = (
        list(
            db.session.scalars(
                sa.select(Image)
                .where(Image.identity_id.in_([i.id for i in identities]))
                .order_by(Image.id)
            )
        )
        if identities
        else []
    )
    totals = db.session.execute(
        sa.select(
            sa.select(sa.func.count()).where(Identity.study_id == study.id).scalar_subquery(),
            sa.select(sa.func.count()).where(Image.study_id == study.id).scalar_subquery(),
        )
    ).one()
    return {
        "entries": _entries(identities, images),
        "page": page,
        "pages": pages,
        "matching": matching,
        "identities": int(totals[0]),
        "images": int(totals[1]),
        "query": query,
        "lacking": lacking,
    }
