"""The audit log: who opened, closed, exported or deleted what, and when."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from survey.extensions import db
from survey.models import AuditEvent, Researcher, Study


def record(
    action: str, *, researcher: Researcher | None, study: Study | None = None, **detail: Any
) -> AuditEvent:
    """Add an audit event to the session; it commits with the action it records."""
    event = AuditEvent(
        action=action,
        researcher_id=researcher.id if researcher is not None else None,
        researcher_email=researcher.email if researcher is not None else "",
        study_id=study.id if study is not None else None,
        detail=detail,
        address=(request.remote_addr or "")[:64] if has_request_context() else "",
    )
    db.session.add(event)
    return event
