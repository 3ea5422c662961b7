"""Recruitment platforms' ids from the study link: reading them, finding who they started, and
the digest a withdrawn participant's id is kept as."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from survey.extensions import db
from survey.i18n import gettext as _
from survey.models import Participant, RecruitmentId

# Query parameters naming the participant on each platform, in the order they are looked for,
# and the platform's other parameters worth keeping (apart from the opaque participant id).
PLATFORM_ID_PARAMS = (
    ("prolific", "PROLIFIC_PID"),
    ("mturk", "workerId"),
    ("sona", "sona_id"),
    ("sona", "id"),
    # A generic panel's id: recruited through a plain link that names its participant.
    ("link", "pid"),
)
PLATFORM_EXTRA_PARAMS = {
    "prolific": ("STUDY_ID", "SESSION_ID"),
    "mturk": ("assignmentId", "hitId", "turkSubmitTo"),
    "sona": ("experiment_id", "credit_token", "survey_code"),
    "link": ("source", "session"),
}
# The parameter a platform gives each attempt afresh (Prolific's SESSION_ID, MTurk's
# assignmentId): unlike the participant's platform id it is not known to others, so it lets a
# recruitment id resume its participant in another browser. SONA has none.
PLATFORM_SESSION_PARAMS = {"prolific": "SESSION_ID", "mturk": "assignmentId", "link": "session"}
PLATFORM_NAMES = {"prolific": "Prolific", "mturk": "Mechanical Turk", "sona": "SONA"}
EXTERNAL_ID = re.compile(r"[A-Za-z0-9_.:@+-]{1,128}\Z")
PARAM_VALUE = re.compile(r"[A-Za-z0-9_.:@+/%=-]{1,200}\Z")
WITHDRAWN_ID_PREFIX = "sha256:"
MOBILE_HINTS = ("Mobi", "Android", "iPhone", "iPod", "Windows Phone", "Opera Mini")


@dataclass(frozen=True)
class Recruitment:
    """A recruitment platform's ids from the study link, kept apart from the participant id."""

    platform: str
    external_id: str
    params: dict[str, str] = field(default_factory=dict, hash=False)


def recruitment_from_args(args: Mapping[str, str]) -> Recruitment | None:
    """Return the platform and ids named in a link's query, None for a plain link.

    Raises ValueError naming the parameter when its id is malformed (e.g. a placeholder such
    as ``{{%PROLIFIC_PID%}}`` the platform did not fill in).
    """
    for platform, name in PLATFORM_ID_PARAMS:
        raw = args.get(name)
        if raw is None or raw == "":
            continue
        value = raw.strip()
        if not EXTERNAL_ID.match(value):
            raise ValueError(f"{name} {raw[:40]!r} is not a valid participant id")
        params = {
            key: args[key]
            for key in PLATFORM_EXTRA_PARAMS[platform]
            if PARAM_VALUE.match(args.get(key) or "")
        }
        return Recruitment(platform, value, params)
    return None


def device_from_user_agent(user_agent: str | None) -> str:
    """Return "mobile" or "desktop" from a User-Agent string (a simple heuristic)."""
    ua = user_agent or ""
    return "mobile" if any(hint in ua for hint in MOBILE_HINTS) else "desktop"


def withdrawn_digest(platform: str, external_id: str) -> str:
    """Return the digest a withdrawn participant's recruitment id is kept as."""
    digest = hashlib.sha256(f"{platform}:{external_id}".encode()).hexdigest()
    return WITHDRAWN_ID_PREFIX + digest


def recruited_in(study_id: Any) -> tuple[sa.ColumnElement[bool], ...]:
    """Match the recruitment id of the `platform`, `external_id` and `withdrawn_id` parameters
    in a study: the platform's id, or its digest once its participant withdrew."""
    return (
        RecruitmentId.study_id == study_id,
        RecruitmentId.platform == sa.bindparam("platform"),
        RecruitmentId.external_id.in_([sa.bindparam("external_id"), sa.bindparam("withdrawn_id")]),
    )


def recruitment_params(recruitment: Recruitment) -> dict[str, str]:
    """Return the parameters `recruited_in` matches a recruitment id with."""
    return {
        "platform": recruitment.platform,
        "external_id": recruitment.external_id,
        "withdrawn_id": withdrawn_digest(recruitment.platform, recruitment.external_id),
    }


_BY_RECRUITMENT = (
    sa.select(Participant)
    .join(RecruitmentId, RecruitmentId.participant_id == Participant.id)
    .where(*recruited_in(sa.bindparam("study_id")))
)


def find_by_recruitment(study_id: int, recruitment: Recruitment) -> Participant | None:
    """Return the participant this recruitment id already started in the study, if any."""
    return db.session.scalar(
        _BY_RECRUITMENT, {"study_id": study_id, **recruitment_params(recruitment)}
    )


def same_attempt(participant_id: int, recruitment: Recruitment) -> bool:
    """Tell whether the link carries the session parameter the participant started with.

    Knowing a participant's platform id is not enough to resume as them: the platform's
    per-attempt parameter must match too (a link without one, or a platform without one,
    resumes only in the participant's own browser).
    """
    name = PLATFORM_SESSION_PARAMS.get(recruitment.platform)
    given = recruitment.params.get(name, "") if name else ""
    if not given:
        return False
    stored = db.session.scalar(
        sa.select(RecruitmentId.params).where(RecruitmentId.participant_id == participant_id)
    )
    kept = stored.get(name, "") if isinstance(stored, dict) else ""
    return bool(kept) and hmac.compare_digest(str(kept).encode(), given.encode())


# The platforms' own sites, by the end of the completion link's host name.
PLATFORM_HOSTS = (
    ("prolific.com", "Prolific"),
    ("prolific.co", "Prolific"),
    ("mturk.com", "Mechanical Turk"),
    ("sona-systems.com", "SONA"),
    ("sona-systems.net", "SONA"),
)


def platform_name(participant: Participant, completion_url: str) -> str:
    """Return the name of where the completion link leads ("Prolific", or the host).

    By the link, not by where the participant came from: a participant who came through
    MTurk to a study whose link is Prolific's is sent to Prolific, and the button says so.
    """
    host = completion_url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1]
    host = host.split(":", 1)[0].lower()
    for suffix, name in PLATFORM_HOSTS:
        if host == suffix or host.endswith("." + suffix):
            return name
    return host or PLATFORM_NAMES.get(participant.source) or _("the study site")
