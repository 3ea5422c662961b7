"""The shipped catalogs against a fresh extraction, and no participant template words outside
gettext."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from survey.i18n import LANGUAGES, TRANSLATIONS, compile_catalogs
from tests.helpers import ROOT

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# Templates a participant meets: every visible word in them must go through gettext.
PARTICIPANT_TEMPLATES = sorted(
    [
        ROOT / "templates" / "base.html",
        *(ROOT / "templates" / "participant").glob("*.html"),
        *(ROOT / "templates" / "errors").glob("*.html"),
    ]
)
# Words a template may show as they are, in every language: the product's name and the letters
# printed on keys.
UNTRANSLATED_WORDS = {"Likeness", "F", "J"}
# Attributes whose words a person sees or hears.
VISIBLE_ATTRIBUTES = {"title", "alt", "aria-label", "placeholder", "value"}
BUTTON_TYPES = {"submit", "button", "reset"}


def fresh_extraction() -> dict[str, tuple[str, ...]]:
    """Extract the participant messages from the sources as `pybabel extract -F babel.cfg`
    does; return each message's ids (one, or singular and plural) by its first id."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    messages: dict[str, tuple[str, ...]] = {}
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        ids = (message,) if isinstance(message, str) else tuple(message)
        messages[ids[0]] = ids
    return messages


def shipped(language: str) -> Catalog:
    """Return a shipped catalog as read from its .po file."""
    path = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po_file:
        return read_po(po_file, locale=language)


def catalog_problems(catalog: Catalog, extracted: dict[str, tuple[str, ...]]) -> list[str]:
    """Say what a catalog lacks or gets wrong against the extracted messages: a missing,
    empty, fuzzy or obsolete entry, the wrong number of plural forms, a changed placeholder."""
    problems = []
    entries = {
        (message.id if isinstance(message.id, str) else message.id[0]): message
        for message in catalog
        if message.id
    }
    if catalog.fuzzy:
        problems.append("the catalog's header is fuzzy")
    for key, ids in extracted.items():
        entry = entries.get(key)
        if entry is None:
            problems.append(f"missing: {key!r}")
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {key!r}")
        strings = (entry.string,) if isinstance(entry.string, str) else tuple(entry.string)
        if len(ids) == 2 and len(strings) != catalog.num_plurals:
            problems.append(f"{len(strings)} plural forms, not {catalog.num_plurals}: {key!r}")
        if not all(strings):
            problems.append(f"untranslated: {key!r}")
            continue
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        # A plural form for one number may spell the number out ("one second"); the others,
        # and every singular message, keep every placeholder.
        other = strings[-1]
        if set(PLACEHOLDER.findall(other)) != wanted or any(
            not set(PLACEHOLDER.findall(s)) <= wanted for s in strings
        ):
            problems.append(f"placeholders changed: {key!r}")
    problems.extend(f"obsolete: {key!r}" for key in entries.keys() - extracted.keys())
    return problems


@pytest.fixture(scope="module")
def extracted() -> dict[str, tuple[str, ...]]:
    """The messages of a fresh extraction from the sources."""
    return fresh_extraction()


def test_the_extraction_finds_the_participant_messages(extracted):
    assert len(extracted) > 120
    assert extracted["Withdraw and delete my answers"] == ("Withdraw and delete my answers",)
    assert extracted["Same person?"]  # marked with N_ in survey/participant/forms.py
    assert len(extracted["Taking you back to %(platform)s automatically in %(seconds)s second. "
                         "To go now, select “%(button)s”."]) == 2  # fmt: skip


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_shipped_catalog_is_complete_and_not_fuzzy(language, extracted):
    catalog = shipped(language)
    assert str(catalog.locale) == language
    assert catalog_problems(catalog, extracted) == []
    assert list(catalog.check()) == []  # Babel's own checks: placeholders' names and types


def test_plural_forms_are_the_languages_own():
    # CLDR's rules, as Babel states them: Arabic has six forms, Chinese one.
    forms = {language: shipped(language).num_plurals for language in LANGUAGES}
    assert forms == {"en": 2, "de": 2, "es": 3, "fr": 3, "zh": 1, "ar": 6}
    arabic = shipped("ar")
    message = arabic["Taking you back to %(platform)s automatically in %(seconds)s second. "
                     "To go now, select “%(button)s”."]  # fmt: skip
    assert "ثانيتين" in message.string[2]  # two
    assert "ثوانٍ" in message.string[3]  # 3 to 10


def test_the_check_finds_a_missing_a_fuzzy_and_a_changed_entry(extracted):
    catalog = shipped("de")
    catalog.delete("Next")
    catalog["Skip"].flags.add("fuzzy")
    catalog["Return to %(platform)s"].string = "Zurück zu %(plattform)s"
    problems = catalog_problems(catalog, extracted)
    assert "missing: 'Next'" in problems
    assert "fuzzy: 'Skip'" in problems
    assert "placeholders changed: 'Return to %(platform)s'" in problems


def test_catalogs_compile_from_the_po_files(tmp_path):
    source = tmp_path / "translations"
    (source / "de" / "LC_MESSAGES").mkdir(parents=True)
    po = source / "de" / "LC_MESSAGES" / "messages.po"
    po.write_bytes((TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.po").read_bytes())
    assert compile_catalogs(source) == source
    mo = po.with_suffix(".mo")
    assert mo.stat().st_size > 1000
    before = mo.stat().st_mtime_ns
    compile_catalogs(source)  # up to date: not written again
    assert mo.stat().st_mtime_ns == before


# --- words outside gettext in the templates ---------------------------------------------------


class _VisibleWords(HTMLParser):
    """Collect the words of an HTML text that a person sees or hears: text and some attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Collect the words of the visible attributes."""
        kind = dict(attrs).get("type")
        for name, value in attrs:
            if not value or name not in VISIBLE_ATTRIBUTES:
                continue
            if name == "value" and not (tag == "input" and kind in BUTTON_TYPES):
                continue  # a hidden field's, a radio's or a <button>'s value is data, not words
            self.words.extend(re.findall(r"[^\W\d_]+", value))

    def handle_data(self, data: str) -> None:
        """Collect the words of a text node (attributes written in a {% set %} block, outside
        their tag, are markup, not words)."""
        data = re.sub(r"[\w-]+=\"[^\"]*\"", " ", data)
        self.words.extend(re.findall(r"[^\W\d_]+", data))


def untranslated_words(source: str) -> list[str]:
    """Return the words a template shows that no gettext call gives it.

    Everything Jinja writes ({{ }}, {% %}, comments) is taken out first, with the text between
    {% trans %} and {% endtrans %}; what is left is the template's own HTML.
    """
    source = re.sub(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", " ", source, flags=re.S)
    source = re.sub(r"\{#.*?#\}", " ", source, flags=re.S)
    # A block that fills a class attribute from outside the tag ({% block body_class %}survey…).
    source = re.sub(r"(\{%-?\s*block\s+\w+_class\s*-?%\})[\w\s-]*", r"\1", source)
    source = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "§", source, flags=re.S)
    parser = _VisibleWords()
    parser.feed(source)
    parser.close()
    return [word for word in parser.words if word not in UNTRANSLATED_WORDS]


@pytest.mark.parametrize("template", PARTICIPANT_TEMPLATES, ids=lambda path: path.name)
def test_no_participant_template_shows_a_word_outside_gettext(template: Path):
    assert untranslated_words(template.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("<p>Hello {{ name }}</p>", ["Hello"]),
        ('<img alt="Headshot" src="{{ src }}">', ["Headshot"]),
        ('<a title="Preview run">{{ _("Preview") }}</a>', ["Preview", "run"]),
        ('<input type="submit" value="Send">', ["Send"]),
        ('<p>{{ _("Hello") }}</p>{% trans %}Hello {{ name }}{% endtrans %}', []),
        ('<input type="hidden" name="x" value="abc"><kbd>F</kbd> + §', []),
        ('<body class="{% block body_class %}survey{% endblock %}">', []),
    ],
)
def test_the_template_check_finds_words_outside_gettext(source, words):
    assert untranslated_words(source) == words
