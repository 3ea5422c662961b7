"""The participant's language: the languages shipped, a study's languages, the choice for a
request (stored on the participant once started) and the catalogs compiled at start-up."""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask_babel.speaklater import LazyString
from markupsafe import Markup, escape

LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "es": "Español",
    "fr": "Français",
    "zh": "简体中文",
    "ar": "العربية",
}
RTL_LANGUAGES = frozenset({"ar"})
DEFAULT_LANGUAGE = "en"
# The query parameter of a study link that asks for a language (?lang=de).
LANG_PARAM = "lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"

# Keys of flask.g: the current participant's stored language, the page's language and its
# catalog.
_STORED = "likeness_participant_language"
_ACTIVE = "likeness_language"
_CATALOG = "likeness_catalog"


def N_(message: str) -> str:
    """Mark a string for the catalogs without translating it (translated where it is shown)."""
    return message


def study_languages(study: Any) -> list[str]:
    """Return a study's languages, its default first; ["en"] when it names none we ship."""
    settings = getattr(study, "settings", None) or {}
    chosen = settings.get("languages") if isinstance(settings, dict) else None
    if not isinstance(chosen, list | tuple):
        return [DEFAULT_LANGUAGE]
    languages: list[str] = []
    for code in chosen:
        if isinstance(code, str) and code in LANGUAGES and code not in languages:
            languages.append(code)
    return languages or [DEFAULT_LANGUAGE]


def requested_language(languages: list[str]) -> str:
    """Return the language this request asks for among `languages`: ?lang=, else the browser's
    Accept-Language (quality values honoured, "de-AT" matching "de"), else the first."""
    from flask import request

    asked = request.args.get(LANG_PARAM)
    if asked in languages:
        return asked
    return accepted_language(request.accept_languages, languages) or languages[0]


def accepted_language(accepted: Any, languages: list[str]) -> str | None:
    """Return the first of `languages` the browser accepts, by its quality values (highest
    first, q=0 never); a regional tag ("de-AT", "zh-CN") counts as its language; "*" as the
    first of `languages`. None when the browser accepts none of them.

    (Werkzeug's `best_match` would take an exact "en;q=0.1" over "de-AT" at q=1.)
    """
    for tag, quality in accepted:
        if quality <= 0:
            continue
        if tag == "*":
            return languages[0]
        primary = tag.replace("_", "-").split("-")[0].lower()
        if primary in languages:
            return primary
    return None


def remember_participant(language: str | None) -> None:
    """Tell `participant_language` the current participant's stored language (None: none)."""
    from flask import g

    setattr(g, _STORED, language)


def participant_language(study: Any) -> str:
    """Return the language of the current participant request: the participant's stored one
    once started, before that ?lang=, Accept-Language among the study's languages, its default."""
    from flask import g

    stored = g.get(_STORED)
    if stored in LANGUAGES:
        return stored
    return requested_language(study_languages(study))


def activate(language: str | None) -> str:
    """Make `language` the language of this request's pages; return the one used."""
    import flask_babel
    from flask import g

    code = language if language in LANGUAGES else DEFAULT_LANGUAGE
    if g.get(_ACTIVE) != code:
        setattr(g, _ACTIVE, code)
        g.pop(_CATALOG, None)
        flask_babel.refresh()
    return code


def _catalog() -> Any:
    """Return the page's catalog, asked of Flask-Babel once per request (its own lookup, on
    every call, costs more than the translation)."""
    from flask import g

    catalog = g.get(_CATALOG)
    if catalog is None:
        import flask_babel

        catalog = flask_babel.get_translations()
        setattr(g, _CATALOG, catalog)
    return catalog


def page_gettext(message: str) -> str:
    """Translate a template's message into the page's language (Jinja fills the variables)."""
    return _catalog().ugettext(message)


def page_ngettext(singular: str, plural: str, number: int) -> str:
    """Translate a template's message with a plural form into the page's language."""
    return _catalog().ungettext(singular, plural, number)


def activate_for(study: Any, stored: str | None) -> str:
    """Activate the language of a participant page of `study` (`stored`: the participant's)."""
    remember_participant(stored)
    return activate(participant_language(study))


def current_language() -> str:
    """Return the language of this request's pages (the locale selector of Flask-Babel).

    Set by the participant's pages; before they know the study (an unknown link, an expired
    form) the browser's choice among all shipped languages; researcher pages stay English.
    """
    from flask import g, has_request_context, request

    if not has_request_context():
        return DEFAULT_LANGUAGE
    active = g.get(_ACTIVE)
    if active:
        return active
    if request.path.startswith("/s/"):
        return requested_language(list(LANGUAGES))
    return DEFAULT_LANGUAGE


def gettext(message: str, **variables: Any) -> str:
    """Return a message in the page's language, filled with `variables` (%(name)s); outside a
    request, in English. For modules that stay free of Flask."""
    from flask import has_request_context

    if has_request_context():
        import flask_babel

        return flask_babel.gettext(message, **variables)
    return message % variables if variables else message


def translated(text: str) -> str:
    """Return a text in the page's language when the catalogs have it (a built-in question or
    answer), any other (a researcher's own, an empty one) as it is; never %-formatted. Outside
    a request, as it is (English)."""
    from flask import has_request_context

    if not text or not has_request_context():
        return text
    return _catalog().ugettext(text)


def format_number(value: float) -> str:
    """Return a number as the page's language writes it ("1.234,5" in German)."""
    return _formatted(current_language(), value)


@lru_cache(maxsize=4096)
def _formatted(language: str, value: float) -> str:
    """Format a number for a language (remembered: Babel takes some 50 µs a number, and a
    trial page shows the same few numbers on every request)."""
    from babel.numbers import format_decimal

    return format_decimal(value, locale=language)


def direction(language: str) -> str:
    """Return "rtl" or "ltr", the writing direction of a language."""
    return "rtl" if language in RTL_LANGUAGES else "ltr"


def compile_catalogs(source: Path = TRANSLATIONS) -> Path:
    """Compile every messages.po under `source` to its .mo when missing or older; return the
    directory Flask-Babel reads (beside the .po, or a temporary one when that is read-only)."""
    target = source
    for po_path in sorted(source.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        try:
            _compile(po_path, mo_path)
        except OSError:
            target = Path(tempfile.gettempdir()) / "likeness-translations"
            _compile(po_path, target / po_path.relative_to(source).with_suffix(".mo"))
    if target != source:
        # Every catalog in one place: those that compiled beside their .po are copied too.
        for po_path in sorted(source.glob("*/LC_MESSAGES/messages.po")):
            _compile(po_path, target / po_path.relative_to(source).with_suffix(".mo"))
    return target


def _compile(po_path: Path, mo_path: Path) -> None:
    """Write a .po's compiled catalog, atomically (another worker may be reading it)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=po_path.parent.parent.name)
    mo_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=mo_path.parent, suffix=".mo.tmp")
    try:
        with os.fdopen(handle, "wb") as mo_file:
            write_mo(mo_file, catalog)
        os.replace(temporary, mo_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class LazyText(LazyString):
    """A message translated when it is shown (a label, a help text, a validator's message).

    Flask-Babel's lazy string, but a template escapes it like any other text: Flask-Babel's
    own counts as markup, so "/s/<link name>" would become a tag and "'" would not be escaped.
    """

    def __html__(self) -> Markup:
        return escape(str(self))


def lazy_gettext(message: str, **variables: Any) -> LazyText:
    """Return `message` translated in the language of the page that shows it (%(name)s
    placeholders filled with `variables`); for labels and messages set when a module loads."""
    return LazyText(gettext, message, **variables)
