"""A study's texts in its other languages: which texts there are, which are missing, saving them,
and the text a participant reads in their language (falling back to the default language's)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from survey.block_settings import LABEL_MAX, NAME_PLACEHOLDER, names_people, validate_block_settings
from survey.cache import BoundedCache
from survey.extensions import db
from survey.flow import MESSAGE_KEY, MESSAGE_MAX, flow_settings
from survey.i18n import LANGUAGES, N_, gettext, study_languages, translated
from survey.models import Block, Study, StudyQuestion, StudyText
from survey.questions import Asked

# The study's own texts: key, column holding the default language's text, and its name (in
# English, translated where it is shown).
TITLE_KEY = "title"
STUDY_TEXTS = (
    (TITLE_KEY, "title", N_("Title")),
    ("consent", "consent_text", N_("Consent text")),
    ("instructions", "instructions_text", N_("Instructions")),
    ("debrief", "debrief_text", N_("Debrief")),
)
STUDY_COLUMNS = {key: column for key, column, _ in STUDY_TEXTS}
# The study's own texts written on one line, with the most characters of each (the title's, as
# its column allows); the others are Markdown.
TITLE_MAX = 200
ONE_LINE = {TITLE_KEY: TITLE_MAX}
# The study's texts kept in its settings: the break message, shown between blocks.
STUDY_KEYS = (*STUDY_COLUMNS, MESSAGE_KEY)
# Block settings participants read, by name (a block shows those it has, non-empty), with what
# the researcher reads for each (in English, translated where it is shown).
BLOCK_SETTINGS = {
    "instructions": N_("instructions"),
    "question": N_("question"),
    "orienting_question": N_("orienting question"),
    "label": N_("name label"),
}
SCALE_FIELDS = {
    "question": N_("question"),
    "low_anchor": N_("low anchor"),
    "high_anchor": N_("high anchor"),
}
# The longest text of each kind, as the default language's own columns allow.
MAX_LONG_TEXT = 20000
MAX_SHORT_TEXT = 500


@dataclass(frozen=True)
class Text:
    """One text of a study a participant reads: its key, what it is (in the page's language),
    and its default wording."""

    key: str
    label: str
    default: str
    # Consent, instructions and debrief are Markdown; the title, block and question texts are
    # one line.
    long: bool = False
    block_id: int | None = None
    question_id: int | None = None
    # The most characters, when not the kind's (the break message's, as its setting allows).
    most: int | None = None

    @property
    def part(self) -> str:
        """Return which rule guards a change: "study", "block" or "question"."""
        if self.block_id is not None:
            return "block"
        return "question" if self.question_id is not None else "study"

    @property
    def limit(self) -> int:
        """Return the most characters the text may have."""
        if self.most is not None:
            return self.most
        return MAX_LONG_TEXT if self.long else MAX_SHORT_TEXT

    def row(self, study_id: int, language: str, value: str) -> StudyText:
        """Return the row holding this text written in `language`."""
        return StudyText(
            study_id=study_id,
            block_id=self.block_id,
            question_id=self.question_id,
            language=language,
            key=self.key,
            text=value,
        )


# The languages' names in English words (translated where they are shown).
LANGUAGE_NAMES = {
    "en": N_("English"),
    "de": N_("German"),
    "es": N_("Spanish"),
    "fr": N_("French"),
    "zh": N_("Chinese"),
    "ar": N_("Arabic"),
}


def language_name(code: str) -> str:
    """Return a language's name in the page's words with its own name: "German (Deutsch)"."""
    name = translated(LANGUAGE_NAMES[code]) if code in LANGUAGE_NAMES else code
    own = LANGUAGES.get(code, code)
    return name if own == name else f"{name} ({own})"


# --- which texts a study has --------------------------------------------------------------


def _filled(task: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a block's settings with their defaults (what participants are shown)."""
    try:
        return validate_block_settings(task, dict(settings or {}))
    except ValueError:
        return dict(settings or {})


def block_texts(block: Block) -> list[Text]:
    """Return the texts a block shows participants, in the default language."""
    settings = _filled(block.task, block.settings)
    out = []
    for name, words in BLOCK_SETTINGS.items():
        value = settings.get(name)
        if isinstance(value, str) and value.strip():
            label = gettext("Block “%(block)s”: %(text)s", block=block.name, text=translated(words))
            out.append(Text(f"block:{block.id}:{name}", label, value, False, block.id))
    for scale in settings.get("scales") or []:
        for name, words in SCALE_FIELDS.items():
            value = scale.get(name)
            if isinstance(value, str) and value.strip():
                label = gettext(
                    "Block “%(block)s”: scale %(scale)s, %(text)s",
                    block=block.name,
                    scale=scale["key"],
                    text=translated(words),
                )
                out.append(
                    Text(
                        f"block:{block.id}:scale:{scale['key']}:{name}",
                        label,
                        value,
                        False,
                        block.id,
                    )
                )
    return out


def question_texts(question: StudyQuestion) -> list[Text]:
    """Return a question's texts (its wording, options or anchors), in the default language."""
    prefix = f"question:{question.id}"
    code = question.code
    out = [
        Text(
            f"{prefix}:text",
            gettext("Question %(code)s: wording", code=code),
            question.text,
            question_id=question.id,
        )
    ]
    for value, label in question.spec.get("options") or []:
        out.append(
            Text(
                f"{prefix}:option:{value}",
                gettext("Question %(code)s: option %(value)s", code=code, value=value),
                label,
                question_id=question.id,
            )
        )
    anchors = question.spec.get("anchors") or {}
    for point in sorted(anchors, key=int):
        if anchors[point]:
            out.append(
                Text(
                    f"{prefix}:anchor:{point}",
                    gettext("Question %(code)s: anchor of point %(point)s", code=code, point=point),
                    anchors[point],
                    question_id=question.id,
                )
            )
    return out


def catalogue(study: Study) -> list[Text]:
    """Return every text of the study a participant reads, in the default language, in order.

    A text empty in the default language is not listed: there is nothing to translate.
    """
    out = [
        Text(
            key,
            translated(label),
            getattr(study, column),
            long=key not in ONE_LINE,
            most=ONE_LINE.get(key),
        )
        for key, column, label in STUDY_TEXTS
        if (getattr(study, column) or "").strip()
    ]
    message = flow_settings(study.settings).message
    if message.strip():
        out.append(
            Text(MESSAGE_KEY, gettext("Break message"), message, long=True, most=MESSAGE_MAX)
        )
    for block in sorted(study.blocks, key=lambda b: b.position):
        out.extend(block_texts(block))
    for question in sorted(study.questions, key=lambda q: (q.position, q.id)):
        out.extend(question_texts(question))
    return out


def translations(study_id: int, language: str | None = None) -> dict[str, dict[str, str]]:
    """Return the study's written translations as {language: {key: text}}."""
    query = sa.select(StudyText.language, StudyText.key, StudyText.text).where(
        StudyText.study_id == study_id
    )
    if language is not None:
        query = query.where(StudyText.language == language)
    out: dict[str, dict[str, str]] = {}
    for lang, key, text in db.session.execute(query):
        out.setdefault(lang, {})[key] = text
    return out


def missing(study: Study) -> dict[str, list[Text]]:
    """Return, per language other than the default, the texts not written in it yet."""
    languages = study_languages(study)
    written = translations(study.id)
    texts = catalogue(study)
    return {
        lang: [t for t in texts if not (written.get(lang, {}).get(t.key) or "").strip()]
        for lang in languages[1:]
    }


def _listed(labels: list[str], most: int = 5) -> str:
    """Join labels in words, naming at most `most` of them."""
    shown = labels[:most]
    rest = len(labels) - len(shown)
    words = "; ".join(shown)
    return gettext("%(texts)s; and %(rest)s more", texts=words, rest=rest) if rest else words


def text_problems(study: Study) -> list[str]:
    """Say, per chosen language, which texts it lacks; empty when every language is complete."""
    return [
        gettext(
            "The %(language)s texts are not all written: %(texts)s. Write them on the Languages "
            "page, or take %(language)s off the study's languages.",
            language=language_name(lang),
            texts=_listed([t.label for t in lacking]),
        )
        for lang, lacking in missing(study).items()
        if lacking
    ]


# --- the languages setting ----------------------------------------------------------------


def check_languages(chosen: Iterable[str], default: str) -> tuple[list[str], str | None]:
    """Return the languages to store (default first), or the problem in plain words."""
    picked = [code for code in dict.fromkeys(chosen) if code]
    unknown = [code for code in picked if code not in LANGUAGES]
    if unknown:
        return [], gettext("“%(code)s” is not a language studies can run in.", code=unknown[0])
    if default not in LANGUAGES:
        return [], gettext("Choose the language participants get when their link names none.")
    if not picked:
        return [], gettext("Choose at least one language.")
    if default not in picked:
        return [], gettext(
            "The default language, %(language)s, must be one of the languages ticked.",
            language=language_name(default),
        )
    return [default, *(code for code in picked if code != default)], None


def with_languages(settings: Mapping[str, Any] | None, languages: list[str]) -> dict[str, Any]:
    """Return study settings holding these languages (none stored for English alone)."""
    out = dict(settings or {})
    if languages == ["en"]:
        out.pop("languages", None)
    else:
        out["languages"] = list(languages)
    return out


# --- writing translations -----------------------------------------------------------------


def edit_refusal(study: Study, part: str) -> str | None:
    """Say why texts of this part ("study", "block", "question") cannot change now, or None."""
    if study.state == "archived":
        return gettext("The study is archived: move it back to closed to change its texts.")
    if part == "block" and study.design_locked:
        return gettext("Block texts are part of the frozen design and cannot change now.")
    if part == "question" and study.state != "draft":
        return gettext("Question texts can change only while the study is a draft.")
    return None


def save_translations(
    study: Study, language: str, posted: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Write the posted texts of one language (an empty one is deleted); return the errors by
    key, and the keys changed.

    Call it on the row `lock_for_change` returned; nothing is written when there are errors.
    A text of a part that cannot change now keeps its stored wording whatever is posted.
    """
    texts = {t.key: t for t in catalogue(study)}
    stored = translations(study.id, language).get(language, {})
    errors: dict[str, str] = {}
    changes: dict[str, str] = {}
    for key, text in texts.items():
        if key not in posted:
            continue
        value = (posted.get(key) or "").replace("\r\n", "\n").strip()
        if value == stored.get(key, ""):
            continue
        refusal = edit_refusal(study, text.part)
        if refusal:
            errors[key] = refusal
        elif len(value) > text.limit:
            errors[key] = gettext(
                "At most %(most)s characters; this has %(length)s.",
                most=text.limit,
                length=len(value),
            )
        elif "\x00" in value:
            errors[key] = gettext("The text holds a NUL character, which cannot be stored.")
        elif key == TITLE_KEY and not one_line(value):
            # Quoted in one-line places: the page's title, the header of every page.
            errors[key] = gettext("Write the title on one line, without line breaks or tabs.")
        elif not text.long and "\n" in value:
            errors[key] = gettext("Write this text on one line.")
        elif key.endswith(":label") and value and not _label_ok(value, text.default):
            errors[key] = (
                gettext(
                    "Write {name} once, where the person's name goes, in at most %(most)s "
                    "characters.",
                    most=LABEL_MAX,
                )
                if names_people(text.default)
                else gettext(
                    "Write the label without {name}, as it is written in the study's language "
                    "(it names no one), in at most %(most)s characters.",
                    most=LABEL_MAX,
                )
            )
        elif not value and study.state != "draft":
            errors[key] = gettext(
                "The study has opened: participants choosing this language read this text, so "
                "it cannot be emptied now. Correct it instead."
            )
        else:
            changes[key] = value
    if errors:
        return errors, []
    for key, value in changes.items():
        _put(study.id, language, texts[key], value)
    db.session.flush()
    return {}, list(changes)


def one_line(value: str) -> bool:
    """Tell whether a text holds no line break, tab or other control character."""
    return not any(ord(c) < 32 or ord(c) == 127 for c in value)


def _label_ok(value: str, source: str) -> bool:
    """Tell whether a translated label fits under a photo and holds {name} as its source does
    (once, or not at all for a role shown as written)."""
    same = value.count(NAME_PLACEHOLDER) == source.count(NAME_PLACEHOLDER)
    return same and len(value) <= LABEL_MAX


def _put(study_id: int, language: str, text: Text, value: str) -> None:
    """Insert, change or (when empty) delete one translation row."""
    row = db.session.scalar(
        sa.select(StudyText).where(
            StudyText.study_id == study_id,
            StudyText.language == language,
            StudyText.key == text.key,
        )
    )
    if not value:
        if row is not None:
            db.session.delete(row)
        return
    if row is None:
        db.session.add(text.row(study_id, language, value))
    else:
        row.text = value


# --- blocks and questions going and coming back -------------------------------------------


def part_texts(part: str, part_id: int) -> dict[str, dict[str, str]]:
    """Return a block's or question's translations as {language: {key without prefix: text}}."""
    column = StudyText.block_id if part == "block" else StudyText.question_id
    prefix = f"{part}:{part_id}:"
    out: dict[str, dict[str, str]] = {}
    rows = db.session.execute(
        sa.select(StudyText.language, StudyText.key, StudyText.text).where(column == part_id)
    )
    for language, key, text in rows:
        if key.startswith(prefix):
            out.setdefault(language, {})[key[len(prefix) :]] = text
    return out


def add_part_texts(
    study_id: int, part: str, part_id: int, texts: Mapping[str, Mapping[str, str]]
) -> None:
    """Add a block's or question's translations ({language: {key without prefix: text}})."""
    ids = {"block_id": part_id} if part == "block" else {"question_id": part_id}
    for language, by_key in texts.items():
        for suffix, text in by_key.items():
            db.session.add(
                StudyText(
                    study_id=study_id,
                    language=language,
                    key=f"{part}:{part_id}:{suffix}",
                    text=text,
                    **ids,
                )
            )


def study_texts(study_id: int) -> dict[str, dict[str, str]]:
    """Return the study's own translations (consent, instructions, debrief, break message) by
    language."""
    out: dict[str, dict[str, str]] = {}
    for language, by_key in translations(study_id).items():
        own = {k: v for k, v in by_key.items() if k in STUDY_KEYS}
        if own:
            out[language] = own
    return out


def add_study_texts(study_id: int, texts: Mapping[str, Mapping[str, str]]) -> None:
    """Add the study's own translations ({language: {"consent": …}})."""
    for language, by_key in texts.items():
        for key, text in by_key.items():
            db.session.add(StudyText(study_id=study_id, language=language, key=key, text=text))


def copy_texts(source: Study, new: Study, blocks: Mapping[int, int], questions: Mapping[int, int]):
    """Copy a study's translations into its copy, given the old → new block and question ids."""
    add_study_texts(new.id, study_texts(source.id))
    for old, new_id in blocks.items():
        add_part_texts(new.id, "block", new_id, part_texts("block", old))
    for old, new_id in questions.items():
        add_part_texts(new.id, "question", new_id, part_texts("question", old))


def check_imported(
    raw: Any, where: str, keys: Iterable[str] | None, limit: int
) -> dict[str, dict[str, str]]:
    """Check a definition's translations ({language: {key: text}}); ValueError says where."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object of languages, got {type(raw).__name__}")
    allowed = None if keys is None else set(keys)
    out: dict[str, dict[str, str]] = {}
    for language, by_key in raw.items():
        if language not in LANGUAGES:
            raise ValueError(f"{where}: {language!r} is not a language studies can run in")
        if not isinstance(by_key, dict):
            raise ValueError(f"{where}.{language} must be an object of texts")
        for key, text in by_key.items():
            if (
                not isinstance(key, str)
                or len(key) > 150
                or (allowed is not None and key not in allowed)
            ):
                raise ValueError(f"{where}.{language}: {key!r} is not a text this part has")
            if not isinstance(text, str) or len(text) > limit:
                raise ValueError(
                    f"{where}.{language}.{key} must be text of at most {limit} characters"
                )
            if text.strip():
                out.setdefault(language, {})[key] = text.strip()
    return out


# --- what participants read -----------------------------------------------------------------


def text_for(study: Any, key: str, language: str, default: str | None = None) -> str:
    """Return the study's text `key` in `language`, else in the default language.

    `default` is the default language's text; for the study's own texts ("title", "consent",
    "instructions", "debrief", "break_message") it is read from the study when not given.
    """
    if default is None:
        if key in STUDY_COLUMNS:
            default = getattr(study, STUDY_COLUMNS[key])
        else:
            default = flow_settings(study.settings).message if key == MESSAGE_KEY else ""
    if language == study_languages(study)[0]:
        return default
    written = db.session.scalar(
        sa.select(StudyText.text).where(
            StudyText.study_id == study.id, StudyText.language == language, StudyText.key == key
        )
    )
    return or_default(written, default)


def or_default(written: str | None, default: str) -> str:
    """Return the text written in a language, else (none, or only spaces) the default's."""
    return written if written and written.strip() else default


def asked_in(study: Any, asked: list[Asked], language: str) -> list[Asked]:
    """Return the questions as a participant reading `language` sees them (fallback: default)."""
    if language == study_languages(study)[0]:
        return asked
    ids = {q.code: qid for qid, q in _question_ids(study.id, asked)}
    written = translations(study.id, language).get(language, {})
    out = []
    for q in asked:
        prefix = f"question:{ids.get(q.code)}:"
        spec = copy.deepcopy(dict(q.spec))
        if "options" in spec:
            spec["options"] = [
                [value, written.get(f"{prefix}option:{value}") or label]
                for value, label in spec["options"]
            ]
        if "anchors" in spec:
            spec["anchors"] = {
                point: written.get(f"{prefix}anchor:{point}") or label
                for point, label in spec["anchors"].items()
            }
        text = written.get(f"{prefix}text") or q.text
        out.append(Asked(code=q.code, kind=q.kind, text=text, required=q.required, spec=spec))
    return out


def _question_ids(study_id: int, asked: list[Asked]) -> list[tuple[int, Asked]]:
    """Pair each asked question with its row id (questions are asked by code)."""
    ids = dict(
        db.session.execute(
            sa.select(StudyQuestion.code, StudyQuestion.id).where(
                StudyQuestion.study_id == study_id
            )
        ).all()
    )
    return [(ids[q.code], q) for q in asked if q.code in ids]


def in_language(settings: Mapping[str, Any], written: Mapping[str, str]) -> dict[str, Any]:
    """Return block settings with the texts written in another language put in their place."""
    if not written:
        return dict(settings)
    out = dict(settings)
    scales = [dict(s) for s in settings.get("scales") or []]
    for suffix, text in written.items():
        if suffix.startswith("scale:"):
            _, key, name = suffix.split(":", 2)
            for scale in scales:
                if scale.get("key") == key and name in SCALE_FIELDS:
                    scale[name] = text
        elif suffix in BLOCK_SETTINGS and isinstance(settings.get(suffix), str):
            out[suffix] = text
    if "scales" in settings:
        out["scales"] = scales
    return out


@dataclass(frozen=True)
class _BlockTexts:
    """A block's study (as the language choice reads it) and its translations."""

    settings: Mapping[str, Any]
    study: SimpleNamespace
    written: dict[str, dict[str, str]]


def _cache() -> BoundedCache:
    """Return this worker's cache of blocks' texts (kept with the rest of the hot path)."""
    from survey.participant.hotdb import hot_path

    return hot_path.state().block_texts


_BLOCK_STUDY = (
    sa.select(Study.id, Study.slug, Study.settings)
    .join(Block, Block.study_id == Study.id)
    .where(Block.id == sa.bindparam("block_id"))
)


def _block_texts(block_id: int) -> tuple[SimpleNamespace, dict[str, dict[str, str]]]:
    """Read a block's study (id, slug, languages) and its translations by language."""
    row = db.session.execute(_BLOCK_STUDY, {"block_id": block_id}).first()
    if row is None:
        return SimpleNamespace(id=None, slug="", settings={}), {}
    languages = study_languages(SimpleNamespace(settings=row.settings))
    study = SimpleNamespace(id=row.id, slug=row.slug, settings={"languages": languages})
    return study, part_texts("block", block_id)


def _kept_texts(block_id: int, settings: dict[str, Any], frozen: bool) -> _BlockTexts:
    """Return a block's study languages and texts: kept by the worker with `frozen`, else read."""
    cache = _cache()
    kept = cache.get(block_id) if frozen else None
    if kept is None or kept.settings != settings:
        study, written = _block_texts(block_id)
        kept = _BlockTexts(copy.deepcopy(settings), study, written)
        if frozen:
            cache.put(block_id, kept)
    return kept


def trial_texts(
    block_id: int,
    settings: dict[str, Any],
    frozen: bool,
    language: str,
    title: str,
    title_written: str | None,
) -> tuple[dict[str, Any], str]:
    """Return a trial's block settings and the study's title in `language` (the participant's,
    the page's).

    The trial page's hot path: with `frozen` (a participant of an opened study, whose
    languages and block texts no longer change) a worker reads a block's texts once and keeps
    them, keyed by block and checked against the settings they were read with; a preview run
    of a draft reads them every time. The cache holds every language's texts and the language
    is the request's, so a text of one language is never served to a participant of another.
    The title can still be corrected once the study has opened, so it is never kept: `title`
    and `title_written` (the row written in `language`, if any) come with the page's own
    statement (`statements.PAGE`); the kept languages only say whether `language` is the
    default, whose title is the study's own.
    """
    kept = _kept_texts(block_id, settings, frozen)
    if language == study_languages(kept.study)[0]:
        return settings, title
    written = in_language(settings, kept.written.get(language, {}))
    return written, or_default(title_written, title)
