"""`flask check-deploy` names every unsafe production setting with its fix, and fails on any."""

from __future__ import annotations

import secrets

import pytest

from survey.demo import DEMO_LOGIN, DEMO_PASSWORD
from survey.deploy_check import check, workers_from_environment
from survey.extensions import db
from survey.models import Researcher
from survey.stimuli.manifest import MAX_ZIP_BYTES

STRONG = secrets.token_hex(32)
SAFE_CONFIG = {
    "SECRET_KEY": STRONG,
    "DEBUG": False,
    "TESTING": False,
    "WTF_CSRF_ENABLED": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": True,
    "REMEMBER_COOKIE_SECURE": True,
    "PREFERRED_URL_SCHEME": "https",
    "LIKENESS_ENV": "production",
    "MAX_CONTENT_LENGTH": 200 * 1024 * 1024,
    "SIGNUP_OPEN": False,
    "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://likeness:pw@db:5432/likeness",
}
SAFE_ENV = {"SECRET_KEY": STRONG, "WEB_CONCURRENCY": "4"}


def settings_named(problems) -> list[str]:
    """Return the settings the problems are about."""
    return [problem.setting for problem in problems]


def test_a_safe_production_setup_has_no_problem():
    assert check(SAFE_CONFIG, SAFE_ENV) == []


@pytest.mark.parametrize(
    ("config", "env", "setting", "words"),
    [
        ({"DEBUG": True}, {}, "DEBUG", "Debug mode is on"),
        ({}, {"FLASK_DEBUG": "1"}, "DEBUG", "FLASK_DEBUG"),
        (
            {"SECRET_KEY": "short-but-random-9f3k"},
            {"SECRET_KEY": "short-but-random-9f3k"},
            "SECRET_KEY",
            "at least 32",
        ),
        ({"SECRET_KEY": "dev"}, {"SECRET_KEY": "dev"}, "SECRET_KEY", "well-known"),
        (
            {"SECRET_KEY": "test-secret-key-not-for-production"},
            {"SECRET_KEY": "test-secret-key-not-for-production"},
            "SECRET_KEY",
            "well-known",
        ),
        ({"SECRET_KEY": "a" * 64}, {"SECRET_KEY": "a" * 64}, "SECRET_KEY", "easy to guess"),
        # The key generated into instance/ is strong but not shared by several machines.
        ({}, {"SECRET_KEY": ""}, "SECRET_KEY", "not set in the environment"),
        (
            {"SQLALCHEMY_DATABASE_URI": "sqlite:////srv/likeness.db"},
            {},
            "DATABASE_URL",
            "SQLite with 4 workers",
        ),
        ({"LIKENESS_ENV": "development"}, {}, "LIKENESS_ENV", "not 'production'"),
        ({"SESSION_COOKIE_SECURE": False}, {}, "SESSION_COOKIE_SECURE", "plain HTTP"),
        ({"PREFERRED_URL_SCHEME": "http"}, {}, "PREFERRED_URL_SCHEME", "not https"),
        ({"SIGNUP_OPEN": True}, {}, "SIGNUP_OPEN", "sign-up is open"),
        ({"WTF_CSRF_ENABLED": False}, {}, "WTF_CSRF_ENABLED", "CSRF protection is off"),
        ({"SESSION_COOKIE_SAMESITE": None}, {}, "SESSION_COOKIE_SAMESITE", "other sites"),
        ({"MAX_CONTENT_LENGTH": None}, {}, "MAX_CONTENT_LENGTH", "no size limit"),
        ({"TESTING": True}, {}, "TESTING", "TESTING is on"),
        # MAX_UPLOAD_MB=100000: far above the largest stimulus ZIP that is accepted.
        (
            {"MAX_CONTENT_LENGTH": 100_000 * 1024 * 1024},
            {},
            "MAX_CONTENT_LENGTH",
            "more than the largest stimulus ZIP",
        ),
        # Trusting a proxy that check-deploy cannot see needs the operator's --proxies.
        ({"TRUSTED_PROXIES": 1}, {}, "TRUSTED_PROXIES", "cannot see"),
    ],
)
def test_each_unsafe_setting_is_named_with_a_fix(config, env, setting, words):
    problems = check({**SAFE_CONFIG, **config}, {**SAFE_ENV, **env})
    assert settings_named(problems) == [setting]
    assert (
        words.lower() in (problems[0].message + problems[0].setting).lower()
        or words in problems[0].fix
    )
    assert problems[0].fix


def test_sqlite_with_one_worker_is_fine_and_the_option_overrides_the_environment():
    config = {**SAFE_CONFIG, "SQLALCHEMY_DATABASE_URI": "sqlite:////srv/likeness.db"}
    assert check(config, {**SAFE_ENV, "WEB_CONCURRENCY": "1"}) == []
    assert check(config, {"SECRET_KEY": STRONG}) == []
    assert settings_named(check(config, {"SECRET_KEY": STRONG}, workers=3)) == ["DATABASE_URL"]


def test_the_default_upload_limit_and_the_largest_useful_one_pass():
    for megabytes in (200, MAX_ZIP_BYTES // (1024 * 1024)):
        assert check({**SAFE_CONFIG, "MAX_CONTENT_LENGTH": megabytes * 1024 * 1024}, SAFE_ENV) == []


@pytest.mark.parametrize(
    ("trusted", "proxies", "words"),
    [
        (1, 0, "clients can choose the address"),
        (2, 1, "clients can choose the address"),
        (0, 1, "counted under a proxy's address"),
        (1, 1, None),
        (0, 0, None),
        (0, None, None),
    ],
)
def test_trusted_proxies_must_match_the_proxies_the_operator_counts(trusted, proxies, words):
    problems = check({**SAFE_CONFIG, "TRUSTED_PROXIES": trusted}, SAFE_ENV, proxies=proxies)
    if words is None:
        assert problems == []
    else:
        assert settings_named(problems) == ["TRUSTED_PROXIES"]
        assert words in problems[0].message and "--proxies" in problems[0].fix


@pytest.mark.parametrize(
    ("env", "workers"),
    [
        ({}, None),
        ({"WEB_CONCURRENCY": "3"}, 3),
        ({"GUNICORN_CMD_ARGS": "--bind 0.0.0.0:8000 --workers 5"}, 5),
        ({"GUNICORN_CMD_ARGS": "-w 2"}, 2),
        ({"GUNICORN_CMD_ARGS": "--workers=6"}, 6),
        ({"GUNICORN_CMD_ARGS": "-w7"}, 7),
        ({"WEB_CONCURRENCY": "many"}, None),
    ],
)
def test_worker_count_is_read_from_the_environment(env, workers):
    assert workers_from_environment(env) == workers


def test_the_command_lists_every_problem_and_fails(app, runner, monkeypatch):
    # The command reads the settings only; the tests' database may be PostgreSQL.
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:////srv/likeness/likeness.db"
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("FLASK_DEBUG", "1")
    result = runner.invoke(args=["check-deploy", "--workers", "4"])
    assert result.exit_code == 1
    out = result.output
    for setting in (
        "DEBUG",
        "SECRET_KEY",
        "LIKENESS_ENV",
        "SESSION_COOKIE_SECURE",
        "SIGNUP_OPEN",
        "DATABASE_URL",
        "TESTING",
        "WTF_CSRF_ENABLED",
    ):
        assert f"- {setting}:" in out, setting
    assert out.count("Fix: ") == out.count("\n- ")
    assert "test-secret-key" not in out


def safe_production(app, monkeypatch) -> None:
    """Give the app and the environment a safe production setup."""
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    app.config.update(
        {key: value for key, value in SAFE_CONFIG.items() if key != "SQLALCHEMY_DATABASE_URI"}
    )


def test_the_command_passes_on_a_safe_production_app(app, runner, monkeypatch):
    safe_production(app, monkeypatch)
    app.config["TRUSTED_PROXIES"] = 1
    result = runner.invoke(args=["check-deploy", "--proxies", "1"])
    assert result.exit_code == 0, result.output
    assert "No unsafe setting found." in result.output
    assert "Note:" not in result.output
    app.config["TRUSTED_PROXIES"] = 0
    result = runner.invoke(args=["check-deploy"])
    assert result.exit_code == 0 and "Note: TRUSTED_PROXIES is 0" in result.output


def test_the_command_fails_while_the_demo_account_keeps_its_password(
    app, runner, monkeypatch, make_researcher
):
    safe_production(app, monkeypatch)
    researcher_id = make_researcher(DEMO_LOGIN, DEMO_PASSWORD)
    result = runner.invoke(args=["check-deploy"])
    assert result.exit_code == 1, result.output
    assert "- DEMO_ACCOUNT:" in result.output and "anyone can sign in" in result.output
    with app.app_context():
        db.session.get(Researcher, researcher_id).set_password(secrets.token_hex(16))
        db.session.commit()
    result = runner.invoke(args=["check-deploy"])
    assert result.exit_code == 0, result.output


def test_the_command_fails_on_a_huge_upload_limit_and_an_unconfirmed_proxy(
    app, runner, monkeypatch
):
    safe_production(app, monkeypatch)
    app.config["MAX_CONTENT_LENGTH"] = 100_000 * 1024 * 1024
    app.config["TRUSTED_PROXIES"] = 1
    result = runner.invoke(args=["check-deploy"])
    assert result.exit_code == 1
    assert "- MAX_CONTENT_LENGTH:" in result.output and "- TRUSTED_PROXIES:" in result.output
    # The operator says no proxy is in front: trusting one is wrong, and said so.
    result = runner.invoke(args=["check-deploy", "--proxies", "0"])
    assert "- TRUSTED_PROXIES:" in result.output and "choose the address" in result.output


def test_the_database_password_is_not_printed(app, runner):
    app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://likeness:hunter2@db:5432/likeness"
    result = runner.invoke(args=["check-deploy"])
    assert "hunter2" not in result.output and "likeness:***@db" in result.output
