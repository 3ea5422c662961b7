"""Security headers on every response, the proxy settings and the login loader."""

from __future__ import annotations

from flask import Flask, Response, abort, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from survey.extensions import csrf, db, login_manager
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
# The largest id an integer column holds (PostgreSQL's integer); larger ids in URLs are 404s.
MAX_ID = 2**31 - 1


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


class DatabaseIdConverter(IntegerConverter):
    """An `<int:…>` URL part no larger than a database id, so a huge one is a 404, not a crash."""

    def __init__(
        self,
        map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def bound_url_ids(app: Flask) -> None:
    """Make `<int:…>` URL parts stop at MAX_ID; call before any route is added."""
    app.url_map.converters["int"] = DatabaseIdConverter


def trust_proxies(app: Flask) -> None:
    """Read the client's address and scheme from the TRUSTED_PROXIES reverse proxies in front.

    Without it, behind nginx every request seems to come from 127.0.0.1 over http: the sign-in
    limit per address would then lock everyone out at once. Trusting the headers with no
    proxy in front would let a client choose its own address, so it is off by default.
    """
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def protect_unsafe_methods() -> None:
    """Check the CSRF token of a POST, PUT, PATCH or DELETE (views exempted aside)."""
    config = current_app.config
    if config["WTF_CSRF_ENABLED"] and request.method in config["WTF_CSRF_METHODS"]:
        csrf.protect(apply_exemptions=True)


def refuse_nul_characters() -> None:
    """Refuse (400) a request whose URL, query or form holds a NUL character.

    No text in a study needs one, PostgreSQL cannot store one, and some tools cut a string
    at it: refusing it up front gives the same clear answer on every database.
    """
    texts = list((request.view_args or {}).values())
    raw_query = request.query_string
    # A decoded query value holds a NUL only if the raw query has "%00" or a NUL byte.
    if b"%00" in raw_query or b"\x00" in raw_query:
        texts += [v for _k, v in request.args.items(multi=True)]
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        texts += [v for _k, v in request.form.items(multi=True)]
        texts += [f.filename or "" for _k, f in request.files.items(multi=True)]
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        abort(
            400,
            description="The request held a NUL character, which no text here may "
            "contain. Nothing was saved; check what was pasted and send it again.",
        )


def register(app: Flask) -> None:
    """Check CSRF tokens and refuse NULs before every view; add the security headers to every
    response (pages, files, errors)."""
    trust_proxies(app)
    # CSRFProtect's check, asked only for the methods it checks (its own hook looks up the
    # view's exemption first, on every GET too), then the NUL refusal.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.before_request(protect_unsafe_methods)
    app.before_request(refuse_nul_characters)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        present = {name.lower() for name, _ in headers}
        headers.extend(
            (name, value) for name, value in HEADERS.items() if name.lower() not in present
        )
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith("/r/"):
            # Researcher pages hold participant data: not kept by the browser or a proxy.
            headers.setdefault("Cache-Control", "no-store")
        return response


__all__ = ["CONTENT_SECURITY_POLICY", "HEADERS", "bound_url_ids", "load_researcher", "register"]
