"""Participant routes."""

from survey.participant import bp  # noqa: F401
