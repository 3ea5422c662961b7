"""Researcher routes: a study's stimulus gallery, set and image uploads, and deletions.

An upload is checked whole before anything is written. A valid one is imported in one
transaction; if it fails part-way the transaction is rolled back and the files already written
for it are removed, so a failed upload leaves neither rows nor files behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from survey import audit, media
from survey.extensions import db
from survey.models import Identity, Image, Researcher, Study
from survey.researcher import bp
from survey.researcher.access import lock_for_change, requires_role
from survey.researcher.stimuli_forms import ImageUploadForm, ZipUploadForm
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


def _refuse_if_frozen(study: Study) -> None:
    """Answer 409 when the study's design is frozen (it froze when the study opened)."""
    if study.design_locked:
        abort(
            409,
            description=(
                "This study's design is frozen since it opened, so its stimuli cannot change. "
                "Duplicate the study to work on a new version."
            ),
        )


def _researcher() -> Researcher:
    """Return the signed-in researcher (not the proxy), for the audit log."""
    return current_user._get_current_object()


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
                f"identity {person.code} has {column} '{new}' here but '{old}' in the study"
            )
    if person.consent is False and existing.consent_recorded:
        conflicts.append(
            f"identity {person.code}: consent says no here but is recorded as given in the study"
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


def _discard_unreferenced(keys: Iterable[str]) -> None:
    """Delete the files no image row points to (rows another upload committed keep theirs)."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return
    used = set(
        db.session.scalars(sa.select(Image.storage_key).where(Image.storage_key.in_(keys)))
    ) | set(db.session.scalars(sa.select(Image.display_key).where(Image.display_key.in_(keys))))
    media.delete_files([key for key in keys if key not in used])


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

    def run(self, add: Callable[[_Import], None], researcher: Researcher, **detail) -> None:
        """Add the upload's rows and files with `add`, audit and commit; undo it all on failure.

        The images were processed before; the rows and files are written under the study's
        lock, after checking again that the design is not frozen (the study may have opened
        while the upload was read).
        """
        try:
            self.study = lock_for_change(self.study, "editor")
            _refuse_if_frozen(self.study)
            add(self)
            db.session.flush()
            audit.record("stimuli.upload", researcher=researcher, study=self.study, **detail)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            _discard_unreferenced(self.written)
            raise


def import_set(study: Study, stimulus_set: StimulusSet, researcher: Researcher) -> int:
    """Import a checked stimulus set in one transaction; return the number of images stored."""

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
        add, researcher, images=len(stimulus_set.images), identities=len(stimulus_set.identities)
    )
    return len(stimulus_set.images)


def _gallery(study: Study) -> list[dict]:
    """Return each identity with its images in the order real, ai, probes, and what it lacks."""
    identities = db.session.scalars(
        sa.select(Identity).where(Identity.study_id == study.id).order_by(Identity.code)
    ).all()
    images = db.session.scalars(
        sa.select(Image).where(Image.study_id == study.id).order_by(Image.id)
    ).all()
    by_identity: dict[int, list[Image]] = {}
    for image in images:
        by_identity.setdefault(image.identity_id, []).append(image)
    gallery = []
    for identity in identities:
        own = sorted(
            by_identity.get(identity.id, []), key=lambda im: (ROLE_ORDER[im.role, im.source], im.id)
        )
        sources = {im.source for im in own}
        lacks = [f"{s} headshot" for s in ("real", "ai") if s not in sources]
        if "photo" not in sources:
            lacks.append("probe photo (needed by match blocks)")
        gallery.append({"identity": identity, "images": own, "lacks": lacks})
    return gallery


def _page(study: Study, role: str, status: int = 200, **forms):
    """Render the stimuli page with the given forms (fresh ones where not given)."""
    forms.setdefault("zip_form", ZipUploadForm())
    forms.setdefault("image_form", ImageUploadForm())
    forms.setdefault("report", None)
    return (
        render_template(
            "researcher/stimuli/index.html",
            study=study,
            role=role,
            gallery=_gallery(study),
            can_edit=role in ("editor", "owner") and not study.design_locked,
            max_upload_mb=(current_app.config.get("MAX_CONTENT_LENGTH") or 0) // (1024 * 1024),
            **forms,
        ),
        status,
    )


@bp.get("/studies/<int:study_id>/stimuli", endpoint="stimuli")
@requires_role("viewer")
def stimuli_page(study: Study, role: str):
    """Show the gallery of identities and images, with the upload forms for editors."""
    return _page(study, role)


@bp.post("/studies/<int:study_id>/stimuli/zip", endpoint="stimuli_upload_zip")
@requires_role("editor")
def upload_zip(study: Study, role: str):
    """Check a stimulus ZIP and import it whole, or show every problem and import nothing."""
    _refuse_if_frozen(study)
    form = ZipUploadForm()
    if not form.validate_on_submit():
        return _page(study, role, 400, zip_form=form)
    upload = form.archive.data
    config = current_app.config
    stimulus_set = read_stimulus_zip(
        upload.stream,
        existing_hashes=_study_hashes(study),
        existing_headshots=_headshots_in_study(study),
        max_pixels=config["STIMULUS_ZIP_MAX_MEGAPIXELS"] * 1_000_000,
        max_seconds=config["STIMULUS_ZIP_MAX_SECONDS"],
    )
    check_against_study(study, stimulus_set)
    if not stimulus_set.ok:
        # Problems of the archive as a whole first, then by manifest row.
        report = {
            "filename": upload.filename,
            "errors": sorted(stimulus_set.errors, key=lambda p: p.row or 0),
            "error_count": stimulus_set.error_count,
            "more_errors": stimulus_set.hidden_summary("error"),
            "warnings": stimulus_set.warnings,
            "more_warnings": stimulus_set.hidden_summary("warning"),
        }
        return _page(study, role, 422, zip_form=form, report=report)
    try:
        count = import_set(study, stimulus_set, _researcher())
    except IntegrityError:
        abort(
            409,
            description="Another upload added some of these images at the same time. "
            "Nothing of this upload was kept; reload the page and upload it again.",
        )
    flash(
        f"Imported {count} images of {len(stimulus_set.identities)} identities from "
        f"{upload.filename}.",
        "success",
    )
    for warning in stimulus_set.warnings[:10]:
        flash(f"Note: {warning}", "warning")
    return redirect(url_for("researcher.stimuli", study_id=study.id))


def _image_problem(form: ImageUploadForm, study: Study) -> tuple[ProcessedImage | None, str | None]:
    """Process the uploaded image; return it, or None and the reason it cannot be used."""
    upload = form.image.data
    try:
        processed = process_image(upload.read(MAX_IMAGE_BYTES + 1), filename=upload.filename or "")
    except ImageError as exc:
        return None, str(exc)
    duplicate = db.session.scalar(
        sa.select(Image).where(Image.study_id == study.id, Image.sha256 == processed.sha256)
    )
    if duplicate is not None:
        return None, (
            f"{upload.filename}: the same image is already in this study "
            f"({duplicate.identity.code}, {duplicate.source} {duplicate.role})."
        )
    return processed, None


@bp.post("/studies/<int:study_id>/stimuli/image", endpoint="stimuli_upload_image")
@requires_role("editor")
def upload_image(study: Study, role: str):
    """Add one image to an identity (creating the identity when its code is new)."""
    _refuse_if_frozen(study)
    form = ImageUploadForm()
    if not form.validate_on_submit():
        return _page(study, role, 400, image_form=form)
    processed, problem = _image_problem(form, study)
    code = form.identity.data
    existing = _existing_identities(study).get(code)
    descriptors = {column: getattr(form, column).data or "" for column in DESCRIPTORS}
    person = StimulusIdentity(code, 0, **descriptors)
    conflicts = _descriptor_conflicts(person, existing)
    if problem or conflicts:
        form.image.errors = [problem] if problem else []
        form.identity.errors = conflicts
        return _page(study, role, 422, image_form=form)

    def add(job: _Import) -> None:
        """Create or fill in the identity, then store the image."""
        identity = _identity_for(study, code, descriptors, consent=False)
        db.session.flush()
        job.image(
            identity,
            processed,
            role=form.role.data,
            source=form.source.data,
            generator=form.generator.data or "",
            filename=(form.image.data.filename or "")[-255:],
        )

    try:
        _Import(study).run(add, _researcher(), images=1, identity=code)
    except IntegrityError:
        abort(
            409,
            description="The same image or identity was added at the same time by "
            "another upload. Nothing of this upload was kept; reload the page and try again.",
        )
    flash(f"Added the {form.source.data} {form.role.data} of {code}.", "success")
    return redirect(url_for("researcher.stimuli", study_id=study.id))


def _delete(study: Study, doomed: list[Image], action: str, what: str, **detail) -> None:
    """Commit a deletion, then remove the files no other image row uses."""
    keys = [key for image in doomed for key in (image.storage_key, image.display_key)]
    audit.record(action, researcher=_researcher(), study=study, **detail)
    db.session.commit()
    _discard_unreferenced(keys)
    flash(f"Deleted {what}.", "success")


@bp.post(
    "/studies/<int:study_id>/stimuli/images/<int:image_id>/delete", endpoint="stimuli_delete_image"
)
@requires_role("editor")
def delete_image(study: Study, role: str, image_id: int):
    """Delete one image of the study (not once the design is frozen)."""
    study = lock_for_change(study, "editor")
    _refuse_if_frozen(study)
    image = db.session.get(Image, image_id)
    if image is None or image.study_id != study.id:
        abort(404)
    label = f"the {image.source} {image.role} of {image.identity.code}"
    db.session.delete(image)
    _delete(
        study,
        [image],
        "stimuli.delete_image",
        label,
        image=image.public_id,
        sha256=image.sha256,
        identity=image.identity.code,
    )
    return redirect(url_for("researcher.stimuli", study_id=study.id))


@bp.post(
    "/studies/<int:study_id>/stimuli/identities/<int:identity_id>/delete",
    endpoint="stimuli_delete_identity",
)
@requires_role("editor")
def delete_identity(study: Study, role: str, identity_id: int):
    """Delete an identity with all its images (not once the design is frozen)."""
    study = lock_for_change(study, "editor")
    _refuse_if_frozen(study)
    identity = db.session.get(Identity, identity_id)
    if identity is None or identity.study_id != study.id:
        abort(404)
    images = list(identity.images)
    code = identity.code
    db.session.delete(identity)
    _delete(
        study,
        images,
        "stimuli.delete_identity",
        f"identity {code} and its {len(images)} images",
        identity=code,
        images=len(images),
    )
    return redirect(url_for("researcher.stimuli", study_id=study.id))
