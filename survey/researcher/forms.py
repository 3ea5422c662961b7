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
from survey.i18n import LANGUAGES, N_, LazyText, gettext, lazy_gettext
from survey.models import MIN_PASSWORD_LENGTH, ROLES, TASKS
from survey.study_texts import language_name
from survey.study_texts import one_line as on_one_line

MAX_PASSWORD_LENGTH = 1024
MAX_TEXT = 20000
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
SLUG_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
BLOCK_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9 _-]*$"
COMPLETION_CODE_RE = r"^[A-Za-z0-9_.-]+$"


_l = lazy_gettext


def sentences(*texts: LazyText) -> LazyText:
    """Return whole sentences, each translated when shown, one after the other."""
    return LazyText(lambda: " ".join(str(text) for text in texts))


DIRECTIONS = (
    ("two-sided", _l("two-sided: AI and real differ")),
    ("less", _l("less: AI below real")),
    ("greater", _l("greater: AI above real")),
)
TASK_LABELS = {
    "match": _l("match: same person? (headshot and probe photo)"),
    "rate": _l("rate: first impression on rating scales"),
    "choose": _l("choose: real or AI headshot, side by side"),
    "detect": _l("detect: real photograph or AI-generated?"),
    "learn": _l("learn: study phase of a memory test (meet people in their headshots)"),
    "recognise": _l("recognise: test phase of a memory test (have you met this person?)"),
}


def email_address(form: Form, field: StringField) -> None:
    """Accept one plain email address (name@domain.tld)."""
    if field.data and not EMAIL_RE.fullmatch(field.data.strip()):
        raise ValidationError(gettext("%(typed)s is not an email address.", typed=repr(field.data)))


def one_line(form: Form, field: StringField) -> None:
    """Refuse line breaks, tabs and other control characters in a one-line text."""
    if field.data and not on_one_line(field.data):
        raise ValidationError(gettext("Write it on one line, without line breaks or tabs."))


def https_url(form: Form, field: StringField) -> None:
    """Accept an https:// address of a host (participants are sent there at the end)."""
    if not field.data:
        return
    parts = urlsplit(field.data.strip())
    if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in field.data.strip()):
        raise ValidationError(
            gettext("Give a full https:// address, e.g. https://app.prolific.com/…")
        )


def _plain(value: float) -> str:
    """Write a bound as people do: 10,000 and 0.5, not 10000 and 0.5000."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


# What number_between says, by (whole numbers only, above rather than from `low`).
OUT_OF_RANGE = {
    (True, False): N_(
        "%(setting)s must be a whole number between %(low)s and %(high)s; you wrote %(wrote)s."
    ),
    (False, False): N_(
        "%(setting)s must be a number between %(low)s and %(high)s; you wrote %(wrote)s."
    ),
    (True, True): N_(
        "%(setting)s must be a whole number more than %(low)s and at most %(high)s; "
        "you wrote %(wrote)s."
    ),
    (False, True): N_(
        "%(setting)s must be a number more than %(low)s and at most %(high)s; you wrote %(wrote)s."
    ),
}


def number_between(
    label: LazyText | str,
    low: float,
    high: float,
    unit: str = "",
    whole: bool = True,
    above: bool = False,
):
    """Accept a number from `low` to `high`; say so in words, with what was typed, otherwise.

    It speaks for the field's own "Not a valid integer value": the researcher reads one message
    naming the setting, its range and what they wrote.
    """
    message = OUT_OF_RANGE[whole, above]
    highest = f"{_plain(high)} {unit}" if unit else _plain(high)

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
        raise StopValidation(
            gettext(message, setting=label, low=_plain(low), high=highest, wrote=wrote)
        )

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


def new_password_field(label: LazyText, description: LazyText, missing: LazyText) -> PasswordField:
    """Return a field for choosing a password of the required length (`missing`: the message
    when it is left empty)."""
    return PasswordField(
        label,
        validators=[
            InputRequired(missing),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=MAX_PASSWORD_LENGTH,
                message=_l(
                    "The password needs at least %(number)s characters.",
                    number=MIN_PASSWORD_LENGTH,
                ),
            ),
        ],
        description=description,
        render_kw={"autocomplete": "new-password"},
    )


def confirm_field(label: LazyText, other: str, missing: LazyText) -> PasswordField:
    """Return a field repeating the password chosen in `other` (`missing`: the message when it
    is left empty)."""
    return PasswordField(
        label,
        validators=[InputRequired(missing), EqualTo(other, _l("The two passwords differ."))],
        render_kw={"autocomplete": "new-password"},
    )


class LoginForm(FlaskForm):
    """Sign in with an email (or the demo login) and a password."""

    identifier = StringField(
        _l("Email"),
        validators=[InputRequired(_l("Enter your email.")), Length(max=254)],
        filters=[_strip],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[InputRequired(_l("Enter your password.")), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class SignupForm(FlaskForm):
    """Create a researcher account."""

    name = StringField(_l("Your name"), validators=[Optional(), Length(max=120)], filters=[_strip])
    email = StringField(
        _l("Email"),
        validators=[InputRequired(_l("Enter your email.")), Length(max=254), email_address],
        filters=[_strip],
        render_kw={"autocomplete": "email"},
    )
    password = new_password_field(
        _l("Password"),
        _l(
            "At least %(number)s characters; a few unrelated words work well.",
            number=MIN_PASSWORD_LENGTH,
        ),
        _l("Choose a password."),
    )
    confirm = confirm_field(_l("Repeat the password"), "password", _l("Repeat the password."))
    invite = HiddenField()


class PasswordChangeForm(FlaskForm):
    """Change the password; other signed-in sessions of the account end."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[
            InputRequired(_l("Enter your current password.")),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = new_password_field(
        _l("New password"),
        _l(
            "At least %(number)s characters. Every other session of this account is signed out.",
            number=MIN_PASSWORD_LENGTH,
        ),
        _l("Choose a new password."),
    )
    confirm = confirm_field(
        _l("Repeat the new password"), "new_password", _l("Repeat the new password.")
    )


class DisplayNameForm(FlaskForm):
    """The name shown for the researcher: to collaborators, and on public pages they author."""

    name = StringField(
        _l("Display name"),
        validators=[Optional(), Length(max=120), one_line],
        filters=[_strip],
        description=_l(
            "How collaborators see you, and how you are credited when a study's owner "
            "lists you as an author of its public findings page (e.g. “A. Researcher”). Leave "
            "empty to be listed by email in the workspace only: without a name you cannot be "
            "credited publicly."
        ),
        render_kw={"autocomplete": "name"},
    )


class InviteForm(FlaskForm):
    """An administrator invites a researcher while sign-up is closed."""

    email = StringField(
        _l("Email of the researcher to invite"),
        validators=[InputRequired(_l("Enter an email.")), Length(max=254), email_address],
        filters=[_strip],
        description=_l("You get a sign-up link valid for 7 days to send them."),
    )


class ButtonForm(FlaskForm):
    """A form with nothing but its CSRF token, for one-click actions."""


def require_button() -> None:
    """Refuse (400) a one-click action posted without its form token."""
    if not ButtonForm().validate_on_submit():
        abort(400, description=gettext("The form was incomplete; reload the page and try again."))


# --- studies ------------------------------------------------------------------------------


NAME_HELP = _l(
    "Your team's own name for the study, e.g. “Trust: AI vs real headshots, pilot 2”. "
    "Shown only in this workspace: never to participants, never on the public page."
)
TITLE_HELP = _l(
    "Participants see it on every page, so it must not give away what the study "
    "compares (say “First impressions of faces”, not “Do AI headshots seem less "
    "trustworthy?”). It also heads the public findings page, its charts and citation."
)
DESCRIPTION_HELP = _l(
    "A private note for you and your collaborators. Never shown to participants, "
    "never on the public page, never in an export."
)
SUMMARY_HELP = _l(
    "Plain text for the public findings page, under the title: what the study asked "
    "and why, for studios and readers. Shown only once you publish the findings; "
    "the preview shows how it reads."
)


def name_field() -> StringField:
    """The internal name; left empty, the title stands in."""
    return StringField(
        _l("Internal name"),
        validators=[Optional(), Length(max=200), one_line],
        filters=[_strip],
        description=sentences(NAME_HELP, _l("Leave empty to use the title participants see.")),
    )


class StudyCreateForm(FlaskForm):
    """Start a new draft study."""

    name = name_field()
    title = StringField(
        _l("Title participants see"),
        validators=[InputRequired(_l("Give the study a title.")), Length(max=200), one_line],
        filters=[_strip],
        description=sentences(TITLE_HELP, _l("The link's name is made from it.")),
    )
    description = TextAreaField(
        _l("Private description"),
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
        _l("Title participants see"),
        validators=[InputRequired(_l("Give the study a title.")), Length(max=200), one_line],
        filters=[_strip],
        description=TITLE_HELP,
    )
    slug = StringField(
        _l("Link name"),
        validators=[
            InputRequired(_l("Give the link a name.")),
            Length(min=3, max=64, message=_l("The link name needs 3 to 64 characters.")),
            Regexp(
                SLUG_RE,
                message=_l(
                    "Use lower-case letters, digits and single hyphens, e.g. ai-trust-2025."
                ),
            ),
        ],
        filters=[_strip],
        description=_l(
            "The participant link is /s/<link name>. It can change only while the study is a draft."
        ),
    )
    description = TextAreaField(
        _l("Private description"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=DESCRIPTION_HELP,
    )
    public_summary = TextAreaField(
        _l("Public summary"),
        validators=[Optional(), Length(max=2000)],
        description=SUMMARY_HELP,
    )
    consent_text = TextAreaField(
        _l("Consent text"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l(
            "Shown first; the participant agrees before anything else. Markdown: "
            "**bold**, *italic*, lists, links. HTML is shown as text."
        ),
    )
    instructions_text = TextAreaField(
        _l("Instructions"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("Shown after consent, before the practice trial. Markdown as above."),
    )
    debrief_text = TextAreaField(
        _l("Debrief"),
        validators=[Optional(), Length(max=MAX_TEXT)],
        description=_l("Shown at the end with the completion code. Say what the study was about."),
    )
    completion_code = StringField(
        _l("Completion code"),
        validators=[
            Optional(),
            Length(max=64),
            Regexp(COMPLETION_CODE_RE, message=_l("Use letters, digits, '.', '_' or '-' only.")),
        ],
        filters=[_strip],
        description=_l(
            "Shown on the last page, e.g. the code Prolific gave you. Leave empty for none."
        ),
    )
    completion_url = StringField(
        _l("Completion link"),
        validators=[Optional(), Length(max=2000), https_url],
        filters=[_strip],
        description=_l(
            "Where participants are sent back at the end (https only), e.g. Prolific's "
            "completion URL. Leave empty to show the code only."
        ),
    )
    return_redirect_s = IntegerField(
        _l("Send participants back automatically after (seconds)"),
        validators=[Optional(), return_delay],
        description=_l(
            "Leave empty (the default) and the last page stays until the participant "
            "selects \u201cReturn to\u2026\u201d, so they can read the debrief at their pace. "
            "Give %(low)s to %(high)s seconds and the page says it "
            "will take them back, then follows the completion link that long after it opened "
            "(also without script). Needs a completion link.",
            low=RETURN_REDIRECT_MIN_S,
            high=RETURN_REDIRECT_MAX_S,
        ),
    )
    target_n = IntegerField(
        _l("Target number of participants"),
        validators=[
            Optional(),
            number_between(_l("The target number of participants"), 1, 1_000_000),
        ],
        description=_l(
            "The study stops accepting new participants once this many have completed. "
            "Leave empty for no limit."
        ),
    )
    n_lists = IntegerField(
        _l("Counterbalancing lists"),
        validators=[
            InputRequired(_l("Give the number of counterbalancing lists, e.g. 2.")),
            number_between(_l("Counterbalancing lists"), 1, 24),
        ],
        description=_l(
            "Identities are split into lists so that each participant sees each person "
            "either as a real photo or as an AI headshot, never both. 2 lists balance real and AI; "
            "use a multiple of 2, or of 4 when the study has learn and recognise blocks. Frozen "
            "once the study opens."
        ),
    )
    assign_by = SelectField(
        _l("Fill lists by"),
        choices=options(
            [
                ("started", _l("participants who started")),
                ("completed", _l("participants who completed")),
            ]
        ),
        description=_l(
            "A new participant gets the list with the fewest participants so far, counting "
            "either everyone who started or only those who completed."
        ),
    )
    languages = CheckboxListField(
        _l("Languages participants can take the study in"),
        choices=_language_choices(),
        validate_choice=False,
        description=_l(
            "Each text participants read is then written in every language ticked, on "
            "the Languages page; the study cannot open while one is missing. Frozen once the "
            "study opens."
        ),
    )
    default_language = SelectField(
        _l("Default language"),
        choices=_language_choices(),
        validate_choice=False,
        description=_l(
            "Participants whose link names no language get this one. Its texts are "
            "the ones written on this page, under What participants read."
        ),
    )


class StudyDeleteForm(FlaskForm):
    """Delete a study and all its data, confirmed by typing its link name."""

    confirm = StringField(
        _l("Type the study's link name to confirm"),
        validators=[InputRequired(_l("Type the link name to confirm."))],
        filters=[_strip],
    )


class StudyImportForm(FlaskForm):
    """Create a draft study from a study definition (JSON)."""

    file = FileField(
        _l("Study definition file (.json)"),
        description=_l("A file saved with “Export definition” on another Likeness server."),
    )
    text = TextAreaField(
        _l("…or paste the JSON"),
        validators=[Optional(), Length(max=2_000_000)],
    )


class StateForm(FlaskForm):
    """Move a study to another state."""

    state = HiddenField(validators=[InputRequired()])


# --- members ------------------------------------------------------------------------------


ROLE_CHOICES = options(
    [
        ("viewer", _l("viewer: sees the study, its monitor and exports")),
        ("editor", _l("editor: also edits the design, opens and closes the study")),
        ("owner", _l("owner: also manages members and may delete the study")),
    ]
)


class MemberAddForm(FlaskForm):
    """Add a collaborator by email."""

    email = StringField(
        _l("Researcher's email"),
        validators=[
            InputRequired(_l("Enter the researcher's email.")),
            Length(max=254),
            email_address,
        ],
        filters=[_strip],
        description=_l("They need a Likeness account on this server."),
    )
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, default="viewer")


class MemberAuthorForm(FlaskForm):
    """List a member as an author of the public findings page, or not."""

    is_author = SelectField(
        choices=options([("1", _l("author")), ("0", _l("not an author"))]),
        validators=[InputRequired()],
    )


class MemberRoleForm(FlaskForm):
    """Change a collaborator's role."""

    role = SelectField(_l("Role"), choices=options((r, r) for r in ROLES))


# --- blocks -------------------------------------------------------------------------------


def block_name_field() -> StringField:
    """Return the field of a block's name, unique within the study."""
    return StringField(
        _l("Block name"),
        validators=[
            InputRequired(_l("Give the block a name.")),
            Length(max=64),
            Regexp(BLOCK_NAME_RE, message=_l("Use letters, digits, spaces, '_' or '-'.")),
        ],
        filters=[_strip],
        description=_l("Appears in the block column of trials.csv, e.g. recognition."),
    )


class BlockAddForm(FlaskForm):
    """Add a block: its name and task; the settings are edited next."""

    name = block_name_field()
    task = SelectField(_l("Task"), choices=options((t, TASK_LABELS[t]) for t in TASKS))


class BlockFlowForm(FlaskForm):
    """The study's block flow: the order of the blocks and the breaks between them."""

    block_order = SelectField(
        _l("Block order"),
        choices=options(
            [
                ("fixed", _l("Fixed: every participant runs the blocks in the order listed")),
                ("random", _l("Randomised: a new order for each participant")),
                (
                    "counterbalanced",
                    _l(
                        "Counterbalanced: the rows of a balanced Latin square, dealt in order of "
                        "arrival"
                    ),
                ),
            ]
        ),
        description=_l(
            "Each participant's order, and the Latin square's row when counterbalanced, "
            "is recorded and exported (participants.csv: block_order, block_order_row). The blocks "
            "kept at the end run after the others; the order varies within each group."
        ),
        validate_choice=False,
    )
    blocks_last = CheckboxListField(
        _l("Blocks kept at the end"),
        choices=[],
        description=_l(
            "Choose blocks always run after the others (they show both headshots of a "
            "person). Tick other blocks to keep them at the end too."
        ),
        validate_choice=False,
    )
    block_breaks = BooleanField(
        _l("A break between blocks"),
        description=_l(
            "A page after each block but the last: “Block 2 of 4 done”, with how many "
            "trials are answered, and a Continue button."
        ),
    )
    break_message = TextAreaField(
        _l("Message on the break page"),
        filters=[lambda text: (text or "").strip()],
        description=_l(
            "Optional, plain text, e.g. “Stretch, look away from the screen for a moment.”"
        ),
    )


class ScaleForm(Form):
    """One rating scale of a rate block."""

    key = StringField(
        _l("Key"),
        validators=[Optional(), Length(max=32)],
        filters=[_strip],
        description=_l("snake_case name of the measure in trials.csv, e.g. trust."),
    )
    question = StringField(
        _l("Question"), validators=[Optional(), Length(max=500)], filters=[_strip]
    )
    low_anchor = StringField(
        _l("Label of the lowest value"), validators=[Optional(), Length(max=100)], filters=[_strip]
    )
    high_anchor = StringField(
        _l("Label of the highest value"), validators=[Optional(), Length(max=100)], filters=[_strip]
    )
    min = IntegerField(_l("Lowest value"), validators=[Optional()])
    max = IntegerField(_l("Highest value"), validators=[Optional()])
    remove = BooleanField(_l("Remove this scale"))


class BlockForm(FlaskForm):
    """A block's settings; which fields apply depends on its task."""

    name = block_name_field()
    practice = SelectField(
        _l("Practice trial"),
        choices=options(
            [("auto", _l("when this block runs first")), ("yes", _l("yes")), ("no", _l("no"))]
        ),
        description=_l("A practice trial at the start of the block; it is never analysed."),
    )
    attention_checks = StringField(
        _l("Attention checks"),
        validators=[Optional(), Length(max=200)],
        filters=[_strip],
        description=_l(
            "Positions within the block, separated by commas (e.g. 3, 12), or one number "
            "followed by “checks” to spread that many evenly (e.g. 2 checks). An attention check "
            "asks for a given answer (“for this photo, choose 2”). Leave empty for none."
        ),
    )
    n_identities = IntegerField(
        _l("Identities shown"),
        validators=[Optional()],
        description=_l(
            "Show only this many identities (half in each condition), drawn per "
            "participant. Leave empty to show every identity."
        ),
    )
    presentation = SelectField(
        _l("Presentation"),
        choices=options(
            [
                ("side_by_side", _l("side by side: headshot and probe photo together")),
                ("sequential", _l("sequential: the headshot for a set time, then the probe photo")),
            ]
        ),
        description=_l(
            "Sequential tests memory: the headshot is gone when the probe photo appears."
        ),
    )
    exposure_ms = IntegerField(
        _l("Exposure (ms)"),
        validators=[Optional()],
        description=_l(
            "Sequential presentation only: how long the headshot stays, 200 to 10,000 ms."
        ),
    )
    fixation_ms = IntegerField(
        _l("Fixation cross before the headshot (ms)"),
        validators=[Optional()],
        description=_l(
            "Sequential only: a cross where the headshot will appear, 0 to 5000 ms "
            "(0 or empty: none)."
        ),
    )
    mask_ms = IntegerField(
        _l("Mask after the headshot (ms)"),
        validators=[Optional()],
        description=_l(
            "Sequential only: a pattern mask in the headshot's place, 0 to 5000 ms "
            "(0 or empty: none)."
        ),
    )
    isi_ms = IntegerField(
        _l("Blank before the probe photo (ms)"),
        validators=[Optional()],
        description=_l(
            "Sequential only: an empty screen between the headshot (or mask) and the "
            "probe photo, 0 to 5000 ms (0 or empty: none). Every phase is timed on the screen's "
            "frames and what each trial achieved is exported."
        ),
    )
    confidence = BooleanField(
        _l("Ask for confidence (1–5)"),
        description=_l("After each answer, the participant rates how sure they are."),
    )
    question = StringField(
        _l("Question"),
        validators=[Optional(), Length(max=500)],
        filters=[_strip],
        description=_l("Asked above the two headshots, e.g. “Which photo do you trust more?”."),
    )
    scales = FieldList(FormField(ScaleForm), min_entries=0, max_entries=20)
    label = StringField(
        _l("Label under each headshot"),
        validators=[Optional(), Length(max=200)],
        filters=[_strip],
        description=_l(
            "Shown under each headshot with {name} standing for a fictional name, e.g. "
            "“Your new colleague Dr {name}”; a role without {name}, e.g. “Your new "
            "colleague”, is shown as written. Leave empty for no label."
        ),
    )
    orienting_question = StringField(
        _l("Orienting question"),
        validators=[Optional(), Length(max=500)],
        filters=[_strip],
        description=_l(
            "Asked of each headshot on a 1–5 scale, e.g. “How friendly does this person "
            "look?”, so that participants look at every face. Leave empty for none."
        ),
    )
    name_recall = BooleanField(
        _l("Ask for the name (choose from four)"),
        description=_l(
            "After a “yes”, the participant picks the person's name from four studied "
            "names. Needs a label with {name} in the learn block."
        ),
    )
    distractor_s = IntegerField(
        _l("Distractor before the test (seconds)"),
        validators=[Optional()],
        description=_l(
            "A task of simple sums for this many seconds, 0 to 600, right before the "
            "first test photo (0 or empty: none). Participants cannot leave it early; how many "
            "sums each answered, and how many right, is exported but not analysed."
        ),
    )
    delay_hours = IntegerField(
        _l("Second session after (hours)"),
        validators=[Optional()],
        description=_l(
            "0 to 720 (30 days); 0 or empty runs the test in the same session. Otherwise "
            "the first session ends before the test with a return link and a code, and the test "
            "opens this many hours later."
        ),
    )
    instructions = TextAreaField(
        _l("Instructions before this block"),
        filters=[lambda text: (text or "").strip()],
        description=_l(
            "Shown on a page of their own before the block's first trial (and before "
            "its practice trial), with a Start button. Markdown: **bold**, *italic*, lists. Leave "
            "empty for no page."
        ),
    )
    break_every = IntegerField(
        _l("Break every (trials)"),
        validators=[Optional()],
        description=_l(
            "A break page after every so many trials of this block (its practice trial "
            "not counted), saying how many trials are done. Leave empty for no break within the "
            "block; breaks between blocks are set on the Blocks page."
        ),
    )


# --- preregistration ----------------------------------------------------------------------


class HypothesisForm(Form):
    """One directional hypothesis about an outcome."""

    outcome = SelectField(_l("Outcome"), choices=[], validate_choice=False)
    direction = SelectField(_l("Direction"), choices=options(DIRECTIONS))
    text = StringField(_l("In words"), validators=[Optional(), Length(max=1000)], filters=[_strip])


class BoundForm(Form):
    """Equivalence bounds for one outcome (ai minus real)."""

    outcome = SelectField(_l("Outcome"), choices=[], validate_choice=False)
    low = FloatField(
        _l("Lower bound"),
        validators=[Optional(), number_between(_l("The lower bound"), -1e6, 0, whole=False)],
    )
    high = FloatField(
        _l("Upper bound"),
        validators=[Optional(), number_between(_l("The upper bound"), 0, 1e6, whole=False)],
    )


class PreregistrationForm(FlaskForm):
    """The analysis plan stated before the study opens."""

    hypotheses = FieldList(FormField(HypothesisForm), min_entries=1, max_entries=30)
    primary_outcomes = CheckboxListField(
        _l("Primary outcomes"),
        choices=[],
        validate_choice=False,
        description=_l(
            "The outcomes the study is designed to test; the report marks their tests "
            "as preregistered and every other test as exploratory."
        ),
    )
    alpha = FloatField(
        _l("Alpha"),
        default=0.05,
        validators=[
            InputRequired(_l("Give alpha, e.g. 0.05.")),
            number_between(_l("Alpha"), 0, 0.5, whole=False, above=True),
        ],
        description=_l("The significance level, between 0 and 0.5."),
    )
    correction = SelectField(
        _l("Correction for multiple tests"),
        choices=options(
            [
                ("holm", _l("Holm (family-wise error)")),
                ("bh", _l("Benjamini–Hochberg (false discovery rate)")),
            ]
        ),
    )
    rating_model = SelectField(
        _l("Primary test of rating outcomes"),
        default="paired_t",
        choices=options(
            [
                ("paired_t", _l("Paired t-test on participant means")),
                ("clmm", _l("Ordinal mixed model of single ratings (CLMM)")),
            ]
        ),
        description=_l(
            "Ratings are ordinal: the cumulative-link mixed model treats them so "
            "(Liddell & Kruschke, 2018). The other test is reported beside it."
        ),
    )
    exclude_incomplete = BooleanField(_l("Exclude participants who did not complete"), default=True)
    exclude_attention = BooleanField(
        _l("Exclude participants who failed an attention check"), default=True
    )
    min_median_rt_ms = FloatField(
        _l("Exclude participants whose median response time is below (ms)"),
        default=250,
        validators=[
            Optional(),
            number_between(_l("The median response time limit"), 0, 60_000, "ms", whole=False),
        ],
        description=_l("Speeders: leave empty for no limit."),
    )
    exclude_straightlining = BooleanField(
        _l("Exclude straight-liners (the same rating on every rate trial)"), default=False
    )
    bounds = FieldList(FormField(BoundForm), min_entries=1, max_entries=30)
    bayes_rscale = FloatField(
        _l("Prior scale r of the Bayes factors"),
        validators=[
            Optional(),
            number_between(
                _l("The prior scale r of the Bayes factors"), 0, 100, whole=False, above=True
            ),
        ],
        render_kw={"placeholder": f"{DEFAULT_BAYES_RSCALE:.4f} (√2/2)"},
        description=_l(
            "The Cauchy prior on the standardised difference (AI minus real) under "
            "“a difference”: √2/2 = 0.7071 (the usual “medium”; also when left empty), 1 (“wide”) "
            "or 1.414 (“ultrawide”). A larger r expects larger differences."
        ),
    )
    target_n = IntegerField(
        _l("Target number of participants"),
        validators=[
            Optional(),
            number_between(_l("The target number of participants"), 1, 1_000_000),
        ],
        description=_l("After exclusions; say how you chose it (e.g. a power simulation)."),
    )


# --- participant data ---------------------------------------------------------------------


class LookupForm(FlaskForm):
    """Find a participant by recruitment id or by the opaque participant id (GET, no token)."""

    class Meta:
        csrf = False

    platform = SelectField(
        _l("Recruitment platform"),
        choices=options(
            [
                ("prolific", _l("Prolific (PROLIFIC_PID)")),
                ("mturk", _l("MTurk (workerId)")),
                ("sona", _l("SONA (id)")),
                ("link", _l("other panel (pid)")),
            ]
        ),
        validators=[Optional()],
    )
    external_id = StringField(
        _l("Recruitment id"),
        validators=[Optional(), Length(max=128)],
        filters=[_strip],
        description=_l("E.g. the PROLIFIC_PID in the withdrawal request."),
    )
    public_id = StringField(
        _l("…or participant id"),
        validators=[Optional(), Length(max=32)],
        filters=[_strip],
        description=_l(
            "The opaque id in the exports' participant column (pasted from a "
            "spreadsheet, with or without its leading '), or the short form the monitor shows "
            "(its first 8 characters)."
        ),
    )


class ParticipantDeleteForm(FlaskForm):
    """Delete one participant's data, with the reason kept in the audit log."""

    reason = TextAreaField(
        _l("Reason"),
        validators=[
            InputRequired(_l("Give the reason; it is kept in the audit log.")),
            Length(min=3, max=500),
        ],
        filters=[_strip],
        description=_l("E.g. “withdrawal request by e-mail, 3 May”. Kept in the audit log."),
    )


class SimulatedDeleteForm(FlaskForm):
    """Delete every simulated participant of a study, confirmed on a page that shows how many."""

    # The number the confirmation page showed: a different number under the lock (more were
    # simulated meanwhile) refuses the deletion, so nothing is deleted that was not shown.
    count = IntegerField(validators=[InputRequired(), NumberRange(min=1)])
    confirm = BooleanField(
        _l("Yes, delete them and their answers"),
        validators=[InputRequired(_l("Tick the box to confirm."))],
    )
