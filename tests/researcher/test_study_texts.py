"""A study's languages and its texts per language: choosing them, what is missing, writing them,
opening, and texts going with their blocks and questions (copies, definitions, undo)."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Block, Study, StudyQuestion, StudyText
from survey.study_texts import catalogue, missing, text_problems
from tests.researcher.helpers import block_id

EDIT = {
    "name": "Trust in headshots",
    "title": "Trust in headshots",
    "slug": "trust",
    "consent_text": "I agree to take part.",
    "instructions_text": "",
    "debrief_text": "Thank you.",
    "n_lists": "2",
    "assign_by": "started",
}


def text(response) -> str:
    """Return a response's body as text."""
    return response.get_data(as_text=True)


def choose_languages(client, study_id: int, languages: list[str], default: str, **fields):
    """Post the settings page with these languages (and the texts above)."""
    return client.post(
        f"/r/studies/{study_id}/edit",
        data={**EDIT, **fields, "languages": languages, "default_language": default},
    )


def add_question(app, study_id: int) -> int:
    """Give the study a choice question and a Likert one; return the choice question's id."""
    with app.app_context():
        choice = StudyQuestion(
            study_id=study_id,
            position=1,
            code="gender",
            kind="choice",
            text="Your gender",
            spec={"options": [["woman", "Woman"], ["man", "Man"]]},
        )
        likert = StudyQuestion(
            study_id=study_id,
            position=2,
            code="familiar",
            kind="likert",
            text="How familiar are AI tools?",
            spec={"min": 1, "max": 5, "anchors": {"1": "Not at all", "5": "Very"}},
        )
        db.session.add_all([choice, likert])
        db.session.commit()
        return choice.id


def rows(app, study_id: int) -> dict[tuple[str, str], str]:
    """Return the study's translations as {(language, key): text}."""
    with app.app_context():
        return {
            (r.language, r.key): r.text
            for r in db.session.scalars(sa.select(StudyText).where(StudyText.study_id == study_id))
        }


def german(app, study_id: int) -> dict[str, str]:
    """Return a German text for every text the study has (the form the Languages page posts)."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        return {t.key: f"DE {t.default}" for t in catalogue(study)}


def save(client, study_id: int, language: str, texts: dict[str, str]):
    """Post one language's texts."""
    return client.post(f"/r/studies/{study_id}/texts/{language}", data=texts)


# --- choosing the languages -------------------------------------------------------------


def test_languages_are_stored_default_first(app, team, owner_client):
    response = choose_languages(owner_client, team.study_id, ["en", "de", "ar"], "de")
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Study, team.study_id).settings["languages"] == ["de", "en", "ar"]
    page = text(owner_client.get(f"/r/studies/{team.study_id}/edit"))
    assert re.search(r'<input[^>]*checked[^>]*value="ar"|value="ar"[^>]*checked', page)
    # English alone stores nothing: a single-language study's settings stay as they were.
    assert choose_languages(owner_client, team.study_id, ["en"], "en").status_code == 302
    with app.app_context():
        assert "languages" not in db.session.get(Study, team.study_id).settings


@pytest.mark.parametrize(
    ("languages", "default", "message"),
    [
        ([], "en", "Choose at least one language."),
        (["en", "de"], "fr", "The default language, French (Français), must be one of the"),
        (["en", "xx"], "en", "“xx” is not a language studies can run in."),
        (["en"], "", "Choose the language participants get when their link names none."),
    ],
)
def test_bad_languages_are_refused_in_plain_words(
    app, team, owner_client, languages, default, message
):
    response = choose_languages(owner_client, team.study_id, languages, default)
    assert response.status_code == 400
    assert message in text(response)
    with app.app_context():
        study = db.session.get(Study, team.study_id)
        assert "languages" not in study.settings and study.consent_text == ""


def test_languages_are_frozen_with_the_design(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    save(owner_client, team.study_id, "de", german(app, team.study_id))
    assert (
        owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"}).status_code
        == 302
    )
    response = choose_languages(owner_client, team.study_id, ["en", "de", "fr"], "en")
    assert response.status_code == 400
    assert "The languages are part of the frozen design" in text(response)
    # The settings page of an opened study shows them disabled, so they are not sent: kept.
    assert owner_client.post(f"/r/studies/{team.study_id}/edit", data=EDIT).status_code == 302
    with app.app_context():
        assert db.session.get(Study, team.study_id).settings["languages"] == ["en", "de"]


# --- what is missing ----------------------------------------------------------------------


def test_missing_texts_are_listed_per_kind_and_language(app, team, owner_client):
    add_question(app, team.study_id)
    choose_languages(owner_client, team.study_id, ["en", "de", "fr"], "en")
    with app.app_context():
        study = db.session.get(Study, team.study_id)
        lacking = {lang: [t.key for t in texts] for lang, texts in missing(study).items()}
        impressions = block_id(app, team.study_id, "impressions")
        question = db.session.scalar(
            sa.select(StudyQuestion.id).where(StudyQuestion.code == "gender")
        )
        likert = db.session.scalar(
            sa.select(StudyQuestion.id).where(StudyQuestion.code == "familiar")
        )
    expected = [
        "title",
        "consent",
        "debrief",
        f"block:{impressions}:scale:trust:question",
        f"block:{impressions}:scale:trust:low_anchor",
        f"block:{impressions}:scale:trust:high_anchor",
        f"question:{question}:text",
        f"question:{question}:option:woman",
        f"question:{question}:option:man",
        f"question:{likert}:text",
        f"question:{likert}:anchor:1",
        f"question:{likert}:anchor:5",
    ]
    # The instructions are empty in the default language: nothing to translate.
    assert lacking == {"de": expected, "fr": expected}
    # One kind at a time: each text written in German leaves the rest missing, French untouched.
    for done, key in enumerate(expected, start=1):
        assert save(owner_client, team.study_id, "de", {key: f"DE {key}"}).status_code == 302
        with app.app_context():
            left = missing(db.session.get(Study, team.study_id))
        assert [t.key for t in left["de"]] == expected[done:]
        assert [t.key for t in left["fr"]] == expected
    page = text(owner_client.get(f"/r/studies/{team.study_id}/texts"))
    assert "All 12 texts written." in page and "12 of 12 missing" in page
    assert page.count('<td class="missing">') == 12
    assert '<th scope="row">Title</th>' in page


def test_the_languages_page_shows_each_text_beside_the_default(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "ar"], "en")
    page = text(owner_client.get(f"/r/studies/{team.study_id}/texts/ar"))
    assert "Arabic (العربية) texts" in page
    assert "How much do you trust this person?" in page and "I agree to take part." in page
    assert page.count('dir="rtl"') == 6 and page.count("badge missing") == 6
    # The title is one line, written beside the default language's.
    title = re.search(r'<input id="text-title" name="title" type="text"[^>]*>', page)
    assert title and 'dir="rtl"' in title.group(0)
    assert '<div class="default-text" lang="en">Trust in headshots</div>' in page
    # The default language is written on the settings page; a language not chosen is no page.
    assert owner_client.get(f"/r/studies/{team.study_id}/texts/en").status_code == 404
    assert owner_client.get(f"/r/studies/{team.study_id}/texts/fr").status_code == 404
    assert save(owner_client, team.study_id, "fr", {"consent": "Oui"}).status_code == 404
    viewer = team.client(app, "viewer")
    assert viewer.get(f"/r/studies/{team.study_id}/texts/ar").status_code == 200
    assert save(viewer, team.study_id, "ar", {"consent": "نعم"}).status_code == 403
    assert rows(app, team.study_id) == {}


# --- opening ------------------------------------------------------------------------------


def test_open_is_refused_naming_the_language_and_the_text(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    texts = german(app, team.study_id)
    impressions = block_id(app, team.study_id, "impressions")
    del texts[f"block:{impressions}:scale:trust:high_anchor"]
    save(owner_client, team.study_id, "de", texts)
    response = owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    assert response.status_code == 409
    page = text(response)
    assert (
        "The German (Deutsch) texts are not all written: Block “impressions”: scale trust, "
        "high anchor. Write them on the Languages page, or take German (Deutsch) off the "
        "study&#39;s languages."
    ) in page
    with app.app_context():
        assert db.session.get(Study, team.study_id).state == "draft"
    confirm = owner_client.get(f"/r/studies/{team.study_id}/state?to=open")
    assert confirm.status_code == 409 and "German (Deutsch)" in text(confirm)
    key = f"block:{impressions}:scale:trust:high_anchor"
    assert save(owner_client, team.study_id, "de", {key: "Völlig"}).status_code == 302
    response = owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Study, team.study_id).state == "open"


def test_text_problems_name_a_few_and_count_the_rest(app, team, owner_client):
    add_question(app, team.study_id)
    choose_languages(owner_client, team.study_id, ["en", "zh"], "en")
    with app.app_context():
        (problem,) = text_problems(db.session.get(Study, team.study_id))
    assert problem.startswith("The Chinese (简体中文) texts are not all written: Title; Consent ")
    assert "; and 7 more. Write them" in problem


# --- writing ------------------------------------------------------------------------------


def test_saving_checks_every_text_and_writes_nothing_when_one_is_wrong(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    impressions = block_id(app, team.study_id, "impressions")
    response = save(
        owner_client,
        team.study_id,
        "de",
        {
            "consent": "Ich stimme zu.",
            f"block:{impressions}:scale:trust:question": "Zeile eins\nZeile zwei",
            f"block:{impressions}:scale:trust:low_anchor": "x" * 501,
        },
    )
    assert response.status_code == 400
    page = text(response)
    assert "Nothing was saved" in page and "Write this text on one line." in page
    assert "At most 500 characters; this has 501." in page
    assert "Ich stimme zu." in page  # what was typed stays in the form
    assert rows(app, team.study_id) == {}
    # A key the study has no text for is ignored, never stored.
    assert save(owner_client, team.study_id, "de", {"block:999:question": "?"}).status_code == 302
    assert rows(app, team.study_id) == {}


@pytest.mark.parametrize(
    ("label", "wrong", "message", "right"),
    [
        ("Dr {name}", "Docteur", "Write {name} once", "Docteur {name}"),
        # A role names no one: its translation may not ask for a name either.
        (
            "Your new colleague",
            "Votre collègue {name}",
            "Write the label without {name}",
            "Votre nouveau collègue",
        ),
    ],
)
def test_a_name_label_keeps_its_placeholder_or_its_absence(
    app, team, owner_client, label, wrong, message, right
):
    with app.app_context():
        db.session.add(
            Block(
                study_id=team.study_id,
                position=3,
                name="study phase",
                task="learn",
                settings={"label": label},
            )
        )
        db.session.commit()
    # A study with a learn block counterbalances over lists in fours.
    assert (
        choose_languages(owner_client, team.study_id, ["en", "fr"], "en", n_lists="4").status_code
        == 302
    )
    learn = block_id(app, team.study_id, "study phase")
    key = f"block:{learn}:label"
    response = save(owner_client, team.study_id, "fr", {key: wrong})
    assert response.status_code == 400 and message in text(response)
    assert rows(app, team.study_id) == {}
    assert save(owner_client, team.study_id, "fr", {key: right}).status_code == 302
    assert rows(app, team.study_id) == {("fr", key): right}


def test_after_opening_study_texts_can_be_corrected_but_not_emptied(app, team, owner_client):
    add_question(app, team.study_id)
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    texts = german(app, team.study_id)
    save(owner_client, team.study_id, "de", texts)
    owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    assert save(owner_client, team.study_id, "de", {"consent": "Neu."}).status_code == 302
    response = save(owner_client, team.study_id, "de", {"consent": ""})
    assert response.status_code == 400 and "it cannot be emptied now" in text(response)
    impressions = block_id(app, team.study_id, "impressions")
    block_key = f"block:{impressions}:scale:trust:question"
    response = save(owner_client, team.study_id, "de", {block_key: "Anders?"})
    assert response.status_code == 400
    assert "Block texts are part of the frozen design" in text(response)
    question_key = next(k for k in texts if k.endswith(":text"))
    response = save(owner_client, team.study_id, "de", {question_key: "Anders?"})
    assert "Question texts can change only while the study is a draft." in text(response)
    stored = rows(app, team.study_id)
    assert stored[("de", "consent")] == "Neu."
    assert stored[("de", block_key)] == texts[block_key]
    # The page shows the frozen texts disabled, so an unchanged post of them saves fine.
    page = text(owner_client.get(f"/r/studies/{team.study_id}/texts/de"))
    assert re.search(rf'name="{re.escape(block_key)}"[^>]*\n?[^>]*disabled', page)


# --- the title ----------------------------------------------------------------------------


def test_the_title_is_written_per_language_on_one_line(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    title_row = re.compile(
        r'<th scope="row">Title</th>\s*<td class="written">written</td>\s*'
        r'<td class="(missing|written)">'
    )
    page = text(owner_client.get(f"/r/studies/{team.study_id}/texts"))
    assert title_row.search(page).group(1) == "missing"
    assert f"/r/studies/{team.study_id}/texts/de#text-title" in page
    for wrong, message in (
        ("Vertrauen\tin Porträts", "Write the title on one line, without line breaks or tabs."),
        ("Vertrauen\nin Porträts", "Write the title on one line, without line breaks or tabs."),
        ("x" * 201, "At most 200 characters; this has 201."),
    ):
        response = save(owner_client, team.study_id, "de", {"title": wrong})
        assert response.status_code == 400 and message in text(response)
    assert rows(app, team.study_id) == {}
    saved = save(owner_client, team.study_id, "de", {"title": "  Vertrauen in Porträts "})
    assert saved.status_code == 302
    assert rows(app, team.study_id) == {("de", "title"): "Vertrauen in Porträts"}
    page = text(owner_client.get(f"/r/studies/{team.study_id}/texts"))
    assert title_row.search(page).group(1) == "written"


def test_a_missing_title_keeps_the_study_from_opening(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    texts = german(app, team.study_id)
    del texts["title"]
    save(owner_client, team.study_id, "de", texts)
    with app.app_context():
        lacking = missing(db.session.get(Study, team.study_id))
    assert [t.key for t in lacking["de"]] == ["title"]
    response = owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    assert response.status_code == 409
    assert "The German (Deutsch) texts are not all written: Title. Write them" in text(response)
    assert save(owner_client, team.study_id, "de", {"title": "Vertrauen"}).status_code == 302
    response = owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    assert response.status_code == 302
    # Once open, like the other texts of the study: corrected, never emptied.
    assert (
        save(owner_client, team.study_id, "de", {"title": "Vertrauen in Porträts"}).status_code
        == 302
    )
    response = save(owner_client, team.study_id, "de", {"title": ""})
    assert response.status_code == 400 and "it cannot be emptied now" in text(response)
    assert rows(app, team.study_id)[("de", "title")] == "Vertrauen in Porträts"


# --- texts going with their blocks and questions ------------------------------------------


def test_deleting_a_block_takes_its_texts_and_undo_brings_them_back(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    save(owner_client, team.study_id, "de", german(app, team.study_id))
    impressions = block_id(app, team.study_id, "impressions")
    block_keys = {k for k in rows(app, team.study_id) if k[1].startswith("block:")}
    assert len(block_keys) == 3
    url = f"/r/studies/{team.study_id}/blocks/{impressions}/delete"
    assert owner_client.post(url).status_code == 302
    assert {k for k in rows(app, team.study_id) if k[1].startswith("block:")} == set()
    assert ("de", "consent") in rows(app, team.study_id)
    page = text(owner_client.get(f"/r/studies/{team.study_id}/blocks"))
    undo = re.search(r'action="(/r/studies/\d+/undo/\d+)"', page).group(1)
    assert owner_client.post(undo).status_code == 302
    restored = block_id(app, team.study_id, "impressions")
    expected = {
        (lang, key.replace(f":{impressions}:", f":{restored}:")) for lang, key in block_keys
    }
    assert {k for k in rows(app, team.study_id) if k[1].startswith("block:")} == expected
    with app.app_context():
        assert missing(db.session.get(Study, team.study_id)) == {"de": []}


def test_deleting_a_question_takes_its_texts(app, team, owner_client):
    question = add_question(app, team.study_id)
    choose_languages(owner_client, team.study_id, ["en", "es"], "en")
    save(owner_client, team.study_id, "es", german(app, team.study_id))
    assert any(k.startswith(f"question:{question}:") for _, k in rows(app, team.study_id))
    url = f"/r/studies/{team.study_id}/questions/{question}/delete"
    assert owner_client.post(url).status_code == 303
    assert not any(k.startswith(f"question:{question}:") for _, k in rows(app, team.study_id))
    with app.app_context():
        assert missing(db.session.get(Study, team.study_id)) == {"es": []}


def test_a_copy_and_a_definition_carry_the_translations(app, team, owner_client):
    add_question(app, team.study_id)
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    texts = german(app, team.study_id)
    save(owner_client, team.study_id, "de", texts)
    original = sorted(rows(app, team.study_id).values())
    definition = owner_client.get(f"/r/studies/{team.study_id}/definition.json").get_json()
    assert definition["study"]["texts"] == {
        "de": {
            "title": "DE Trust in headshots",
            "consent": "DE I agree to take part.",
            "debrief": "DE Thank you.",
        }
    }
    impressions = next(b for b in definition["blocks"] if b["name"] == "impressions")
    assert impressions["texts"]["de"]["scale:trust:low_anchor"] == "DE Not at all"
    gender = next(q for q in definition["questions"] if q["code"] == "gender")
    assert gender["texts"] == {
        "de": {"text": "DE Your gender", "option:woman": "DE Woman", "option:man": "DE Man"}
    }
    imported = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert imported.status_code == 302
    copied = owner_client.post(f"/r/studies/{team.study_id}/duplicate")
    assert copied.status_code == 302
    for response in (imported, copied):
        new_id = int(response.headers["Location"].rsplit("/", 1)[1])
        assert new_id != team.study_id
        assert sorted(rows(app, new_id).values()) == original
        with app.app_context():
            study = db.session.get(Study, new_id)
            assert study.settings["languages"] == ["en", "de"] and missing(study) == {"de": []}
            # Keys name the new study's own blocks and questions.
            ids = {f"block:{b.id}:" for b in study.blocks} | {
                f"question:{q.id}:" for q in study.questions
            }
        for _, key in rows(app, new_id):
            assert key in ("title", "consent", "debrief") or any(key.startswith(i) for i in ids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["study"].update(texts={"xx": {"consent": "?"}}), "'xx' is not a language"),
        (lambda d: d["study"].update(texts={"de": {"name": "?"}}), "'name' is not a text"),
        (
            lambda d: d["study"].update(texts={"de": {"title": "x" * 201}}),
            "study.texts.de.title must be text of at most 200 characters",
        ),
        (
            lambda d: d["study"].update(texts={"de": {"title": "Gesichter\tund Eindrücke"}}),
            "study.texts.de.title must be one line, without line breaks or tabs",
        ),
        (
            lambda d: d["blocks"][1].update(texts={"de": {"scale:nope:question": "?"}}),
            "blocks[1].texts.de: 'scale:nope:question' is not a text this part has",
        ),
        (
            lambda d: d["study"]["settings"].update(languages=["en", "tlh"]),
            "study.settings.languages: “tlh” is not a language",
        ),
        (lambda d: d["study"]["settings"].update(languages="de"), "must be a list"),
    ],
)
def test_a_definition_with_bad_translations_creates_nothing(
    app, team, owner_client, change, message
):
    definition = owner_client.get(f"/r/studies/{team.study_id}/definition.json").get_json()
    change(definition)
    response = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert response.status_code == 400
    assert message in text(response).replace("&#39;", "'")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Study)) == 2


def test_the_break_message_is_a_text_per_language_too(app, team, owner_client):
    choose_languages(owner_client, team.study_id, ["en", "de"], "en")
    with app.app_context():
        study = db.session.get(Study, team.study_id)
        assert "break_message" not in [t.key for t in catalogue(study)]  # none written: none due
        study.settings = {**study.settings, "block_breaks": True, "break_message": "Stretch."}
        db.session.commit()
        assert [t.key for t in missing(study)["de"]] == [
            "title",
            "consent",
            "debrief",
            "break_message",
            *[t.key for t in missing(study)["de"][4:]],
        ]
    page = text(owner_client.get(f"/r/studies/{team.study_id}/texts/de"))
    assert "Break message" in page and "Stretch." in page
    refused = save(owner_client, team.study_id, "de", {"break_message": "x" * 1001})
    assert refused.status_code == 400 and "At most 1000 characters; this has 1001." in text(refused)
    assert (
        save(owner_client, team.study_id, "de", {"break_message": "Strecken."}).status_code == 302
    )
    assert rows(app, team.study_id) == {("de", "break_message"): "Strecken."}
    definition = owner_client.get(f"/r/studies/{team.study_id}/definition.json").get_json()
    assert definition["study"]["texts"] == {"de": {"break_message": "Strecken."}}
    imported = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert imported.status_code == 302
    new_id = int(imported.headers["Location"].rsplit("/", 1)[1])
    assert rows(app, new_id) == {("de", "break_message"): "Strecken."}
    definition["study"]["texts"]["de"]["break_message"] = "x" * 1001
    refused = owner_client.post("/r/studies/import", data={"text": json.dumps(definition)})
    assert refused.status_code == 400
    assert "study.texts.de.break_message must be text of at most 1000 characters" in text(refused)


def test_a_study_with_one_text_says_so_in_the_singular(app, team, owner_client):
    with app.app_context():
        db.session.execute(sa.delete(StudyQuestion).where(StudyQuestion.study_id == team.study_id))
        db.session.execute(sa.delete(Block).where(Block.study_id == team.study_id))
        db.session.commit()
    choose_languages(
        owner_client, team.study_id, ["en", "de"], "en", consent_text="", debrief_text=""
    )
    assert save(owner_client, team.study_id, "de", {"title": "Vertrauen"}).status_code == 302
    page = text(owner_client.get(f"/r/studies/{team.study_id}/texts"))
    assert "1 of 1 text written." in page and "texts written" not in page
