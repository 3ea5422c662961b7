"""The participant's language: how it is chosen, switched on the consent page, stored, used on
every later page (the hot trial page too) and exported."""

from __future__ import annotations

import json
import re
from html import unescape
from types import SimpleNamespace

import pandas as pd
import pytest
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from analysis.moderators import choose_moderators, with_moderators
from survey import exports
from survey.extensions import db
from survey.i18n import accepted_language, study_languages
from survey.models import Participant, Study
from survey.participant.simulate import TOKEN, agree, form_token
from tests.helpers import refreeze
from tests.participant.support import answer_trials, participants, trial_form

GERMAN_AGREE = "Ich stimme zu, Studie starten"
ENGLISH_AGREE = "I agree, start the study"


def set_languages(app, study_id: int, languages) -> None:
    """Give the study its languages (the setting the researcher's pages write)."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        study.settings = {**(study.settings or {}), "languages": languages}
        db.session.commit()
        refreeze(study_id)


def html_tag(text: str) -> str:
    """Return a page's <html> tag."""
    return re.search(r"<html[^>]*>", text).group(0)


# --- a study's languages and the browser's ----------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "languages"),
    [
        (None, ["en"]),
        ({}, ["en"]),
        ({"languages": []}, ["en"]),
        ({"languages": "de"}, ["en"]),
        ({"languages": ["de", "en"]}, ["de", "en"]),
        ({"languages": ["xx", "fr", "fr", 3, "ar"]}, ["fr", "ar"]),
    ],
)
def test_a_studys_languages_are_the_shipped_ones_it_names_default_first(settings, languages):
    assert study_languages(SimpleNamespace(settings=settings)) == languages


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("fr;q=0.5, de;q=0.9", "de"),  # quality values, not order
        ("de-AT, en;q=0.1", "de"),  # a regional tag is its language, at its own quality
        ("ja, fr;q=0.2", "fr"),
        ("de;q=0, en;q=0.1", "en"),  # q=0: not acceptable
        ("ja", None),
        ("*", "en"),
        ("zh-CN,zh;q=0.9", None),  # not among the study's
    ],
)
def test_the_browsers_languages_are_read_by_quality(header, chosen):
    accepted = parse_accept_header(header, LanguageAccept)
    assert accepted_language(accepted, ["en", "de", "fr"]) == chosen


# --- the consent page: the choice before a participant exists ---------------------------------


def test_a_study_in_one_language_shows_no_menu_and_ignores_the_browser(app, client, demo):
    page = client.get("/s/demo?lang=de", headers={"Accept-Language": "fr"})
    text = page.get_data(as_text=True)
    assert 'lang="en" dir="ltr"' in html_tag(text)
    assert ENGLISH_AGREE in text and "language-menu" not in text


@pytest.mark.parametrize(
    ("query", "accept", "language", "agree_text"),
    [
        ("?lang=de", "fr", "de", GERMAN_AGREE),  # the link wins over the browser
        ("?lang=es", "fr;q=0.4, de;q=0.8", "de", GERMAN_AGREE),  # es is not the study's
        ("", "fr;q=0.4, de;q=0.8", "de", GERMAN_AGREE),
        ("", "fr-CA", "fr", "J’accepte, commencer l’étude"),
        ("", "ja", "en", ENGLISH_AGREE),  # the study's default
        ("", "", "en", ENGLISH_AGREE),
        ("?lang=ar", "", "ar", "أوافق، ابدأ الدراسة"),
    ],
)
def test_the_consent_page_speaks_the_link_else_the_browser_else_the_default(
    app, client, demo, query, accept, language, agree_text
):
    set_languages(app, demo, ["en", "de", "fr", "ar"])
    page = client.get(f"/s/demo{query}", headers={"Accept-Language": accept})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    direction = "rtl" if language == "ar" else "ltr"
    assert html_tag(text) == f'<html lang="{language}" dir="{direction}">'
    assert f'value="{agree_text}"' in text


def test_the_default_is_the_studys_first_language(app, client, demo):
    set_languages(app, demo, ["fr", "en"])
    text = client.get("/s/demo", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert 'lang="fr"' in html_tag(text)


def test_the_menu_links_keep_the_recruitment_ids_and_mark_the_current_language(app, client, demo):
    set_languages(app, demo, ["en", "de", "ar"])
    query = "?PROLIFIC_PID=5f0c1a2b3c4d5e6f7a8b9c0d&STUDY_ID=s1&SESSION_ID=x1&lang=de"
    text = client.get(f"/s/demo{query}").get_data(as_text=True)
    menu = re.search(r'<nav class="language-menu".*?</nav>', text, re.S).group(0)
    links = re.findall(
        r'<a href="([^"]+)" lang="(\w+)"[^>]*?(aria-current="true")?>([^<]+)</a>', menu
    )
    assert [(code, name) for _href, code, _current, name in links] == [
        ("en", "English"),
        ("de", "Deutsch"),
        ("ar", "العربية"),
    ]
    assert [code for _href, code, current, _name in links if current] == ["de"]
    for href, code, _current, _name in links:
        href = unescape(href)
        assert href.startswith("/s/demo?PROLIFIC_PID=5f0c1a2b3c4d5e6f7a8b9c0d&STUDY_ID=s1&")
        assert href.endswith(f"&lang={code}") and href.count("lang=") == 1
    # The menu's own words are the page's; each language's name is written in that language.
    assert 'aria-label="Sprache"' in menu


def test_switching_on_the_consent_page_starts_the_participant_in_that_language(app, client, demo):
    set_languages(app, demo, ["en", "de", "fr"])
    first = client.get("/s/demo", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert GERMAN_AGREE in first
    # The participant picks French in the menu: a plain link, no script needed.
    response = agree(client, "demo", "?lang=fr")
    assert response.status_code == 303
    (participant,) = participants(app)
    assert participant.language == "fr"


def test_a_browser_chosen_language_is_kept_by_the_consent_forms_action(app, client, demo):
    set_languages(app, demo, ["en", "de"])
    text = client.get("/s/demo", headers={"Accept-Language": "de"}).get_data(as_text=True)
    action = unescape(re.search(r'<form method="post" action="([^"]+)"', text).group(1))
    assert action == "/s/demo/consent?lang=de"
    posted = client.post(
        action,
        data={
            "csrf_token": form_token(text),
            "token": TOKEN.search(text).group(1),
            "agree": "1",
        },
    )
    assert posted.status_code == 303
    assert participants(app)[0].language == "de"


# --- once started: stored and used on every page ----------------------------------------------


def test_the_stored_language_wins_over_later_links_and_browsers(app, client, demo):
    set_languages(app, demo, ["en", "de", "ar"])
    assert agree(client, "demo", "?lang=ar").status_code == 303
    instructions = client.get("/s/demo/instructions?lang=de", headers={"Accept-Language": "de"})
    text = instructions.get_data(as_text=True)
    assert html_tag(text) == '<html lang="ar" dir="rtl">'
    assert "التعليمات" in text
    trial = client.get("/s/demo/trial?lang=en", headers={"Accept-Language": "en"})
    text = trial.get_data(as_text=True)
    assert html_tag(text) == '<html lang="ar" dir="rtl">'
    assert "هل هو الشخص نفسه؟" in text  # "Same person?" of the first (match) block
    assert "السؤال 1 من 47" in text  # the page title: "Question 1 of 47"
    withdraw = client.get("/s/demo/withdraw", headers={"Accept-Language": "en"})
    assert "الانسحاب وحذف إجاباتي" in withdraw.get_data(as_text=True)


def test_two_participants_in_two_languages_never_see_each_others_questions(app, demo):
    """The rendered questions are cached per worker: the cache is keyed by language."""
    set_languages(app, demo, ["en", "de"])
    german, english = app.test_client(), app.test_client()
    agree(german, "demo", "?lang=de")
    agree(english, "demo", "?lang=en")
    for _ in range(2):  # the second round is served from the cache
        de_text = german.get("/s/demo/trial").get_data(as_text=True)
        en_text = english.get("/s/demo/trial").get_data(as_text=True)
        assert "Dieselbe Person?" in de_text and "Same person?" not in de_text
        assert "Same person?" in en_text and "Dieselbe Person?" not in en_text
        assert "Wie sicher sind Sie?" in de_text and "How sure are you?" in en_text


def test_a_refused_answer_is_explained_in_the_participants_language(app, client, demo):
    set_languages(app, demo, ["en", "de"])
    agree(client, "demo", "?lang=de")
    form = trial_form(client)
    response = client.post(form.action, data={**form.hidden, "same": "", "confidence": "3"})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Ihre Antwort wurde nicht gespeichert: Bitte beantworten Sie „Dieselbe Person?“." in text


def test_an_unknown_link_speaks_the_browsers_language(client, app, demo):
    page = client.get("/s/no-such-study", headers={"Accept-Language": "es-MX, en;q=0.5"})
    assert page.status_code == 404
    assert "Este enlace del estudio no es válido" in page.get_data(as_text=True)


def test_the_debrief_counts_down_in_the_participants_language(app, client, demo):
    set_languages(app, demo, ["en", "ar"])
    with app.app_context():
        study = db.session.get(Study, demo)
        study.completion_url = "https://app.prolific.com/submissions/complete?cc=ABC"
        study.settings = {**study.settings, "return_redirect_s": 12}
        db.session.commit()
        refreeze(demo)
    agree(client, "demo", "?lang=ar")
    answer_trials(client, 47)
    done = client.get("/s/demo/questions", follow_redirects=True)
    if "/done" not in done.request.path:
        done = client.post("/s/demo/questions", data={"skip": "1"}, follow_redirects=True)
    text = done.get_data(as_text=True)
    assert "شكرًا لك، لقد انتهيت" in text
    countdown = re.search(r'data-countdown="([^"]+)"', text).group(1)
    texts = json.loads(unescape(countdown))
    assert len(texts) == 13
    assert "خلال ثانيتين" in texts[2]  # two: the dual
    assert "خلال 3 ثوانٍ" in texts[3]  # 3 to 10: the plural
    assert "خلال 12 ثانية" in texts[12]  # 11 to 99: the singular
    assert "العودة إلى Prolific" in texts[12]


# --- recorded: exported and available to the analysis -----------------------------------------


def test_the_language_is_exported_and_can_moderate(app, demo):
    set_languages(app, demo, ["en", "de", "fr"])
    for language in ("de", "fr", "de"):
        agree(app.test_client(), "demo", f"?lang={language}")
    with app.app_context():
        table = exports.participants_dataframe(demo)
        languages = sorted(db.session.scalars(db.select(Participant.language)))
    assert sorted(table["language"]) == languages == ["de", "de", "fr"]
    warnings: list[str] = []
    chosen = choose_moderators(None, table, ["language"], warnings)
    assert chosen == [("language", "participant")] and warnings == []
    rows = pd.DataFrame({"participant": table["participant"], "value": [1.0, 2.0, 3.0]})
    moderated = with_moderators(rows, chosen, None, table)
    assert list(moderated["language"]) == list(table["language"])
