"""Helpers of the researcher tests that are not fixtures: researchers, members and a runnable
design."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from survey.extensions import db
from survey.media import storage
from survey.models import Block, Identity, Image, Researcher, Study, StudyMember
from survey.storage import key_for
from tests.helpers import password_hash

PASSWORD = "correct horse battery"


RATE_SCALES = [
    {
        "key": "trust",
        "question": "How much do you trust this person?",
        "low_anchor": "Not at all",
        "high_anchor": "Completely",
        "min": 1,
        "max": 7,
    },
]


def add_member(app, study_id: int, researcher_id: int, role: str) -> None:
    """Give a researcher a role on a study."""
    with app.app_context():
        db.session.add(StudyMember(study_id=study_id, researcher_id=researcher_id, role=role))
        db.session.commit()


def seed_design(study: Study, n_identities: int = 8, blocks: bool = True) -> None:
    """Give a study identities, each with a real and an ai headshot and a probe (files stored),
    and blocks."""
    store = storage()
    for index in range(n_identities):
        identity = Identity(
            study=study,
            code=f"P{index + 1:03d}",
            gender=("woman", "man")[index % 2],
            age_band="30-44",
            consent_recorded=True,
        )
        db.session.add(identity)
        for role, source in (("headshot", "real"), ("headshot", "ai"), ("probe", "photo")):
            data = f"{study.slug}-{identity.code}-{source}".encode()
            sha = hashlib.sha256(data).hexdigest()
            original, display = (
                key_for(study.id, sha, "jpg", "original"),
                key_for(study.id, sha, "jpg", "display"),
            )
            store.put(original, data, "image/jpeg")
            store.put(display, data, "image/jpeg")
            db.session.add(
                Image(
                    study=study,
                    identity=identity,
                    role=role,
                    source=source,
                    generator="test",
                    original_filename=f"{identity.code}-{source}.jpg",
                    sha256=sha,
                    width=600,
                    height=800,
                    content_type="image/jpeg",
                    byte_size=len(data),
                    storage_key=original,
                    display_key=display,
                )
            )
    if blocks:
        db.session.add(
            Block(
                study=study,
                position=1,
                name="recognition",
                task="match",
                settings={"presentation": "side_by_side", "confidence": True},
            )
        )
        db.session.add(
            Block(
                study=study,
                position=2,
                name="impressions",
                task="rate",
                settings={"scales": RATE_SCALES, "attention_checks": [2]},
            )
        )


def quick_researcher(app, email: str) -> int:
    """Create a researcher with the tests' password, reusing one hash."""
    with app.app_context():
        researcher = Researcher(
            email=email, name=email.split("@")[0], password_hash=password_hash(PASSWORD)
        )
        db.session.add(researcher)
        db.session.commit()
        return researcher.id


def blocks(app, study_id: int) -> list[Block]:
    """Return the study's blocks in order (detached)."""
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Block).where(Block.study_id == study_id).order_by(Block.position)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def block_id(app, study_id: int, name: str) -> int:
    """Return the id of the study's block with this name."""
    return next(b.id for b in blocks(app, study_id) if b.name == name)


MATCH = {
    "name": "recognition",
    "practice": "auto",
    "attention_checks": "",
    "n_identities": "",
    "presentation": "side_by_side",
    "exposure_ms": "1500",
    "confidence": "y",
}


def rate_form(scales: list[dict], **fields) -> dict:
    """Return the posted fields of a rate block with these scale rows."""
    data = {
        "name": "impressions",
        "practice": "auto",
        "attention_checks": "2",
        "n_identities": "",
        **fields,
    }
    for i, scale in enumerate(scales):
        for key, value in scale.items():
            data[f"scales-{i}-{key}"] = value
    return data


TRUST = {
    "key": "trust",
    "question": "How much do you trust this person?",
    "low_anchor": "Not at all",
    "high_anchor": "Completely",
    "min": "1",
    "max": "7",
}
