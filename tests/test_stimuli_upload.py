"""Stimulus uploads in the browser: ZIP sets, single images, the report, the gallery, deletions."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from survey import audit, media
from survey.extensions import db
from survey.models import AuditEvent, Identity, Image, Study, StudyMember
from survey.researcher.undo import IMAGE_COLUMNS, discard_unused
from tests.helpers import MANIFEST_HEADER, full_set, media_files, photo, stimulus_zip, upload_zip

# --- helpers ----------------------------------------------------------------------------------


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """Return a valid greyscale PNG of the given size, compressed to a few hundred KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def counts(app) -> tuple[int, int]:
    """Return the numbers of identity and image rows."""
    with app.app_context():
        return (
            db.session.scalar(sa.select(sa.func.count()).select_from(Identity)),
            db.session.scalar(sa.select(sa.func.count()).select_from(Image)),
        )


def make_study(app, researcher_id: int, role: str = "owner", slug: str = "faces") -> int:
    """Create a draft study with the researcher as a member in the given role."""
    with app.app_context():
        study = Study(slug=slug, title=f"Study {slug}")
        db.session.add(study)
        db.session.flush()
        db.session.add(StudyMember(study_id=study.id, researcher_id=researcher_id, role=role))
        db.session.commit()
        return study.id


@pytest.fixture
def owner(app, client, make_researcher, auth):
    """A signed-in researcher who owns a draft study; returns the study id."""
    rid = make_researcher()
    auth.sign_in(rid)
    return make_study(app, rid)


def upload_image(client, study_id: int, data: bytes, name: str = "face.jpg", **fields):
    """POST one image with its identity, role and source (a real headshot of P001 by default)."""
    form = {
        "identity": "P001",
        "role": "headshot",
        "source": "real",
        "generator": "Canon",
        **fields,
    }
    form["image"] = (io.BytesIO(data), name)
    return client.post(
        f"/r/studies/{study_id}/stimuli/image", data=form, content_type="multipart/form-data"
    )


def text(response) -> str:
    """Return a response's body as text with HTML entities for quotes undone."""
    return response.get_data(as_text=True).replace("&#39;", "'").replace("&#34;", '"')


# --- ZIP sets ---------------------------------------------------------------------------------


def test_valid_set_is_imported_with_files_rows_and_audit(app, client, owner):
    response = upload_zip(client, owner, full_set())
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/r/studies/{owner}/stimuli")
    assert counts(app) == (2, 6)
    assert len(media_files(app)) == 12  # an original and a display copy per image
    with app.app_context():
        person = db.session.scalar(sa.select(Identity).where(Identity.code == "P001"))
        assert (person.gender, person.age_band, person.consent_recorded) == ("woman", "30-44", True)
        sources = sorted(im.source for im in person.images)
        assert sources == ["ai", "photo", "real"]
        event = db.session.scalar(sa.select(AuditEvent))
        assert (event.action, event.study_id, event.detail["images"]) == (
            "stimuli.upload",
            owner,
            6,
        )
    page = client.get(f"/r/studies/{owner}/stimuli")
    body = text(page)
    assert "Imported 6 images of 2 identities from set.zip." in body
    assert body.count('src="/img/') == 6
    # Side by side in a fixed order: real, ai, probe.
    p001 = body[body.index(">P001<") : body.index(">P002<")]
    assert p001.index("real headshot") < p001.index("ai headshot") < p001.index("probe photo")


def test_a_set_of_one_identity_is_counted_in_the_singular(app, client, owner):
    assert upload_zip(client, owner, full_set(codes=("P001",))).status_code == 302
    body = text(client.get(f"/r/studies/{owner}/stimuli"))
    assert "Imported 3 images of 1 identity from set.zip." in body


def test_stored_images_lose_gps_and_are_turned_upright(app, client, owner):
    rows = [
        "P001,headshot,real,real.jpg,Canon,,,yes",
        "P001,headshot,ai,ai.jpg,GenX,,,yes",
    ]
    data = stimulus_zip(
        rows, {"real.jpg": photo(1, size=(200, 120), exif=True), "ai.jpg": photo(2)}
    )
    assert upload_zip(client, owner, data).status_code == 302
    with app.app_context():
        image = db.session.scalar(sa.select(Image).where(Image.source == "real"))
        stored = media.storage().get(image.storage_key)
        assert (image.width, image.height) == (120, 200)
    with PILImage.open(io.BytesIO(stored)) as im:
        assert im.size == (120, 200)
        assert not im.getexif()
    gallery = client.get(f"/r/studies/{owner}/stimuli")
    served = client.get(re.search(r'src="(/img/[^"]+)"', gallery.get_data(as_text=True))[1])
    served.close()
    assert served.status_code == 200 and served.mimetype == "image/jpeg"


def test_invalid_set_reports_every_problem_with_row_and_file_and_stores_nothing(app, client, owner):
    same = photo(9)
    rows = [
        "P001,headshot,real,P001-real.jpg,Canon,,,yes",
        "P001,headshot,ai,missing.jpg,GenX,,,yes",  # row 3: not in the ZIP
        "P002,headshot,real,P002-real.jpg,Canon,,,yes",  # P002 has no ai headshot
        "P003,headshot,real,copy-a.jpg,Canon,,,yes",
        "P003,headshot,ai,copy-b.jpg,GenX,,,yes",  # row 6: the same image as row 5
        "P004,headshot,real,broken.jpg,Canon,,,yes",  # row 7: not an image
        "P004,headshot,ai,P004-ai.jpg,GenX,,,yes",
    ]
    files = {
        "P001-real.jpg": photo(1),
        "P002-real.jpg": photo(2),
        "copy-a.jpg": same,
        "copy-b.jpg": same,
        "broken.jpg": b"this is plain text, not a picture",
        "P004-ai.jpg": photo(4),
    }
    response = upload_zip(client, owner, stimulus_zip(rows, files))
    assert response.status_code == 422
    body = text(response)
    assert "set.zip was not imported" in body
    cells = [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.split('id="report"')[1], re.S)
    ]
    report = {(c[0], c[1]): c[2] for c in cells if len(c) == 3}
    assert "is not in the ZIP" in report["3", "missing.jpg"]
    assert "identity P002 has no ai headshot" in report["4", "—"]
    assert "is the same image as copy-a.jpg (row 5)" in report["6", "copy-b.jpg"]
    assert "is not a JPEG, PNG or WebP image" in report["7", "broken.jpg"]
    assert counts(app) == (0, 0)
    assert media_files(app) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"../evil.jpg": b"x"}, "uses '..' to lead outside the ZIP"),
        ({"/etc/evil.jpg": b"x"}, "is an absolute path"),
    ],
)
def test_zip_entries_leading_outside_are_refused(app, client, owner, entries, message):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            "manifest.csv", MANIFEST_HEADER + "\nP001,headshot,real,../evil.jpg,Canon,,,yes\n"
        )
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    response = upload_zip(client, owner, out.getvalue())
    assert response.status_code == 422
    assert message in text(response)
    assert counts(app) == (0, 0) and media_files(app) == []


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (
            stimulus_zip(
                ["P001,headshot,real,a.jpg"],
                {"a.jpg": photo(1)},
                header="identity,role,source,file",
            ),
            "set.zip",
            "is missing the column(s) generator",
        ),
        (photo(1, "PNG"), "set.zip", "The upload is not a ZIP archive"),
        (b"identity,role\nP001,headshot\n", "manifest.csv", "The upload is not a ZIP archive"),
        (stimulus_zip([], {}), "set.zip", "has a header but no rows"),
    ],
)
def test_bad_archives_get_a_report(app, client, owner, data, name, message):
    response = upload_zip(client, owner, data, name)
    assert response.status_code == 422
    assert message in text(response)
    assert counts(app) == (0, 0) and media_files(app) == []


def raw_manifest_zip(manifest: bytes) -> bytes:
    """Return a ZIP whose manifest.csv holds exactly these bytes, beside one photo."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.csv", manifest)
        archive.writestr("a.jpg", photo(1))
    return out.getvalue()


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (BOM, "is empty"),  # was a 500: IndexError on the first line
        (BOM + b"\r\n \n", "is empty"),
        (b"", "is empty"),
        (b" \n\t\n", "is empty"),
        (MANIFEST_HEADER.encode() + b"\n", "has a header but no rows"),
        (BOM + MANIFEST_HEADER.encode(), "has a header but no rows"),
        (MANIFEST_HEADER.encode() + b"\n,,,,,,,\n\n", "has a header but no rows"),
        (b"\xff\xfe" + MANIFEST_HEADER.encode("utf-16-le"), "is not UTF-8 text (byte 0xff)"),
        (
            MANIFEST_HEADER.encode() + b"\nP001,headshot,real,a.jpg,x,caf\xe9,,yes\n",
            "is not UTF-8 text (byte 0xe9)",
        ),
        (BOM + b",,,\n", "is missing the column(s) identity, role, source, file, generator"),
    ],
)
def test_empty_and_unreadable_manifests_get_a_report_not_a_500(
    app, client, owner, manifest, message
):
    response = upload_zip(client, owner, raw_manifest_zip(manifest))
    assert response.status_code == 422
    assert f"<td>manifest.csv</td>\n            <td>{message}" in text(response)
    assert counts(app) == (0, 0) and media_files(app) == []


def test_a_long_report_lists_the_first_problems_of_each_kind_and_counts_the_rest(
    app, client, owner
):
    rows = [f"P{i:04d},headshot,real,missing{i}.jpg,Canon,,,yes" for i in range(300)]
    response = upload_zip(client, owner, stimulus_zip(rows, {}))
    body = text(response)
    assert response.status_code == 422
    assert "600 problems to fix" in body
    # 300 files missing and 300 identities without an ai headshot: 20 of each are listed.
    assert body.count("<tr>") == 1 + 2 * 20
    assert "and 280 more problems of this kind: row 22, missing20.jpg: is not in the ZIP" in body
    assert "and 280 more problems of this kind: row 22: identity P0020 has no ai headshot" in body
    assert len(body) < 60_000


def test_a_manifest_of_many_bad_rows_stops_being_checked_with_a_note(app, client, owner):
    from survey.stimuli.manifest import MAX_ERRORS_CHECKED

    rows = [f"P{i:05d},face,real,m{i}.jpg,Canon,,,yes" for i in range(MAX_ERRORS_CHECKED)]
    response = upload_zip(client, owner, stimulus_zip(rows, {}))
    assert response.status_code == 422
    assert (
        f"checking stopped at row {MAX_ERRORS_CHECKED // 2 + 2} after {MAX_ERRORS_CHECKED}"
        in text(response)
    )


def test_a_zip_over_the_pixel_budget_is_refused_naming_the_limit(app, client, owner):
    app.config["STIMULUS_ZIP_MAX_MEGAPIXELS"] = 1
    rows, files = [], {}
    for i, source in enumerate(("real", "ai", "real")):
        code = f"P00{i // 2 + 1}"
        rows.append(f"{code},headshot,{source},{i}.png,Canon,,,yes")
        files[f"{i}.png"] = huge_png(600, 600)
    response = upload_zip(client, owner, stimulus_zip(rows, files))
    body = text(response)
    assert response.status_code == 422
    assert "The images of this ZIP add up to more than 1.0 megapixels" in body
    assert "2.png is 600×600 pixels" in body
    assert counts(app) == (0, 0) and media_files(app) == []


def test_a_zip_over_the_time_budget_is_refused_naming_the_limit(app, client, owner):
    app.config["STIMULUS_ZIP_MAX_SECONDS"] = 0
    response = upload_zip(client, owner, full_set())
    assert response.status_code == 422
    assert "Checking this ZIP took longer than one upload may (0 seconds)" in text(response)
    assert counts(app) == (0, 0) and media_files(app) == []


def test_missing_file_field_is_a_form_error(client, owner):
    response = client.post(
        f"/r/studies/{owner}/stimuli/zip", data={}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert "Choose a ZIP file to upload." in text(response)


def test_images_already_in_the_study_count_as_duplicates(app, client, owner):
    assert upload_zip(client, owner, full_set(("P001",), start=1)).status_code == 302
    again = upload_zip(client, owner, full_set(("P002",), start=3))  # P002-real.jpg = P001's probe
    assert again.status_code == 422
    assert "the same image is already in this study" in text(again)
    assert counts(app) == (1, 3)


def test_a_set_may_add_probes_to_identities_already_there(app, client, owner):
    rows = ["P001,headshot,real,r.jpg,Canon,woman,,yes", "P001,headshot,ai,a.jpg,GenX,,,yes"]
    assert (
        upload_zip(
            client, owner, stimulus_zip(rows, {"r.jpg": photo(1), "a.jpg": photo(2)})
        ).status_code
        == 302
    )
    probes = stimulus_zip(["P001,probe,photo,p.jpg,phone,,,yes"], {"p.jpg": photo(3)})
    assert upload_zip(client, owner, probes).status_code == 302
    assert counts(app) == (1, 3)


def test_descriptors_contradicting_the_study_are_refused(app, client, owner):
    assert upload_zip(client, owner, full_set(("P001",))).status_code == 302
    rows = ["P001,probe,photo,p.jpg,phone,man,30-44,yes"]
    response = upload_zip(client, owner, stimulus_zip(rows, {"p.jpg": photo(50)}))
    assert response.status_code == 422
    assert "identity P001 has gender 'man' here but 'woman' in the study" in text(response)
    assert counts(app) == (1, 3)


def test_a_failure_part_way_leaves_no_rows_and_no_files(app, client, owner, monkeypatch):
    real_store = media.store_image
    calls = []

    def failing_store(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk full")
        return real_store(*args, **kwargs)

    monkeypatch.setattr(media, "store_image", failing_store)
    with pytest.raises(OSError, match="disk full"):
        upload_zip(client, owner, full_set())
    assert len(calls) == 4
    assert counts(app) == (0, 0)
    assert media_files(app) == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


def test_a_failing_commit_leaves_no_files(app, client, owner, monkeypatch):
    def refuse():
        raise RuntimeError("commit failed")

    with app.app_context():
        monkeypatch.setattr(db.session, "commit", refuse)
        with pytest.raises(RuntimeError, match="commit failed"):
            upload_zip(client, owner, full_set())
        monkeypatch.undo()
    assert counts(app) == (0, 0)
    assert media_files(app) == []


def test_files_still_referenced_are_kept_when_cleaning_up(app, client, owner):
    assert upload_zip(client, owner, full_set(("P001",))).status_code == 302
    before = media_files(app)
    with app.app_context():
        keys = list(db.session.scalars(sa.select(Image.storage_key)))
        discard_unused(
            db.session.get(Study, owner), keys + [f"{owner}/00/" + "0" * 64 + "-original.jpg"]
        )
    assert media_files(app) == before


def test_a_failed_upload_keeps_the_files_a_deletion_still_needs_for_undo(
    app, client, owner, monkeypatch
):
    # The image is deleted (kept for undo), then the same image is uploaded again and the
    # upload fails: its clean-up must not remove the files (same keys) undo brings back.
    assert upload_image(client, owner, photo(1)).status_code == 302
    files = media_files(app)
    with app.app_context():
        image_id = db.session.scalar(sa.select(Image.id))
    assert client.post(f"/r/studies/{owner}/stimuli/images/{image_id}/delete").status_code == 302
    page = text(client.get(f"/r/studies/{owner}/stimuli"))
    undo_url = re.search(r'action="(/r/studies/\d+/undo/\d+)"', page).group(1)

    def refuse(action, **detail):
        raise RuntimeError("audit failed")

    # The upload fails after writing its files (its audit comes last, just before the commit).
    monkeypatch.setattr(audit, "record", refuse)
    with pytest.raises(RuntimeError, match="audit failed"):
        upload_image(client, owner, photo(1))
    monkeypatch.undo()
    assert media_files(app) == files
    assert client.post(undo_url).status_code == 302
    assert counts(app) == (1, 1)


def test_a_concurrent_upload_of_the_same_identity_gets_409_and_keeps_nothing(
    app, client, owner, monkeypatch
):
    from survey.researcher import stimuli_service

    assert upload_image(client, owner, photo(1)).status_code == 302
    files = media_files(app)

    def unseen(study, code, descriptors, consent):
        # As if another upload had created the identity after this one looked.
        identity = Identity(study=study, code=code)
        db.session.add(identity)
        return identity

    monkeypatch.setattr(stimuli_service, "_identity_for", unseen)
    response = upload_image(client, owner, photo(2), source="ai")
    assert response.status_code == 409
    assert "at the same time" in text(response)
    assert counts(app) == (1, 1)
    assert media_files(app) == files


# --- single images ----------------------------------------------------------------------------


def test_single_images_build_an_identity(app, client, owner):
    response = upload_image(
        client, owner, photo(1), identity="P010", gender="man", age_band="18-29"
    )
    assert response.status_code == 302
    assert (
        upload_image(
            client, owner, photo(2, "PNG"), "ai.png", identity="P010", source="ai"
        ).status_code
        == 302
    )
    assert (
        upload_image(
            client, owner, photo(3, "WEBP"), "p.webp", identity="P010", role="probe", source="photo"
        ).status_code
        == 302
    )
    assert counts(app) == (1, 3)
    assert len(media_files(app)) == 6
    with app.app_context():
        person = db.session.scalar(sa.select(Identity))
        assert (person.code, person.gender, person.age_band) == ("P010", "man", "18-29")
        kinds = sorted((im.source, im.content_type) for im in person.images)
        assert kinds == [("ai", "image/png"), ("photo", "image/webp"), ("real", "image/jpeg")]


def test_an_identity_lacking_a_headshot_is_flagged_in_the_gallery(client, owner):
    upload_image(client, owner, photo(1))
    body = text(client.get(f"/r/studies/{owner}/stimuli"))
    assert "Missing: ai headshot, probe photo (needed by match blocks)" in body


@pytest.mark.parametrize(
    ("data", "name", "fields", "status", "message"),
    [
        (
            b"this is text pretending to be a photo\n",
            "face.jpg",
            {},
            422,
            "is not a JPEG, PNG or WebP image",
        ),
        (
            b"PK\x03\x04 not a picture at all",
            "face.png",
            {},
            422,
            "is not a JPEG, PNG or WebP image",
        ),
        (photo(1, "GIF"), "face.gif", {}, 422, "is a GIF file; use a JPEG, PNG or WebP image"),
        (b"%PDF-1.4\n", "face.pdf", {}, 422, "is a PDF file"),
        (huge_png(), "huge.png", {}, 422, "is 20000×20000 pixels"),
        (b"", "empty.jpg", {}, 422, "empty.jpg: is empty"),
        (
            photo(1),
            "face.jpg",
            {"role": "probe", "source": "real"},
            400,
            "A probe must have the source photo, not real.",
        ),
        (
            photo(1),
            "face.jpg",
            {"role": "headshot", "source": "photo"},
            400,
            "A headshot must have the source real or ai, not photo.",
        ),
        (photo(1), "face.jpg", {"identity": "P 001"}, 400, "must be 1 to 32 letters, digits"),
        (photo(1), "face.jpg", {"identity": ""}, 400, "Give the identity's code"),
        (photo(1), "face.jpg", {"role": "portrait"}, 400, "Not a valid choice"),
        (photo(1), "face.jpg", {"generator": "x" * 201}, 400, "Field cannot be longer than 200"),
    ],
)
def test_bad_single_images_are_refused_with_a_message(
    app, client, owner, data, name, fields, status, message
):
    response = upload_image(client, owner, data, name, **fields)
    assert response.status_code == status
    assert message in text(response)
    assert counts(app) == (0, 0) and media_files(app) == []


def test_a_single_image_already_in_the_study_is_refused(app, client, owner):
    assert upload_image(client, owner, photo(1)).status_code == 302
    response = upload_image(client, owner, photo(1), "again.jpg", identity="P002", source="ai")
    assert response.status_code == 422
    assert "again.jpg: the same image is already in this study (P001, real headshot)." in text(
        response
    )
    assert counts(app) == (1, 1)


def test_a_single_image_contradicting_descriptors_is_refused(app, client, owner):
    assert upload_image(client, owner, photo(1), gender="woman").status_code == 302
    response = upload_image(client, owner, photo(2), source="ai", gender="man")
    assert response.status_code == 422
    assert "identity P001 has gender 'man' here but 'woman' in the study" in text(response)
    assert counts(app) == (1, 1)


def test_an_upload_over_the_size_limit_gets_413_with_a_clear_page(app, client, owner):
    app.config["MAX_CONTENT_LENGTH"] = 4096
    response = upload_zip(client, owner, full_set())
    assert response.status_code == 413
    body = text(response).lower()
    assert "upload is too large" in body and "nothing was stored" in body
    assert counts(app) == (0, 0)


# --- deletions and the frozen design ----------------------------------------------------------


def test_deleting_an_image_asks_first_and_can_be_undone_with_its_file(app, client, owner):
    upload_zip(client, owner, full_set(("P001",)))
    with app.app_context():
        image = db.session.scalar(sa.select(Image).where(Image.source == "ai"))
        image_id, public_id, keys = (
            image.id,
            image.public_id,
            {image.storage_key, image.display_key},
        )
        before = {c: getattr(image, c) for c in IMAGE_COLUMNS}
    url = f"/r/studies/{owner}/stimuli/images/{image_id}/delete"
    asked = client.get(url)
    assert asked.status_code == 200 and "Delete the ai headshot of P001?" in text(asked)
    assert counts(app) == (1, 3)
    response = client.post(url)
    assert response.status_code == 302
    assert counts(app) == (1, 2)
    # The file stays while the deletion can be undone; nothing shows it any more.
    left = {str(p.relative_to(app.config["MEDIA_DIR"])) for p in media_files(app)}
    assert len(left) == 6 and keys <= left
    assert client.get(f"/img/{public_id}").status_code == 404
    page = text(client.get(f"/r/studies/{owner}/stimuli"))
    assert "Deleted the ai headshot of P001." in page and ">Undo</button>" in page
    undo_url = re.search(r'action="(/r/studies/\d+/undo/\d+)"', page).group(1)
    assert client.post(undo_url).status_code == 302
    with app.app_context():
        back = db.session.get(Image, image_id)
        assert {c: getattr(back, c) for c in IMAGE_COLUMNS} == before
        actions = list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == ["stimuli.upload", "stimuli.delete_image", "image.undo_delete"]
    assert counts(app) == (1, 3)
    for key in keys:
        assert (Path(app.config["MEDIA_DIR"]) / key).read_bytes()
    served = client.get(f"/img/{public_id}")
    assert served.status_code == 200
    served.close()
    # Undone once: a second undo finds nothing to undo.
    again = client.post(undo_url)
    assert again.status_code == 409 and "nothing to undo" in text(again)


def test_deleting_an_identity_keeps_its_files_until_undone(app, client, owner):
    upload_zip(client, owner, full_set())
    with app.app_context():
        identity_id = db.session.scalar(sa.select(Identity.id).where(Identity.code == "P001"))
    url = f"/r/studies/{owner}/stimuli/identities/{identity_id}/delete"
    assert "Identity P001 and its 3 images are removed" in text(client.get(url))
    assert client.post(url).status_code == 302
    assert counts(app) == (1, 3)
    assert len(media_files(app)) == 12
    page = text(client.get(f"/r/studies/{owner}/stimuli"))
    assert "Deleted identity P001 and its 3 images." in page
    # The offer shows once, on the next page.
    assert "Deleted identity P001" not in text(client.get(f"/r/studies/{owner}/stimuli"))
    undo_url = re.search(r'action="(/r/studies/\d+/undo/\d+)"', page).group(1)
    assert client.post(undo_url).status_code == 302
    assert counts(app) == (2, 6)
    with app.app_context():
        assert db.session.get(Identity, identity_id).code == "P001"


def test_a_frozen_design_refuses_uploads_and_deletions_with_409(app, client, owner):
    upload_zip(client, owner, full_set(("P001",)))
    with app.app_context():
        study = db.session.get(Study, owner)
        study.design_frozen_at = datetime.now(UTC)
        db.session.commit()
        image_id = db.session.scalar(sa.select(Image.id))
        identity_id = db.session.scalar(sa.select(Identity.id))
    for response in (
        upload_zip(client, owner, full_set(("P002",), start=10)),
        upload_image(client, owner, photo(40)),
        client.post(f"/r/studies/{owner}/stimuli/images/{image_id}/delete"),
        client.post(f"/r/studies/{owner}/stimuli/identities/{identity_id}/delete"),
    ):
        assert response.status_code == 409
        assert "design is frozen" in text(response)
    assert counts(app) == (1, 3)
    page = text(client.get(f"/r/studies/{owner}/stimuli"))
    assert "The design froze when the study opened" in page
    assert "Check and import the set" not in page and "Delete this image" not in page


# --- who may do what --------------------------------------------------------------------------


def _urls(study_id: int, image_id: int, identity_id: int) -> list[tuple[str, str]]:
    """Every stimuli URL of a study, with its method."""
    base = f"/r/studies/{study_id}/stimuli"
    return [
        ("GET", base),
        ("POST", f"{base}/zip"),
        ("POST", f"{base}/image"),
        ("POST", f"{base}/images/{image_id}/delete"),
        ("POST", f"{base}/identities/{identity_id}/delete"),
    ]


@pytest.fixture
def other_study(app, make_researcher):
    """Another researcher's study with one identity and image; returns (study, image, identity)."""
    stranger = make_researcher(email="other@example.org")
    study_id = make_study(app, stranger, slug="other")
    with app.app_context():
        person = Identity(study_id=study_id, code="P900")
        db.session.add(person)
        db.session.flush()
        image = Image(
            study_id=study_id,
            identity_id=person.id,
            role="headshot",
            source="real",
            sha256="f" * 64,
            width=100,
            height=100,
            content_type="image/jpeg",
            byte_size=1,
            storage_key="x/a.jpg",
            display_key="x/b.jpg",
        )
        db.session.add(image)
        db.session.commit()
        return study_id, image.id, person.id


def test_a_strangers_study_answers_404_on_every_url(app, client, owner, other_study):
    for method, url in _urls(*other_study):
        response = client.open(url, method=method, data={}, content_type="multipart/form-data")
        assert response.status_code == 404, url
    assert counts(app) == (1, 1)


def test_another_studys_image_in_my_studys_url_is_404(app, client, owner, other_study):
    _study, image_id, identity_id = other_study
    assert client.post(f"/r/studies/{owner}/stimuli/images/{image_id}/delete").status_code == 404
    assert (
        client.post(f"/r/studies/{owner}/stimuli/identities/{identity_id}/delete").status_code
        == 404
    )
    assert counts(app) == (1, 1)


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_viewers_look_and_editors_also_change(
    app, client, make_researcher, other_study, role, auth
):
    study_id, image_id, identity_id = other_study
    rid = make_researcher(email=f"{role}@example.org")
    with app.app_context():
        db.session.add(StudyMember(study_id=study_id, researcher_id=rid, role=role))
        db.session.commit()
    auth.sign_in(rid)
    page = client.get(f"/r/studies/{study_id}/stimuli")
    assert page.status_code == 200
    assert ("Check and import the set" in text(page)) is (role == "editor")
    posts = [url for method, url in _urls(study_id, image_id, identity_id) if method == "POST"]
    expected = 403 if role == "viewer" else None
    if expected:
        for url in posts:
            assert (
                client.post(url, data={}, content_type="multipart/form-data").status_code == 403
            ), url
        assert counts(app) == (1, 1)
    else:
        assert upload_image(client, study_id, photo(7), identity="P901").status_code == 302
        assert client.post(posts[2]).status_code == 302
        assert counts(app) == (2, 1)


def test_signed_out_visitors_are_sent_to_sign_in(app, client, make_researcher):
    study_id = make_study(app, make_researcher())
    response = client.get(f"/r/studies/{study_id}/stimuli")
    assert response.status_code == 302 and "/r/login" in response.headers["Location"]


def test_uploads_need_the_csrf_token(app, client, owner):
    app.config["WTF_CSRF_ENABLED"] = True
    refused = upload_zip(client, owner, full_set())
    assert refused.status_code == 400
    assert "security token" in text(refused)
    assert counts(app) == (0, 0) and media_files(app) == []
    page = client.get(f"/r/studies/{owner}/stimuli").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    accepted = client.post(
        f"/r/studies/{owner}/stimuli/zip",
        data={"csrf_token": token, "archive": (io.BytesIO(full_set()), "set.zip")},
        content_type="multipart/form-data",
    )
    assert accepted.status_code == 302
    assert counts(app) == (2, 6)
