"""The factory, configuration, models' constraints, migrations and the setup commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from survey import create_app
from survey.config import ConfigError, database_uri, secret_key
from survey.extensions import db
from survey.models import (
    AuditEvent,
    Base,
    Block,
    Identity,
    Image,
    Participant,
    Researcher,
    Response,
    Study,
    StudyMember,
    Trial,
)
from tests.helpers import ROOT

# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u:p@db:5432/likeness", "postgresql+psycopg://u:p@db:5432/likeness"),
        ("postgres://u@db/likeness", "postgresql+psycopg://u@db/likeness"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_is_normalised_to_psycopg3(raw, expected):
    assert database_uri(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://root@localhost/db", "supports sqlite, postgresql"),
        ("oracle://x", "supports sqlite, postgresql"),
    ],
)
def test_bad_database_url_gives_a_clear_error(raw, message):
    with pytest.raises(ConfigError, match=message):
        create_app({"DATABASE_URL": raw, "SECRET_KEY": "x"})


@pytest.mark.slow
def test_bad_database_url_at_startup_exits_with_a_message_not_a_traceback():
    env = {**os.environ, "DATABASE_URL": "mysql://root@localhost/db"}
    proc = subprocess.run(
        [sys.executable, "-c", "import app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Likeness configuration error: DATABASE_URL uses 'mysql'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = secret_key(tmp_path)
    assert len(first) == 64
    assert secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert secret_key(tmp_path) == "from-the-environment"


def test_factory_applies_overrides_and_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "m"))
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "SECRET_KEY": "k", "TESTING": True}
    )
    assert app.config["MEDIA_DIR"] == str(tmp_path / "m")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/a.db"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["MAX_CONTENT_LENGTH"] > 0
    assert {"main", "participant", "researcher", "findings"} <= set(app.blueprints)


def test_number_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REPORT_INLINE_MAX_ROWS", "500")
    monkeypatch.setenv("REPORT_STALE_SECONDS", "900")
    monkeypatch.setenv("MAX_UPLOAD_MB", "50")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "SECRET_KEY": "k"})
    assert app.config["REPORT_INLINE_MAX_ROWS"] == 500
    assert app.config["REPORT_STALE_SECONDS"] == 900
    assert app.config["MAX_CONTENT_LENGTH"] == 50 * 1024 * 1024


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("REPORT_INLINE_MAX_ROWS", "many", "REPORT_INLINE_MAX_ROWS='many' is not a whole number"),
        ("REPORT_STALE_SECONDS", "10", "REPORT_STALE_SECONDS=10 is too small: use 60 or more"),
        ("MAX_UPLOAD_MB", "0", "MAX_UPLOAD_MB=0 is too small"),
        ("SESSION_HOURS", "1.5", "SESSION_HOURS='1.5' is not a whole number"),
        ("DB_POOL_SIZE", "-1", "DB_POOL_SIZE=-1 is too small"),
    ],
)
def test_a_bad_number_setting_is_a_clear_error(monkeypatch, tmp_path, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app({"DATABASE_URL": "postgresql://u@127.0.0.1/x", "SECRET_KEY": "k"})


def test_postgres_gets_a_pre_pinged_pool():
    app = create_app({"DATABASE_URL": "postgresql://u@127.0.0.1/x", "SECRET_KEY": "k"})
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_pre_ping"] is True and options["pool_size"] >= 1


def test_health_check_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert b"Not Found" in response.data
    assert b"Traceback" not in response.data


def test_sqlite_runs_with_foreign_keys_wal_and_busy_timeout(app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            assert db.engine.dialect.name == "postgresql"
            return
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


# --- migrations -----------------------------------------------------------------------------


def test_migrations_and_models_agree(app):
    """Autogenerate finds nothing to do on the database built by the migrations."""
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_unanswered_trials_have_a_partial_index_and_its_migration_goes_both_ways(app):
    """Revision 0002 adds the partial index; downgrading drops it and upgrading brings it back."""
    from flask_migrate import downgrade, upgrade

    def index_sql() -> str:
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                found = conn.execute(
                    sa.text(
                        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_trial_unanswered'"
                    )
                ).scalar()
            else:
                found = conn.execute(
                    sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_trial_unanswered'")
                ).scalar()
        return (found or "").replace("(", "").replace(")", "")

    migrations = str(Path(__file__).resolve().parent.parent / "migrations")
    with app.app_context():
        assert "WHERE answered_at IS NULL" in index_sql()
        db.session.remove()
        downgrade(directory=migrations, revision="0001")
        assert index_sql() == ""
        upgrade(directory=migrations)
        assert "WHERE answered_at IS NULL" in index_sql()


def test_every_table_has_a_migration(app):
    with app.app_context():
        names = set(sa.inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= names
    assert "alembic_version" in names


# --- models ---------------------------------------------------------------------------------


def _study_with_trial(session) -> tuple[Study, Trial]:
    """Build a minimal study with one scheduled trial."""
    study = Study(slug="s1", title="Study one")
    identity = Identity(study=study, code="P001")
    image = Image(
        study=study,
        identity=identity,
        role="headshot",
        source="real",
        sha256="a" * 64,
        width=10,
        height=10,
        content_type="image/jpeg",
        byte_size=1,
        storage_key="k",
        display_key="d",
    )
    block = Block(study=study, position=1, name="rate", task="rate")
    participant = Participant(study=study, list_index=0, seed=42)
    trial = Trial(
        participant=participant,
        block=block,
        position=1,
        task="rate",
        identity=identity,
        condition="real",
        image=image,
    )
    session.add_all([study, trial])
    session.commit()
    return study, trial


def test_an_answer_cannot_be_stored_twice(app):
    with app.app_context():
        _study, trial = _study_with_trial(db.session)
        db.session.add(
            Response(
                trial_id=trial.id, participant_id=trial.participant_id, measure="trust", value="5"
            )
        )
        db.session.commit()
        db.session.add(
            Response(
                trial_id=trial.id, participant_id=trial.participant_id, measure="trust", value="6"
            )
        )
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        values = db.session.scalars(sa.select(Response.value)).all()
        assert values == ["5"]


def test_deleting_a_study_deletes_everything_it_owns(app):
    with app.app_context():
        study, trial = _study_with_trial(db.session)
        researcher = Researcher(email="x@example.org")
        researcher.set_password("pw-long-enough")
        db.session.add_all(
            [researcher, StudyMember(study=study, researcher=researcher, role="owner")]
        )
        db.session.add(
            Response(
                trial_id=trial.id, participant_id=trial.participant_id, measure="trust", value="5"
            )
        )
        db.session.add(AuditEvent(action="study.open", study_id=study.id))
        db.session.commit()
        db.session.delete(study)
        db.session.commit()
        for model in (Identity, Image, Block, Participant, Trial, Response, StudyMember):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0, model
        # The researcher and the audit record outlive the study.
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Researcher)) == 1
        event = db.session.scalar(sa.select(AuditEvent))
        assert event.study_id is None and event.action == "study.open"


def test_deleting_a_participant_deletes_their_trials_and_answers_at_the_database(app):
    with app.app_context():
        _study, trial = _study_with_trial(db.session)
        db.session.add(
            Response(
                trial_id=trial.id, participant_id=trial.participant_id, measure="trust", value="5"
            )
        )
        db.session.commit()
        # A bulk delete bypasses the ORM: the foreign keys' ON DELETE CASCADE must do the work.
        db.session.execute(sa.delete(Participant))
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Trial)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (Study, {"slug": "x"}),  # title missing
        (Study, {"title": "x"}),  # slug missing
        (Researcher, {"email": "a@b.c"}),  # password hash missing
    ],
)
def test_required_fields_are_enforced_by_the_database(app, model, fields):
    with app.app_context():
        db.session.add(model(**fields))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


@pytest.mark.parametrize(
    ("table", "column", "bad"),
    [
        ("study", "state", "deleted"),
        ("block", "task", "guess"),
        ("participant", "status", "gone"),
        ("trial", "condition", "fake"),
    ],
)
def test_enumerated_fields_refuse_unknown_values(app, table, column, bad):
    with app.app_context():
        _study, trial = _study_with_trial(db.session)
        row_id = {
            "study": _study.id,
            "block": trial.block_id,
            "participant": trial.participant_id,
            "trial": trial.id,
        }[table]
        with pytest.raises(IntegrityError):
            db.session.execute(
                sa.text(f"UPDATE {table} SET {column} = :v WHERE id = :id"),
                {"v": bad, "id": row_id},
            )
            db.session.commit()
        db.session.rollback()


def test_unique_slug_and_identity_code(app):
    with app.app_context():
        study, _trial = _study_with_trial(db.session)
        db.session.add(Identity(study_id=study.id, code="P001"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.add(Study(slug="s1", title="Again"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_timestamps_come_back_timezone_aware(app):
    with app.app_context():
        study, _trial = _study_with_trial(db.session)
        study_id = study.id
        db.session.expire_all()
        created = db.session.get(Study, study_id).created_at
        assert created.tzinfo is not None
        assert abs((datetime.now(UTC) - created).total_seconds()) < 60


def test_passwords_are_hashed(app):
    researcher = Researcher(email="a@example.org")
    researcher.set_password("s3cret-words")
    assert "s3cret-words" not in researcher.password_hash
    assert researcher.check_password("s3cret-words")
    assert not researcher.check_password("wrong")


def test_participant_ids_are_opaque_and_unique(app):
    with app.app_context():
        study = Study(slug="s", title="S")
        people = [Participant(study=study, list_index=i % 2, seed=i) for i in range(50)]
        db.session.add_all(people)
        db.session.commit()
        ids = {p.public_id for p in people}
        assert len(ids) == 50
        assert all(len(i) >= 20 and not i.isdigit() for i in ids)


# --- commands -------------------------------------------------------------------------------


@pytest.mark.slow
def test_seed_demo_is_safe_to_run_twice(app, runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "Created the demo study" in first.output and "demo / demo" in first.output
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert "Found the demo study" in second.output
    with app.app_context():
        studies = db.session.scalars(sa.select(Study)).all()
        assert [s.slug for s in studies] == ["demo"]
        study = studies[0]
        assert study.state == "open" and study.design_frozen_at is not None
        assert len(study.identities) == 8
        assert sorted(b.task for b in study.blocks) == [
            "choose",
            "detect",
            "learn",
            "match",
            "rate",
            "recognise",
        ]
        roles = sorted((im.role, im.source) for im in study.images)
        assert roles == sorted([("headshot", "real"), ("headshot", "ai"), ("probe", "photo")] * 8)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Researcher)) == 1


def test_create_researcher_command(app, runner):
    result = runner.invoke(
        args=["create-researcher", "Grace@Example.org", "--name", "Grace"],
        input="longpassword\nlongpassword\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        researcher = db.session.scalar(sa.select(Researcher))
        assert researcher.email == "grace@example.org"
        assert researcher.check_password("longpassword")
    again = runner.invoke(
        args=["create-researcher", "grace@example.org"], input="longpassword\nlongpassword\n"
    )
    assert again.exit_code != 0 and "already exists" in again.output


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", "longpassword", "is not an email address"),
        ("a@example.org", "nine-char", "at least 10"),
    ],
)
def test_create_researcher_refuses_bad_input(app, runner, email, password, message):
    result = runner.invoke(args=["create-researcher", email], input=f"{password}\n{password}\n")
    assert result.exit_code == 2
    assert message in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Researcher)) == 0


def test_tests_import_helpers_only_from_helper_modules():
    """Fixtures come from conftest (pytest finds them); shared helpers from helpers modules."""
    pattern = re.compile(r"^\s*(?:from|import)\s+tests\.(?:[\w.]*\.)?(?:conftest|test_\w+)\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
