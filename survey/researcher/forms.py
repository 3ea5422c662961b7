"""Researcher forms: accounts, studies, blocks, members, preregistration, participant data."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import abort
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    FieldList,
    FloatField,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    StopValidation,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from analysis.plan import DEFAULT_BAYES_RSCALE
from survey.ending import (
    RETURN_REDIRECT_MAX_S,
    RETURN_REDIRECT_MIN_S,
    redirect_problem,
)
from survey.i18n import LANGUAGES
from survey.models import MIN_PASSWORD_LENGTH, ROLES, TASKS
from survey.study_texts import language_name
from survey.study_texts import one_line as on_one_line

MAX_PASSWORD_LENGTH = 1024
MAX_TEXT = 20000
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
SLUG_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
BLOCK_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9 _-]*$"
COMPLETION_CODE_RE = r"^[A-Za-z0-9_.-]+$"
DIRECTIONS = (
    ("two-sided", "two-sided: AI and real differ"),
    ("less", "less: AI below real"),
    ("greater", "greater: AI above real"),
)
TASK_LABELS = {
    "match": "match: same person? (headshot and probe photo)",
    "rate": "rate: first impression on rating scales",
    "choose": "choose: real or AI headshot, side by side",
    "detect": "detect: real photograph or AI-generated?",
    "learn": "learn: study phase of a memory test (meet people in their headshots)",
    "recognise": "recognise: test phase of a memory test (have you met this person?)",
}


def email_address(form: Form, field: StringField) -> None:
    """Accept one plain email address (name@domain.tld)."""
    if field.data and not EMAIL_RE.fullmatch(field.data.strip()):
        raise ValidationError(f"{field.data!r} is not an email address.")


def one_line(form: Form, field: StringField) -> None:
    """Refuse line breaks, tabs and other control characters in a one-line text."""
    if field.data and not on_one_line(field.data):
        raise ValidationError("Write it on one line, without line breaks or tabs.")


def https_url(form: Form, field: StringField) -> None:
    """Accept an https:// address of a host (participants are sent there at the end)."""
    if not field.data:
        return
    parts = urlsplit(field.data.strip())
    if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in field.data.strip()):
        raise ValidationError("Give a full https:// address, e.g. https://app.prolific.com/…")


def _plain(value: float) -> str:
    """Write a bound as people do: 10,000 and 0.5, not 10000 and 0.5000."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def number_between(
    label: str, low: float, high: float, unit: str = "", whole: bool = True, above: bool = False
):
    """Accept a number from `low` to `high`; say so in words, with what was typed, otherwise.

    It speaks for the field's own "Not a valid integer value": the researcher reads one message
    naming the setting, its range and what they wrote.
    """
    kind = "a whole number" if whole else "a number"
    unit = f" {unit}" if unit else ""
    span = (
        f"more than {_plain(low)} and at most {_plain(high)}{unit}"
        if above
        else f"between {_plain(low)} and {_plain(high)}{unit}"
    )

    def check(form: Form, field) -> None:
        """Check the value (empty values are left to Optional or InputRequired)."""
        raw = field.raw_data[0].strip() if field.raw_data and field.raw_data[0] else ""
        if field.data is None and not raw:
            return
        if (
            field.data is not None
            and low <= field.data <= high
            and not (above and field.data == low)
        ):
            return
        field.errors[:] = []
        wrote = repr(raw) if field.data is None else _plain(field.data)
        raise StopValidation(f"{label} must be {kind} {span}; you wrote {wrote}.")

    return check


def return_delay(form: Form, field: IntegerField) -> None:
    """Accept an empty automatic return delay (off) or whole seconds within the bounds."""
    problem = redirect_problem(field.data)
    if problem:
        raise ValidationError(problem)


def options(pairs) -> list[SelectChoice]:
    """Return (value, label) pairs as select options."""
    return [SelectChoice(value, label) for value, label in pairs]


def _strip(value: str | None) -> str | None:
    """Strip the spaces around a text value."""
    return value.strip() if isinstance(value, str) else value


class CheckboxListField(SelectMultipleField):
    """Several choices shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


# --- accounts -----------------------------------------------------------------------------


def new_password_field(label: str, description: str) -> PasswordField:
    """Return a field for choosing a password of the required length."""
    return PasswordField(
        label,
        validators=[
            InputRequired(f"Choose a {label.lower()}."),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=MAX_PASSWORD_LENGTH,
                message=f"The password needs at least {MIN_PASSWORD_LENGTH} characters.",
            ),
        ],
        description=description,
        render_kw={"autocomplete": "new-password"},
    )


def confirm_field(label: str, other: str) -> PasswordField:
    """Return a field repeating the password chosen in `other`."""
    return PasswordField(
        label,
        validators=[InputRequired(f"{label}."), EqualTo(other, "The two passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


class LoginForm(FlaskForm):
    """Sign in with an email (or the demo login) and a password."""

    identifier = StringField(
        "Email",
        validators=[InputRequired("Enter your email."), Length(max=254)],
        filters=[_strip],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired("Enter your password."), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class SignupForm(FlaskForm):
    """Create a researcher account."""

    name = StringField("Your name", validators=[Optional(), Length(max=120)], filters=[_strip])
    email = StringField(
        "Email",
        validators=[InputRequired("Enter your email."), Length(max=254), email_address],
        filters=[_strip],
        render_kw={"autocomplete": "email"},
    )
    password = new_password_field(
        "Password", f"At least {MIN_PASSWORD_LENGTH} characters; a few unrelated words work well."
    )
    confirm = confirm_field("Repeat the password", "password")
    invite = HiddenField()


class PasswordChangeForm(FlaskForm):
    """Change the password; other signed-in sessions of the account end."""

    current_password = PasswordField(
        "Current password",
        validators=[InputRequired("Enter your current password."), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = new_password_field(
        "New password",
        f"At least {MIN_PASSWORD_LENGTH} characters. "
        "Every other session of this account is signed out.",
    )
    confirm = confirm_field("Repeat the new password", "new_password")


class DisplayNameForm(FlaskForm):
    """The name shown for the researcher: to collaborators, and on public pages they author."""

    name = StringField(
        "Display name",
        validators=[Optional(), Length(max=120), one_line],
        filters=[_strip],
        description="How collaborators see you, and how you are credited when a study's owner "
        "lists you as an author of its public findings page (e.g. “A. Researcher”). Leave "
        "empty to be listed by email in the workspace only: without a name you cannot be "
        "credited publicly.",
        render_kw={"autocomplete": "name"},
    )


class InviteForm(FlaskForm):
    """An administrator invites a researcher while sign-up is closed."""

    email = StringField(
        "Email of the researcher to invite",
        validators=[InputRequired("Enter an email."), Length(max=254), email_address],
        filters=[_strip],
        description="You get a sign-up link valid for 7 days to send them.",
    )


class ButtonForm(FlaskForm):
    """A form with nothing but its CSRF token, for one-click actions."""


def require_button() -> None:
    """Refuse (400) a one-click action posted without its form token."""
    if not ButtonForm().validate_on_submit():
        abort(400, description="The form was incomplete; reload the page and try again.")


# --- studies ------------------------------------------------------------------------------


NAME_HELP = (
    "Your team's own name for the study, e.g. “Trust: AI vs real headshots, pilot 2”. "
    "Shown only in this workspace: never to participants, never on the public page."
)
TITLE_HELP = (
    "Participants see it on every page, so it must not give away what the study "
    "compares (say “First impressions of faces”, not “Do AI headshots seem less "
    "trustworthy?”). It also heads the public findings page, its charts and citation."
)
DESCRIPTION_HELP = (
    "A private note for you and your collaborators. Never shown to participants, "
    "never on the public page, never in an export."
)
SUMMARY_HELP = (
    "Plain text for the public findings page, under the title: what the study asked "
    "and why, for studios and readers. Shown only once you publish the findings; "
    "the preview shows how it reads."
)


def name_field() -> StringField:
    """The internal name; left empty, the title stands in."""
    return StringField(
        "Internal name",
        validators=[Optional(), Length(max=200), one_line],
        filters=[_strip],
        description=NAME_HELP + " Leave empty to use the title participants see.",
    )


class StudyCreateForm(FlaskForm):
    """Start a new draft study."""

    name = name_field()
    title = StringField(
        "Title participants see",
        validators=[InputRequired("Give the study a title."), Length(max=200), one_line],
        filters=[_strip],
        description=TITLE_HELP + " The link's name is made from it.",
    )
    description = TextAreaField(
        "Private description",
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=DESCRIPTION_HELP,
    )


def _language_choices() -> list[SelectChoice]:
    """Return the languages a study may run in, as choices."""
    return options((code, language_name(code)) for code in LANGUAGES)


class StudyEditForm(FlaskForm):
    """Edit a study's texts and settings."""

    name = name_field()
    title = StringField(
        "Title participants see",
        validators=[InputRequired("Give the study a title."), Length(max=200), one_line],
        filters=[_strip],
        description=TITLE_HELP,
    )
    slug = StringField(
        "Link name",
        validators=[
            InputRequired("Give the link a name."),
            Length(min=3, max=64, message="The link name needs 3 to 64 characters."),
            Regexp(
                SLUG_RE,
                message="Use lower-case letters, digits and single hyphens, e.g. ai-trust-2025.",
            ),
        ],
        filters=[_strip],
        description=(
            "The participant link is /s/<link name>. It can change only while the study is a draft."
        ),
    )
    description = TextAreaField(
        "Private description",
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=DESCRIPTION_HELP,
    )
    public_summary = TextAreaField(
        "Public summary",
        validators=[Optional(), Length(max=2000)],
        description=SUMMARY_HELP,
    )
    consent_text = TextAreaField(
        "Consent text",
        validators=[Optional(), Length(max=MAX_TEXT)],
        description="Shown first; the participant agrees before anything else. Markdown: "
        "**bold**, *italic*, lists, links. HTML is shown as text.",
    )
    instructions_text = TextAreaField(
        "Instructions",
        validators=[Optional(), Length(max=MAX_TEXT)],
        description="Shown after consent, before the practice trial. Markdown as above.",
    )
    debrief_text = TextAreaField(
        "Debrief",
        validators=[Optional(), Length(max=MAX_TEXT)],
        description="Shown at the end with the completion code. Say what the study was about.",
    )
    completion_code = StringField(
        "Completion code",
        validators=[
            Optional(),
            Length(max=64),
            Regexp(COMPLETION_CODE_RE, message="Use letters, digits, '.', '_' or '-' only."),
        ],
        filters=[_strip],
        description=(
            "Shown on the last page, e.g. the code Prolific gave you. Leave empty for none."
        ),
    )
    completion_url = StringField(
        "Completion link",
        validators=[Optional(), Length(max=2000), https_url],
        filters=[_strip],
        description="Where participants are sent back at the end (https only), e.g. Prolific's "
        "completion URL. Leave empty to show the code only.",
    )
    return_redirect_s = IntegerField(
        "Send participants back automatically after (seconds)",
        validators=[Optional(), return_delay],
        description="Leave empty (the default) and the last page stays until the participant "
        "selects \u201cReturn to\u2026\u201d, so they can read the debrief at their pace. "
        f"Give {RETURN_REDIRECT_MIN_S} to {RETURN_REDIRECT_MAX_S} seconds and the page says it "
        "will take them back, then follows the completion link that long after it opened "
        "(also without script). Needs a completion link.",
    )
    target_n = IntegerField(
        "Target number of participants",
        validators=[
            Optional(),
            number_between("The target number of participants", 1, 1_000_000),
        ],
        description="The study stops accepting new participants once this many have completed. "
        "Leave empty for no limit.",
    )
    n_lists = IntegerField(
        "Counterbalancing lists",
        validators=[
            InputRequired("Give the number of counterbalancing lists, e.g. 2."),
            number_between("Counterbalancing lists", 1, 24),
        ],
        description="Identities are split into lists so that each participant sees each person "
        "either as a real photo or as an AI headshot, never both. 2 lists balance real and AI; "
        "use a multiple of 2. Frozen once the study opens.",
    )
    assign_by = SelectField(
        "Fill lists by",
        choices=options(
            [("started", "participants who started"), ("completed", "participants who completed")]
        ),
        description="A new participant gets the list with the fewest participants so far, counting "
        "either everyone who started or only those who completed.",
    )
    languages = CheckboxListField(
        "Languages participants can take the study in",
        choices=_language_choices(),
        validate_choice=False,
        description="Each text participants read is then written in every language ticked, on "
        "the Languages page; the study cannot open while one is missing. Frozen once the "
        "study opens.",
    )
    default_language = SelectField(
        "Default language",
        choices=_language_choices(),
        validate_choice=False,
        description="Participants whose link names no language get this one. Its texts are "
        "the ones written on this page, under What participants read.",
    )


class StudyDeleteForm(FlaskForm):
    """Delete a study and all its data, confirmed by typing its link name."""

    confirm = StringField(
        "Type the study's link name to confirm",
        validators=[InputRequired("Type the link name to confirm.")],
        filters=[_strip],
    )


class StudyImportForm(FlaskForm):
    """Create a draft study from a study definition (JSON)."""

    file = FileField(
        "Study definition file (.json)",
        description="A file saved with “Export definition” on another Likeness server.",
    )
    text = TextAreaField(
        "…or paste the JSON",
        validators=[Optional(), Length(max=2_000_000)],
    )


class StateForm(FlaskForm):
    """Move a study to another state."""

    state = HiddenField(validators=[InputRequired()])


# --- members ------------------------------------------------------------------------------


ROLE_CHOICES = options(
    [
        ("viewer", "viewer: sees the study, its monitor and exports"),
        ("editor", "editor: also edits the design, opens and closes the study"),
        ("owner", "owner: also manages members and may delete the study"),
    ]
)


class MemberAddForm(FlaskForm):
    """Add a collaborator by email."""

    email = StringField(
        "Researcher's email",
        validators=[InputRequired("Enter the researcher's email."), Length(max=254), email_address],
        filters=[_strip],
        description="They need a Likeness account on this server.",
    )
    role = SelectField("Role", choices=ROLE_CHOICES, default="viewer")


class MemberAuthorForm(FlaskForm):
    """List a member as an author of the public findings page, or not."""

    is_author = SelectField(
        choices=options([("1", "author"), ("0", "not an author")]), validators=[InputRequired()]
    )


class MemberRoleForm(FlaskForm):
    """Change a collaborator's role."""

    role = SelectField("Role", choices=options((r, r) for r in ROLES))


# --- blocks -------------------------------------------------------------------------------


def block_name_field() -> StringField:
    """Return the field of a block's name, unique within the study."""
    return StringField(
        "Block name",
        validators=[
            InputRequired("Give the block a name."),
            Length(max=64),
            Regexp(BLOCK_NAME_RE, message="Use letters, digits, spaces, '_' or '-'."),
        ],
        filters=[_strip],
        description="Appears in the block column of trials.csv, e.g. recognition.",
    )


class BlockAddForm(FlaskForm):
    """Add a block: its name and task; the settings are edited next."""

    name = block_name_field()
    task = SelectField("Task", choices=options((t, TASK_LABELS[t]) for t in TASKS))


class BlockFlowForm(FlaskForm):
    """The study's block flow: the order of the blocks and the breaks between them."""

    block_order = SelectField(
        "Block order",
        choices=options(
            [
                ("fixed", "Fixed: every participant runs the blocks in the order listed"),
                ("random", "Randomised: a new order for each participant"),
                (
                    "counterbalanced",
                    "Counterbalanced: the rows of a balanced Latin square, dealt in order of "
                    "arrival",
                ),
            ]
        ),
        description="Each participant's order, and the Latin square's row when counterbalanced, "
        "is recorded and exported (participants.csv: block_order, block_order_row). The blocks "
        "kept at the end run after the others; the order varies within each group.",
        validate_choice=False,
    )
    blocks_last = CheckboxListField(
        "Blocks kept at the end",
        choices=[],
        description="Choose blocks always run after the others (they show both headshots of a "
        "person). Tick other blocks to keep them at the end too.",
        validate_choice=False,
    )
    block_breaks = BooleanField(
        "A break between blocks",
        description="A page after each block but the last: “Block 2 of 4 done”, with how many "
        "trials are answered, and a Continue button.",
    )
    break_message = TextAreaField(
        "Message on the break page",
        filters=[lambda text: (text or "").strip()],
        description="Optional, plain text, e.g. “Stretch, look away from the screen for a moment.”",
    )


class ScaleForm(Form):
    """One rating scale of a rate block."""

    key = StringField(
        "Key",
        validators=[Optional(), Length(max=32)],
        filters=[_strip],
        description="snake_case name of the measure in trials.csv, e.g. trust.",
    )
    question = StringField("Question", validators=[Optional(), Length(max=500)], filters=[_strip])
    low_anchor = StringField(
        "Label of the lowest value", validators=[Optional(), Length(max=100)], filters=[_strip]
    )
    high_anchor = StringField(
        "Label of the highest value", validators=[Optional(), Length(max=100)], filters=[_strip]
    )
    min = IntegerField("Lowest value", validators=[Optional()])
    max = IntegerField("Highest value", validators=[Optional()])
    remove = BooleanField("Remove this scale")


class BlockForm(FlaskForm):
    """A block's settings; which fields apply depends on its task."""

    name = block_name_field()
    practice = SelectField(
        "Practice trial",
        choices=options([("auto", "when this block runs first"), ("yes", "yes"), ("no", "no")]),
        description="A practice trial at the start of the block; it is never analysed.",
    )
    attention_checks = StringField(
        "Attention checks",
        validators=[Optional(), Length(max=200)],
        filters=[_strip],
        description="Positions within the block, separated by commas (e.g. 3, 12), or one number "
        "followed by “checks” to spread that many evenly (e.g. 2 checks). An attention check asks "
        "for a given answer (“for this photo, choose 2”). Leave empty for none.",
    )
    n_identities = IntegerField(
        "Identities shown",
        validators=[Optional()],
        description="Show only this many identities (half in each condition), drawn per "
        "participant. Leave empty to show every identity.",
    )
    presentation = SelectField(
        "Presentation",
        choices=options(
            [
                ("side_by_side", "side by side: headshot and probe photo together"),
                ("sequential", "sequential: the headshot for a set time, then the probe photo"),
            ]
        ),
        description="Sequential tests memory: the headshot is gone when the probe photo appears.",
    )
    exposure_ms = IntegerField(
        "Exposure (ms)",
        validators=[Optional()],
        description="Sequential presentation only: how long the headshot stays, 200 to 10,000 ms.",
    )
    fixation_ms = IntegerField(
        "Fixation cross before the headshot (ms)",
        validators=[Optional()],
        description="Sequential only: a cross where the headshot will appear, 0 to 5000 ms "
        "(0 or empty: none).",
    )
    mask_ms = IntegerField(
        "Mask after the headshot (ms)",
        validators=[Optional()],
        description="Sequential only: a pattern mask in the headshot's place, 0 to 5000 ms "
        "(0 or empty: none).",
    )
    isi_ms = IntegerField(
        "Blank before the probe photo (ms)",
        validators=[Optional()],
        description="Sequential only: an empty screen between the headshot (or mask) and the "
        "probe photo, 0 to 5000 ms (0 or empty: none). Every phase is timed on the screen's "
        "frames and what each trial achieved is exported.",
    )
    confidence = BooleanField(
        "Ask for confidence (1–5)",
        description="After each answer, the participant rates how sure they are.",
    )
    question = StringField(
        "Question",
        validators=[Optional(), Length(max=500)],
        filters=[_strip],
        description="Asked above the two headshots, e.g. “Which photo do you trust more?”.",
    )
    scales = FieldList(FormField(ScaleForm), min_entries=0, max_entries=20)
    label = StringField(
        "Label under each headshot",
        validators=[Optional(), Length(max=200)],
        filters=[_strip],
        description="Shown under each headshot with {name} standing for a fictional name, e.g. "
        "“Your new colleague Dr {name}”. Leave empty for no name.",
    )
    orienting_question = StringField(
        "Orienting question",
        validators=[Optional(), Length(max=500)],
        filters=[_strip],
        description="Asked of each headshot on a 1–5 scale, e.g. “How friendly does this person "
        "look?”, so that participants look at every face. Leave empty for none.",
    )
    name_recall = BooleanField(
        "Ask for the name (choose from four)",
        description="After a “yes”, the participant picks the person's name from four studied "
        "names. Needs a label with {name} in the learn block.",
    )
    distractor_s = IntegerField(
        "Distractor before the test (seconds)",
        validators=[Optional()],
        description="A task of simple sums for this many seconds, 0 to 600, right before the "
        "first test photo (0 or empty: none). Participants cannot leave it early; how many sums "
        "each answered, and how many right, is exported but not analysed.",
    )
    delay_hours = IntegerField(
        "Second session after (hours)",
        validators=[Optional()],
        description="0 to 720 (30 days); 0 or empty runs the test in the same session. Otherwise "
        "the first session ends before the test with a return link and a code, and the test "
        "opens this many hours later.",
    )
    instructions = TextAreaField(
        "Instructions before this block",
        filters=[lambda text: (text or "").strip()],
        description="Shown on a page of their own before the block's first trial (and before "
        "its practice trial), with a Start button. Markdown: **bold**, *italic*, lists. Leave "
        "empty for no page.",
    )
    break_every = IntegerField(
        "Break every (trials)",
        validators=[Optional()],
        description="A break page after every so many trials of this block (its practice trial "
        "not counted), saying how many trials are done. Leave empty for no break within the "
        "block; breaks between blocks are set on the Blocks page.",
    )


# --- preregistration ----------------------------------------------------------------------


class HypothesisForm(Form):
    """One directional hypothesis about an outcome."""

    outcome = SelectField("Outcome", choices=[], validate_choice=False)
    direction = SelectField("Direction", choices=options(DIRECTIONS))
    text = StringField("In words", validators=[Optional(), Length(max=1000)], filters=[_strip])


class BoundForm(Form):
    """Equivalence bounds for one outcome (ai minus real)."""

    outcome = SelectField("Outcome", choices=[], validate_choice=False)
    low = FloatField(
        "Lower bound",
        validators=[Optional(), number_between("The lower bound", -1e6, 0, whole=False)],
    )
    high = FloatField(
        "Upper bound",
        validators=[Optional(), number_between("The upper bound", 0, 1e6, whole=False)],
    )


class PreregistrationForm(FlaskForm):
    """The analysis plan stated before the study opens."""

    hypotheses = FieldList(FormField(HypothesisForm), min_entries=1, max_entries=30)
    primary_outcomes = CheckboxListField(
        "Primary outcomes",
        choices=[],
        validate_choice=False,
        description="The outcomes the study is designed to test; the report marks their tests "
        "as preregistered and every other test as exploratory.",
    )
    alpha = FloatField(
        "Alpha",
        default=0.05,
        validators=[
            InputRequired("Give alpha, e.g. 0.05."),
            number_between("Alpha", 0, 0.5, whole=False, above=True),
        ],
        description="The significance level, between 0 and 0.5.",
    )
    correction = SelectField(
        "Correction for multiple tests",
        choices=options(
            [
                ("holm", "Holm (family-wise error)"),
                ("bh", "Benjamini–Hochberg (false discovery rate)"),
            ]
        ),
    )
    rating_model = SelectField(
        "Primary test of rating outcomes",
        default="paired_t",
        choices=options(
            [
                ("paired_t", "Paired t-test on participant means"),
                ("clmm", "Ordinal mixed model of single ratings (CLMM)"),
            ]
        ),
        description="Ratings are ordinal: the cumulative-link mixed model treats them so "
        "(Liddell & Kruschke, 2018). The other test is reported beside it.",
    )
    exclude_incomplete = BooleanField("Exclude participants who did not complete", default=True)
    exclude_attention = BooleanField(
        "Exclude participants who failed an attention check", default=True
    )
    min_median_rt_ms = FloatField(
        "Exclude participants whose median response time is below (ms)",
        default=250,
        validators=[
            Optional(),
            number_between("The median response time limit", 0, 60_000, "ms", whole=False),
        ],
        description="Speeders: leave empty for no limit.",
    )
    exclude_straightlining = BooleanField(
        "Exclude straight-liners (the same rating on every rate trial)", default=False
    )
    bounds = FieldList(FormField(BoundForm), min_entries=1, max_entries=30)
    bayes_rscale = FloatField(
        "Prior scale r of the Bayes factors",
        validators=[
            Optional(),
            number_between(
                "The prior scale r of the Bayes factors", 0, 100, whole=False, above=True
            ),
        ],
        render_kw={"placeholder": f"{DEFAULT_BAYES_RSCALE:.4f} (√2/2)"},
        description="The Cauchy prior on the standardised difference (AI minus real) under "
        "“a difference”: √2/2 = 0.7071 (the usual “medium”; also when left empty), 1 (“wide”) "
        "or 1.414 (“ultrawide”). A larger r expects larger differences.",
    )
    target_n = IntegerField(
        "Target number of participants",
        validators=[Optional(), number_between("The target number of participants", 1, 1_000_000)],
        description="After exclusions; say how you chose it (e.g. a power simulation).",
    )


# --- participant data ---------------------------------------------------------------------


class LookupForm(FlaskForm):
    """Find a participant by recruitment id or by the opaque participant id (GET, no token)."""

    class Meta:
        csrf = False

    platform = SelectField(
        "Recruitment platform",
        choices=options(
            [
                ("prolific", "Prolific (PROLIFIC_PID)"),
                ("mturk", "MTurk (workerId)"),
                ("sona", "SONA (id)"),
                ("link", "other panel (pid)"),
            ]
        ),
        validators=[Optional()],
    )
    external_id = StringField(
        "Recruitment id",
        validators=[Optional(), Length(max=128)],
        filters=[_strip],
        description="E.g. the PROLIFIC_PID in the withdrawal request.",
    )
    public_id = StringField(
        "…or participant id",
        validators=[Optional(), Length(max=32)],
        filters=[_strip],
        description="The opaque id in the exports' participant column (pasted from a "
        "spreadsheet, with or without its leading '), or the short form the monitor shows "
        "(its first 8 characters).",
    )


class ParticipantDeleteForm(FlaskForm):
    """Delete one participant's data, with the reason kept in the audit log."""

    reason = TextAreaField(
        "Reason",
        validators=[
            InputRequired("Give the reason; it is kept in the audit log."),
            Length(min=3, max=500),
        ],
        filters=[_strip],
        description="E.g. “withdrawal request by e-mail, 3 May”. Kept in the audit log.",
    )


class SimulatedDeleteForm(FlaskForm):
    """Delete every simulated participant of a study, confirmed on a page that shows how many."""

    # The number the confirmation page showed: a different number under the lock (more were
    # simulated meanwhile) refuses the deletion, so nothing is deleted that was not shown.
    count = IntegerField(validators=[InputRequired(), NumberRange(min=1)])
    confirm = BooleanField(
        "Yes, delete them and their answers",
        validators=[InputRequired("Tick the box to confirm.")],
    )
