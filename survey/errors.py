"""Error pages: every failure a person meets is a clear page with a 4xx or 503, never a trace."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from survey.extensions import db

TRY_AGAIN_SECONDS = 5


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
            "The form expired",
            "This form was missing its security token or the token had expired. "
            "Go back, reload the page and try again.",
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
        return render_error(exc.code or 500, exc.name, exc.description or "")

    @app.errorhandler(DataError)
    def unstorable_value(exc: DataError):
        # The database refused a value (out of range, bad character): the input is at fault,
        # not the server, and the transaction is rolled back so nothing half-written stays.
        app.logger.warning("value refused by the database: %s", type(exc.orig).__name__)
        db.session.rollback()
        return render_error(
            400,
            "This value cannot be stored",
            "Something that was sent (a number or a character) is outside what can be stored. "
            "Nothing was saved: go back, check the form and send it again.",
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_unavailable(exc: Exception):
        # The database went away (restart, failover): nothing was stored; the person retries.
        app.logger.warning("database unavailable: %s", exc.__class__.__name__)
        db.session.rollback()
        return render_error(
            503,
            "Please try again in a moment",
            "The server could not reach its database just now. Nothing was lost: "
            "reload this page in a few seconds to continue.",
            {"Retry-After": str(TRY_AGAIN_SECONDS)},
        )

    @app.errorhandler(500)
    def server_error(exc: Exception):
        return render_error(
            500,
            "Something went wrong",
            "The server hit an unexpected problem. Your earlier answers are safe; "
            "reload the page to continue.",
        )
