"""Error pages: every failure a person meets is a clear page with a 4xx or 503, never a trace."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from survey.extensions import db
from survey.i18n import N_
from survey.i18n import gettext as _

TRY_AGAIN_SECONDS = 5
# The words of the common HTTP errors, in the page's language, for an error raised with
# Werkzeug's own English description (abort(404) and the like).
HTTP_ERRORS = {
    400: (N_("Bad Request"), N_("The browser sent something this server could not read.")),
    403: (N_("Forbidden"), N_("You do not have access to this page.")),
    404: (
        N_("Not Found"),
        N_("There is no page at this address. Check that you copied the whole link."),
    ),
    405: (N_("Method Not Allowed"), N_("This page cannot be used this way.")),
    410: (N_("Gone"), N_("This page is no longer available.")),
    429: (N_("Too Many Requests"), N_("Please wait a moment, then try again.")),
}


def _wants_json() -> bool:
    """Tell whether the client asked for JSON rather than a page."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def render_error(code: int, title: str, message: str, headers: dict[str, str] | None = None):
    """Render the error page (or JSON) with the given status."""
    if _wants_json():
        return {"error": title, "message": message}, code, headers or {}
    return (
        render_template("errors/error.html", code=code, title=title, message=message),
        code,
        headers or {},
    )


def register(app: Flask) -> None:
    """Install the error handlers on the app."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_error(
            400,
            _("The form expired"),
            _(
                "This form was missing its security token or the token had expired. "
                "Go back, reload the page and try again."
            ),
        )

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge):
        limit = app.config.get("MAX_CONTENT_LENGTH") or 0
        size = f" of {limit / (1024 * 1024):g} MB" if limit >= 1024 * 1024 else ""
        return render_error(
            413,
            "This upload is too large",
            f"The request was larger than the server's limit{size}, so nothing was stored. "
            "Upload fewer or smaller files at a time.",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        if code in HTTP_ERRORS and exc.description == type(exc).description:
            title, message = HTTP_ERRORS[code]
            return render_error(code, _(title), _(message))
        return render_error(code, exc.name, exc.description or "")

    @app.errorhandler(DataError)
    def unstorable_value(exc: DataError):
        # The database refused a value (out of range, bad character): the input is at fault,
        # not the server, and the transaction is rolled back so nothing half-written stays.
        app.logger.warning("value refused by the database: %s", type(exc.orig).__name__)
        db.session.rollback()
        return render_error(
            400,
            _("This value cannot be stored"),
            _(
                "Something that was sent (a number or a character) is outside what can be "
                "stored. Nothing was saved: go back, check the form and send it again."
            ),
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_unavailable(exc: Exception):
        # The database went away (restart, failover): nothing was stored; the person retries.
        app.logger.warning("database unavailable: %s", exc.__class__.__name__)
        db.session.rollback()
        return render_error(
            503,
            _("Please try again in a moment"),
            _(
                "The server could not reach its database just now. Nothing was lost: "
                "reload this page in a few seconds to continue."
            ),
            {"Retry-After": str(TRY_AGAIN_SECONDS)},
        )

    @app.errorhandler(500)
    def server_error(exc: Exception):
        return render_error(
            500,
            _("Something went wrong"),
            _(
                "The server hit an unexpected problem. Your earlier answers are safe; "
                "reload the page to continue."
            ),
        )
