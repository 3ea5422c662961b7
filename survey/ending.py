"""The end of a study: the way back to the recruitment platform, and what a withdrawal asks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from survey.i18n import N_
from survey.i18n import gettext as _

# The study setting that turns the automatic return on, and its bounds in seconds.
RETURN_REDIRECT_KEY = "return_redirect_s"
RETURN_REDIRECT_MIN_S = 5
RETURN_REDIRECT_MAX_S = 120

# What a participant who withdraws does on their platform, keyed by Participant.source.
WITHDRAW_ADVICE = {
    "prolific": N_(
        "Please return your submission on Prolific by selecting 'Stop without completing' "
        "(on newer Prolific pages: 'Cancel participation') on the study's Prolific page. "
        "Do not submit a completion code. Returning does not affect your Prolific score."
    ),
    "mturk": N_(
        "Please return this HIT on Amazon Mechanical Turk by selecting 'Return' on the HIT's "
        "page, so that it is released and not left to expire. Do not submit a completion code."
    ),
    "sona": N_(
        "You do not need to do anything on SONA: your sign-up stays as it is and the "
        "researcher decides about credit there. If you have a question about credit, write "
        "to the researcher through SONA."
    ),
}
GENERIC_WITHDRAW_ADVICE = N_(
    "If you were sent here from another site, you do not need to enter a completion code "
    "there. You can close this page."
)


def withdraw_advice(source: str | None) -> str:
    """Return what a participant who came from `source` should do after withdrawing, in the
    page's language."""
    return _(WITHDRAW_ADVICE.get(source or "", GENERIC_WITHDRAW_ADVICE))


def redirect_problem(value: Any) -> str | None:
    """Say what is wrong with a return delay (None or a whole number of seconds in range)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return (
            f"The automatic return delay must be a whole number of seconds or empty, got {value!r}."
        )
    if not RETURN_REDIRECT_MIN_S <= value <= RETURN_REDIRECT_MAX_S:
        return (
            f"The automatic return delay must be between {RETURN_REDIRECT_MIN_S} and "
            f"{RETURN_REDIRECT_MAX_S} seconds; you wrote {value}."
        )
    return None


def redirect_delay(settings: Mapping[str, Any] | None) -> int | None:
    """Return the study's automatic return delay in seconds, or None when it is off.

    A stored value out of range (an older or hand-edited row) counts as off: the page then
    never leaves on its own.
    """
    value = (settings or {}).get(RETURN_REDIRECT_KEY)
    return None if value is None or redirect_problem(value) else int(value)
