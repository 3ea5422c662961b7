"""The shipped catalogs against a fresh extraction, and no template words outside gettext: the
participant's pages (translated) and the researcher's (English, ready for a catalog)."""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
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


# --- the researcher's pages: English, through the same machinery ------------------------------

# Researcher, findings and home templates: English for now, but every word through gettext so
# that a catalog can translate them later.
RESEARCHER_TEMPLATES = sorted(
    [
        *(ROOT / "templates" / "researcher").rglob("*.html"),
        *(ROOT / "templates" / "findings").glob("*.html"),
        *(ROOT / "templates" / "main").glob("*.html"),
    ]
)
RESEARCHER_SOURCES = sorted(
    [*(ROOT / "survey" / "researcher").glob("*.py"), *(ROOT / "survey" / "findings").glob("*.py")]
)
# Calls whose text a researcher reads: a flashed message, a form field's label and
# description, a validator's or an abort's message, why an undo was refused, why a job failed.
# Which positional arguments of each are words: flash's first (its second is a category),
# abort's after the status code.
SHOWN_CALLS = {
    "flash": slice(0, 1),
    "abort": slice(1, 2),
    "ValidationError": slice(0, 1),
    "UndoRefused": slice(0, 1),
    "JobError": slice(0, 1),
}
SHOWN_KEYWORDS = {"label", "description", "message"}
GETTEXT_CALLS = {"_", "gettext", "ngettext", "lazy_gettext", "_l", "N_"}
RESEARCHER_KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}


def _name(node: ast.AST) -> str:
    """The called name: `flash` for flash(...), `StringField` for wtforms.StringField(...)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_text(node: ast.AST | None) -> bool:
    """A literal string (or f-string) with words in it, not wrapped in a gettext call."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(re.search(r"[^\W\d_]{2,}", node.value))
    return isinstance(node, ast.JoinedStr)


def bare_texts(source: str) -> list[str]:
    """Return the literal texts a researcher reads that no gettext call gives: the message of
    flash/abort/ValidationError, a form field's label (its first argument), and any label=,
    description= or message= keyword."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name in GETTEXT_CALLS:
            continue
        candidates = []
        if name in SHOWN_CALLS:
            candidates.extend(node.args[SHOWN_CALLS[name]])
        elif name.endswith("Field") and node.args:
            candidates.append(node.args[0])
        candidates.extend(k.value for k in node.keywords if k.arg in SHOWN_KEYWORDS)
        found.extend(ast.unparse(c) for c in candidates if _is_text(c))
    return found


@pytest.mark.parametrize(
    "template", RESEARCHER_TEMPLATES, ids=lambda path: str(path.relative_to(ROOT / "templates"))
)
def test_no_researcher_template_shows_a_word_outside_gettext(template: Path):
    assert untranslated_words(template.read_text(encoding="utf-8")) == []


# The names a {% set %} or {% for %} tag assigns: `{% set x = ... %}`, `{% set x %}...`,
# `{% for a, b in ... %}`.
ASSIGNED_NAMES = re.compile(r"\{%-?\s*(?:set|for)\s+([\w\s,()]+?)\s*(?:=|\bin\b|-?%\})")


def assigns_gettext(source: str) -> bool:
    """Whether a template assigns `_`, which hides the gettext function for the rest of that
    scope: every later `_("...")` there would call the assigned value instead."""
    return any("_" in re.split(r"[\s,()]+", names) for names in ASSIGNED_NAMES.findall(source))


@pytest.mark.parametrize(
    ("source", "assigns"),
    [
        ("{% set _ = tabs.append(x) %}", True),
        ("{%- if f.errors %}{% set _ = xs.append(1) %}{% endif -%}", True),
        ("{% for _ in range(3) %}{% endfor %}", True),
        ("{% for key, _ in pairs %}{% endfor %}", True),
        ("{% set _ %}text{% endset %}", True),
        ("{% set ignored = tabs.append(x) %}{% for _x in xs %}{% endfor %}", False),
        ('{% set label = _("Title") %}{% for a in _("x") %}{% endfor %}', False),
    ],
)
def test_the_assignment_check_finds_an_assigned_underscore(source, assigns):
    assert assigns_gettext(source) is assigns


@pytest.mark.parametrize(
    "template",
    sorted((ROOT / "templates").rglob("*.html")),
    ids=lambda path: str(path.relative_to(ROOT / "templates")),
)
def test_no_template_assigns_the_gettext_function(template: Path):
    assert not assigns_gettext(template.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "source", RESEARCHER_SOURCES, ids=lambda path: str(path.relative_to(ROOT / "survey"))
)
def test_researcher_messages_and_labels_go_through_gettext(source: Path):
    assert bare_texts(source.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "texts"),
    [
        ('flash("Saved.")', ["'Saved.'"]),
        ('flash(_("Saved."))', []),
        ('flash(f"Saved {n}.")', ["f'Saved {n}.'"]),
        (
            'x = StringField("Title", validators=[Length(max=5, message="Too long")])',
            ["'Title'", "'Too long'"],
        ),  # fmt: skip
        ('x = StringField(_l("Title"), description=_l("Shown"))', []),
        ("abort(404)", []),
        ('abort(400, description="No such block.")', ["'No such block.'"]),
        ('flash(msg, "error")', []),
        (
            'raise UndoRefused(f"Another block is called {name!r} now.")',
            ["f'Another block is called {name!r} now.'"],
        ),
        ('raise jobs.JobError(N_("The study was deleted."))', []),
    ],
)
def test_the_source_check_finds_bare_texts(source, texts):
    assert bare_texts(source) == texts


def researcher_extraction() -> set[str]:
    """The messages `pybabel extract -F babel-researcher.cfg -k _l -k lazy_gettext` finds."""
    with (ROOT / "babel-researcher.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    return {
        message if isinstance(message, str) else message[0]
        for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=RESEARCHER_KEYWORDS
        )
    }


def test_the_researcher_template_is_current():
    # survey/translations/researcher.pot is what a translator starts from (docs/i18n.md).
    with (TRANSLATIONS / "researcher.pot").open("rb") as pot:
        shipped_ids = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(pot) if m.id}
    fresh = researcher_extraction()
    assert sorted(fresh - shipped_ids) == [] and sorted(shipped_ids - fresh) == []
    assert "Sign in" in fresh and len(fresh) > 400


def test_the_researcher_catalog_has_the_words_made_outside_its_packages():
    # Job titles and states, question kinds, the Languages page's names of texts, the
    # sample-size notes, a study tab: made in modules and templates babel-researcher.cfg lists.
    fresh = researcher_extraction()
    assert {
        "Preparing an export",
        "queued",
        "Waiting for a worker",
        "Rating scale (Likert)",
        "a number from %(low)s to %(high)s",
        "Block “%(block)s”: %(text)s",
        "German",
        "Stopped after %(seconds)s s: not simulated: %(points)s.",
        "Overview",
    } <= fresh
