"""Researcher routes: a study's stimulus gallery, set and image uploads, and deletions."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from survey.i18n import N_, gettext
from survey.models import Image, Researcher, Study
from survey.researcher import bp, stimuli_jobs, stimuli_service, undo
from survey.researcher.access import requires_role
from survey.researcher.confirm import confirm_page, offer_undo
from survey.researcher.forms import require_button
from survey.researcher.stimuli_forms import ImageUploadForm, ZipUploadForm
from survey.stimuli.manifest import DESCRIPTORS

# What is said of an image, by its kind: the probe photo, or a headshot by its source.
IMAGE_ADDED = {
    "probe": N_("Added the photo probe of %(code)s."),
    "real": N_("Added the real headshot of %(code)s."),
    "ai": N_("Added the ai headshot of %(code)s."),
}
IMAGE_DELETE_TITLE = {
    "probe": N_("Delete the probe photo of %(code)s?"),
    "real": N_("Delete the real headshot of %(code)s?"),
    "ai": N_("Delete the ai headshot of %(code)s?"),
}
IMAGE_DELETED = {
    "probe": N_("The probe photo of identity %(code)s is removed from the study's stimuli."),
    "real": N_("The real headshot of identity %(code)s is removed from the study's stimuli."),
    "ai": N_("The ai headshot of identity %(code)s is removed from the study's stimuli."),
}
IMAGE_FILE_DELETED = {
    "probe": N_(
        "The probe photo of identity %(code)s (%(file)s) is removed from the study's stimuli."
    ),
    "real": N_(
        "The real headshot of identity %(code)s (%(file)s) is removed from the study's stimuli."
    ),
    "ai": N_(
        "The ai headshot of identity %(code)s (%(file)s) is removed from the study's stimuli."
    ),
}
UNDO_NOTE = N_("You can undo this while the study is a draft.")
# The manifest.csv shown as an example on the stimuli page: its columns and values are the
# file's own, in every language.
MANIFEST_EXAMPLE = """identity,role,source,file,generator,gender,age_band,consent
P001,headshot,real,P001-real.jpg,Studio Lumen (Canon R5),woman,30-44,yes
P001,headshot,ai,P001-ai.jpg,HeadshotGen v3,woman,30-44,yes
P001,probe,photo,P001-probe.jpg,phone camera,woman,30-44,yes"""


def _kind(role: str, source: str) -> str:
    """Return an image's kind: "probe", or a headshot's source ("real" or "ai")."""
    return "probe" if role == "probe" else source


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
            manifest_example=MANIFEST_EXAMPLE,
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
            description=gettext(
                "Another upload added some of these images at the same time. "
                "Nothing of this upload was kept; reload the page and upload it again."
            ),
        )
    identities = ngettext("%(num)s identity", "%(num)s identities", len(stimulus_set.identities))
    flash(
        ngettext(
            "Imported %(num)s image of %(identities)s from %(file)s.",
            "Imported %(num)s images of %(identities)s from %(file)s.",
            count,
            identities=identities,
            file=upload.filename,
        ),
        "success",
    )
    for warning in stimulus_set.warnings[:10]:
        flash(gettext("Note: %(warning)s", warning=warning), "warning")
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
            description=gettext(
                "The same image or identity was added at the same time by another upload. "
                "Nothing of this upload was kept; reload the page and try again."
            ),
        )
    flash(gettext(IMAGE_ADDED[_kind(form.role.data, form.source.data)], code=code), "success")
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
        return confirm_page(
            study,
            role,
            title=gettext(
                IMAGE_DELETE_TITLE[_kind(image.role, image.source)], code=image.identity.code
            ),
            lines=[_image_deleted(image)],
            image=image,
            note=gettext(UNDO_NOTE),
            undoable=True,
            action=url_for("researcher.stimuli_delete_image", study_id=study.id, image_id=image.id),
            button=gettext("Delete the image"),
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
            title=gettext("Delete identity %(code)s?", code=identity.code),
            lines=[
                ngettext(
                    "Identity %(code)s and its %(num)s image are removed from the study's stimuli.",
                    "Identity %(code)s and its %(num)s images are removed from the study's "
                    "stimuli.",
                    n,
                    code=identity.code,
                ),
            ],
            note=gettext(UNDO_NOTE),
            undoable=True,
            action=url_for(
                "researcher.stimuli_delete_identity", study_id=study.id, identity_id=identity.id
            ),
            button=gettext("Delete %(code)s and its images", code=identity.code),
            hidden={"back": _gallery_url(study)},
            back=_gallery_url(study),
        )
    require_button()
    part = stimuli_service.delete_identity(study, identity_id, _researcher())
    offer_undo(study, part)
    return redirect(_gallery_url(study))


def _image_deleted(image: Image) -> str:
    """Say which image a deletion removes, with the name of the file it came from if known."""
    kind = _kind(image.role, image.source)
    if image.original_filename:
        return gettext(
            IMAGE_FILE_DELETED[kind], code=image.identity.code, file=image.original_filename
        )
    return gettext(IMAGE_DELETED[kind], code=image.identity.code)


def _gallery_url(study: Study) -> str:
    """The gallery page to go back to: the one the researcher came from, when it is one."""
    back = request.values.get("back", "")
    if back.startswith(f"/r/studies/{study.id}/stimuli") and "//" not in back:
        return back
    return url_for("researcher.stimuli", study_id=study.id)
