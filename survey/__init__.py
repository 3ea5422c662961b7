"""Likeness web application: the factory that builds the Flask app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application: configuration, extensions, blueprints, commands."""
    from flask_login import current_user

    from survey import cli, errors, i18n, security
    from survey import config as config_module
    from survey.extensions import (
        CookieSessionInterface,
        babel,
        csrf,
        db,
        login_manager,
        migrate,
    )
    from survey.webapp import LikenessFlask

    app = LikenessFlask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_mapping(config_module.load(Path(app.instance_path), config))
    app.session_interface = CookieSessionInterface()
    security.bound_url_ids(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    # Participant pages in the participant's language (survey/i18n.py); the catalogs are
    # compiled from their .po files here, so a fresh checkout needs no build step.
    babel.init_app(
        app,
        locale_selector=i18n.current_language,
        default_translation_directories=str(i18n.compile_catalogs()),
    )
    # Templates translate through the page's catalog, looked up once per request.
    app.jinja_env.install_gettext_callables(i18n.page_gettext, i18n.page_ngettext, newstyle=True)
    app.jinja_env.globals.update(
        page_language=i18n.current_language,
        text_direction=i18n.direction,
        translated=i18n.translated,
        format_number=i18n.format_number,
    )
    # Templates get the signed-in researcher as flask-login's lazy proxy, read only by the pages
    # that ask for it (flask-login's own context processor loads it for every page rendered).
    login_manager.init_app(app, add_context_processor=False)
    app.context_processor(lambda: {"current_user": current_user})
    login_manager.login_view = "researcher.login"
    login_manager.session_protection = "basic"

    from survey.participant.hotdb import hot_path

    hot_path.init_app(app)

    from survey.findings import bp as findings_bp
    from survey.main import bp as main_bp
    from survey.participant import bp as participant_bp
    from survey.researcher import bp as researcher_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(participant_bp)
    app.register_blueprint(researcher_bp)
    app.register_blueprint(findings_bp)

    errors.register(app)
    security.register(app)
    cli.register(app)
    return app
