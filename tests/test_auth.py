"""Researcher accounts: sign-up, sign-in, rate limits, redirects, sessions, password change."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from itsdangerous.timed import TimestampSigner

from survey.extensions import db
from survey.models import AuditEvent, LoginAttempt, Researcher, utcnow

PASSWORD = "correct horse battery"


def login(client, identifier: str, password: str = PASSWORD, **kw):
    """Post the sign-in form."""
    return client.post(
        "/r/login",
        data={"identifier": identifier, "password": password, **kw.pop("data", {})},
        **kw,
    )


def signup(
    client,
    email: str = "grace@example.org",
    password: str = "a long enough secret",
    confirm=None,
    **extra,
):
    """Post the sign-up form."""
    data = {
        "name": "Grace",
        "email": email,
        "password": password,
        "confirm": password if confirm is None else confirm,
        **extra,
    }
    return client.post("/r/signup", data=data)


# --- sign-up ------------------------------------------------------------------------------


def test_signup_creates_a_hashed_account_and_signs_in(app, client):
    response = signup(client, email="  Grace@Example.org ")
    assert response.status_code == 302 and response.location.endswith("/r/studies")
    with app.app_context():
        researcher = db.session.scalar(sa.select(Researcher))
        assert researcher.email == "grace@example.org"
        assert researcher.password_hash != "a long enough secret"
        assert researcher.check_password("a long enough secret")
        assert db.session.scalar(sa.select(AuditEvent.action)) == "researcher.signup"
    assert client.get("/r/studies").status_code == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not-an-email"}, "is not an email address"),
        ({"email": "a@b"}, "is not an email address"),
        ({"email": ""}, "Enter your email."),
        ({"password": "short"}, "The password needs at least 10 characters."),
        ({"confirm": "something else entirely"}, "The two passwords differ."),
    ],
)
def test_signup_rejects_bad_input(app, client, fields, message):
    response = signup(client, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Researcher)) == 0


def test_signup_with_a_taken_email_is_refused(app, client, make_researcher):
    make_researcher(email="grace@example.org")
    response = signup(client, email="GRACE@example.org")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "This email cannot be used to sign up here." in text
    assert "exists" not in text and "already" not in text


@pytest.mark.slow
def test_signing_up_with_taken_emails_is_rate_limited_like_sign_in(app, client, make_researcher):
    """Each refused sign-up counts as a failed sign-in of the address, so probing is slow."""
    app.config["LOGIN_MAX_PER_ADDRESS"] = 3
    for n in range(4):
        make_researcher(email=f"taken{n}@example.org")
    for n in range(3):
        assert signup(client, email=f"taken{n}@example.org").status_code == 400
    response = signup(client, email="taken3@example.org")
    assert response.status_code == 429
    assert "Too many failed sign-ins from your network address" in response.get_data(as_text=True)
    # The same address cannot go on guessing passwords either; another address can sign up.
    assert login(client, "taken0@example.org").status_code == 429
    data = {
        "name": "Grace",
        "email": "new@example.org",
        "password": "a long enough secret",
        "confirm": "a long enough secret",
    }
    elsewhere = app.test_client().post(
        "/r/signup", data=data, environ_base={"REMOTE_ADDR": "10.3.3.3"}
    )
    assert elsewhere.status_code == 302


def test_signup_switched_off_refuses_without_invitation(app, client):
    app.config["SIGNUP_OPEN"] = False
    for response in (client.get("/r/signup"), signup(client)):
        assert response.status_code == 403
        assert "Sign-up is closed" in response.get_data(as_text=True)
    assert "invitation from an administrator" in client.get("/r/login").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Researcher)) == 0


def test_an_admin_invitation_opens_signup_for_that_email_only(app, client, make_researcher, auth):
    app.config["SIGNUP_OPEN"] = False
    admin = make_researcher(email="admin@example.org", is_admin=True)
    auth.sign_in(admin)
    page = client.post("/r/account/invite", data={"email": "new@example.org"}).get_data(
        as_text=True
    )
    token = re.search(r"invite=([\w.\-]+)", page).group(1)
    guest = app.test_client()
    assert "new@example.org" in guest.get(f"/r/signup?invite={token}").get_data(as_text=True)
    wrong = signup(guest, email="other@example.org", invite=token)
    assert wrong.status_code == 400 and "This invitation is for new@example.org" in wrong.get_data(
        as_text=True
    )
    assert signup(guest, email="new@example.org", invite=token).status_code == 302
    forged = app.test_client().get("/r/signup?invite=forged.token")
    assert forged.status_code == 400 and "not valid or has expired" in forged.get_data(as_text=True)


def test_only_admins_invite(app, client, make_researcher, auth):
    auth.sign_in(make_researcher())
    response = client.post("/r/account/invite", data={"email": "new@example.org"})
    assert response.status_code == 403


# --- sign-in ------------------------------------------------------------------------------


def test_login_with_email_any_case_and_logout(app, client, make_researcher, auth):
    make_researcher(email="ada@example.org")
    response = auth.login(" ADA@example.org ")
    assert response.status_code == 302 and response.location.endswith("/r/studies")
    assert client.get("/r/studies").status_code == 200
    assert client.get("/r/logout").status_code == 405  # sign-out is a POST with a token
    assert auth.logout().status_code == 302
    assert client.get("/r/studies").status_code == 302


def test_the_demo_account_signs_in_with_demo_demo(app, client, demo):
    response = login(client, "demo", "demo")
    assert response.status_code == 302
    assert "Demo: real photographs vs AI headshots" in client.get("/r/studies").get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    ("identifier", "password"),
    [("ada@example.org", "wrong password"), ("nobody@example.org", PASSWORD)],
)
def test_wrong_email_or_password_gets_one_message(
    app, client, make_researcher, identifier, password
):
    make_researcher(email="ada@example.org")
    response = login(client, identifier, password)
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/r/studies").status_code == 302


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"identifier": ""}, "Enter your email."), ({"password": ""}, "Enter your password.")],
)
def test_login_form_needs_both_fields(app, client, fields, message):
    data = {"identifier": "ada@example.org", "password": PASSWORD, **fields}
    response = client.post("/r/login", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_pages_need_sign_in_and_come_back_after_it(app, client, make_researcher):
    make_researcher()
    response = client.get("/r/studies")
    assert response.status_code == 302
    assert "/r/login?next=%2Fr%2Fstudies" in response.location
    response = login(client, "ada@example.org", data={"next": "/r/account"})
    assert response.location.endswith("/r/account")


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/\t/evil.example",
        "http:evil.example",
        "///evil.example",
    ],
)
def test_next_never_leaves_the_site(app, client, make_researcher, target):
    make_researcher()
    response = login(client, "ada@example.org", data={"next": target})
    assert response.status_code == 302
    assert response.location == "/r/studies"
    # Signed in already, ?next= is checked the same way.
    assert client.get("/r/login", query_string={"next": target}).location == "/r/studies"


# --- rate limits --------------------------------------------------------------------------


@pytest.mark.slow
def test_wrong_passwords_lock_out_the_guessing_address_not_the_owner(app, client, make_researcher):
    """Five failures stop that address guessing the account; the owner elsewhere still gets in."""
    make_researcher(email="ada@example.org")
    for _ in range(5):
        assert login(client, "ada@example.org", "wrong password").status_code == 401
    response = login(client, "ada@example.org")
    assert response.status_code == 429
    assert "for this account from your network address" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    # The owner, from their own address, signs in with the right password.
    owner = app.test_client()
    assert (
        login(owner, "ada@example.org", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 302
    )
    # Another account from the first address is not limited either.
    make_researcher(email="bob@example.org")
    assert login(client, "bob@example.org").status_code == 302


@pytest.mark.slow
def test_guessing_from_many_addresses_meets_a_ceiling_that_spares_known_addresses(
    app, make_researcher
):
    app.config["LOGIN_MAX_PER_ACCOUNT_TOTAL"] = 6
    make_researcher(email="ada@example.org")
    home = {"REMOTE_ADDR": "10.7.7.7"}
    assert login(app.test_client(), "ada@example.org", environ_base=home).status_code == 302
    for n in range(6):
        response = login(
            app.test_client(),
            "ada@example.org",
            "wrong password",
            environ_base={"REMOTE_ADDR": f"10.0.1.{n}"},
        )
        assert response.status_code == 401
    # A seventh new address is refused, even with the right password...
    response = login(app.test_client(), "ada@example.org", environ_base={"REMOTE_ADDR": "10.0.2.1"})
    assert response.status_code == 429
    assert "from many addresses" in response.get_data(as_text=True)
    # ...but the owner's address, where the account signed in before, is not.
    assert login(app.test_client(), "ada@example.org", environ_base=home).status_code == 302


@pytest.mark.slow
def test_a_burst_of_simultaneous_guesses_gets_no_more_password_checks_than_the_limit(
    app, make_researcher
):
    """Each attempt is recorded before it is counted, so a burst cannot slip past the limit."""
    make_researcher(email="ada@example.org")
    barrier = threading.Barrier(12)
    statuses = []

    def guess() -> None:
        client = app.test_client()
        barrier.wait()
        response = login(
            client, "ada@example.org", "wrong password", environ_base={"REMOTE_ADDR": "10.0.0.1"}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 12 and set(statuses) <= {401, 429}
    # At most five reach the password check. How many do depends on the timing: when all
    # twelve are recorded before any is counted, each sees the others and none gets through.
    assert statuses.count(401) <= 5
    with app.app_context():
        kept = db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt))
    assert kept == statuses.count(401)  # refused attempts are not kept
    # Topped up to five failures one by one, the address is locked for the right password too.
    client = app.test_client()
    for _ in range(5 - statuses.count(401)):
        assert (
            login(
                client,
                "ada@example.org",
                "wrong password",
                environ_base={"REMOTE_ADDR": "10.0.0.1"},
            ).status_code
            == 401
        )
    assert (
        login(client, "ada@example.org", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code
        == 429
    )


@pytest.mark.slow
def test_failures_from_one_address_lock_it_for_every_account(app, client, make_researcher):
    app.config["LOGIN_MAX_PER_ADDRESS"] = 4
    make_researcher(email="ada@example.org")
    for n in range(4):
        login(client, f"guess{n}@example.org", "wrong password")
    response = login(client, "ada@example.org")
    assert response.status_code == 429
    assert "from your network address" in response.get_data(as_text=True)
    assert (
        login(
            app.test_client(), "ada@example.org", environ_base={"REMOTE_ADDR": "10.1.2.3"}
        ).status_code
        == 302
    )


@pytest.mark.slow
def test_successful_logins_do_not_count_and_reset_the_account(app, client, make_researcher):
    make_researcher(email="ada@example.org")
    for _ in range(4):
        login(client, "ada@example.org", "wrong password")
    assert login(client, "ada@example.org").status_code == 302
    client.post("/r/logout")
    for _ in range(4):
        assert login(client, "ada@example.org", "wrong password").status_code == 401
    assert login(client, "ada@example.org").status_code == 302


def test_old_failures_fall_out_of_the_window(app, client, make_researcher):
    make_researcher(email="ada@example.org")
    with app.app_context():
        long_ago = utcnow() - timedelta(minutes=16)
        db.session.add_all(
            [
                LoginAttempt(
                    email="ada@example.org", address="127.0.0.1", succeeded=False, at=long_ago
                )
                for _ in range(10)
            ]
        )
        db.session.commit()
    assert login(client, "ada@example.org").status_code == 302


# --- sessions -----------------------------------------------------------------------------


def test_login_renews_the_session_and_makes_it_expire(app, client, make_researcher):
    make_researcher()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    response = login(client, "ada@example.org")
    assert "Expires=" in response.headers["Set-Cookie"]
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.permanent


def test_a_session_ends_after_its_lifetime(app, client, make_researcher, monkeypatch):
    make_researcher()
    login(client, "ada@example.org")
    assert client.get("/r/studies").status_code == 200
    lifetime = int(app.permanent_session_lifetime.total_seconds())
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + lifetime + 5)
    response = client.get("/r/studies")
    assert response.status_code == 302 and "/r/login" in response.location


def test_password_change_ends_other_sessions_only(app, make_researcher):
    make_researcher(email="ada@example.org")
    here, elsewhere = app.test_client(), app.test_client()
    login(here, "ada@example.org")
    login(elsewhere, "ada@example.org")
    response = here.post(
        "/r/account",
        data={
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
            "confirm": "a brand new passphrase",
        },
    )
    assert response.status_code == 302
    assert here.get("/r/studies").status_code == 200
    assert elsewhere.get("/r/studies").status_code == 302
    fresh = app.test_client()
    assert login(fresh, "ada@example.org").status_code == 401
    assert login(fresh, "ada@example.org", "a brand new passphrase").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(Researcher.session_version)) == 1
        assert (
            "researcher.password_change" in db.session.scalars(sa.select(AuditEvent.action)).all()
        )


def copy_of_session(app, client):
    """Return a new client holding a copy of the client's session cookie (a stolen cookie)."""
    thief = app.test_client()
    thief.set_cookie(
        app.config["SESSION_COOKIE_NAME"],
        client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value,
    )
    assert thief.get("/r/studies").status_code == 200
    return thief


def test_sign_out_ends_every_copy_of_the_session(app, client, make_researcher):
    make_researcher(email="ada@example.org")
    login(client, "ada@example.org")
    thief = copy_of_session(app, client)
    elsewhere = app.test_client()
    login(elsewhere, "ada@example.org")
    assert client.post("/r/logout").status_code == 302
    response = thief.get("/r/studies")
    assert response.status_code == 302 and "/r/login" in response.location
    # Signing out signs out the account's other browsers too.
    assert elsewhere.get("/r/studies").status_code == 302
    # Signing in again works, with a session of its own.
    assert login(client, "ada@example.org").status_code == 302
    assert client.get("/r/studies").status_code == 200
    assert thief.get("/r/studies").status_code == 302


def test_password_change_ends_a_copied_cookie_of_this_browser(app, client, make_researcher):
    make_researcher(email="ada@example.org")
    login(client, "ada@example.org")
    thief = copy_of_session(app, client)
    client.post(
        "/r/account",
        data={
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
            "confirm": "a brand new passphrase",
        },
    )
    assert client.get("/r/studies").status_code == 200
    assert thief.get("/r/studies").status_code == 302


def test_sign_out_everywhere_ends_every_other_session(app, client, make_researcher):
    make_researcher(email="ada@example.org")
    login(client, "ada@example.org")
    thief = copy_of_session(app, client)
    elsewhere = app.test_client()
    login(elsewhere, "ada@example.org")
    assert "Sign out everywhere" in client.get("/r/account").get_data(as_text=True)
    response = client.post("/r/account/sessions")
    assert response.status_code == 302 and response.location.endswith("/r/account")
    assert client.get("/r/studies").status_code == 200
    assert thief.get("/r/studies").status_code == 302
    assert elsewhere.get("/r/studies").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(Researcher.session_version)) == 1
        assert (
            "researcher.sign_out_everywhere"
            in db.session.scalars(sa.select(AuditEvent.action)).all()
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"current_password": "not it at all"}, "This is not your current password."),
        (
            {"new_password": "short", "confirm": "short"},
            "The password needs at least 10 characters.",
        ),
        ({"confirm": "does not match"}, "The two passwords differ."),
        ({"current_password": ""}, "Enter your current password."),
    ],
)
def test_password_change_rejects_bad_input(app, client, make_researcher, fields, message, auth):
    auth.sign_in(make_researcher())
    data = {
        "current_password": PASSWORD,
        "new_password": "a brand new passphrase",
        "confirm": "a brand new passphrase",
        **fields,
    }
    response = client.post("/r/account", data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(Researcher)).check_password(PASSWORD)


def test_forms_without_csrf_token_are_refused(app, client, make_researcher):
    make_researcher()
    app.config["WTF_CSRF_ENABLED"] = True
    response = login(client, "ada@example.org")
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    page = client.get("/r/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert login(client, "ada@example.org", data={"csrf_token": token}).status_code == 302
    # Signed in, the sign-out button needs the token too.
    assert client.post("/r/logout").status_code == 400
    assert client.get("/r/studies").status_code == 200
