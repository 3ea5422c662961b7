"""Forms of the stimuli and exports pages: set and image uploads, deletions, downloads."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from survey.researcher.forms import options
from survey.stimuli.manifest import FIELD_LIMITS, ROLE_SOURCES, validate_identity_code


def _strip(value: str | None) -> str | None:
    """Strip the spaces around a text value."""
    return value.strip() if isinstance(value, str) else value


class ZipUploadForm(FlaskForm):
    """Upload a whole stimulus set: one ZIP with manifest.csv beside the images."""

    archive = FileField(
        "Stimulus set (ZIP)",
        validators=[FileRequired("Choose a ZIP file to upload.")],
        description=(
            "A ZIP with manifest.csv at the top and the images beside it. manifest.csv has the "
            "columns identity, role, source, file, generator and optionally age_band, gender, "
            "ethnicity, consent. The whole set is checked first; nothing is imported unless "
            "every row is right."
        ),
    )


class ImageUploadForm(FlaskForm):
    """Upload one image of an identity (new identities are created on the way)."""

    identity = StringField(
        "Identity code",
        filters=[_strip],
        validators=[DataRequired("Give the identity's code, e.g. P001."), Length(max=32)],
        description="The person's code, e.g. P001. A new code creates the identity.",
    )
    role = SelectField(
        "Role",
        choices=options(
            [("headshot", "Headshot"), ("probe", "Probe photo (the person as met in person)")]
        ),
        description="A headshot is shown as the stimulus; a probe is an ordinary photo of the "
        "same person used in match trials.",
    )
    source = SelectField(
        "Source",
        choices=options(
            [
                ("real", "Real photograph (headshots)"),
                ("ai", "AI-generated (headshots)"),
                ("photo", "Photo (probes)"),
            ]
        ),
        description="Headshots are real or ai; probes are always photo.",
    )
    generator = StringField(
        "Generator",
        filters=[_strip],
        validators=[Length(max=FIELD_LIMITS["generator"])],
        description="The camera or photographer, or the AI model that made the headshot.",
    )
    age_band = StringField(
        "Age band (optional)", filters=[_strip], validators=[Length(max=FIELD_LIMITS["age_band"])]
    )
    gender = StringField(
        "Gender (optional)", filters=[_strip], validators=[Length(max=FIELD_LIMITS["gender"])]
    )
    ethnicity = StringField(
        "Ethnicity (optional)", filters=[_strip], validators=[Length(max=FIELD_LIMITS["ethnicity"])]
    )
    image = FileField(
        "Image file",
        validators=[FileRequired("Choose an image to upload.")],
        description="A JPEG, PNG or WebP photo. Its metadata (EXIF, GPS) is removed.",
    )

    def validate_identity(self, field: StringField) -> None:
        """Accept codes of letters, digits, '-' and '_' only."""
        try:
            validate_identity_code(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_source(self, field: SelectField) -> None:
        """Refuse a source the role cannot have (a probe is a photo; a headshot real or ai)."""
        allowed = ROLE_SOURCES.get(self.role.data, ())
        if field.data not in allowed:
            raise ValidationError(
                f"A {self.role.data} must have the source {' or '.join(allowed)}, not {field.data}."
            )


class ExportForm(FlaskForm):
    """Download one export; participant tables may include recruitment ids when ticked."""

    recruitment_ids = BooleanField(
        "Include recruitment-platform ids",
        description=(
            "Adds recruitment_platform and recruitment_id columns. These are the participants' "
            "Prolific, MTurk or SONA ids: personal data that link the answers to a person. "
            "Leave this off unless you must pay or contact participants, and never publish them."
        ),
    )
