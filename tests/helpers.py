"""Helpers shared by tests that are not fixtures."""

from __future__ import annotations

import functools
import io
import os
import zipfile
from pathlib import Path

import sqlalchemy as sa
from PIL import Image as PILImage
from werkzeug.security import generate_password_hash

import survey.demo
from survey.design import BlockInfo, IdentityInfo
from survey.extensions import db
from survey.models import Researcher, Study
from survey.studies import design_sha256

ROOT = Path(__file__).resolve().parent.parent  # the repository's top folder
# Trials of one participant in the demo study: match 8 + a practice and an attention check,
# rate 8 + a check, detect 8, the memory test 4 (learn) + 8 (recognise), choose 8.
DEMO_TRIALS = 47


def refreeze(study_id: int) -> None:
    """Freeze the study's design as it is now, after a test edited an open study directly.

    The app refuses starts on a design that no longer matches the SHA-256 frozen at opening;
    a test that changes an open study's settings in the database (not through the workspace,
    which refuses) records the changed design as the frozen one. Commits.
    """
    study = db.session.get(Study, study_id)
    db.session.refresh(study)
    study.design_sha256 = design_sha256(study)
    db.session.commit()


_render = functools.lru_cache(maxsize=None)(survey.demo.render)
_process = functools.lru_cache(maxsize=None)(survey.demo.process_image)


@functools.cache
def password_hash(password: str) -> str:
    """Return a hash of the password, made once per password and test run."""
    return generate_password_hash(password)


def _set_password_once(researcher: Researcher, password: str) -> None:
    """Store a hash of the password made once per test run (a salted scrypt hash is slow)."""
    researcher.password_hash = password_hash(password)


def seed_quick_demo(app, monkeypatch) -> int:
    """Seed the demo study as `flask seed-demo` does and return its id, quickly.

    The demo's drawings and their image processing are deterministic, so they are made once per
    test run and reused, and so is the demo account's password hash (any scrypt hash of the
    password verifies); its 48 image files are written without forcing each to disk (the
    storage's fsync: a test's media folder is thrown away with it). Every test still gets a
    freshly seeded database, the same files and an account that signs in with demo / demo.
    """
    monkeypatch.setattr(survey.demo, "render", _render)
    monkeypatch.setattr(survey.demo, "process_image", _process)
    with monkeypatch.context() as seeding, app.app_context():
        seeding.setattr(os, "fsync", lambda fd: None)
        seeding.setattr(Researcher, "set_password", _set_password_once)
        _researcher, study, _created = survey.demo.seed_demo()
        return study.id


def set_study(app, study_id: int, **values) -> None:
    """Change columns of a study."""
    with app.app_context():
        db.session.execute(sa.update(Study).where(Study.id == study_id).values(**values))
        db.session.commit()


def sign_in(client, app, researcher_id: int) -> None:
    """Sign the client in as the researcher without going through the form.

    Tests use the `auth` fixture (tests/conftest.py); this is for clients made inside other
    helpers (a team's or a world's clients in the researcher and security tests).
    """
    with app.app_context():
        researcher = db.session.get(Researcher, researcher_id)
        user_id = researcher.get_id()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True


# --- stimulus uploads -------------------------------------------------------------------------


def photo(
    seed: int, fmt: str = "JPEG", size: tuple[int, int] = (120, 160), exif: bool = False
) -> bytes:
    """Return a small distinct picture; with exif, it carries GPS and orientation 6 (rotate)."""
    im = PILImage.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    for x in range(seed % 7, size[0], 9):
        for y in range(0, size[1], 3):
            im.putpixel((x, y), (255 - seed % 256, 20, 200))
    out = io.BytesIO()
    options = {}
    if exif:
        tags = PILImage.Exif()
        tags[0x0112] = 6
        gps = tags.get_ifd(0x8825)
        gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
        options["exif"] = tags
    im.save(out, format=fmt, **options)
    return out.getvalue()


MANIFEST_HEADER = "identity,role,source,file,generator,gender,age_band,consent"


def stimulus_zip(rows: list[str], files: dict[str, bytes], header: str = MANIFEST_HEADER) -> bytes:
    """Return a ZIP with manifest.csv (header plus rows) and the given files."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.csv", "\n".join([header, *rows]) + "\n")
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def full_set(codes=("P001", "P002"), start: int = 1) -> bytes:
    """Return a valid ZIP: each identity with a real and an ai headshot and a probe."""
    rows, files = [], {}
    seed = start
    for code in codes:
        for role, source in (("headshot", "real"), ("headshot", "ai"), ("probe", "photo")):
            name = f"{code}-{source}.jpg"
            camera = "GenX" if source == "ai" else "Canon"
            rows.append(f"{code},{role},{source},{name},{camera},woman,30-44,yes")
            files[name] = photo(seed)
            seed += 1
    return stimulus_zip(rows, files)


def media_files(app) -> list[Path]:
    """Return every file in the media folder."""
    root = Path(app.config["MEDIA_DIR"])
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload_zip(client, study_id: int, data: bytes, name: str = "set.zip"):
    """POST a stimulus ZIP."""
    return client.post(
        f"/r/studies/{study_id}/stimuli/zip",
        data={"archive": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def make_identities(n: int, descriptors: list[tuple[str, str]] | None = None) -> list[IdentityInfo]:
    """Return n identities P001.. with both headshots and two probes each."""
    out = []
    for k in range(n):
        gender, age_band = descriptors[k] if descriptors else ("", "")
        out.append(
            IdentityInfo(
                code=f"P{k + 1:03d}",
                gender=gender,
                age_band=age_band,
                headshots={"real": f"real-{k + 1}", "ai": f"ai-{k + 1}"},
                probes=(f"probe-{k + 1}a", f"probe-{k + 1}b"),
            )
        )
    return out


ALL_TASKS = [
    BlockInfo("recognition", "match", {}),
    BlockInfo("impressions", "rate", {}),
    BlockInfo("pairs", "choose", {}),
    BlockInfo("detection", "detect", {}),
]
