"""Front page and health check."""

import sqlalchemy as sa
from flask import Blueprint, render_template

from survey.extensions import db

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    """Show what Likeness is and where researchers sign in."""
    return render_template("main/index.html")


@bp.get("/healthz")
def healthz():
    """Answer 200 when the database answers, for load balancers and monitors."""
    db.session.execute(sa.text("SELECT 1"))
    return {"status": "ok"}
