"""Researcher routes: stimuli_routes."""

from survey.researcher import bp  # noqa: F401
