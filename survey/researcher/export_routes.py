"""Researcher routes: export_routes."""

from survey.researcher import bp  # noqa: F401
