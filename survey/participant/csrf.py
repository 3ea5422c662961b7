"""CSRF tokens of the participant's forms, kept out of the Flask session."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import current_app, g, request
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as WerkzeugResponse

from survey.extensions import csrf

COOKIE = "likeness_form"
COOKIE_PATH = "/s/"
COOKIE_MAX_AGE = 30 * 24 * 3600
FIELD = "csrf_token"
KEY_BYTES = 18
# The views (module.name) whose POSTs this module checks instead of CSRFProtect.
PROTECTED_VIEWS: set[str] = set()


def _expected(key: str) -> str:
    """Return the token of a form key."""
    secret = current_app.secret_key
    secret_bytes = secret.encode() if isinstance(secret, str) else bytes(secret)
    message = b"likeness-participant-form:" + key.encode()
    return hmac.new(secret_bytes, message, hashlib.sha256).hexdigest()


def browser_key() -> str | None:
    """Return the form key of this browser: its cookie's, or one made for this response."""
    key = g.get("participant_form_key")
    if key is None:
        raw = request.cookies.get(COOKIE, "")
        key = raw if 16 <= len(raw) <= 64 and raw.isascii() else None
    return key


def token() -> str:
    """Return the token for a form on this page (the template's ``csrf_token()``)."""
    key = browser_key()
    if key is None:
        key = secrets.token_urlsafe(KEY_BYTES)
        g.participant_form_key_new = True
    g.participant_form_key = key
    return _expected(key)


def keep_key(response: WerkzeugResponse) -> WerkzeugResponse:
    """Set the form-key cookie when this response's page made a new key."""
    if g.get("participant_form_key_new"):
        response.set_cookie(
            COOKIE,
            g.participant_form_key,
            max_age=COOKIE_MAX_AGE,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        )
    return response


def check() -> None:
    """Refuse (CSRFError, answered 400 "this page had expired") a POST without a valid token."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    key = browser_key()
    sent = request.form.get(FIELD, "")
    if key is None or not sent or not hmac.compare_digest(sent.encode(), _expected(key).encode()):
        raise CSRFError("The form's token is missing or does not match this browser.")


def protected(view: Callable[..., Any]) -> Callable[..., Any]:
    """Check a participant view's POSTs with the form key rather than the session."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            check()
        return view(*args, **kwargs)

    csrf.exempt(checked)
    PROTECTED_VIEWS.add(f"{checked.__module__}.{checked.__name__}")
    return checked
