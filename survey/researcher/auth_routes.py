"""Researcher accounts: sign-up (or invitation), sign-in, sign-out and password change."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from survey import audit, ratelimit
from survey.extensions import db
from survey.i18n import gettext
from survey.i18n import lazy_gettext as _l
from survey.models import AuditEvent, Researcher, Study, utcnow
from survey.researcher import bp
from survey.researcher.forms import (
    ButtonForm,
    DisplayNameForm,
    InviteForm,
    LoginForm,
    PasswordChangeForm,
    SignupForm,
    require_button,
)

INVITE_SALT = "likeness-researcher-invite"
INVITE_MAX_AGE = 7 * 24 * 3600
# Compared against when the account does not exist, so a wrong email takes as long as a
# wrong password and sign-in timing does not tell which accounts exist.
_DUMMY_HASH = generate_password_hash("not-a-password")
# Said when sign-up cannot use an email. Without email delivery the server cannot hide that an
# address has an account from whoever tries to sign up with it (a new address simply succeeds);
# the wording names no reason and the attempt is rate limited (see SECURITY.md).
SIGNUP_REFUSED = _l(
    "This email cannot be used to sign up here. If you have an account, sign in instead."
)


def safe_next(target: str | None) -> str | None:
    """Return target when it is a path on this site, else None (no open redirects)."""
    if not target or not isinstance(target, str) or not target.startswith("/"):
        return None
    # "//host" and "/\host" are taken by browsers as another host; control characters can
    # hide either.
    if (
        target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 or ord(c) == 127 for c in target)
    ):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def client_address() -> str:
    """Return the client's network address as the rate limit counts it."""
    return (request.remote_addr or "unknown")[:64]


def start_session(researcher: Researcher) -> None:
    """Sign the researcher in on a fresh, expiring session (a new session defeats fixation)."""
    session.clear()
    session.permanent = True
    login_user(researcher)


def end_sessions(researcher_id: int) -> None:
    """Void every session of the account, copies of its cookies included; committed by the caller.

    Each session carries the account's session version (`Researcher.get_id`), compared on every
    researcher request by the login loader; one UPDATE moves it on, so concurrent bumps add up.
    """
    db.session.execute(
        sa.update(Researcher)
        .where(Researcher.id == researcher_id)
        .values(session_version=Researcher.session_version + 1)
        .execution_options(synchronize_session="fetch")
    )


def find_researcher(identifier: str) -> Researcher | None:
    """Return the account signed in as `identifier` (an email, or the demo login)."""
    return db.session.scalar(
        sa.select(Researcher).where(Researcher.email == ratelimit.identifier_key(identifier))
    )


def _serializer() -> URLSafeTimedSerializer:
    """Return the signer of invitation links."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=INVITE_SALT)


def invited_email(token: str | None) -> str | None:
    """Return the email an invitation link was made for, or None when absent, forged or expired."""
    if not token:
        return None
    try:
        email = _serializer().loads(token, max_age=INVITE_MAX_AGE)
    except (BadSignature, SignatureExpired):
        return None
    return email if isinstance(email, str) else None


@bp.get("/")
def home():
    """Send researchers to their studies (or to sign-in)."""
    return redirect(url_for("researcher.studies"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in; failed attempts are limited per account and per address."""
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or url_for("researcher.studies"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        return render_template("researcher/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("researcher/login.html", form=form), 400
    identifier, address = form.identifier.data, client_address()
    attempt, limit = ratelimit.open_attempt(identifier, address)
    if limit is not None:
        return (
            render_template("researcher/login.html", form=form, error=limit.message),
            429,
            {"Retry-After": str(limit.retry_after)},
        )
    researcher = find_researcher(identifier)
    if researcher is None:
        check_password_hash(_DUMMY_HASH, form.password.data)
        ok = False
    else:
        ok = researcher.check_password(form.password.data)
    ratelimit.close_attempt(attempt, ok)
    if not ok:
        db.session.commit()
        return (
            render_template(
                "researcher/login.html", form=form, error=gettext("Wrong email or password.")
            ),
            401,
        )
    researcher.last_login_at = utcnow()
    db.session.commit()
    start_session(researcher)
    return redirect(safe_next(form.next.data) or url_for("researcher.studies"))


@bp.post("/logout")
def logout():
    """Sign out: every session of the account ends, so a copied cookie stops working too."""
    if current_user.is_authenticated:
        end_sessions(current_user.id)
        db.session.commit()
    logout_user()
    session.clear()
    flash(gettext("You are signed out."), "success")
    return redirect(url_for("researcher.login"))


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create an account, when sign-up is open or with an administrator's invitation."""
    form = SignupForm()
    token = request.args.get("invite") if request.method == "GET" else form.invite.data
    invited = invited_email(token)
    if token and invited is None:
        abort(
            400,
            description=gettext(
                "This invitation link is not valid or has expired; ask for a new one."
            ),
        )
    if not current_app.config.get("SIGNUP_OPEN", True) and invited is None:
        abort(
            403,
            description=gettext(
                "Sign-up is closed on this server. Ask an administrator for an invitation."
            ),
        )
    if request.method == "GET":
        form.invite.data = token or ""
        if invited:
            form.email.data = invited
        return render_template("researcher/signup.html", form=form, invited=invited)
    if not form.validate_on_submit():
        return render_template("researcher/signup.html", form=form, invited=invited), 400
    email = form.email.data.lower()
    if invited is not None and email != invited:
        form.email.errors.append(gettext("This invitation is for %(email)s.", email=invited))
        return render_template("researcher/signup.html", form=form, invited=invited), 400
    # A sign-up for an email that has an account counts as a failed sign-in of the address,
    # so probing which emails have accounts costs as much as guessing passwords.
    attempt, limit = ratelimit.open_attempt(email, client_address())
    if limit is not None:
        return (
            render_template(
                "researcher/signup.html", form=form, invited=invited, error=limit.message
            ),
            429,
            {"Retry-After": str(limit.retry_after)},
        )
    taken = find_researcher(email) is not None
    ratelimit.close_attempt(attempt, not taken)
    if taken:
        db.session.commit()
        form.email.errors.append(SIGNUP_REFUSED)
        return render_template("researcher/signup.html", form=form, invited=invited), 400
    researcher = Researcher(email=email, name=form.name.data or "")
    researcher.set_password(form.password.data)
    researcher.last_login_at = utcnow()
    db.session.add(researcher)
    db.session.flush()
    audit.record("researcher.signup", researcher=researcher, invited=invited is not None)
    db.session.commit()
    start_session(researcher)
    flash(gettext("Welcome to Likeness. Create your first study."), "success")
    return redirect(url_for("researcher.studies"))


def _duration(seconds: float) -> str:
    """Say a session length in hours, or minutes when shorter than an hour."""
    if seconds >= 3600:
        hours = seconds / 3600
        if hours.is_integer():
            return ngettext("%(num)s hour", "%(num)s hours", int(hours))
        return gettext("%(hours)s hours", hours=f"{hours:g}")
    return gettext("%(minutes)s minutes", minutes=f"{seconds / 60:g}")


def _account_page(
    password_form: PasswordChangeForm, invite_form: InviteForm, status: int = 200, **extra
):
    """Render the account page with the researcher's own recent actions."""
    events = db.session.execute(
        sa.select(AuditEvent, Study.slug)
        .outerjoin(Study, Study.id == AuditEvent.study_id)
        .where(AuditEvent.researcher_id == current_user.id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(30)
    ).all()
    return (
        render_template(
            "researcher/account.html",
            form=password_form,
            invite_form=invite_form,
            events=events,
            session_hours=_duration(current_app.permanent_session_lifetime.total_seconds()),
            sessions_form=ButtonForm(formdata=None),
            **{
                "name_form": DisplayNameForm(formdata=None, data={"name": current_user.name}),
                **extra,
            },
        ),
        status,
    )


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """Show the account; change the password, which ends the account's other sessions."""
    form = PasswordChangeForm()
    invite_form = InviteForm(formdata=None)
    if request.method == "GET":
        return _account_page(form, invite_form)
    if not form.validate_on_submit():
        return _account_page(form, invite_form, 400)
    researcher = current_user._get_current_object()
    if not researcher.check_password(form.current_password.data):
        form.current_password.errors.append(gettext("This is not your current password."))
        return _account_page(form, invite_form, 400)
    researcher.set_password(form.new_password.data)
    return _renew_sessions(
        researcher,
        "researcher.password_change",
        gettext("Your password is changed. Your other sessions are signed out."),
    )


@bp.post("/account/name")
@login_required
def account_name():
    """Set the display name: shown to collaborators, and on public pages the researcher authors."""
    form = DisplayNameForm()
    if not form.validate_on_submit():
        return _account_page(
            PasswordChangeForm(formdata=None), InviteForm(formdata=None), 400, name_form=form
        )
    researcher = current_user._get_current_object()
    name = form.name.data or ""
    if name != researcher.name:
        previous, researcher.name = researcher.name, name
        audit.record("researcher.name", researcher=researcher, name=name, previous=previous)
    db.session.commit()
    flash(
        gettext("Your display name is saved.")
        if name
        else gettext("Your display name is removed: you are no longer credited on public pages."),
        "success",
    )
    return redirect(url_for("researcher.account"))


@bp.post("/account/sessions")
@login_required
def sign_out_everywhere():
    """End every session of the account; this browser goes on with a fresh one."""
    require_button()
    return _renew_sessions(
        current_user._get_current_object(),
        "researcher.sign_out_everywhere",
        gettext("Every other session of your account is signed out."),
    )


def _renew_sessions(researcher: Researcher, event: str, message: str) -> Response:
    """End every session of the account, audited; this browser goes on with a fresh one."""
    end_sessions(researcher.id)
    audit.record(event, researcher=researcher)
    db.session.commit()
    start_session(researcher)
    flash(message, "success")
    return redirect(url_for("researcher.account"))


@bp.post("/account/invite")
@login_required
def invite():
    """Let an administrator make a sign-up link for one email, valid for 7 days."""
    if not current_user.is_admin:
        abort(403, description=gettext("Only administrators can invite researchers."))
    form = InviteForm()
    password_form = PasswordChangeForm(formdata=None)
    if not form.validate_on_submit():
        return _account_page(password_form, form, 400)
    email = form.email.data.lower()
    if find_researcher(email) is not None:
        form.email.errors.append(gettext("This researcher has an account already."))
        return _account_page(password_form, form, 400)
    token = _serializer().dumps(email)
    link = url_for("researcher.signup", invite=token, _external=True)
    audit.record("researcher.invite", researcher=current_user, email=email)
    db.session.commit()
    return _account_page(password_form, InviteForm(formdata=None), invite_link=link, invited=email)
