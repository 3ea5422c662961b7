"""Property-based fuzzing of the upload endpoints (one image, a stimulus ZIP, a study definition):
no 500, a refused upload leaves no row and no file, and every stored image row has its files."""

from __future__ import annotations

import io
import json
import zipfile
from functools import lru_cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from survey.extensions import db
from survey.media import storage
from survey.models import Image
from tests.security.helpers import fingerprint

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HOSTILE_TEXT = [
    "P001",
    "P002",
    "",
    " ",
    "../P001",
    "P 001",
    "<script>x</script>",
    "=cmd|'/C calc'!A0",
    "' OR 1=1 --",
    "é",
    "P" * 40,
    "headshot",
    "probe",
    "real",
    "ai",
    "photo",
    "yes",
    "no",
]
texts = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=30).filter(lambda t: "\x00" not in t)


@lru_cache(maxsize=8)
def picture(seed: int, fmt: str) -> bytes:
    """Return a small valid image (a plain colour per seed) in the given format."""
    out = io.BytesIO()
    PILImage.new("RGB", (96, 128), (seed * 37 % 256, seed * 91 % 256, 120)).save(out, fmt)
    return out.getvalue()


@st.composite
def image_bytes(draw) -> bytes:
    """A valid image, one damaged in some way, or bytes that are no image at all."""
    base = picture(draw(st.integers(0, 5)), draw(st.sampled_from(["JPEG", "PNG", "WEBP"])))
    how = draw(st.sampled_from(["valid", "truncated", "flipped", "prefixed", "random", "empty"]))
    if how == "truncated":
        return base[: draw(st.integers(0, len(base) - 1))]
    if how == "flipped":
        at = draw(st.integers(0, len(base) - 1))
        return base[:at] + bytes([base[at] ^ 0xFF]) + base[at + 1 :]
    if how == "prefixed":
        return draw(st.binary(min_size=1, max_size=16)) + base
    if how == "random":
        return draw(st.binary(max_size=512))
    if how == "empty":
        return b""
    return base


ZIP_NAMES = [
    "P001-real.jpg",
    "P001-ai.jpg",
    "P001-probe.jpg",
    "P002-real.png",
    "sub/P002-ai.jpg",
    "../escape.jpg",
    "/absolute.jpg",
    "a/../../b.jpg",
    "C:\\\\x.jpg",
    "manifest.csv",
    "x/manifest.csv",
    "__MACOSX/._P001-real.jpg",
    "résumé.jpg",
    ".hidden.jpg",
]


@st.composite
def stimulus_zip(draw) -> bytes:
    """A ZIP with a manifest and entries drawn from good and bad names, contents and rows."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=256))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        if draw(st.booleans()):
            header = draw(
                st.sampled_from(
                    [
                        "identity,role,source,file,generator",
                        "identity,role,source,file,generator,age_band,gender,ethnicity,consent",
                        "identity,role,file",
                        "",
                    ]
                )
            )
            rows = draw(
                st.lists(
                    st.tuples(texts, texts, texts, st.sampled_from(ZIP_NAMES) | texts, texts),
                    max_size=6,
                )
            )
            lines = [header] + [
                ",".join(f'"{c}"' if draw(st.booleans()) else c.replace(",", "") for c in row)
                for row in rows
            ]
            archive.writestr("manifest.csv", "\n".join(lines))
        for name in draw(st.lists(st.sampled_from(ZIP_NAMES), max_size=6, unique=True)):
            if name == "manifest.csv":
                continue
            archive.writestr(name, draw(image_bytes()))
    return out.getvalue()


def media_files(app) -> set[str]:
    """Return every file under the media folder, as paths relative to it."""
    root = Path(app.config["MEDIA_DIR"])
    return (
        {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else set()
    )


def assert_every_image_has_its_files_and_no_file_is_orphaned(app) -> None:
    """Rows and files agree: each image's two files exist; no file is left without a row."""
    with app.app_context():
        keys = set()
        for image in db.session.scalars(sa.select(Image)):
            for key in (image.storage_key, image.display_key):
                assert storage().exists(key), key
                keys.add(key)
    assert media_files(app) <= {k for k in keys} | {str(Path(k)) for k in keys}, (
        media_files(app) - keys
    )


def post_and_check(app, client, url: str, data: dict) -> int:
    """Post an upload; a refused one must change neither the database nor the files."""
    before, files_before = fingerprint(app), media_files(app)
    response = client.post(url, data=data, content_type="multipart/form-data")
    assert response.status_code < 500, (url, response.status_code)
    if response.status_code >= 400:
        assert fingerprint(app) == before, ("a refused upload wrote rows", response.status_code)
        assert media_files(app) == files_before, (
            "a refused upload left files",
            response.status_code,
        )
    assert_every_image_has_its_files_and_no_file_is_orphaned(app)
    return response.status_code


def mostly(*good: str):
    """Draw one of the good values most of the time, else any hostile text."""
    return st.sampled_from(good * 3) | texts


ROLE_SOURCES = [("headshot", "real"), ("headshot", "ai"), ("probe", "photo")]


@given(
    data=image_bytes(),
    identity=mostly("P101", "P102", "P001"),
    role_source=st.sampled_from(ROLE_SOURCES * 3) | st.tuples(texts, texts),
    generator=texts,
    name=texts,
    gender=mostly(""),
)
@FUZZ
def test_fuzzed_single_image_uploads(
    app, draft, data, identity, role_source, generator, name, gender
):
    client, study_id = draft
    role, source = role_source
    fields = {
        "identity": identity,
        "role": role,
        "source": source,
        "generator": generator,
        "gender": gender,
        "image": (io.BytesIO(data), name or "face.jpg"),
    }
    post_and_check(app, client, f"/r/studies/{study_id}/stimuli/image", fields)


@given(
    archive=stimulus_zip(),
    name=st.sampled_from(["set.zip", "set.ZIP", "../set.zip", "set.txt", ""]),
)
@FUZZ
def test_fuzzed_stimulus_zips(app, draft, archive, name):
    client, study_id = draft
    post_and_check(
        app, client, f"/r/studies/{study_id}/stimuli/zip", {"archive": (io.BytesIO(archive), name)}
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


@st.composite
def definitions(draw, base: str) -> str:
    """A study definition with some of its values replaced, or JSON of another shape."""
    definition = json.loads(base)
    how = draw(st.sampled_from(["texts", "texts", "patched", "patched", "other", "text"]))
    if how == "texts":
        # Values of the right type: hostile texts where the definition holds texts.
        study = definition.get("study", {})
        for key in draw(st.lists(st.sampled_from(sorted(study)), max_size=4)):
            if isinstance(study[key], str):
                study[key] = draw(texts)
        return json.dumps(definition)
    if how == "other":
        return json.dumps(draw(json_values))
    if how == "text":
        return draw(st.text(max_size=200))
    for _ in range(draw(st.integers(1, 4))):
        part = draw(st.sampled_from(sorted(definition)))
        if isinstance(definition[part], dict) and definition[part]:
            key = draw(st.sampled_from(sorted(definition[part])))
            definition[part][key] = draw(json_values)
        elif isinstance(definition[part], list) and definition[part]:
            index = draw(st.integers(0, len(definition[part]) - 1))
            definition[part][index] = draw(json_values)
        else:
            definition[part] = draw(json_values)
    return json.dumps(definition)


@given(data=st.data())
@FUZZ
def test_fuzzed_study_definitions(app, draft, data):
    client, study_id = draft
    base = definition_of(client, study_id)
    text = data.draw(definitions(base))
    status = post_and_check(
        app, client, "/r/studies/import", {"file": (io.BytesIO(text.encode()), "study.json")}
    )
    assert status in (302, 400, 413), status


def definition_of(client, study_id: int) -> str:
    """Return the study's exported definition."""
    return client.get(f"/r/studies/{study_id}/definition.json").get_data(as_text=True)


def test_a_valid_image_and_definition_are_accepted(app, draft):
    """The fuzzing above reaches the storing code: the same endpoints do accept good input."""
    client, study_id = draft
    status = post_and_check(
        app,
        client,
        f"/r/studies/{study_id}/stimuli/image",
        {
            "identity": "P900",
            "role": "headshot",
            "source": "real",
            "generator": "camera",
            "image": (io.BytesIO(picture(99, "JPEG")), "face.jpg"),
        },
    )
    assert status == 302
    status = post_and_check(
        app,
        client,
        "/r/studies/import",
        {"file": (io.BytesIO(definition_of(client, study_id).encode()), "study.json")},
    )
    assert status == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Image)) == 8 * 3 + 1
