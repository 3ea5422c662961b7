"""Sections of the report and the public page that fail alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from markupsafe import Markup

from survey.i18n import N_, gettext

# What a failed section says, by the whole it is part of: the report or a public page.
NOTES = {
    "report": N_(
        "This section could not be shown: %(reason)s; the rest of the report is unaffected."
    ),
    "page": N_("This section could not be shown: %(reason)s; the rest of the page is unaffected."),
}


@dataclass
class SectionError:
    """A section that could not be built; stands in for its value and says why."""

    name: str
    reason: str
    # Read by templates that list sections (an outcome that failed has no finding to show).
    finding: None = None
    figures: tuple = ()

    def __bool__(self) -> bool:
        """Never mistaken for content by an `if`."""
        return False


def short_reason(exc: BaseException) -> str:
    """The reason shown in the note: the kind of error, not its details (those are logged)."""
    return gettext("an unexpected error (%(kind)s)", kind=type(exc).__name__)


def _log(name: str) -> None:
    """Log the exception being handled, with its traceback and the section it broke."""
    current_app.logger.exception("The section %r of a report page could not be shown", name)


def guard(name: str, build: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """build(*args, **kwargs), or a SectionError (logged) when it raises."""
    try:
        return build(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure of one section is shown in its place
        _log(name)
        return SectionError(name, short_reason(exc))


def note(error: SectionError, whole: str = "report") -> Markup:
    """The note that replaces a failed section."""
    said = gettext(NOTES.get(whole, NOTES["report"]), reason=error.reason)
    text = f"{said} {gettext('Please report this.')}"
    return Markup(
        '<div class="section-error" role="alert" data-section="{}"><p><strong>{}.'
        "</strong> {}</p></div>"
    ).format(error.name, error.name.capitalize(), text)


def render_section(
    name: str, caller: Callable[[], str], needs: tuple = (), whole: str = "report"
) -> Markup:
    """The markup `caller()` renders, or the note when a needed value or the rendering failed."""
    failed = next((value for value in needs if isinstance(value, SectionError)), None)
    if failed is None:
        try:
            return Markup(caller())
        except Exception as exc:  # noqa: BLE001 - the note stands in for this section only
            _log(name)
            failed = SectionError(name, short_reason(exc))
    return note(failed, whole)


def register(app) -> None:
    """Make `render_section` available to the templates (the `section` macro calls it)."""
    app.jinja_env.globals["render_section"] = render_section
