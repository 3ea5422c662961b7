"""Security headers on every response (pages, files, errors), pages without inline script,
cookie flags, the session renewed at sign-in, and the request size limit."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy.exc import OperationalError

from survey import create_app
from survey.security import CONTENT_SECURITY_POLICY
from tests.security.helpers import (
    active_content,
    build_url,
    csrf_token,
    participant_client,
    routes,
    url_values,
)

# The one page other sites may frame: the published findings' embed view. It runs no script
# and holds no form, so framing it cannot trick a click.
FRAMEABLE = {"findings.embed"}


def assert_secure_headers(response, where: str, frameable: bool = False) -> None:
    """Check the headers every response carries."""
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    directives = dict(
        (part.split(" ", 1) + [""])[:2] for part in (d.strip() for d in csp.split(";")) if part
    )
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, where
    assert directives.get("object-src") == "'none'", where
    assert directives.get("base-uri") == "'none'", where
    if frameable:
        assert (
            directives.get("script-src") == "'none'" and directives.get("form-action") == "'none'"
        ), where
    else:
        assert csp == CONTENT_SECURITY_POLICY, where
        assert directives["frame-ancestors"] == "'none'" and headers["X-Frame-Options"] == "DENY", (
            where
        )
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "same-origin", where


def test_every_page_and_file_carries_the_headers_and_no_inline_script(app, world):
    clients = {
        "owner": world.client(app, "owner"),
        "participant": participant_client(app, world),
        "visitor": world.client(app),
    }
    checked = 0
    for rule, _method in routes(app, ("GET",)):
        url = build_url(app, rule, url_values(rule, world))
        for who, client in clients.items():
            response = client.get(url)
            where = f"{who} GET {url} ({rule.endpoint}) -> {response.status_code}"
            assert_secure_headers(response, where, rule.endpoint in FRAMEABLE)
            if response.mimetype == "text/html":
                assert active_content(response.get_data(as_text=True)) == [], where
            if url.startswith("/r/"):
                assert (
                    "no-store" in response.headers.get("Cache-Control", "")
                    or response.status_code in (301, 302, 303)
                    or "private" in response.headers.get("Cache-Control", "")
                ), where
            response.close()
            checked += 1
    assert checked > 100


def test_the_participant_flow_pages_have_no_inline_script(app, world):
    client = app.test_client()
    pages = [client.get(f"/s/{world.slug}")]
    pages.append(
        client.post(
            f"/s/{world.slug}/consent",
            data={"token": _consent_token(pages[0]), "agree": "y"},
            follow_redirects=True,
        )
    )
    pages.append(client.get(f"/s/{world.slug}/trial"))
    pages.append(client.get(f"/s/{world.slug}/withdraw"))
    for response in pages:
        assert response.status_code == 200
        assert_secure_headers(response, response.request.path)
        assert active_content(response.get_data(as_text=True)) == [], response.request.path
    assert "trial" in pages[2].get_data(as_text=True)


def _consent_token(response) -> str:
    """Return the hidden consent token of a consent page."""
    return re.search(
        r'name="token" type="hidden" value="([^"]+)"', response.get_data(as_text=True)
    ).group(1)


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/no/such/page", 404),
        ("GET", "/r/logout", 405),
        ("GET", "/static/nope.css", 404),
        ("POST", "/r/login", 400),
    ],
)
def test_error_pages_carry_the_headers(app, client, method, url, status):
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.open(url, method=method)
    assert response.status_code == status
    assert_secure_headers(response, url)
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_crash_and_a_database_outage_get_clear_pages_with_the_headers(app, client):
    @app.get("/crash-for-test")
    def crash():
        raise RuntimeError("boom")

    @app.get("/outage-for-test")
    def outage():
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/crash-for-test")
    assert response.status_code == 500
    assert_secure_headers(response, "500")
    assert "boom" not in response.get_data(as_text=True)
    response = client.get("/outage-for-test")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert_secure_headers(response, "503")
    text = response.get_data(as_text=True)
    assert "try again" in text and "SELECT" not in text


def test_an_oversized_request_gets_a_clear_413_page(app, world):
    assert app.config["MAX_CONTENT_LENGTH"] == 200 * 1024 * 1024
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    # As on a server: the CSRF check reads the form first, so the limit meets every POST.
    app.config["WTF_CSRF_ENABLED"] = True
    client = world.client(app, "owner")
    big = io.BytesIO(b"x" * (256 * 1024))
    response = client.post(
        f"/r/studies/{world.study_id}/stimuli/zip",
        data={"file": (big, "set.zip")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert_secure_headers(response, "413")
    text = response.get_data(as_text=True).lower()
    assert "too large" in text and "nothing was stored" in text
    # The answer form of a participant has the same limit, and the same kind of page.
    participant = participant_client(app, world)
    response = participant.post(
        f"/s/{world.slug}/trial/{world.trial_id}", data={"rt_ms": "1" * (128 * 1024)}
    )
    assert response.status_code == 413
    assert_secure_headers(response, "413 participant")
    assert "nothing was stored" in response.get_data(as_text=True).lower()


def test_session_cookie_flags_and_renewal_at_sign_in(app, client, make_researcher):
    make_researcher(email="ada@example.org")
    app.config["WTF_CSRF_ENABLED"] = True
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    token = csrf_token(client)
    before = client.get_cookie("session").value
    response = client.post(
        "/r/login",
        data={
            "identifier": "ada@example.org",
            "password": "correct horse battery",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get_cookie("session").value != before
    with client.session_transaction() as session:
        assert "planted" not in session and "_user_id" in session
    # The old form token belonged to the old session: it no longer signs a form.
    assert client.post("/r/logout", data={"csrf_token": token}).status_code == 400
    assert (
        client.post("/r/logout", data={"csrf_token": csrf_token(client, "/r/account")}).status_code
        == 302
    )


def test_participant_cookie_flags(app, world):
    client = app.test_client()
    page = client.get(f"/s/{world.slug}")
    response = client.post(
        f"/s/{world.slug}/consent", data={"token": _consent_token(page), "agree": "y"}
    )
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and f"Path=/s/{world.slug}" in cookie


@pytest.fixture
def production_app(database_url, tmp_path, monkeypatch):
    """The app as LIKENESS_ENV=production builds it."""
    monkeypatch.setenv("LIKENESS_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a" * 16 + "0123456789abcdef0123456789abcdef")
    app = create_app({"DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path / "media")})
    yield app
    from survey.extensions import db

    with app.app_context():
        db.engine.dispose()


def test_production_cookies_are_secure_and_hsts_is_sent(production_app, app, world):
    production_app.config["RATELIMIT_ENABLED"] = False
    client = production_app.test_client()
    response = client.get("/r/login", base_url="https://likeness.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert_secure_headers(response, "production login")
    token = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', response.get_data(as_text=True)
    ).group(1)
    response = client.post(
        "/r/login",
        base_url="https://likeness.example",
        headers={"Referer": "https://likeness.example/r/login"},
        data={
            "identifier": "owner-trust@example.org",
            "password": "correct horse battery",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert (
        production_app.config["REMEMBER_COOKIE_SECURE"]
        and production_app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"
    )
    page = client.get(f"/s/{world.slug}", base_url="https://likeness.example")
    (form_key,) = [c for c in page.headers.getlist("Set-Cookie") if c.startswith("likeness_form=")]
    assert "Secure" in form_key and "HttpOnly" in form_key and "SameSite=Lax" in form_key
    response = client.post(
        f"/s/{world.slug}/consent",
        base_url="https://likeness.example",
        headers={"Referer": f"https://likeness.example/s/{world.slug}"},
        data={
            "token": _consent_token(page),
            "agree": "y",
            "csrf_token": re.search(
                r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)
            ).group(1),
        },
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_behind_a_trusted_proxy_the_client_address_and_scheme_are_the_forwarded_ones(
    database_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRUSTED_PROXIES", "1")
    proxied = create_app(
        {"DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40}
    )

    @proxied.get("/whoami-for-test")
    def whoami():
        from flask import request

        return {"address": request.remote_addr, "scheme": request.scheme}

    seen = (
        proxied.test_client()
        .get(
            "/whoami-for-test",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        )
        .get_json()
    )
    assert seen == {"address": "203.0.113.9", "scheme": "https"}
    monkeypatch.delenv("TRUSTED_PROXIES")
    direct = create_app(
        {"DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path), "SECRET_KEY": "k" * 40}
    )
    direct.add_url_rule("/whoami-for-test", view_func=whoami)
    seen = (
        direct.test_client()
        .get("/whoami-for-test", headers={"X-Forwarded-For": "203.0.113.9"})
        .get_json()
    )
    # With no proxy declared, a client cannot choose its address (and dodge the sign-in limit).
    assert seen["address"] == "127.0.0.1"
