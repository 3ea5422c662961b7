"""Helpers of the security tests that are not fixtures: a study with members of every role and
a participant, URLs for every rule of the URL map, and a fingerprint of the whole database."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import sqlalchemy as sa
from flask import Flask

from survey.extensions import db
from survey.models import (
    Base,
    Block,
    Identity,
    Image,
    Job,
    Participant,
    Study,
    StudyMember,
    StudyQuestion,
    Trial,
)
from survey.participant.starting import start_participant
from survey.questions import legacy_questions
from survey.studies import open_study
from survey.study_texts import catalogue
from tests.helpers import sign_in
from tests.researcher.helpers import add_member, quick_researcher, seed_design

# A template expression in hostile texts: were a text rendered as a template, "ssti!" would
# appear (a "!" never occurs in the page's hex or base64 tokens, where "1337" once did).
SSTI = '{{"ssti"~"!"}}'
SSTI_RAN = "ssti!"

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


CSRF_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class World:
    """A study (open, with a started participant), its team, and ids for every URL part."""

    study_id: int
    slug: str
    owner: int
    editor: int
    viewer: int
    stranger: int
    block_id: int
    member_id: int
    identity_id: int
    image_id: int
    image_public_id: str
    participant_public_id: str
    trial_id: int
    question_id: int = 0
    job_id: int = 0

    def client(self, app: Flask, who: str | None = None):
        """Return a test client, signed in as one of the team when `who` is given."""
        client = app.test_client()
        if who is not None:
            sign_in(client, app, getattr(self, who))
        return client


def make_world(app: Flask, slug: str = "trust", open_it: bool = True) -> World:
    """Build the study, its team and (when open) a participant who has not answered yet."""
    owner, editor, viewer, stranger = (
        quick_researcher(app, f"{who}-{slug}@example.org")
        for who in ("owner", "editor", "viewer", "stranger")
    )
    with app.app_context():
        study = Study(title="Trust in headshots", slug=slug)
        db.session.add(study)
        db.session.add(StudyMember(study=study, researcher_id=owner, role="owner"))
        for position, question in enumerate(legacy_questions(), start=1):
            db.session.add(StudyQuestion(study=study, position=position, **question))
        db.session.flush()
        seed_design(study)
        # A second language, every text written in it, so its pages have something to show.
        study.settings = {**(study.settings or {}), "languages": ["en", "de"]}
        db.session.flush()
        for text in catalogue(study):
            db.session.add(text.row(study.id, "de", f"(de) {text.default}"))
        db.session.commit()
        study_id = study.id
        # The stranger owns a study of their own, so they are a real, signed-in researcher.
        other = Study(title="Someone else's", slug=f"{slug}-other")
        db.session.add(other)
        db.session.add(StudyMember(study=other, researcher_id=stranger, role="owner"))
        db.session.commit()
    add_member(app, study_id, editor, "editor")
    add_member(app, study_id, viewer, "viewer")
    with app.app_context():
        study = db.session.get(Study, study_id)
        participant_public_id = ""
        trial_id = 0
        if open_it:
            open_study(study, None)
            db.session.commit()
            participant = start_participant(study)
            participant_public_id = participant.public_id
            trial_id = db.session.scalar(
                sa.select(Trial.id)
                .where(Trial.participant_id == participant.id)
                .order_by(Trial.position)
            )
        image = db.session.scalars(sa.select(Image).where(Image.study_id == study_id)).first()
        # A finished background job of the study, for the job pages.
        job = Job(key=f"{study_id:064d}", kind="probe", study_id=study_id, inputs={}, status="done")
        db.session.add(job)
        db.session.commit()
        return World(
            study_id=study_id,
            slug=slug,
            owner=owner,
            editor=editor,
            viewer=viewer,
            stranger=stranger,
            block_id=db.session.scalar(sa.select(Block.id).where(Block.study_id == study_id)),
            question_id=db.session.scalar(
                sa.select(StudyQuestion.id).where(StudyQuestion.study_id == study_id).limit(1)
            ),
            member_id=db.session.scalar(
                sa.select(StudyMember.id).where(
                    StudyMember.study_id == study_id, StudyMember.researcher_id == viewer
                )
            ),
            identity_id=db.session.scalar(
                sa.select(Identity.id).where(Identity.study_id == study_id)
            ),
            image_id=image.id,
            image_public_id=image.public_id,
            participant_public_id=participant_public_id,
            trial_id=trial_id,
            job_id=job.id,
        )


def participant_with(app: Flask, world: World, public_id: str):
    """Return a client holding the cookie of the participant with this public id."""
    from survey.participant.routes import COOKIE, _serializer

    client = app.test_client()
    with app.test_request_context():
        value = _serializer().dumps(public_id)
    client.set_cookie(COOKIE, value, path=f"/s/{world.slug}")
    return client


def participant_client(app: Flask, world: World):
    """Return a client holding the world participant's cookie (as its browser would)."""
    return participant_with(app, world, world.participant_public_id)


def url_values(rule, world: World) -> dict[str, object]:
    """Return a value for each part of a rule, taken from the world's own rows."""
    by_name = {
        "study_id": world.study_id,
        "block_id": world.block_id,
        "question_id": world.question_id,
        "member_id": world.member_id,
        "identity_id": world.identity_id,
        "image_id": world.image_id,
        "report_id": 1,
        "job_id": world.job_id,
        "part_id": 1,
        "trial_id": world.trial_id,
        "slug": world.slug,
        "filename": "css/likeness.css",
        "name": "trials.csv",
        "outcome": "trust",
        "fmt": "png",
        "lang": "de",
    }
    values = {}
    for name in rule.arguments:
        if name == "public_id":
            values[name] = (
                world.image_public_id
                if rule.endpoint == "participant.image"
                else world.participant_public_id
            )
        else:
            values[name] = by_name[name]
    return values


def build_url(app: Flask, rule, values: dict[str, object]) -> str:
    """Build the URL of a rule with the given values."""
    with app.test_request_context():
        return rule.build(values, append_unknown=False)[1]


def routes(app: Flask, methods: tuple[str, ...] | None = None):
    """Yield (rule, method) for every rule of the URL map (HEAD and OPTIONS left out)."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if methods is None or method in methods:
                yield rule, method


def table_fingerprints(app: Flask) -> dict[str, str]:
    """Hash every row of each table: a table whose hash changed was written."""
    hashes = {}
    with app.app_context():
        for table in Base.metadata.sorted_tables:
            rows = db.session.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            hashes[table.name] = hashlib.sha256(
                f"{table.name}:{[tuple(map(str, r)) for r in rows]}".encode()
            ).hexdigest()
        db.session.remove()
    return hashes


def fingerprint(app: Flask) -> str:
    """Hash every row of every table: equal fingerprints mean nothing was written."""
    return hashlib.sha256("".join(table_fingerprints(app).values()).encode()).hexdigest()


def csrf_token(client, url: str = "/r/login") -> str:
    """Return the CSRF token of the form on a page (the client's session keeps its secret)."""
    page = client.get(url).get_data(as_text=True)
    match = CSRF_TOKEN.search(page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def participant_of(app: Flask, public_id: str) -> Participant:
    """Return a participant by its public id (detached, for reading its fields)."""
    with app.app_context():
        participant = db.session.scalar(
            sa.select(Participant).where(Participant.public_id == public_id)
        )
        db.session.expunge(participant)
        return participant


def _runs_script(url: str) -> bool:
    """Tell whether a URL runs script (browsers ignore spaces and controls in the scheme)."""
    return (
        "".join(ch for ch in url if ch > " ")
        .lower()
        .startswith(("javascript:", "vbscript:", "data:text"))
    )


class _ActiveContent(HTMLParser):
    """Collect what a CSP without 'unsafe-inline' would block, or what would run script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note inline handlers, style attributes, javascript: URLs and script tags without src."""
        names = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in names
            if self._in_script:
                self.found.append("<script> without src")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            elif name == "style":
                self.found.append(f"<{tag} style=…>")
            elif name in ("href", "src", "action", "formaction", "data") and _runs_script(
                value or ""
            ):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag in ("iframe", "object", "embed", "base"):
            self.found.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        """Leave a script element."""
        if tag == "script":
            self._in_script = False


def active_content(html: str) -> list[str]:
    """Return every inline script, handler, style attribute or script URL of a page."""
    parser = _ActiveContent()
    parser.feed(html)
    parser.close()
    return parser.found
