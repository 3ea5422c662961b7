"""Flask extensions, created unbound and bound to the app in create_app()."""

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from survey.models import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened without its signer when the request has no cookie.

    Participants never get a session cookie (their forms are checked by their own form key),
    so on their pages this skips building a signer on every request.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Return an empty session for a request without a session cookie."""
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response) -> None:
        """Save as Flask does; an empty session nobody changed only adds `Vary: Cookie` if read.

        (Flask would read seven cookie settings first, for a cookie it then does not set.)
        """
        if not session and not session.modified:
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)
