"""Exports (trials, participants, stimuli, codebook, psych-DS): streamed, matching the contract."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from analysis import io as analysis_io
from survey import exports
from survey.extensions import db
from survey.models import (
    AuditEvent,
    Block,
    Identity,
    Image,
    Participant,
    RecruitmentId,
    Response,
    Study,
    StudyMember,
    Trial,
)

T0 = datetime(2025, 3, 1, 9, 30, 0, tzinfo=UTC)

TRUST = {
    "key": "trust",
    "question": "How much do you trust this person?",
    "low_anchor": "Not at all",
    "high_anchor": "Completely",
    "min": 1,
    "max": 7,
}
WARMTH = {
    "key": "warmth",
    "question": "How warm is this person?",
    "low_anchor": "Cold",
    "high_anchor": "Warm",
    "min": -3,
    "max": 3,
}


def _image(study: Study, identity: Identity, role: str, source: str, n: int) -> Image:
    """Add an image row (no file: exports read rows only)."""
    sha = f"{n:064x}"
    image = Image(
        study=study,
        identity=identity,
        role=role,
        source=source,
        generator="=HYPERLINK(evil)" if source == "ai" else "Canon R5",
        public_id=f"img{n:03d}",
        sha256=sha,
        width=600 + n,
        height=800,
        content_type="image/jpeg",
        byte_size=1000,
        storage_key=f"k/{sha}-o.jpg",
        display_key=f"k/{sha}-d.jpg",
    )
    db.session.add(image)
    return image


def build_study(slug: str = "faces-2025") -> int:
    """Create a study with four identities, four blocks and participants of every kind."""
    study = Study(slug=slug, title="Faces 2025", description="Real vs AI headshots.")
    db.session.add(study)
    people = {}
    images = {}
    n = 0
    for code, gender in (("P001", "woman"), ("P002", "man"), ("P003", "woman"), ("P004", "man")):
        person = Identity(study=study, code=code, gender=gender)
        people[code] = person
        for role, source in (("headshot", "real"), ("headshot", "ai"), ("probe", "photo")):
            n += 1
            images[code, source] = _image(study, person, role, source, n)
    blocks = {
        "recognition": Block(
            study=study,
            position=1,
            name="recognition",
            task="match",
            settings={"attention_checks": [2]},
        ),
        "impressions": Block(
            study=study,
            position=2,
            name="impressions",
            task="rate",
            settings={"scales": [TRUST, WARMTH]},
        ),
        "detection": Block(
            study=study, position=3, name="detection", task="detect", settings={"confidence": False}
        ),
        "preference": Block(study=study, position=4, name="preference", task="choose", settings={}),
    }
    db.session.add_all(blocks.values())
    db.session.flush()

    def participant(public_id, list_index, status="completed", **kw):
        kw = {"device": "mobile", "source": "prolific", **kw}
        p = Participant(
            study=study,
            public_id=public_id,
            list_index=list_index,
            seed=1,
            status=status,
            started_at=T0,
            **kw,
        )
        db.session.add(p)
        db.session.flush()
        return p

    def trial(p, position, block, code, condition, answers, **kw):
        shown = kw.pop("image", None) or images[code, condition or "real"]
        t = Trial(
            participant=p,
            block=blocks[block],
            position=position,
            task=blocks[block].task,
            identity=people[code],
            condition=condition,
            image=shown,
            **kw,
        )
        db.session.add(t)
        db.session.flush()
        for measure, value, rt in answers:
            db.session.add(
                Response(trial=t, participant_id=p.id, measure=measure, value=value, rt_ms=rt)
            )
        return t

    def full_schedule(p, answers_same="1", warmth="-2", attention="1"):
        for t in _full_schedule(p, answers_same, warmth, attention):
            # Shown 10 s apart, each answered 2.5 s later (with microseconds the export cuts).
            t.shown_at = T0 + timedelta(seconds=10 * t.position, microseconds=123_456)
            t.answered_at = t.shown_at + timedelta(seconds=2, microseconds=500_999)

    def _full_schedule(p, answers_same, warmth, attention):
        yield trial(
            p,
            1,
            "recognition",
            "P004",
            "real",
            [("same", "1", 900.0)],
            is_practice=True,
            probe_image=images["P004", "photo"],
            probe_identity=people["P004"],
            is_match=True,
        )
        yield trial(
            p,
            2,
            "recognition",
            "P001",
            "real",
            [("same", answers_same, 812.5), ("confidence", "4", 400.0)],
            probe_image=images["P001", "photo"],
            probe_identity=people["P001"],
            is_match=True,
            timing="untimed",
        )
        yield trial(
            p,
            3,
            "recognition",
            "P002",
            "ai",
            [("confidence", "3", 300.0), ("same", attention, 700.0)],
            probe_image=images["P003", "photo"],
            probe_identity=people["P003"],
            is_match=False,
            is_attention=True,
            attention_answer="1",
        )
        yield trial(
            p, 4, "impressions", "P003", "ai", [("trust", "5", 1500.0), ("warmth", warmth, None)]
        )
        yield trial(p, 5, "detection", "P002", "real", [("source", "ai", 2000.0)])
        yield trial(
            p,
            6,
            "preference",
            "P001",
            None,
            [("choice", "real", 1100.0)],
            other_image=images["P001", "ai"],
            left_source="real",
        )

    first = participant(
        "b-second",
        1,
        completed_at=T0 + timedelta(minutes=5, seconds=30.25),
        demographics={"age_band": "30-44", "comment": "=1+1"},
        language="de",
    )
    full_schedule(first, answers_same="0", attention="0")
    db.session.add(
        RecruitmentId(
            participant=first, study_id=study.id, platform="prolific", external_id="PID-77"
        )
    )
    early = participant(
        "-early",
        0,
        status="in_progress",
        device=None,
        source="link",
        demographics={"list": "clash"},
    )
    trial(
        early,
        1,
        "recognition",
        "P004",
        "real",
        [("same", "1", 900.0)],
        is_practice=True,
        probe_image=images["P004", "photo"],
        probe_identity=people["P004"],
        is_match=True,
    )
    trial(
        early,
        2,
        "recognition",
        "P001",
        "ai",
        [("same", "1", 640.0), ("confidence", "5", 210.0)],
        probe_image=images["P001", "photo"],
        probe_identity=people["P001"],
        is_match=True,
        timing="timed",
        refresh_hz=59.94,
        fixation_ms_achieved=500.5,
        exposure_ms_achieved=1501.5,
        isi_ms_achieved=0.0,
    )
    # A choose trial with the real headshot on the right, stored before trials had times.
    trial(
        early,
        3,
        "preference",
        "P002",
        None,
        [("choice", "ai", 950.0)],
        image=images["P002", "ai"],
        other_image=images["P002", "real"],
        left_source="ai",
    )
    left = participant("a-withdrawn", 0, status="withdrawn")
    full_schedule(left)
    preview = participant("c-preview", 0, is_preview=True)
    full_schedule(preview)
    db.session.commit()
    return study.id


def read_csv(text: str) -> list[dict[str, str]]:
    """Parse CSV text into dict rows."""
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def study_id(app):
    """A built study's id."""
    with app.app_context():
        return build_study()


# --- cells ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+49 30 1234", "'+49 30 1234"),
        ("-x", "'-x"),
        ("@cmd", "'@cmd"),
        ("\tlead", "'\tlead"),
        ("\rlead", "'\rlead"),
        ("-0.5", "-0.5"),
        ("-3", "-3"),
        ("+2", "+2"),
        ("1e-3", "1e-3"),
        ("plain", "plain"),
        ("", ""),
        (None, ""),
        (True, "1"),
        (False, "0"),
        (-0.5, "-0.5"),
        (812.0, "812"),
        (812.25, "812.25"),
        (-7, "-7"),
        (float("nan"), ""),
    ],
)
def test_formula_like_cells_are_neutralised_and_numbers_stay_numbers(value, cell):
    assert exports.safe_cell(value) == cell


def test_line_breaks_inside_cells_are_quoted_and_rows_end_with_lf():
    assert (
        exports.cells._rows_text([["a\rb", "c\nd", 1], ["plain", "", 2]])
        == '"a\rb","c\nd",1\nplain,,2\n'
    )
    assert exports.cells._rows_text([["x", "y"]]) == "x,y\n"


# --- trials.csv -------------------------------------------------------------------------------


EXPECTED_TRIALS = """\
study,participant,list,trial,block,task,identity,condition,probe,is_match,measure,value,correct,rt_ms,attention_check,rt_flag,simulated,studied,real_side,image,image_right,probe_image,shown_at,answered_at,timing,refresh_hz,fixation_ms_achieved,exposure_ms_achieved,mask_ms_achieved,isi_ms_achieved
faces-2025,'-early,A,2,recognition,match,P001,ai,P001,1,confidence,5,,210,0,,0,,,img002,,img003,,,timed,59.94,500.5,1501.5,,0
faces-2025,'-early,A,2,recognition,match,P001,ai,P001,1,same,1,1,640,0,,0,,,img002,,img003,,,timed,59.94,500.5,1501.5,,0
faces-2025,'-early,A,3,preference,choose,P002,,,,choice,ai,,950,0,,0,,right,img005,img004,,,,,,,,,
faces-2025,b-second,B,2,recognition,match,P001,real,P001,1,confidence,4,,400,0,,0,,,img001,,img003,2025-03-01T09:30:20.123Z,2025-03-01T09:30:22.624Z,untimed,,,,,
faces-2025,b-second,B,2,recognition,match,P001,real,P001,1,same,0,0,812.5,0,,0,,,img001,,img003,2025-03-01T09:30:20.123Z,2025-03-01T09:30:22.624Z,untimed,,,,,
faces-2025,b-second,B,3,recognition,match,P002,ai,P003,0,attention,0,0,700,1,,0,,,img005,,img009,2025-03-01T09:30:30.123Z,2025-03-01T09:30:32.624Z,,,,,,
faces-2025,b-second,B,4,impressions,rate,P003,ai,,,trust,5,,1500,0,,0,,,img008,,,2025-03-01T09:30:40.123Z,2025-03-01T09:30:42.624Z,,,,,,
faces-2025,b-second,B,4,impressions,rate,P003,ai,,,warmth,-2,,,0,,0,,,img008,,,2025-03-01T09:30:40.123Z,2025-03-01T09:30:42.624Z,,,,,,
faces-2025,b-second,B,5,detection,detect,P002,real,,,source,ai,0,2000,0,,0,,,img004,,,2025-03-01T09:30:50.123Z,2025-03-01T09:30:52.624Z,,,,,,
faces-2025,b-second,B,6,preference,choose,P001,,,,choice,real,,1100,0,,0,,left,img001,img002,,2025-03-01T09:31:00.123Z,2025-03-01T09:31:02.624Z,,,,,,
"""


def test_trials_csv_matches_the_contract_row_for_row(app, study_id):
    with app.app_context():
        text = "".join(exports.trials_csv(study_id))
    assert text == EXPECTED_TRIALS


def test_trials_csv_header_is_exactly_the_contract_columns(app, study_id):
    with app.app_context():
        text = "".join(exports.trials_csv(study_id))
    assert text.splitlines()[0].split(",") == [
        *analysis_io.TRIAL_COLUMNS,
        *analysis_io.DERIVED_TRIAL_COLUMNS,
        *analysis_io.TRIAL_DETAIL_COLUMNS,
        *exports.TIMING_COLUMNS,
    ]


def test_implausible_response_times_are_kept_and_flagged(app, study_id, tmp_path):
    """Below 50 ms is 'fast', above 10 minutes 'slow': exported as measured, never dropped."""
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Response).where(Response.rt_ms.is_not(None)).order_by(Response.id)
        ).all()
        planted = (12.0, 49.9, 50.0, 600000.0, 600000.5, 3_600_000.0)
        # The first rows get the planted times; the others keep their own.
        for response, rt in zip(rows, planted, strict=False):
            response.rt_ms = rt
        db.session.commit()
        text = "".join(exports.trials_csv(study_id))
        frame = exports.trials_dataframe(study_id)
        (tmp_path / "trials.csv").write_text(text)
    exported = [(r["rt_ms"], r["rt_flag"]) for r in read_csv(text)]
    expected = {
        "12": "fast",
        "49.9": "fast",
        "50": "",
        "600000": "",
        "600000.5": "slow",
        "3600000": "slow",
        "": "",
    }
    assert all(flag == expected.get(rt, "") for rt, flag in exported), exported
    assert {flag for _rt, flag in exported} == {"fast", "slow", ""}
    # The analysis reads the flag (and checks it against rt_ms) from the file and the frame.
    data = analysis_io.load(tmp_path / "trials.csv", scale_ranges={"warmth": (-3, 3)})
    assert sorted(data.trials["rt_flag"].tolist()) == sorted(r["rt_flag"] for r in read_csv(text))
    assert frame["rt_flag"].tolist() == [r["rt_flag"] for r in read_csv(text)]


def test_attention_rows_score_the_instructed_answer(app, study_id):
    with app.app_context():
        p = db.session.scalar(sa.select(Participant).where(Participant.public_id == "b-second"))
        t = db.session.scalar(
            sa.select(Trial).where(Trial.participant_id == p.id, Trial.position == 3)
        )
        db.session.execute(
            sa.update(Response)
            .where(Response.trial_id == t.id, Response.measure == "same")
            .values(value="1")
        )
        db.session.commit()
        rows = read_csv("".join(exports.trials_csv(study_id)))
    attention = [r for r in rows if r["attention_check"] == "1"]
    assert [(r["measure"], r["value"], r["correct"]) for r in attention] == [
        ("attention", "1", "1")
    ]


@pytest.mark.parametrize(
    ("task", "instructed", "given", "left_source", "passed"),
    [
        ("choose", "left", "real", "real", True),
        ("choose", "left", "ai", "real", False),
        ("choose", "right", "ai", "real", True),
        ("rate", "2", "2", None, True),
        ("rate", "2", "3", None, False),
        ("detect", "ai", "ai", None, True),
        ("match", "same", "1", None, True),
        ("match", "0", "1", None, False),
    ],
)
def test_attention_answers_are_compared_per_task_convention(
    task, instructed, given, left_source, passed
):
    assert exports.attention_passed(task, given, instructed, left_source) is passed


def test_trials_csv_is_read_by_the_analysis_package(app, study_id, tmp_path):
    with app.app_context():
        (tmp_path / "trials.csv").write_text("".join(exports.trials_csv(study_id)))
        (tmp_path / "participants.csv").write_text("".join(exports.participants_csv(study_id)))
        ranges = exports.scale_ranges(study_id)
    data = analysis_io.load(tmp_path, scale_ranges=ranges)
    assert sorted(data.trials["participant"].unique()) == ["-early", "b-second"]
    assert set(data.participants["status"]) == {"completed", "partial"}


def test_trials_dataframe_is_the_same_table_as_trials_csv(app, study_id):
    with app.app_context():
        frame = exports.trials_dataframe(study_id)
        text = "".join(exports.trials_csv(study_id))
        ranges = exports.scale_ranges(study_id)
    assert list(frame.columns) == list(exports.TRIAL_COLUMNS)
    from_csv = analysis_io.validate_trials(
        analysis_io._read_csv(io.StringIO(text)), "trials.csv", ranges
    )
    from_frame = analysis_io.load(frame, scale_ranges=ranges).trials
    assert analysis_io.canonical_trials_csv(from_csv) == analysis_io.canonical_trials_csv(
        from_frame
    )
    assert frame["is_match"].tolist()[:2] == [1, 1]
    assert frame["rt_ms"].isna().sum() == 1


def test_empty_study_exports_headers_only(app):
    with app.app_context():
        study = Study(slug="empty", title="Empty")
        db.session.add(study)
        db.session.commit()
        assert "".join(exports.trials_csv(study.id)) == ",".join(exports.TRIAL_COLUMNS) + "\n"
        assert (
            "".join(exports.participants_csv(study.id))
            == ",".join(
                exports.PARTICIPANT_COLUMNS
                + exports.EXPIRY_COLUMNS
                + exports.SIMULATED_COLUMNS
                + exports.LANGUAGE_COLUMNS
                + exports.BLOCK_ORDER_COLUMNS
            )
            + "\n"
        )
        assert len(exports.trials_dataframe(study.id)) == 0


def test_unknown_study_is_a_value_error(app):
    with app.app_context():
        with pytest.raises(ValueError, match="study_id 999"):
            list(exports.trials_csv(999))


def test_trials_stream_in_chunks(app, study_id, monkeypatch):
    monkeypatch.setattr(exports.cells, "CHUNK_ROWS", 2)
    with app.app_context():
        chunks = list(exports.trials_csv(study_id))
    assert len(chunks) >= 4
    assert "".join(chunks) == EXPECTED_TRIALS


# --- participants.csv -------------------------------------------------------------------------


def test_participants_csv_has_contract_columns_then_demographics(app, study_id):
    with app.app_context():
        text = "".join(exports.participants_csv(study_id))
    rows = read_csv(text)
    assert text.splitlines()[0] == (
        "participant,list,status,started_at,completed_at,duration_s,device,source,"
        "attention_passed,attention_total,expired_at,simulated,language,block_order,"
        "block_order_row,age_band,comment,demographic_list"
    )
    assert rows == [
        {
            "participant": "'-early",
            "list": "A",
            "status": "partial",
            "started_at": "2025-03-01T09:30:00Z",
            "completed_at": "",
            "duration_s": "",
            "device": "",
            "source": "link",
            "attention_passed": "0",
            "attention_total": "0",
            "expired_at": "",
            "simulated": "0",
            "language": "en",
            "block_order": "",
            "block_order_row": "",
            "age_band": "",
            "comment": "",
            "demographic_list": "clash",
        },
        {
            "participant": "b-second",
            "list": "B",
            "status": "completed",
            "started_at": "2025-03-01T09:30:00Z",
            "completed_at": "2025-03-01T09:35:30Z",
            "duration_s": "330.2",
            "device": "mobile",
            "source": "prolific",
            "attention_passed": "0",
            "attention_total": "1",
            "expired_at": "",
            "simulated": "0",
            "language": "de",
            "block_order": "",
            "block_order_row": "",
            "age_band": "30-44",
            "comment": "'=1+1",
            "demographic_list": "",
        },
    ]


def test_recruitment_ids_only_when_asked_for(app, study_id):
    with app.app_context():
        without = "".join(exports.participants_csv(study_id))
        with_ids = read_csv("".join(exports.participants_csv(study_id, include_recruitment=True)))
        trials = "".join(exports.trials_csv(study_id))
    assert "PID-77" not in without and "recruitment" not in without
    assert [(r["recruitment_platform"], r["recruitment_id"]) for r in with_ids] == [
        ("", ""),
        ("prolific", "PID-77"),
    ]
    assert "PID-77" not in trials


def test_participants_dataframe_matches_the_csv(app, study_id):
    with app.app_context():
        frame = exports.participants_dataframe(study_id)
    assert frame["participant"].tolist() == ["-early", "b-second"]
    assert frame["attention_total"].tolist() == [0, 1]
    assert frame["duration_s"].iloc[1] == pytest.approx(330.2)


# --- stimuli.csv and the codebook -------------------------------------------------------------


def test_stimuli_csv_lists_every_image(app, study_id):
    with app.app_context():
        text = "".join(exports.stimuli_csv(study_id))
    rows = read_csv(text)
    assert text.splitlines()[0] == "image,identity,role,source,generator,sha256,width,height"
    assert len(rows) == 12
    assert rows[0] == {
        "image": "img002",
        "identity": "P001",
        "role": "headshot",
        "source": "ai",
        "generator": "'=HYPERLINK(evil)",
        "sha256": f"{2:064x}",
        "width": "602",
        "height": "800",
    }
    assert [r["source"] for r in rows[:3]] == ["ai", "real", "photo"]


def test_codebook_describes_every_column_of_every_file(app, study_id):
    with app.app_context():
        rows = read_csv("".join(exports.codebook_csv(study_id)))
        document = json.loads(exports.codebook_json(study_id))
        participants_header = "".join(exports.participants_csv(study_id, True)).splitlines()[0]
    described = {(r["file"], r["name"]) for r in rows}
    for name in exports.TRIAL_COLUMNS:
        assert ("trials.csv", name) in described
    for name in participants_header.split(","):
        assert ("participants.csv", name) in described
    for name in exports.STIMULI_COLUMNS:
        assert ("stimuli.csv", name) in described
    value = next(r for r in rows if r["file"] == "trials.csv" and r["name"] == "value")
    assert "trust (impressions): 1 (Not at all) to 7 (Completely)" in value["values"]
    assert "warmth (impressions): -3 (Cold) to 3 (Warm)" in value["values"]
    measures = {m["measure"]: m for m in document["measures"]}
    assert set(measures) == {
        "same",
        "confidence",
        "attention",
        "trust",
        "warmth",
        "source",
        "choice",
    }
    assert measures["warmth"]["min"] == -3 and measures["trust"]["high_anchor"] == "Completely"
    assert document["columns"] == [dict(r) for r in rows]


def test_codebook_lists_the_trials_columns_in_the_files_order(app, study_id):
    with app.app_context():
        rows = read_csv("".join(exports.codebook_csv(study_id)))
    trials = [r for r in rows if r["file"] == "trials.csv"]
    assert [r["name"] for r in trials] == list(exports.TRIAL_COLUMNS)
    by_name = {r["name"]: r for r in trials}
    assert by_name["real_side"]["values"] == "left, right, empty"
    assert by_name["shown_at"]["type"] == by_name["answered_at"]["type"] == "datetime"
    assert "UTC" in by_name["shown_at"]["description"]
    assert "stimuli.csv" in by_name["image"]["description"]


def _contract_table(heading: str) -> list[str]:
    """Return the column names of a table of docs/DATA_CONTRACT.md, in order."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "DATA_CONTRACT.md").read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return [name for name in re.findall(r"^\| ([a-z_]+) \|", section, re.M) if name != "column"]


def test_the_data_contract_lists_exactly_the_trials_columns(app, study_id):
    with app.app_context():
        header = "".join(exports.trials_csv(study_id)).splitlines()[0].split(",")
    assert _contract_table("## trials.csv") == header == list(exports.TRIAL_COLUMNS)


# --- what each trial showed, where and when ---------------------------------------------------


def test_trial_details_name_the_images_shown_and_the_real_side(app, study_id):
    with app.app_context():
        rows = read_csv("".join(exports.trials_csv(study_id)))
        stimuli = {r["image"]: r for r in read_csv("".join(exports.stimuli_csv(study_id)))}
    by_task = {
        task: [r for r in rows if r["task"] == task]
        for task in ("match", "rate", "detect", "choose")
    }
    assert all(by_task.values())
    for row in rows:
        shown = stimuli[row["image"]]
        assert shown["role"] == "headshot" and shown["identity"] == row["identity"]
    for task in ("match", "rate", "detect"):
        for row in by_task[task]:
            assert row["real_side"] == row["image_right"] == ""
            assert stimuli[row["image"]]["source"] == row["condition"]
    for row in by_task["match"]:
        probe = stimuli[row["probe_image"]]
        assert probe["role"] == "probe" and probe["identity"] == row["probe"]
    for row in by_task["rate"] + by_task["detect"]:
        assert row["probe_image"] == ""
    sides = set()
    for row in by_task["choose"]:
        left, right = stimuli[row["image"]], stimuli[row["image_right"]]
        assert left["identity"] == right["identity"] == row["identity"]
        assert {left["source"], right["source"]} == {"real", "ai"}
        assert row["real_side"] == ("left" if left["source"] == "real" else "right")
        assert row["probe_image"] == ""
        sides.add(row["real_side"])
    # The fixture puts the real headshot on each side once.
    assert sides == {"left", "right"}


def test_trial_times_are_utc_with_a_z_and_never_answered_before_shown(app, study_id):
    with app.app_context():
        rows = read_csv("".join(exports.trials_csv(study_id)))
        frame = exports.trials_dataframe(study_id)
    timed = [r for r in rows if r["shown_at"]]
    assert {r["task"] for r in timed} == {"match", "rate", "detect", "choose"}
    pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    for row in timed:
        assert pattern.fullmatch(row["shown_at"]) and pattern.fullmatch(row["answered_at"])
        shown = datetime.fromisoformat(row["shown_at"].replace("Z", "+00:00"))
        answered = datetime.fromisoformat(row["answered_at"].replace("Z", "+00:00"))
        assert shown <= answered
        # Microseconds are cut, not rounded: 2.500999 s later reads as 2.5 s.
        assert answered - shown == timedelta(seconds=2, milliseconds=501) or (
            answered - shown == timedelta(seconds=2, milliseconds=500)
        )
    # Trials stored before the columns existed export them empty.
    assert all(
        r["shown_at"] == r["answered_at"] == "" for r in rows if r["participant"] == "'-early"
    )
    assert frame["shown_at"].tolist() == [r["shown_at"] for r in rows]
    assert frame["real_side"].tolist() == [r["real_side"] for r in rows]


def test_ms_times_cut_microseconds_and_convert_to_utc():
    from datetime import timezone

    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2025, 3, 1, 11, 30, 20, 999_999, tzinfo=plus_two)
    assert exports.cells.iso_utc_ms(moment) == "2025-03-01T09:30:20.999Z"
    assert exports.cells.iso_utc_ms(datetime(2025, 3, 1, 9, 30)) == "2025-03-01T09:30:00.000Z"
    assert exports.cells.iso_utc_ms(None) == ""


# --- psych-DS ---------------------------------------------------------------------------------


def test_psychds_zip_holds_description_and_tables(app, study_id, tmp_path):
    with app.app_context():
        blob = b"".join(exports.psychds_zip(study_id))
        trials = "".join(exports.trials_csv(study_id))
        stimuli = "".join(exports.stimuli_csv(study_id))
    path = tmp_path / "export.zip"
    path.write_bytes(blob)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        assert {
            "dataset_description.json",
            "data/study-faces2025_data.csv",
            "data/study-faces2025_table-participants_data.csv",
            "data/study-faces2025_table-stimuli_data.csv",
        } <= names
        description = json.loads(archive.read("dataset_description.json"))
        assert archive.read("data/study-faces2025_data.csv").decode() == trials
        assert archive.read("data/study-faces2025_table-stimuli_data.csv").decode() == stimuli
        headers = set()
        for name in names:
            if name.startswith("data/"):
                headers |= set(archive.read(name).decode().splitlines()[0].split(","))
    assert description["@context"] == "https://schema.org/"
    assert description["@type"] == "Dataset"
    assert description["name"] == "Faces 2025"
    assert description["description"]
    measured = {v["name"] for v in description["variableMeasured"]}
    # psych-DS: every column of every data file is listed in variableMeasured.
    assert headers <= measured
    assert "rt_flag" in measured
    assert "recruitment_id" not in measured
    data = analysis_io.load(path, scale_ranges={"warmth": (-3, 3)})
    assert len(data.trials) == 10 and len(data.participants) == 2


# --- the exports page and downloads -----------------------------------------------------------


@pytest.fixture
def member(app, client, make_researcher, study_id, auth):
    """Sign in a researcher with the given role on the built study; returns a function."""

    def make(role: str = "viewer") -> int:
        rid = make_researcher(email=f"{role}@example.org")
        with app.app_context():
            db.session.add(StudyMember(study_id=study_id, researcher_id=rid, role=role))
            db.session.commit()
        auth.sign_in(rid)
        return rid

    return make


def download(client, study_id: int, name: str, **form):
    """POST the download form of one export."""
    return client.post(f"/r/studies/{study_id}/exports/{name}", data=form)


def audit_events(app) -> list[tuple[str, dict]]:
    """Return (action, detail) of every audit event, oldest first."""
    with app.app_context():
        return [
            (e.action, e.detail)
            for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))
        ]


def test_exports_page_lists_every_file_with_counts(client, study_id, member):
    member("editor")
    response = client.get(f"/r/studies/{study_id}/exports")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "2 participants are exported" in body and "1 completed and 1 partial" in body
    assert "Preview runs (1) and withdrawn participants (1)" in body
    for name in (
        "trials.csv",
        "participants.csv",
        "stimuli.csv",
        "codebook.csv",
        "codebook.json",
        "psych-ds.zip",
    ):
        assert f'action="/r/studies/{study_id}/exports/{name}"' in body
    # The recruitment-id box sits on the two files that hold participants, with its warning.
    assert body.count('type="checkbox"') == 2
    assert body.count("personal data that link the answers to a person") == 2


def test_exports_page_says_one_participant_in_the_singular(app, client, study_id, member):
    member("editor")
    with app.app_context():
        db.session.execute(
            sa.update(Participant)
            .where(Participant.study_id == study_id, Participant.status == "in_progress")
            .values(status="withdrawn")
        )
        db.session.commit()
    body = client.get(f"/r/studies/{study_id}/exports").get_data(as_text=True)
    assert "1 participant is exported: 1 completed and 0 partial." in body
    assert "participants are exported" not in body


def test_a_viewer_gets_no_recruitment_ids(client, study_id, member):
    """Recruitment ids are personal data: the participants page's editor role, here too."""
    member("viewer")
    body = client.get(f"/r/studies/{study_id}/exports").get_data(as_text=True)
    assert 'type="checkbox"' not in body and "needs the editor role" in body
    for name in ("participants.csv", "psych-ds.zip"):
        field = f"{name.replace('.', '-')}-recruitment_ids"
        response = download(client, study_id, name, **{field: "y"})
        assert response.status_code == 403
        assert "PID-77" not in response.get_data(as_text=True)


def test_a_viewer_downloads_trials_csv_streamed_and_audited(app, client, study_id, member):
    rid = member("viewer")
    response = download(client, study_id, "trials.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="trials.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.is_streamed
    assert response.get_data(as_text=True) == EXPECTED_TRIALS
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent))
        assert (event.action, event.researcher_id, event.study_id) == (
            "study.export",
            rid,
            study_id,
        )
        assert event.detail == {"file": "trials.csv", "recruitment_ids": False}


def test_recruitment_ids_only_when_the_box_is_ticked(app, client, study_id, member):
    member("editor")
    # Each streamed response is read before the next request, as a browser would.
    plain = download(client, study_id, "participants.csv").get_data(as_text=True)
    ticked = download(
        client, study_id, "participants.csv", **{"participants-csv-recruitment_ids": "y"}
    )
    ticked = ticked.get_data(as_text=True)
    trials = download(client, study_id, "trials.csv", **{"trials-csv-recruitment_ids": "y"})
    assert "PID-77" not in plain
    assert "recruitment_platform,recruitment_id" in ticked.splitlines()[0]
    assert "PID-77" in ticked
    assert trials.get_data(as_text=True) == EXPECTED_TRIALS
    assert [d["recruitment_ids"] for _a, d in audit_events(app)] == [False, True, False]


def test_psychds_zip_download(app, client, study_id, member, tmp_path):
    member("editor")
    response = download(client, study_id, "psych-ds.zip", **{"psych-ds-zip-recruitment_ids": "y"})
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert 'filename="study-faces2025_psychds.zip"' in response.headers["Content-Disposition"]
    path = tmp_path / "download.zip"
    path.write_bytes(response.get_data())
    with zipfile.ZipFile(path) as archive:
        participants = archive.read("data/study-faces2025_table-participants_data.csv").decode()
        description = json.loads(archive.read("dataset_description.json"))
    assert "PID-77" in participants
    assert "recruitment_id" in {v["name"] for v in description["variableMeasured"]}


@pytest.mark.parametrize(
    ("name", "mimetype", "first"),
    [
        ("stimuli.csv", "text/csv", "image,identity,role"),
        ("identities.csv", "text/csv", "identity,gender,age_band,ethnicity"),
        ("codebook.csv", "text/csv", "name,file,type,description,values"),
        ("codebook.json", "application/json", "{"),
    ],
)
def test_the_other_files_download(client, study_id, member, name, mimetype, first):
    member("viewer")
    response = download(client, study_id, name)
    assert response.status_code == 200 and response.mimetype == mimetype
    assert response.get_data(as_text=True).startswith(first)


def test_an_unknown_export_is_404_and_not_audited(app, client, study_id, member):
    member("viewer")
    assert download(client, study_id, "secrets.csv").status_code == 404
    assert client.get(f"/r/studies/{study_id}/exports/trials.csv").status_code == 405
    assert audit_events(app) == []


def test_a_strangers_study_answers_404_on_every_export_url(
    app, client, make_researcher, study_id, auth
):
    auth.sign_in(make_researcher(email="stranger@example.org"))
    assert client.get(f"/r/studies/{study_id}/exports").status_code == 404
    for name in (
        "trials.csv",
        "participants.csv",
        "stimuli.csv",
        "codebook.csv",
        "codebook.json",
        "psych-ds.zip",
    ):
        assert download(client, study_id, name).status_code == 404
    assert audit_events(app) == []


def test_signed_out_downloads_go_to_sign_in(client, study_id):
    response = download(client, study_id, "trials.csv")
    assert response.status_code == 302 and "/r/login" in response.headers["Location"]


def test_downloads_need_the_csrf_token(app, client, study_id, member):
    member("viewer")
    app.config["WTF_CSRF_ENABLED"] = True
    refused = download(client, study_id, "trials.csv")
    assert refused.status_code == 400
    assert audit_events(app) == []
    page = client.get(f"/r/studies/{study_id}/exports").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    accepted = download(client, study_id, "trials.csv", csrf_token=token)
    assert accepted.status_code == 200
    assert accepted.get_data(as_text=True) == EXPECTED_TRIALS


# --- memory stays flat ------------------------------------------------------------------------


def _bulk_study(n_participants: int, trials_each: int = 10) -> int:
    """Insert a study whose participants each answer `trials_each` rate trials on two scales."""
    study = Study(slug=f"bulk-{n_participants}", title="Bulk")
    db.session.add(study)
    person = Identity(study=study, code="P001")
    image = _image(study, person, "headshot", "real", n_participants)
    block = Block(
        study=study,
        position=1,
        name="impressions",
        task="rate",
        settings={"scales": [TRUST, WARMTH]},
    )
    db.session.add_all([person, block])
    db.session.flush()
    db.session.execute(
        sa.insert(Participant),
        [
            {
                "public_id": f"s{n_participants}-{n:06d}",
                "study_id": study.id,
                "list_index": n % 2,
                "seed": n,
                "status": "completed",
                "started_at": T0,
                "demographics": {},
            }
            for n in range(n_participants)
        ],
    )
    ids = db.session.scalars(
        sa.select(Participant.id).where(Participant.study_id == study.id)
    ).all()
    db.session.execute(
        sa.insert(Trial),
        [
            {
                "participant_id": pid,
                "block_id": block.id,
                "position": t,
                "task": "rate",
                "identity_id": person.id,
                "condition": "real",
                "image_id": image.id,
            }
            for pid in ids
            for t in range(1, trials_each + 1)
        ],
    )
    trials = db.session.execute(
        sa.select(Trial.id, Trial.participant_id)
        .join(Participant)
        .where(Participant.study_id == study.id)
    ).all()
    db.session.execute(
        sa.insert(Response),
        [
            {
                "trial_id": tid,
                "participant_id": pid,
                "measure": measure,
                "value": "4",
                "rt_ms": 812.5,
            }
            for tid, pid in trials
            for measure in ("trust", "warmth")
        ],
    )
    db.session.commit()
    return study.id


def _peak_bytes(chunks) -> tuple[int, int]:
    """Consume an export under tracemalloc; return (peak bytes allocated, lines written)."""
    import tracemalloc

    tracemalloc.start()
    try:
        lines = sum(chunk.count("\n") for chunk in chunks)
        return tracemalloc.get_traced_memory()[1], lines
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_trials_export_memory_does_not_grow_with_rows(app, monkeypatch):
    monkeypatch.setattr(exports.cells, "CHUNK_ROWS", 500)
    with app.app_context():
        small, large = _bulk_study(100), _bulk_study(1000)
        list(exports.trials_csv(small))  # warm caches, so both runs compare only the streaming
        small_peak, small_lines = _peak_bytes(exports.trials_csv(small))
        large_peak, large_lines = _peak_bytes(exports.trials_csv(large))
    assert (small_lines, large_lines) == (2001, 20001)
    # Ten times the rows, about the same memory: one chunk at a time is held.
    assert large_peak < 1.5 * small_peak + 256 * 1024, (small_peak, large_peak)


# --- identities.csv: the identity descriptors the report tests as moderators -------------------


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
