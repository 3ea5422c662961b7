"""Study reports for the research team and public findings pages."""

from flask import Blueprint

bp = Blueprint("findings", __name__)

from survey.findings import routes, sections  # noqa: E402, F401  (registers the routes)

bp.record_once(lambda state: sections.register(state.app))
