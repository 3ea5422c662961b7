"""The researcher's workspace: accounts, studies, stimuli, monitor, exports."""

from flask import Blueprint

bp = Blueprint("researcher", __name__, url_prefix="/r")

# Importing the modules registers their routes on the blueprint.
from survey.researcher import (  # noqa: E402,F401
    export_routes,
    job_routes,
    routes,
    stimuli_routes,
)
