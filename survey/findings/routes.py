"""Report and findings routes."""

from survey.findings import bp  # noqa: F401
