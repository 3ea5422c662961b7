"""The researcher's workspace: accounts, studies, stimuli, monitor, exports."""

from flask import Blueprint

bp = Blueprint("researcher", __name__, url_prefix="/r")

from survey.researcher import routes  # noqa: E402,F401  (registers the routes)
