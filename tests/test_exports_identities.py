"""identities.csv: the identity descriptors the report tests as moderators."""

from __future__ import annotations

import io
import zipfile

import sqlalchemy as sa

from analysis import io as analysis_io
from survey import exports
from survey.extensions import db
from survey.models import Identity
from tests.test_exports import build_study, read_csv


def test_identities_csv_lists_every_identity_with_its_descriptors(app):
    with app.app_context():
        study_id = build_study()
        first = db.session.scalars(
            sa.select(Identity).where(Identity.study_id == study_id, Identity.code == "P001")
        ).one()
        first.age_band, first.ethnicity = "18-29", "=cmd"
        db.session.commit()
        text = "".join(exports.identities_csv(study_id))
        frame = exports.identities_dataframe(study_id)
    assert text.splitlines()[0] == "identity,gender,age_band,ethnicity"
    rows = read_csv(text)
    assert [r["identity"] for r in rows] == ["P001", "P002", "P003", "P004"]
    assert rows[0] == {
        "identity": "P001",
        "gender": "woman",
        "age_band": "18-29",
        "ethnicity": "'=cmd",
    }
    assert rows[1] == {"identity": "P002", "gender": "man", "age_band": "", "ethnicity": ""}
    # the analysis gets the described columns only, cells as stored
    assert list(frame.columns) == ["identity", "gender", "age_band", "ethnicity"]
    assert frame.loc[0, "ethnicity"] == "=cmd"
    # read back by the analysis, the spreadsheet guard removed
    table = analysis_io.validate_identities(analysis_io._read_csv(io.StringIO(text)))
    assert table.loc[0, "ethnicity"] == "=cmd" and table.loc[1, "age_band"] == ""


def test_no_descriptor_means_no_moderator_table(app):
    with app.app_context():
        study_id = build_study()
        db.session.execute(Identity.__table__.update().values(gender=""))
        db.session.commit()
        assert exports.identities_dataframe(study_id) is None


def test_codebook_and_psychds_carry_identities(app, tmp_path):
    with app.app_context():
        study_id = build_study()
        rows = read_csv("".join(exports.codebook_csv(study_id)))
        blob = b"".join(exports.psychds_zip(study_id))
        text = "".join(exports.identities_csv(study_id))
    described = {(r["file"], r["name"]) for r in rows}
    for name in exports.IDENTITY_COLUMNS:
        assert ("identities.csv", name) in described
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        member = "data/study-faces2025_table-identities_data.csv"
        assert archive.read(member).decode() == text
    path = tmp_path / "export.zip"
    path.write_bytes(blob)
    # load() reads it beside the trials file in the ZIP (this study's ratings are not all valid
    # for the analysis, so the table is read as load() reads it)
    table = analysis_io._zip_identities(path, f"{path}:data/study-faces2025_data.csv")
    assert table is not None and list(table["gender"])[:2] == ["woman", "man"]
