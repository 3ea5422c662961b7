"""Answer tickets: what validating a trial's answer needs, signed into the trial page's form."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

FIELD = "ticket"
# task . attention . last . side . settings key . signature
_FORMAT = re.compile(
    r"(match|rate|choose|detect)\.([01])\.([01])\.([01-])\.([0-9a-f]{16})\.([A-Za-z0-9_-]{22})\Z"
)
_SIDES = {"real": 1, "ai": 0}

Secret = str | bytes


@dataclass(frozen=True)
class Ticket:
    """What the answer to one trial is validated and stored with."""

    task: str
    is_attention: bool
    # The participant's last trial: storing its answer completes the participant.
    last: bool
    # Choose trials: the source shown on the left ("real" or "ai"); None for other tasks.
    left_source: str | None
    # The block's settings key (`answers.block_settings` gives it with the page).
    settings_key: str


def _key(secret: Secret) -> bytes:
    """Return the secret key as bytes."""
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _digest(secret: Secret, purpose: str, *parts: object) -> bytes:
    """Return HMAC-SHA256 of the parts, for one purpose."""
    message = "\x1f".join([purpose, *map(str, parts)]).encode()
    return hmac.new(_key(secret), message, hashlib.sha256).digest()


def _side_mask(secret: Secret, public_id: str, trial_id: int) -> int:
    """Return the bit that masks a choose trial's side in its ticket."""
    return _digest(secret, "likeness-ticket-side", public_id, trial_id)[0] & 1


def _signature(secret: Secret, slug: str, public_id: str, trial_id: int, body: str) -> str:
    """Return the ticket's signature (128 bits, URL-safe base64)."""
    mac = _digest(secret, "likeness-ticket", slug, public_id, trial_id, body)[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue(secret: Secret, slug: str, public_id: str, trial_id: int, ticket: Ticket) -> str:
    """Return the signed ticket of one trial of one participant in one study."""
    if ticket.left_source is None:
        side = "-"
    else:
        side = str(_SIDES[ticket.left_source] ^ _side_mask(secret, public_id, trial_id))
    body = ".".join(
        (ticket.task, str(int(ticket.is_attention)), str(int(ticket.last)), side,
         ticket.settings_key)
    )  # fmt: skip
    return f"{body}.{_signature(secret, slug, public_id, trial_id, body)}"


def read(secret: Secret, slug: str, public_id: str, trial_id: int, raw: str) -> Ticket | None:
    """Return the ticket if it was issued for this trial, participant and study, else None."""
    found = _FORMAT.match(raw or "")
    if found is None:
        return None
    body, signature = raw.rsplit(".", 1)
    expected = _signature(secret, slug, public_id, trial_id, body)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    task, attention, last, side, settings_key, _ = found.groups()
    left_source = None
    if side != "-":
        bit = int(side) ^ _side_mask(secret, public_id, trial_id)
        left_source = "real" if bit else "ai"
    return Ticket(task, attention == "1", last == "1", left_source, settings_key)
