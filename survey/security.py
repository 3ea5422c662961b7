"""Security headers on every response, the proxy settings and the login loader."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from survey.extensions import db, login_manager
from survey.models import Researcher

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000"


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


def trust_proxies(app: Flask) -> None:
    """Read the client's address and scheme from the TRUSTED_PROXIES reverse proxies in front.

    Without it, behind nginx every request seems to come from 127.0.0.1 over http: the sign-in
    limit per address would then lock everyone out at once. Trusting the headers with no
    proxy in front would let a client choose its own address, so it is off by default.
    """
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register(app: Flask) -> None:
    """Add the security headers to every response (pages, files, errors)."""
    trust_proxies(app)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        for name, value in HEADERS.items():
            headers.setdefault(name, value)
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith("/r/"):
            # Researcher pages hold participant data: not kept by the browser or a proxy.
            headers.setdefault("Cache-Control", "no-store")
        return response


__all__ = ["CONTENT_SECURITY_POLICY", "HEADERS", "load_researcher", "register"]
