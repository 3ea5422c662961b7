"""Forms of the stimuli and exports pages: set and image uploads, deletions, downloads."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from survey.i18n import N_, gettext
from survey.i18n import lazy_gettext as _l
from survey.researcher.forms import options
from survey.stimuli.manifest import FIELD_LIMITS, ROLE_SOURCES, validate_identity_code

# What a role's wrong source is told, by role (a role not offered has its own error).
WRONG_SOURCE = {
    "headshot": N_("A headshot must have the source real or ai, not %(source)s."),
    "probe": N_("A probe must have the source photo, not %(source)s."),
}


def _strip(value: str | None) -> str | None:
    """Strip the spaces around a text value."""
    return value.strip() if isinstance(value, str) else value


class ZipUploadForm(FlaskForm):
    """Upload a whole stimulus set: one ZIP with manifest.csv beside the images."""

    archive = FileField(
        _l("Stimulus set (ZIP)"),
        validators=[FileRequired(_l("Choose a ZIP file to upload."))],
        description=_l(
            "A ZIP with manifest.csv at the top and the images beside it. manifest.csv has the "
            "columns identity, role, source, file, generator and optionally age_band, gender, "
            "ethnicity, consent. The whole set is checked first; nothing is imported unless "
            "every row is right."
        ),
    )


class ImageUploadForm(FlaskForm):
    """Upload one image of an identity (new identities are created on the way)."""

    identity = StringField(
        _l("Identity code"),
        filters=[_strip],
        validators=[DataRequired(_l("Give the identity's code, e.g. P001.")), Length(max=32)],
        description=_l("The person's code, e.g. P001. A new code creates the identity."),
    )
    role = SelectField(
        _l("Role"),
        choices=options(
            [
                ("headshot", _l("Headshot")),
                ("probe", _l("Probe photo (the person as met in person)")),
            ]
        ),
        description=_l(
            "A headshot is shown as the stimulus; a probe is an ordinary photo of the "
            "same person used in match trials."
        ),
    )
    source = SelectField(
        _l("Source"),
        choices=options(
            [
                ("real", _l("Real photograph (headshots)")),
                ("ai", _l("AI-generated (headshots)")),
                ("photo", _l("Photo (probes)")),
            ]
        ),
        description=_l("Headshots are real or ai; probes are always photo."),
    )
    generator = StringField(
        _l("Generator"),
        filters=[_strip],
        validators=[Length(max=FIELD_LIMITS["generator"])],
        description=_l("The camera or photographer, or the AI model that made the headshot."),
    )
    age_band = StringField(
        _l("Age band (optional)"),
        filters=[_strip],
        validators=[Length(max=FIELD_LIMITS["age_band"])],
    )
    gender = StringField(
        _l("Gender (optional)"), filters=[_strip], validators=[Length(max=FIELD_LIMITS["gender"])]
    )
    ethnicity = StringField(
        _l("Ethnicity (optional)"),
        filters=[_strip],
        validators=[Length(max=FIELD_LIMITS["ethnicity"])],
    )
    image = FileField(
        _l("Image file"),
        validators=[FileRequired(_l("Choose an image to upload."))],
        description=_l("A JPEG, PNG or WebP photo. Its metadata (EXIF, GPS) is removed."),
    )

    def validate_identity(self, field: StringField) -> None:
        """Accept codes of letters, digits, '-' and '_' only."""
        try:
            validate_identity_code(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_source(self, field: SelectField) -> None:
        """Refuse a source the role cannot have (a probe is a photo; a headshot real or ai)."""
        allowed = ROLE_SOURCES.get(self.role.data)
        if allowed is not None and field.data not in allowed:
            raise ValidationError(gettext(WRONG_SOURCE[self.role.data], source=field.data))


class ExportForm(FlaskForm):
    """Download one export; participant tables may include recruitment ids when ticked."""

    recruitment_ids = BooleanField(
        _l("Include recruitment-platform ids"),
        description=_l(
            "Adds recruitment_platform and recruitment_id columns. These are the participants' "
            "Prolific, MTurk or SONA ids: personal data that link the answers to a person. "
            "Leave this off unless you must pay or contact participants, and never publish them."
        ),
    )
