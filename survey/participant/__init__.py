"""The participant's side: from the study link to the completion code."""

from flask import Blueprint

bp = Blueprint("participant", __name__)

from survey.participant import delay_routes, routes  # noqa: E402,F401  (registers the routes)
