"""Forms of the report pages: one-click actions that carry only their CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm


class ActionForm(FlaskForm):
    """Publish, unpublish or recompute: a button and its CSRF token."""
