"""Forms of the report pages: one-click actions that carry only their CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired


class ActionForm(FlaskForm):
    """Publish, unpublish or recompute: a button and its CSRF token."""


class PublishForm(FlaskForm):
    """Publish, confirmed on the page that shows what becomes public: names the report shown."""

    report_id = IntegerField(validators=[InputRequired()])
