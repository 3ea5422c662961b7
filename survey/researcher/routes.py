"""Researcher routes."""

from survey.researcher import bp  # noqa: F401
