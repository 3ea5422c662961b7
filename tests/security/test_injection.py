"""SQL-like strings in every URL part, query parameter and form field; formula injection in
the exports. Nothing may crash, a refused request writes nothing, and text is stored as typed."""

from __future__ import annotations

import csv
import io
import zipfile
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask_wtf import FlaskForm
from wtforms import FieldList, FormField

from survey.extensions import db
from survey.models import (
    Block,
    Identity,
    Image,
    Participant,
    RecruitmentId,
    Researcher,
    Response,
    Study,
    Trial,
)
from tests.security.helpers import build_url, fingerprint, participant_client, routes, url_values

SQL = [
    "' OR 1=1 --",
    "1; DROP TABLE study",
    '" OR ""="',
    "x' UNION SELECT password_hash FROM researcher --",
    "%' OR '%'='",
    "'; DELETE FROM response; --",
]
# Numbers past every column's range, non-numbers where numbers are expected, odd characters.
EDGE = ["99999999999999999999", "-1e309", "NaN", "\x00zero", "\u202e\U0001d518 \u00e9"]
# Refused requests that still write, and what: counted failures are the point of a rate limit.
REFUSED_WRITES = {
    "researcher.login": "a failed sign-in is recorded to limit guessing",
    "researcher.participant_lookup": "a look-up is recorded in the audit log, found or not",
}


def form_field_names() -> set[str]:
    """Return the name of every field of every form of the app (nested lists included)."""
    # Importing the form modules defines their classes, found below as FlaskForm subclasses.
    import survey.findings.forms
    import survey.participant.forms
    import survey.researcher.forms
    import survey.researcher.stimuli_forms  # noqa: F401

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    names: set[str] = set()
    for form_class in subclasses(FlaskForm):
        if not form_class.__module__.startswith("survey."):
            continue
        for name, unbound in form_class.__dict__.items():
            if not hasattr(unbound, "field_class"):
                continue
            names.add(name)
            inner = unbound.args[0] if unbound.field_class is FieldList and unbound.args else None
            if inner is not None and getattr(inner, "field_class", None) is FormField:
                for sub_name, sub in inner.args[0].__dict__.items():
                    if hasattr(sub, "field_class"):
                        names.add(f"{name}-0-{sub_name}")
    return names


def test_the_form_fields_are_found(app):
    names = form_field_names()
    # A sample from each area, so the fuzzing below really reaches their forms.
    assert {
        "title",
        "consent_text",
        "identifier",
        "reason",
        "scales-0-question",
        "generator",
        "token",
        "hypotheses-0-text",
        "email",
    } <= names, sorted(names)


@pytest.mark.slow
def test_sql_in_url_parts_finds_nothing_and_writes_nothing(app, world):
    clients = {
        "owner": world.client(app, "owner"),
        "participant": participant_client(app, world),
        "visitor": world.client(app),
    }
    before = fingerprint(app)
    tried = 0
    for rule, method in routes(app):
        strings = [
            name
            for name in rule.arguments
            if rule._converters[name].__class__.__name__ in ("UnicodeConverter", "PathConverter")
        ]
        for name in strings:
            for value in SQL:
                url = build_url(app, rule, {**url_values(rule, world), name: value})
                for who, client in clients.items():
                    response = client.open(url, method=method)
                    response.close()
                    assert response.status_code < 500, (who, method, url)
                    if (
                        rule.endpoint != "static"
                        and response.status_code == 200
                        and method == "GET"
                    ):
                        # Only an exact id finds a row: a SQL-like one matches nothing.
                        assert rule.endpoint in ("researcher.login",), (who, url)
                    tried += 1
    assert tried > 100
    assert fingerprint(app) == before


def test_ids_too_large_for_the_database_are_404_everywhere(app, world):
    """A URL id past the integer columns' range once crashed SQLite (500) and PostgreSQL (503)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    clients = {"owner": world.client(app, "owner"), "participant": participant_client(app, world)}
    tried = 0
    for rule, method in routes(app):
        ints = [
            name
            for name in rule.arguments
            if rule._converters[name].__class__.__name__ == "DatabaseIdConverter"
        ]
        for name in ints:
            for value in ("2147483648", "9223372036854775808", "99999999999999999999"):
                # Built with a placeholder id, then given the oversized one as the browser would.
                url = build_url(app, rule, {**url_values(rule, world), name: 7_777_777}).replace(
                    "7777777", value
                )
                for who, client in clients.items():
                    response = client.open(url, method=method)
                    response.close()
                    assert response.status_code in (404, 405), (
                        who,
                        method,
                        url,
                        response.status_code,
                    )
                    tried += 1
    assert tried > 100


def test_sql_in_the_participant_lookup_finds_no_one(app, world):
    client = world.client(app, "editor")
    with app.app_context():
        participant = db.session.scalar(sa.select(Participant))
        db.session.add(
            RecruitmentId(
                participant_id=participant.id,
                study_id=world.study_id,
                platform="prolific",
                external_id="5f1e2d3c4b5a",
            )
        )
        db.session.commit()
    for value in SQL:
        for field in ("external_id", "public_id"):
            response = client.get(
                f"/r/studies/{world.study_id}/participants",
                query_string={"platform": "prolific", field: value},
            )
            assert response.status_code in (400, 404), (field, value)
            assert world.participant_public_id not in response.get_data(as_text=True)


@pytest.mark.slow
@pytest.mark.parametrize("values", [SQL[:3], EDGE], ids=["sql", "edge"])
def test_hostile_values_in_every_query_parameter_and_form_field(app, world, values):
    """Every route, every form field at once: no 500; a refused request changes nothing."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    fields = form_field_names() | {"next", "page", "status", "preview", "PROLIFIC_PID", "pid", "q"}
    checked = refused = 0
    for value in values:
        data = {name: value for name in fields}
        for rule, method in routes(app):
            # The survey's pages as its participant, every other page as the study's owner.
            for who in ("participant",) if rule.rule.startswith("/s/") else ("owner",):
                client = (
                    participant_client(app, world)
                    if who == "participant"
                    else world.client(app, "owner")
                )
                before = fingerprint(app)
                url = build_url(app, rule, url_values(rule, world))
                response = client.open(
                    url, method=method, query_string=data, data=data if method == "POST" else None
                )
                response.close()
                where = (who, method, url, value, response.status_code)
                assert response.status_code < 500, where
                if response.status_code >= 400 and rule.endpoint not in REFUSED_WRITES:
                    assert fingerprint(app) == before, where
                    refused += 1
                checked += 1
    assert checked > 80 and refused > 15
    with app.app_context():
        # Nothing was dropped or emptied by a string, and what was stored is the text typed.
        assert db.session.get(Study, world.study_id) is not None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Researcher)) >= 4
        titles = set(db.session.scalars(sa.select(Study.title)).all())
        assert titles - {
            "Trust in headshots",
            "Trust in headshots (copy)",
            "Someone else's",
        } <= set(values)
        assert titles & set(values), "no form stored a hostile title: the test reached no form"


# --- formula injection in the exports ----------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "=1+1",
]


@pytest.fixture
def formula_study(app, world):
    """Fill every text that reaches an export with a formula; give the participant answers."""
    with app.app_context():
        study = db.session.get(Study, world.study_id)
        for index, block in enumerate(
            db.session.scalars(sa.select(Block).where(Block.study_id == study.id))
        ):
            block.name = FORMULAS[index % len(FORMULAS)]
            if block.task == "rate":
                block.settings = dict(
                    block.settings,
                    scales=[
                        dict(
                            scale,
                            question=FORMULAS[0],
                            low_anchor=FORMULAS[1],
                            high_anchor=FORMULAS[3],
                        )
                        for scale in block.settings["scales"]
                    ],
                )
        for index, identity in enumerate(
            db.session.scalars(sa.select(Identity).where(Identity.study_id == study.id))
        ):
            identity.code = FORMULAS[index % len(FORMULAS)][:30] + str(index)
            identity.gender, identity.age_band = FORMULAS[3], FORMULAS[2]
        for image in db.session.scalars(sa.select(Image).where(Image.study_id == study.id)):
            # A line break inside a cell: a spreadsheet must not start a new row at it.
            image.generator = 'Midjourney v6\r=HYPERLINK("http://evil.example","x")'
        participant = db.session.scalar(
            sa.select(Participant).where(Participant.public_id == world.participant_public_id)
        )
        participant.demographics = {"age": FORMULAS[0], "gender": FORMULAS[1]}
        db.session.add(
            RecruitmentId(
                participant_id=participant.id,
                study_id=study.id,
                platform="prolific",
                external_id="-5f1e2d3c4b5a",
            )
        )
        for trial in db.session.scalars(
            sa.select(Trial).where(Trial.participant_id == participant.id)
        ):
            trial.answered_at = participant.started_at
            db.session.add(
                Response(
                    trial_id=trial.id,
                    participant_id=participant.id,
                    measure="same" if trial.task == "match" else "trust",
                    value="1",
                )
            )
        participant.status = "completed"
        db.session.commit()


def cells(text: str) -> list[str]:
    """Return every cell of a CSV text."""
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def bare_line_breaks(text: str) -> list[str]:
    """Return the text after every CR or LF outside quotes that does not end a row.

    Spreadsheets start a new row at a CR as at a LF, so a CR left unquoted inside a cell
    makes what follows it the first cell of a row of its own.
    """
    found, quoted = [], False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "\r" and not quoted:
            found.append(text[index + 1 : index + 40])
    return found


def assert_no_formula(text: str, where: str) -> None:
    """Check that no cell of a CSV starts a formula (numbers like -2 and +3 excepted)."""
    import re

    assert bare_line_breaks(text) == [], (
        where,
        "a CR outside quotes starts a new row in a spreadsheet",
    )
    number = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
    bad = [
        c
        for c in cells(text)
        if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not number.fullmatch(c)
    ]
    assert bad == [], (where, bad)


def test_exports_neutralise_formulas_in_every_csv(app, world, formula_study):
    client = world.client(app, "owner")
    seen = 0
    for name in ("trials.csv", "participants.csv", "stimuli.csv", "codebook.csv"):
        prefix = name.replace(".", "-")
        response = client.post(
            f"/r/studies/{world.study_id}/exports/{name}", data={f"{prefix}-recruitment_ids": "y"}
        )
        assert response.status_code == 200, name
        text = response.get_data(as_text=True)
        assert_no_formula(text, name)
        seen += sum(1 for c in cells(text) if c.startswith("'="))
    response = client.post(
        f"/r/studies/{world.study_id}/exports/psych-ds.zip",
        data={"psych-ds-zip-recruitment_ids": "y"},
    )
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        for member in archive.namelist():
            if member.endswith(".csv"):
                assert_no_formula(archive.read(member).decode("utf-8"), member)
    # The formulas really reached the files, neutralised with a leading apostrophe.
    assert seen >= 3


def test_neutralised_cells_keep_numbers_as_numbers():
    from survey.exports import safe_cell

    assert safe_cell("-2") == "-2" and safe_cell("+3.5") == "+3.5" and safe_cell(-1.5) == "-1.5"
    assert (
        safe_cell("-2+3") == "'-2+3"
        and safe_cell("=1+1") == "'=1+1"
        and safe_cell("@SUM(A1)") == "'@SUM(A1)"
    )
    assert safe_cell("\t=1") == "'\t=1" and safe_cell("\r=1") == "'\r=1"


def test_quoted_sql_in_a_url_is_just_a_name(app, world):
    # Percent-encoded, the same strings reach the routing as text and still find nothing.
    client = world.client(app, "owner")
    for value in SQL:
        assert client.get(f"/s/{quote(value, safe='')}").status_code == 404
        assert client.get(f"/f/{quote(value, safe='')}").status_code == 404


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("GET", "/s/tr%00ust", None),
        ("GET", "/r/login?next=/r/a&next=/r/%00", None),
        ("GET", "/s/trust?PROLIFIC_PID=ab%00cd", None),
        ("POST", "/r/login", {"identifier": "ada\x00@example.org", "password": "x"}),
        ("POST", "/r/studies/new", {"title": "A\x00B"}),
    ],
)
def test_a_nul_character_anywhere_is_refused_with_a_clear_400(app, world, method, url, data):
    client = world.client(app, "owner")
    before = fingerprint(app)
    response = client.open(url, method=method, data=data)
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)
    assert fingerprint(app) == before


def test_a_value_the_database_refuses_is_a_400_and_rolled_back(app, world):
    from sqlalchemy.exc import DataError

    @app.post("/refused-value-for-test")
    def refused():
        db.session.add(Study(title="half-written", slug="half-written"))
        db.session.flush()
        raise DataError("INSERT …", {}, ValueError("integer out of range"))

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = world.client(app, "owner").post("/refused-value-for-test")
    assert response.status_code == 400
    assert "cannot be stored" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(Study).where(Study.slug == "half-written")) is None


# --- code injection in the generated R script ---------------------------------------------------

R_PAYLOAD = "Trust\nsystem('touch /tmp/likeness-pwned')\r# "


@pytest.mark.parametrize("url", ["/r/studies/new", "edit"])
def test_a_study_title_is_one_line_in_the_forms(app, world, url):
    client = world.client(app, "owner")
    if url == "edit":
        with app.app_context():
            study = db.session.get(Study, world.study_id)
            data = {
                "title": R_PAYLOAD,
                "slug": study.slug,
                "n_lists": study.n_lists,
                "assign_by": study.assign_by,
            }
        url = f"/r/studies/{world.study_id}/edit"
    else:
        data = {"title": R_PAYLOAD}
    before = fingerprint(app)
    response = client.post(url, data=data)
    assert response.status_code == 400
    assert "one line" in response.get_data(as_text=True)
    assert fingerprint(app) == before


def test_a_study_title_is_one_line_in_an_imported_definition(app, world):
    import json

    client = world.client(app, "owner")
    definition = json.loads(
        client.get(f"/r/studies/{world.study_id}/definition.json").get_data(as_text=True)
    )
    definition["study"]["title"] = R_PAYLOAD
    before = fingerprint(app)
    response = client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert response.status_code == 400
    assert "one line" in response.get_data(as_text=True)
    assert fingerprint(app) == before


def test_the_r_script_keeps_a_title_inside_its_comment():
    """A reviewer runs analysis.R: no text of the study may become an R statement in it."""
    from analysis.rscript import r_script

    script = r_script({"study": "trust", "tests": [], "correction": "holm"}, title=R_PAYLOAD)
    lines = [line for line in script.splitlines() if "likeness-pwned" in line]
    assert lines and all(line.lstrip().startswith("#") for line in lines), lines
    assert "\r" not in script.split("\n", 1)[0]
