"""SQLAlchemy 2.0 typed models: researchers, studies, stimuli, schedules and answers."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin
from sqlalchemy.ext.compiler import compiles
from werkzeug.security import check_password_hash, generate_password_hash

from survey.block_settings import CONDITIONS, TASKS
from survey.questions import KINDS as QUESTION_KINDS

# Trial.timing's values.
TIMINGS = ("timed", "untimed")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STUDY_STATES = ("draft", "open", "closed", "archived")
ROLES = ("owner", "editor", "viewer")
IMAGE_ROLES = ("headshot", "probe")
IMAGE_SOURCES = ("real", "ai", "photo")
DELETED_KINDS = ("block", "identity", "image", "question")
PARTICIPANT_STATUSES = ("in_progress", "completed", "withdrawn", "expired")
RECRUITMENT_SOURCES = ("prolific", "mturk", "sona", "link")
DEVICES = ("mobile", "desktop")
REPORT_STATES = ("pending", "running", "done", "failed")
JOB_STATES = ("queued", "running", "done", "failed")
# Trial.options joins the names a name-recall trial offers with this.
OPTIONS_SEPARATOR = "|"
# Sign-up, password change and `flask create-researcher` share this floor.
MIN_PASSWORD_LENGTH = 10


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def new_public_id() -> str:
    """Return an unguessable, URL-safe identifier (128 bits of randomness)."""
    return secrets.token_urlsafe(16)


def list_label(index: int) -> str:
    """Return a list's letter (A, B, …) from its 0-based index, as pages and exports show it."""
    return chr(ord("A") + index)


def _in(column: str, values: tuple[str, ...]) -> str:
    """Return a CHECK expression restricting a column to the given values."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class UTCDateTime(sa.TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Store aware datetimes in UTC; a naive one is taken to be UTC already."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        """Return aware UTC datetimes whatever the database gives back."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class db_now(sa.sql.functions.FunctionElement):  # noqa: N801  (used like a SQL function)
    """The database's clock as a UTC timestamp, in SQL: the same clock for every worker.

    PostgreSQL: now(), the start of the transaction (of the statement, in autocommit), so the
    statement's CTEs all see one time. SQLite: the current time in the text form the
    DateTime type stores (microseconds as six digits), the same within one statement.
    """

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_now)
def _db_now_default(element: db_now, compiler: Any, **kw: Any) -> str:
    """Render db_now() as now() (PostgreSQL and the other databases)."""
    return "now()"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    """Render db_now() on SQLite: UTC with microseconds, as DateTime values are stored."""
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


class Base(so.DeclarativeBase):
    """Declarative base with the naming convention and aware timestamps."""

    registry = so.registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), dict[str, Any]: sa.JSON},
    )


class Researcher(UserMixin, Base):
    """A person who signs in to create and run studies."""

    __tablename__ = "researcher"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(120), default="")
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(256))
    is_admin: so.Mapped[bool] = so.mapped_column(default=False)
    # Bumped on password change so that other sessions of the account end.
    session_version: so.Mapped[int] = so.mapped_column(default=0)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    last_login_at: so.Mapped[datetime | None]

    memberships: so.Mapped[list[StudyMember]] = so.relationship(
        back_populates="researcher", cascade="all, delete-orphan", passive_deletes=True
    )

    def set_password(self, password: str) -> None:
        """Store a salted hash of the password, never the password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Tell whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """Identify the login session by account and session version."""
        return f"{self.id}:{self.session_version}"


class LoginAttempt(Base):
    """A sign-in attempt, kept for rate limiting across workers."""

    __tablename__ = "login_attempt"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), index=True)
    address: so.Mapped[str] = so.mapped_column(sa.String(64), index=True)
    succeeded: so.Mapped[bool] = so.mapped_column(default=False)
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)


def _name_from_title(context: Any) -> str:
    """A new study's internal name defaults to its title."""
    return (context.get_current_parameters().get("title") or "")[:200]


class Study(Base):
    """A study: its texts, settings, state and everything it owns."""

    __tablename__ = "study"
    __table_args__ = (
        sa.CheckConstraint(_in("state", STUDY_STATES), name="state"),
        sa.CheckConstraint("target_n IS NULL OR target_n > 0", name="target_n_positive"),
        sa.CheckConstraint("n_lists >= 1", name="n_lists_positive"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    slug: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    # The research team's own name for the study: shown in the workspace only.
    name: so.Mapped[str] = so.mapped_column(sa.String(200), default=_name_from_title)
    # What participants see on every page; also the heading of the public findings page, its
    # chart cards and citation. It must not give away the manipulation.
    title: so.Mapped[str] = so.mapped_column(sa.String(200))
    # A private note of the team: never shown outside the workspace, never exported.
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    # What the owner writes for the public findings page (plain text).
    public_summary: so.Mapped[str] = so.mapped_column(sa.Text, default="", server_default="")
    state: so.Mapped[str] = so.mapped_column(sa.String(16), default="draft")
    consent_text: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    instructions_text: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    debrief_text: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    completion_code: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    completion_url: so.Mapped[str] = so.mapped_column(sa.String(2000), default="")
    target_n: so.Mapped[int | None]
    # Number of counterbalancing lists (Latin square over conditions); 2 for real/ai.
    n_lists: so.Mapped[int] = so.mapped_column(default=2)
    # "started" or "completed": which participants count when choosing the fewest-filled list.
    assign_by: so.Mapped[str] = so.mapped_column(sa.String(16), default="started")
    settings: so.Mapped[dict[str, Any]] = so.mapped_column(default=dict)
    # Incremented under a row lock on every participant start; it serialises list assignment.
    participants_started: so.Mapped[int] = so.mapped_column(default=0)
    # New participants refused by the start limits (per address, per minute): suspicious starts.
    starts_refused: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    opened_at: so.Mapped[datetime | None]
    closed_at: so.Mapped[datetime | None]
    archived_at: so.Mapped[datetime | None]
    design_frozen_at: so.Mapped[datetime | None]
    design_sha256: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    findings_published_at: so.Mapped[datetime | None]

    members: so.Mapped[list[StudyMember]] = so.relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )
    identities: so.Mapped[list[Identity]] = so.relationship(
        back_populates="study",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Identity.code",
    )
    images: so.Mapped[list[Image]] = so.relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )
    blocks: so.Mapped[list[Block]] = so.relationship(
        back_populates="study",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Block.position",
    )
    participants: so.Mapped[list[Participant]] = so.relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )
    preregistration: so.Mapped[Preregistration | None] = so.relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )
    questions: so.Mapped[list[StudyQuestion]] = so.relationship(
        back_populates="study",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="StudyQuestion.position",
    )

    @property
    def is_open(self) -> bool:
        """Tell whether participants may start the study now."""
        return self.state == "open"

    @property
    def design_locked(self) -> bool:
        """Tell whether the design is frozen (it freezes when the study opens)."""
        return self.design_frozen_at is not None


class StudyMember(Base):
    """A researcher's role on a study: owner, editor or viewer."""

    __tablename__ = "study_member"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "researcher_id"),
        sa.CheckConstraint(_in("role", ROLES), name="role"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    researcher_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("researcher.id", ondelete="CASCADE"), index=True
    )
    role: so.Mapped[str] = so.mapped_column(sa.String(16))
    # Listed as an author on the public findings page: the owner opts each member in.
    is_author: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())

    study: so.Mapped[Study] = so.relationship(back_populates="members")
    researcher: so.Mapped[Researcher] = so.relationship(back_populates="memberships")


class Identity(Base):
    """One photographed person, with optional descriptors and a recorded image-use consent."""

    __tablename__ = "identity"
    __table_args__ = (sa.UniqueConstraint("study_id", "code"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    code: so.Mapped[str] = so.mapped_column(sa.String(32))
    age_band: so.Mapped[str] = so.mapped_column(sa.String(32), default="")
    gender: so.Mapped[str] = so.mapped_column(sa.String(32), default="")
    ethnicity: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    consent_recorded: so.Mapped[bool] = so.mapped_column(default=False)
    consent_note: so.Mapped[str] = so.mapped_column(sa.Text, default="")

    study: so.Mapped[Study] = so.relationship(back_populates="identities")
    images: so.Mapped[list[Image]] = so.relationship(
        back_populates="identity", cascade="all, delete-orphan", passive_deletes=True
    )


class Image(Base):
    """A stored image of an identity: a real or AI headshot, or a probe photo."""

    __tablename__ = "image"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "sha256"),
        sa.CheckConstraint(_in("role", IMAGE_ROLES), name="role"),
        sa.CheckConstraint(_in("source", IMAGE_SOURCES), name="source"),
        sa.CheckConstraint(
            "(role = 'headshot' AND source IN ('real', 'ai')) "
            "OR (role = 'probe' AND source = 'photo')",
            name="role_source",
        ),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    identity_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("identity.id", ondelete="CASCADE"), index=True
    )
    # Public name in URLs and exports; the file name is never exposed to participants.
    public_id: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True, default=new_public_id)
    role: so.Mapped[str] = so.mapped_column(sa.String(16))
    source: so.Mapped[str] = so.mapped_column(sa.String(16))
    generator: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    original_filename: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    width: so.Mapped[int]
    height: so.Mapped[int]
    content_type: so.Mapped[str] = so.mapped_column(sa.String(32))
    byte_size: so.Mapped[int]
    storage_key: so.Mapped[str] = so.mapped_column(sa.String(255))
    display_key: so.Mapped[str] = so.mapped_column(sa.String(255))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    study: so.Mapped[Study] = so.relationship(back_populates="images")
    identity: so.Mapped[Identity] = so.relationship(back_populates="images")


class Block(Base):
    """A block of a study: one task with its settings (scales, presentation, counts)."""

    __tablename__ = "block"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "name"),
        sa.CheckConstraint(_in("task", TASKS), name="task"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    position: so.Mapped[int]
    name: so.Mapped[str] = so.mapped_column(sa.String(64))
    task: so.Mapped[str] = so.mapped_column(sa.String(16))
    settings: so.Mapped[dict[str, Any]] = so.mapped_column(default=dict)

    study: so.Mapped[Study] = so.relationship(back_populates="blocks")


class StudyQuestion(Base):
    """A question the researcher wrote for the questions page or for after a block (see
    survey/questions.py).

    Answers are stored under the question's code, in one conditional UPDATE, in
    `Participant.demographics` (the questions page) or `Participant.block_answers` (after a
    block), and exported as the column of that name in participants.csv.
    """

    __tablename__ = "study_question"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "code"),
        sa.CheckConstraint(_in("kind", QUESTION_KINDS), name="kind"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    position: so.Mapped[int]
    code: so.Mapped[str] = so.mapped_column(sa.String(32))
    kind: so.Mapped[str] = so.mapped_column(sa.String(16))
    text: so.Mapped[str] = so.mapped_column(sa.String(500))
    required: so.Mapped[bool] = so.mapped_column(default=False)
    spec: so.Mapped[dict[str, Any]] = so.mapped_column(default=dict)
    # Asked on a page of its own right after this block's last trial (answers kept in
    # `Participant.block_answers`); None: on the questions page after the trials. A deleted
    # block's questions move to the questions page.
    block_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("block.id", ondelete="SET NULL"), index=True
    )

    study: so.Mapped[Study] = so.relationship(back_populates="questions")
    block: so.Mapped[Block | None] = so.relationship()


class StudyText(Base):
    """A study text written in one of the study's other languages (see survey/study_texts.py).

    Keyed generically: "consent", "instructions", "debrief", "block:<id>:<setting>",
    "block:<id>:scale:<key>:<field>", "question:<id>:text", "question:<id>:option:<value>",
    "question:<id>:anchor:<point>". The default language's texts stay where they are (the
    study's, blocks' and questions' own columns); a block's or question's texts go with it.
    """

    __tablename__ = "study_text"
    __table_args__ = (sa.UniqueConstraint("study_id", "language", "key"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    block_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("block.id", ondelete="CASCADE"), index=True
    )
    question_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("study_question.id", ondelete="CASCADE"), index=True
    )
    language: so.Mapped[str] = so.mapped_column(sa.String(8))
    key: so.Mapped[str] = so.mapped_column(sa.String(200))
    text: so.Mapped[str] = so.mapped_column(sa.Text)


class Participant(Base):
    """A person taking a study, known only by an opaque id."""

    __tablename__ = "participant"
    __table_args__ = (
        sa.CheckConstraint(_in("status", PARTICIPANT_STATUSES), name="status"),
        sa.CheckConstraint(_in("source", RECRUITMENT_SOURCES), name="source"),
        sa.CheckConstraint("device IS NULL OR " + _in("device", DEVICES), name="device"),
        sa.Index("ix_participant_study_list", "study_id", "list_index"),
        # Finds a study's participants in progress since before the expiry time.
        sa.Index("ix_participant_study_status", "study_id", "status", "started_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    public_id: so.Mapped[str] = so.mapped_column(sa.String(32), unique=True, default=new_public_id)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    list_index: so.Mapped[int]
    seed: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="in_progress")
    is_preview: so.Mapped[bool] = so.mapped_column(default=False)
    # Started by `flask simulate-participants` (survey/participant/simulate.py), never by a
    # person: exported with a column saying so, left out of the analysis by default.
    is_simulated: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    source: so.Mapped[str] = so.mapped_column(sa.String(16), default="link")
    device: so.Mapped[str | None] = so.mapped_column(sa.String(16))
    started_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    consented_at: so.Mapped[datetime | None]
    completed_at: so.Mapped[datetime | None]
    withdrawn_at: so.Mapped[datetime | None]
    # Set (with status "expired") when the participant was still in progress
    # PARTICIPANT_EXPIRE_HOURS after starting: the list slot is freed, the answers kept.
    expired_at: so.Mapped[datetime | None]
    demographics: so.Mapped[dict[str, Any]] = so.mapped_column(default=dict)
    # Memory studies with a second session (the recognise block's delay_hours): when the first
    # session ended, when the test phase opens, the code of the return link, and when the
    # participant came back. The expiry clock starts again at the return (or the due time).
    waiting_since: so.Mapped[datetime | None]
    return_due_at: so.Mapped[datetime | None]
    return_code: so.Mapped[str | None] = so.mapped_column(sa.String(16), unique=True)
    returned_at: so.Mapped[datetime | None]
    # Memory studies with a timed distractor before the test phase (distractor_s): when it
    # started and ended, and how many of its sums were answered and answered right.
    distractor_started_at: so.Mapped[datetime | None]
    distractor_ended_at: so.Mapped[datetime | None]
    distractor_answered: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    distractor_correct: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    # The language of the participant's pages (a code of survey.i18n.LANGUAGES), chosen before
    # the consent and kept from then on; participants from before languages saw English.
    language: so.Mapped[str] = so.mapped_column(sa.String(8), default="en", server_default="en")
    # Answers to the questions asked after a block (by question code), apart from the questions
    # page's `demographics`; exported in the same columns of participants.csv.
    block_answers: so.Mapped[dict[str, Any] | None] = so.mapped_column(sa.JSON, default=dict)
    # The blocks in the order this participant ran them (names), and the balanced Latin
    # square's row when the study counterbalances the order (None otherwise). Empty for a
    # participant started before the order was recorded.
    block_order: so.Mapped[list[str] | None] = so.mapped_column(sa.JSON)
    block_order_row: so.Mapped[int | None]
    # The pages between trials (block instructions, breaks, a block's questions) planned at the
    # start, in order (survey/flow.py); `flow_step` counts those passed, and `next_step_at` is
    # the trial position the next one comes before (None: no page left), so the trial page
    # knows from its own row whether a page comes first.
    flow_steps: so.Mapped[list[dict[str, Any]] | None] = so.mapped_column(sa.JSON)
    flow_step: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    next_step_at: so.Mapped[int | None]

    study: so.Mapped[Study] = so.relationship(back_populates="participants")
    trials: so.Mapped[list[Trial]] = so.relationship(
        back_populates="participant",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Trial.position",
    )
    recruitment: so.Mapped[RecruitmentId | None] = so.relationship(
        back_populates="participant", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def list_label(self) -> str:
        """Return the list's letter (A, B, …) as it appears in exports."""
        return list_label(self.list_index)


class ParticipantStart(Base):
    """A new participant's start, by study and a keyed digest of the client's address.

    Counted, under the study's row lock, by the start limits; kept only while a limit's window
    can still count it.
    """

    __tablename__ = "participant_start"
    __table_args__ = (
        sa.Index("ix_participant_start_study_address", "study_id", "address_key", "at"),
        sa.Index("ix_participant_start_study_at", "study_id", "at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    # HMAC of the address under SECRET_KEY: the addresses themselves are not kept.
    address_key: so.Mapped[str] = so.mapped_column(sa.String(64))
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class RecruitmentId(Base):
    """A recruitment platform's ids for a participant, kept apart from the opaque id."""

    __tablename__ = "recruitment_id"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "platform", "external_id"),
        sa.CheckConstraint(_in("platform", RECRUITMENT_SOURCES), name="platform"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    participant_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("participant.id", ondelete="CASCADE"), unique=True
    )
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    platform: so.Mapped[str] = so.mapped_column(sa.String(16))
    external_id: so.Mapped[str] = so.mapped_column(sa.String(128))
    # Other parameters of the link (STUDY_ID, SESSION_ID, assignmentId …).
    params: so.Mapped[dict[str, Any]] = so.mapped_column(default=dict)

    participant: so.Mapped[Participant] = so.relationship(back_populates="recruitment")


class Trial(Base):
    """A scheduled trial of one participant: what is shown, in which order and condition."""

    __tablename__ = "trial"
    __table_args__ = (
        sa.UniqueConstraint("participant_id", "position"),
        # A participant's unanswered trials in order: the trial page's "current and next", and
        # the answer's "no earlier trial left unanswered", without walking the answered ones.
        sa.Index(
            "ix_trial_unanswered",
            "participant_id",
            "position",
            sqlite_where=sa.text("answered_at IS NULL"),
            postgresql_where=sa.text("answered_at IS NULL"),
        ),
        sa.CheckConstraint(_in("task", TASKS), name="task"),
        sa.CheckConstraint(
            "condition IS NULL OR " + _in("condition", CONDITIONS), name="condition"
        ),
        sa.CheckConstraint(
            "left_source IS NULL OR " + _in("left_source", CONDITIONS), name="left_source"
        ),
        sa.CheckConstraint("position >= 1", name="position_positive"),
        sa.CheckConstraint("timing IS NULL OR " + _in("timing", TIMINGS), name="timing"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    participant_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("participant.id", ondelete="CASCADE")
    )
    block_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("block.id", ondelete="CASCADE"), index=True
    )
    # 1-based presentation order within the participant (practice trials included).
    position: so.Mapped[int]
    task: so.Mapped[str] = so.mapped_column(sa.String(16))
    identity_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("identity.id", ondelete="CASCADE"), index=True
    )
    condition: so.Mapped[str | None] = so.mapped_column(sa.String(8))
    # The headshot shown (match, rate, detect); for choose, the left one.
    image_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("image.id", ondelete="CASCADE"))
    # choose: the right-hand headshot.
    other_image_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("image.id", ondelete="CASCADE")
    )
    # choose: source of the headshot on the left, for counterbalancing sides.
    left_source: so.Mapped[str | None] = so.mapped_column(sa.String(8))
    # match: the probe photo and the identity it shows.
    probe_image_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("image.id", ondelete="CASCADE")
    )
    probe_identity_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("identity.id", ondelete="CASCADE")
    )
    is_match: so.Mapped[bool | None]
    is_practice: so.Mapped[bool] = so.mapped_column(default=False)
    is_attention: so.Mapped[bool] = so.mapped_column(default=False)
    # The instructed answer of an attention check ("for this photo, choose 2").
    attention_answer: so.Mapped[str | None] = so.mapped_column(sa.String(16))
    # The first time the trial page was served with this trial current (a reload keeps it),
    # from the database's clock like answered_at; empty for trials served before it existed.
    shown_at: so.Mapped[datetime | None]
    # recognise: whether the identity was studied in the learn block (False for a foil).
    studied: so.Mapped[bool | None]
    # learn: the fictional name shown with the headshot; recognise: the name the identity was
    # studied with (None for a foil or without labels).
    label: so.Mapped[str | None] = so.mapped_column(sa.String(32))
    # recognise with name recall: the names offered, in display order, joined by "|" (names
    # come from survey.design.NAME_SURNAMES and never hold one). Text, not JSON, so that a
    # schedule's rows still insert as one array per column on PostgreSQL.
    options: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    answered_at: so.Mapped[datetime | None]
    # A trial with a timed phase (a sequential match), once answered: "timed" when the browser
    # ran it on animation frames and reported what it achieved, "untimed" when it could not
    # (no script: both photos showed at once) or its report was not plausible. NULL otherwise.
    timing: so.Mapped[str | None] = so.mapped_column(sa.String(8))
    # The durations achieved, in ms from frame timestamps (NULL when untimed or left out), and
    # the display's refresh rate as estimated from the frames before the trial, in Hz.
    fixation_ms_achieved: so.Mapped[float | None]
    exposure_ms_achieved: so.Mapped[float | None]
    mask_ms_achieved: so.Mapped[float | None]
    isi_ms_achieved: so.Mapped[float | None]
    refresh_hz: so.Mapped[float | None]

    participant: so.Mapped[Participant] = so.relationship(back_populates="trials")
    block: so.Mapped[Block] = so.relationship()
    identity: so.Mapped[Identity] = so.relationship(foreign_keys=[identity_id])
    image: so.Mapped[Image] = so.relationship(foreign_keys=[image_id])
    other_image: so.Mapped[Image | None] = so.relationship(foreign_keys=[other_image_id])
    probe_image: so.Mapped[Image | None] = so.relationship(foreign_keys=[probe_image_id])
    probe_identity: so.Mapped[Identity | None] = so.relationship(foreign_keys=[probe_identity_id])
    responses: so.Mapped[list[Response]] = so.relationship(
        back_populates="trial", cascade="all, delete-orphan", passive_deletes=True
    )


class Response(Base):
    """One answer to one measure of a trial; stored once, never changed."""

    __tablename__ = "response"
    # One row per (trial, measure): a repeated submission cannot be stored twice.
    __table_args__ = (sa.UniqueConstraint("trial_id", "measure"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    trial_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("trial.id", ondelete="CASCADE"))
    # Denormalised from the trial so exports stream in participant order without a join.
    participant_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    measure: so.Mapped[str] = so.mapped_column(sa.String(32))
    value: so.Mapped[str] = so.mapped_column(sa.String(32))
    rt_ms: so.Mapped[float | None]
    client_ts: so.Mapped[float | None]
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    trial: so.Mapped[Trial] = so.relationship(back_populates="responses")


class DeletedPart(Base):
    """A design part (block, identity with its images, image) deleted from a draft study.

    Kept so that the deletion can be undone while the study is a draft: `data` holds the rows
    as they were, and the image files stay in storage until the part is forgotten (when the
    study opens, or when newer deletions push it out; see survey/researcher/undo.py).
    """

    __tablename__ = "deleted_part"
    __table_args__ = (sa.CheckConstraint(_in("kind", DELETED_KINDS), name="kind"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("study.id", ondelete="CASCADE"), index=True
    )
    kind: so.Mapped[str] = so.mapped_column(sa.String(16))
    label: so.Mapped[str] = so.mapped_column(sa.String(300))
    data: so.Mapped[dict[str, Any]] = so.mapped_column()
    deleted_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    deleted_by_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("researcher.id", ondelete="SET NULL")
    )


class Preregistration(Base):
    """A frozen analysis plan: its JSON, SHA-256 and the time it was frozen."""

    __tablename__ = "preregistration"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("study.id", ondelete="CASCADE"), unique=True
    )
    plan: so.Mapped[dict[str, Any]]
    # Canonical JSON text that the hash covers, kept byte for byte.
    plan_json: so.Mapped[str] = so.mapped_column(sa.Text)
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    frozen_at: so.Mapped[datetime | None]
    created_by_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("researcher.id", ondelete="SET NULL")
    )

    study: so.Mapped[Study] = so.relationship(back_populates="preregistration")


class AuditEvent(Base):
    """A researcher action worth a record: who did what to which study, and when."""

    __tablename__ = "audit_event"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    researcher_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("researcher.id", ondelete="SET NULL")
    )
    # Kept as text too, so the record survives the account's deletion.
    researcher_email: so.Mapped[str] = so.mapped_column(sa.String(254), default="")
    study_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("study.id", ondelete="SET NULL"), index=True
    )
    action: so.Mapped[str] = so.mapped_column(sa.String(64))
    detail: so.Mapped[dict[str, Any]] = so.mapped_column(default=dict)
    address: so.Mapped[str] = so.mapped_column(sa.String(64), default="")


class Report(Base):
    """A computed analysis of a study's data, cached by data hash and analysis version."""

    __tablename__ = "report"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "data_sha256", "analysis_version"),
        sa.CheckConstraint(_in("status", REPORT_STATES), name="status"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("study.id", ondelete="CASCADE"))
    data_sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    analysis_version: so.Mapped[str] = so.mapped_column(sa.String(32))
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="pending")
    results: so.Mapped[dict[str, Any] | None]
    error: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    finished_at: so.Mapped[datetime | None]
    # Set on the one report whose findings the public page shows.
    published_at: so.Mapped[datetime | None]
    # Computed with the simulated participants included (the researcher's switch on the
    # report page): never published, never shown on the public page.
    includes_simulated: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())


class ReportChart(Base):
    """A drawn figure of a report (a public chart card or a report figure), stored once.

    Keyed by report, name and format; `inputs` is a digest of everything drawn besides the
    report's results (figure code version, study title, footer), so a change redraws it. The
    row goes with its report (ON DELETE CASCADE): a withdrawal that deletes the report deletes
    its charts, and a report id reused later never finds another report's chart.
    """

    __tablename__ = "report_chart"
    __table_args__ = (sa.UniqueConstraint("report_id", "name", "fmt"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    report_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("report.id", ondelete="CASCADE"))
    name: so.Mapped[str] = so.mapped_column(sa.String(80))
    fmt: so.Mapped[str] = so.mapped_column(sa.String(8))
    inputs: so.Mapped[str] = so.mapped_column(sa.String(64))
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    body: so.Mapped[bytes] = so.mapped_column(sa.LargeBinary)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class Job(Base):
    """A unit of background work (survey.jobs): its kind, inputs, progress and outcome.

    Keyed by a hash of its kind and inputs, so asking for the same work again finds this row
    instead of doing it twice. `attempts` counts the starts; `heartbeat_at` is renewed while a
    worker runs it, so a job whose worker was killed is seen as abandoned and started again.
    """

    __tablename__ = "job"
    __table_args__ = (
        sa.UniqueConstraint("key"),
        sa.CheckConstraint(_in("status", JOB_STATES), name="status"),
        sa.Index("ix_job_status", "status"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    key: so.Mapped[str] = so.mapped_column(sa.String(64))
    kind: so.Mapped[str] = so.mapped_column(sa.String(32))
    study_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("study.id", ondelete="CASCADE"), index=True
    )
    inputs: so.Mapped[dict[str, Any]]
    status: so.Mapped[str] = so.mapped_column(sa.String(16), default="queued")
    progress: so.Mapped[int] = so.mapped_column(default=0)
    message: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    max_attempts: so.Mapped[int] = so.mapped_column(default=3)
    error: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    result: so.Mapped[dict[str, Any] | None]
    worker: so.Mapped[str] = so.mapped_column(sa.String(120), default="")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    started_at: so.Mapped[datetime | None]
    heartbeat_at: so.Mapped[datetime | None]
    finished_at: so.Mapped[datetime | None]


class JobWorker(Base):
    """A job worker's last sign of life, so check-deploy can tell whether any is running."""

    __tablename__ = "job_worker"

    name: so.Mapped[str] = so.mapped_column(sa.String(120), primary_key=True)
    started_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    seen_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
