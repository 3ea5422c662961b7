"""Researcher routes: a study's stimulus gallery, set and image uploads, and deletions."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from survey.models import Researcher, Study
from survey.researcher import bp, stimuli_jobs, stimuli_service, undo
from survey.researcher.access import requires_role
from survey.researcher.confirm import confirm_page, offer_undo
from survey.researcher.forms import require_button
from survey.researcher.stimuli_forms import ImageUploadForm, ZipUploadForm
from survey.stimuli.manifest import DESCRIPTORS


def _researcher() -> Researcher:
    """Return the signed-in researcher (not the proxy), for the audit log."""
    return current_user._get_current_object()


def _page(study: Study, role: str, status: int = 200, **forms):
    """Render the stimuli page with the given forms (fresh ones where not given)."""
    forms.setdefault("zip_form", ZipUploadForm())
    forms.setdefault("image_form", ImageUploadForm())
    forms.setdefault("report", None)
    can_edit = role in ("editor", "owner") and not study.design_locked
    return (
        render_template(
            "researcher/stimuli/index.html",
            study=study,
            role=role,
            gallery=stimuli_service.gallery_page(
                study,
                query=request.args.get("q", ""),
                page=request.args.get("page", 1, type=int) or 1,
                lacking=request.args.get("lacking") == "1",
            ),
            deleted=[p for p in undo.undoable(study) if p.kind in ("identity", "image")]
            if can_edit
            else [],
            here=request.full_path.rstrip("?"),
            can_edit=can_edit,
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
    stimuli_service.refuse_if_frozen(study)
    form = ZipUploadForm()
    if not form.validate_on_submit():
        return _page(study, role, 400, zip_form=form)
    upload = form.archive.data
    config = current_app.config
    if (request.content_length or 0) > config["STIMULUS_ZIP_INLINE_MB"] * 1024 * 1024:
        # A big set is checked and imported by a background job; its page shows progress.
        job = stimuli_jobs.start_import(study, _researcher(), upload.stream, upload.filename or "")
        return redirect(url_for("researcher.job_page", study_id=study.id, job_id=job.id))
    stimulus_set = stimuli_service.read_set(
        study,
        upload.stream,
        max_pixels=config["STIMULUS_ZIP_MAX_MEGAPIXELS"] * 1_000_000,
        max_seconds=config["STIMULUS_ZIP_MAX_SECONDS"],
    )
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
        count = stimuli_service.import_set(study, stimulus_set, _researcher())
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


@bp.post("/studies/<int:study_id>/stimuli/image", endpoint="stimuli_upload_image")
@requires_role("editor")
def upload_image(study: Study, role: str):
    """Add one image to an identity (creating the identity when its code is new)."""
    stimuli_service.refuse_if_frozen(study)
    form = ImageUploadForm()
    if not form.validate_on_submit():
        return _page(study, role, 400, image_form=form)
    upload = form.image.data
    processed, problem = stimuli_service.check_image(study, upload, upload.filename or "")
    code = form.identity.data
    descriptors = {column: getattr(form, column).data or "" for column in DESCRIPTORS}
    conflicts = stimuli_service.identity_conflicts(study, code, descriptors)
    if problem or conflicts:
        form.image.errors = [problem] if problem else []
        form.identity.errors = conflicts
        return _page(study, role, 422, image_form=form)
    try:
        stimuli_service.add_image(
            study,
            _researcher(),
            processed,
            code=code,
            descriptors=descriptors,
            role=form.role.data,
            source=form.source.data,
            generator=form.generator.data or "",
            filename=(upload.filename or "")[-255:],
        )
    except IntegrityError:
        abort(
            409,
            description="The same image or identity was added at the same time by "
            "another upload. Nothing of this upload was kept; reload the page and try again.",
        )
    flash(f"Added the {form.source.data} {form.role.data} of {code}.", "success")
    return redirect(url_for("researcher.stimuli", study_id=study.id))


@bp.route(
    "/studies/<int:study_id>/stimuli/images/<int:image_id>/delete",
    endpoint="stimuli_delete_image",
    methods=["GET", "POST"],
)
@requires_role("editor")
def delete_image(study: Study, role: str, image_id: int):
    """Ask, then delete one image of the study (not once the design is frozen); undoable."""
    if request.method == "GET":
        stimuli_service.refuse_if_frozen(study)
        image = stimuli_service.image_to_delete(study, image_id)
        kind = "probe photo" if image.role == "probe" else f"{image.source} headshot"
        return confirm_page(
            study,
            role,
            title=f"Delete the {kind} of {image.identity.code}?",
            lines=[
                f"The {kind} of identity {image.identity.code}"
                + (f" ({image.original_filename})" if image.original_filename else "")
                + " is removed from the study's stimuli.",
            ],
            image=image,
            note="You can undo this while the study is a draft.",
            undoable=True,
            action=url_for("researcher.stimuli_delete_image", study_id=study.id, image_id=image.id),
            button="Delete the image",
            hidden={"back": _gallery_url(study)},
            back=_gallery_url(study),
        )
    require_button()
    part = stimuli_service.delete_image(study, image_id, _researcher())
    offer_undo(study, part)
    return redirect(_gallery_url(study))


@bp.route(
    "/studies/<int:study_id>/stimuli/identities/<int:identity_id>/delete",
    endpoint="stimuli_delete_identity",
    methods=["GET", "POST"],
)
@requires_role("editor")
def delete_identity(study: Study, role: str, identity_id: int):
    """Ask, then delete an identity with all its images (not once frozen); undoable."""
    if request.method == "GET":
        stimuli_service.refuse_if_frozen(study)
        identity = stimuli_service.identity_to_delete(study, identity_id)
        n = len(identity.images)
        return confirm_page(
            study,
            role,
            title=f"Delete identity {identity.code}?",
            lines=[
                f"Identity {identity.code} and its {n} {'image' if n == 1 else 'images'} are "
                "removed from the study's stimuli.",
            ],
            note="You can undo this while the study is a draft.",
            undoable=True,
            action=url_for(
                "researcher.stimuli_delete_identity", study_id=study.id, identity_id=identity.id
            ),
            button=f"Delete {identity.code} and its images",
            hidden={"back": _gallery_url(study)},
            back=_gallery_url(study),
        )
    require_button()
    part = stimuli_service.delete_identity(study, identity_id, _researcher())
    offer_undo(study, part)
    return redirect(_gallery_url(study))


def _gallery_url(study: Study) -> str:
    """The gallery page to go back to: the one the researcher came from, when it is one."""
    back = request.values.get("back", "")
    if back.startswith(f"/r/studies/{study.id}/stimuli") and "//" not in back:
        return back
    return url_for("researcher.stimuli", study_id=study.id)
