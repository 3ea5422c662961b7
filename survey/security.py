"""Security headers and the login loader."""

from __future__ import annotations

from flask import Flask, Response

from survey.extensions import db, login_manager
from survey.models import Researcher

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@login_manager.user_loader
def load_researcher(user_id: str) -> Researcher | None:
    """Load the signed-in researcher; a session from before a password change is void."""
    try:
        raw_id, version = user_id.split(":", 1)
        researcher = db.session.get(Researcher, int(raw_id))
    except ValueError:
        return None
    if researcher is None or str(researcher.session_version) != version:
        return None
    return researcher


def register(app: Flask) -> None:
    """Add the security headers to every response."""

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


__all__ = ["CONTENT_SECURITY_POLICY", "load_researcher", "register"]
