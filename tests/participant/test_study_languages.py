"""Participant pages read the study's texts in the participant's language (chosen at the
consent, then kept), falling back to the default language's; cached texts never cross languages."""

from __future__ import annotations

import io
import json
import re
import zipfile

import sqlalchemy as sa

from survey import exports
from survey.demo import DEBRIEF, INSTRUCTIONS
from survey.extensions import db
from survey.models import Participant, Study, StudyText
from survey.participant.hotdb import hot_path
from survey.participant.simulate import agree
from survey.study_texts import catalogue, text_for
from tests.helpers import DEMO_TRIALS
from tests.participant.support import advance_to, answer_trials, first_answers, trial_form


def translate(app, study_id: int, language: str, only: tuple[str, ...] | None = None) -> None:
    """Offer the language and write its texts ("DE: <English>"), all or those whose key ends
    with one of `only` (the demo is open: rows are written directly, as a draft's page would)."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        study.settings = {**(study.settings or {}), "languages": ["en", language]}
        for t in catalogue(study):
            if only is None or t.key.endswith(only):
                db.session.add(t.row(study_id, language, f"{language.upper()}: {t.default}"))
        db.session.commit()


def page(client, url: str) -> str:
    """GET a page that must answer 200 and return its text."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def test_every_page_around_the_trials_reads_the_chosen_language(app, demo, client):
    translate(app, demo, "de")
    consent = page(client, "/s/demo?lang=de")
    assert "DE: <strong>Welcome.</strong>" in consent
    # The consent form keeps the language for the next step.
    assert re.search(r'action="/s/demo/consent\?lang=de"', consent)
    assert "DE:" not in page(client, "/s/demo") and "<strong>Welcome.</strong>" in consent
    assert agree(client, "demo", "?lang=de").status_code == 303
    # From the consent on, the participant's language is kept: no ?lang= needed.
    assert "DE: You will see faces" in page(client, "/s/demo/instructions")
    answer_trials(client, DEMO_TRIALS)
    questions = page(client, "/s/demo/questions")
    assert "DE: Your age" in questions and ">DE: Woman<" in questions
    assert '<span class="visually-hidden"> (DE: Very familiar)</span>' in questions
    assert 'value="woman"' in questions  # the stored values stay the same in every language
    skipped = client.post("/s/demo/questions", data={"skip": "1"})
    assert skipped.status_code == 303
    assert "DE: Thank you!" in page(client, "/s/demo/done")
    # Another participant of the same study, in English, reads none of it.
    english = app.test_client()
    assert agree(english, "demo").status_code == 303
    assert "DE:" not in page(english, "/s/demo/instructions")


def test_a_trial_page_shows_its_block_texts_in_each_participants_language(app, demo, client):
    translate(app, demo, "de")
    agree(client, "demo", "?lang=de")
    english = app.test_client()
    agree(english, "demo")
    rate = advance_to(client, {"scale_trust", "scale_professional"})
    advance_to(english, {"scale_trust", "scale_professional"})
    # One worker, one cached block, requests alternating participants: never mixed up.
    for who, shown, hidden in (
        (client, "DE: How much do you trust this person?", "<legend>How much"),
        (english, "How much do you trust this person?", "DE:"),
        (client, "DE: How much do you trust this person?", "<legend>How much"),
    ):
        html = page(who, "/s/demo/trial")
        assert shown in html and hidden not in html
    html = page(client, "/s/demo/trial")
    assert "DE: Not at all" in html and "DE: Completely" in html
    # The answer given on the German page is stored like any other.
    answer = client.post(rate.action, data={**first_answers(rate), **rate.hidden})
    assert answer.status_code == 303
    choose = advance_to(client, {"choice"})
    assert choose is not None
    assert "DE: Which photo do you trust more?" in page(client, "/s/demo/trial")
    advance_to(english, {"choice"})
    assert "DE:" not in page(english, "/s/demo/trial")


def _to_learn_trial(client) -> None:
    """Answer trials until the current one is a study-phase (learn) trial."""
    for _ in range(DEMO_TRIALS):
        form = trial_form(client)
        if "seen" in form.choices or "seen" in form.hidden:
            return
        client.post(form.action, data={**first_answers(form), **form.hidden})


def test_a_learn_trial_names_the_person_in_the_label_of_the_language(app, demo, client):
    translate(app, demo, "fr")
    agree(client, "demo", "?lang=fr")
    _to_learn_trial(client)
    named = re.compile(
        r"<figcaption[^>]*>FR: Your new colleague Dr [A-Z]\. [A-Z][a-z]+</figcaption>"
    )
    assert named.search(page(client, "/s/demo/trial"))
    english = app.test_client()
    agree(english, "demo")
    _to_learn_trial(english)
    html = page(english, "/s/demo/trial")
    assert not named.search(html) and re.search(r"<figcaption[^>]*>Your new colleague Dr", html)


def test_a_missing_text_falls_back_to_the_default_language(app, demo, client):
    translate(app, demo, "fr", only=("consent", "scale:trust:question"))
    assert "FR: <strong>Welcome.</strong>" in page(client, "/s/demo?lang=fr")
    agree(client, "demo", "?lang=fr")
    instructions = page(client, "/s/demo/instructions")
    assert "FR:" not in instructions and "You will see faces" in instructions
    advance_to(client, {"scale_trust", "scale_professional"})
    html = page(client, "/s/demo/trial")
    assert "FR: How much do you trust this person?" in html
    assert "How professional does this person look?" in html and "FR: How prof" not in html
    # A language the study does not offer reads the default.
    german = app.test_client()
    agree(german, "demo", "?lang=de")
    advance_to(german, {"scale_trust", "scale_professional"})
    assert "FR:" not in page(german, "/s/demo/trial")
    with app.app_context():
        study = db.session.get(Study, demo)
        assert text_for(study, "debrief", "fr") == DEBRIEF
        assert text_for(study, "consent", "fr").startswith("FR: **Welcome.**")
        assert text_for(study, "instructions", "en") == INSTRUCTIONS
        empty = db.session.scalar(sa.select(StudyText).where(StudyText.key == "consent"))
        empty.text = "   "
        db.session.commit()
        assert text_for(study, "consent", "fr") == study.consent_text


def test_the_codebook_gives_every_measure_and_question_in_each_language(app, demo):
    translate(app, demo, "de", only=(":question", ":text", "option:woman", "anchor:5"))
    with app.app_context():
        book = json.loads(exports.codebook_json(demo))
        archive = zipfile.ZipFile(io.BytesIO(b"".join(exports.psychds_zip(demo))))
        zipped = json.loads(archive.read("codebook.json"))
    for part in ("languages", "measures", "questions"):
        assert zipped[part] == book[part]
    assert book["languages"] == ["en", "de"]
    measures = {(m["block"], m["measure"]): m for m in book["measures"]}
    assert measures[("impressions", "trust")]["translations"] == {
        "de": {"question": "DE: How much do you trust this person?"}
    }
    assert measures[("meet again", "old")]["translations"] == {
        "de": {"question": "DE: Did you meet this person as a new colleague?"}
    }
    assert measures[("preference", "choice")]["question"] == "Which photo do you trust more?"
    assert "translations" not in measures[("recognition", "confidence")]
    asked = {q["code"]: q for q in book["questions"]}
    assert asked["gender"]["translations"] == {
        "de": {"text": "DE: Your gender", "options": {"woman": "DE: Woman"}}
    }
    assert asked["ai_familiarity"]["translations"]["de"]["anchors"] == {"5": "DE: Very familiar"}


def test_a_single_language_codebook_is_as_before(app, demo):
    with app.app_context():
        book = json.loads(exports.codebook_json(demo))
    assert "languages" not in book
    assert not any("translations" in entry for entry in book["measures"] + book["questions"])


def block_text_reads(app, client, urls: list[str]) -> int:
    """GET trial pages with a worker that has no block texts kept yet; count study_text reads."""
    read: list[str] = []

    def count(conn, cursor, statement, *args):
        if "study_text" in statement:
            read.append(statement)

    with app.app_context():
        hot_path.state().block_texts.clear()
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for url in urls:
            assert "How much do you trust" in page(client, url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return len(read)


def test_an_opened_studys_block_texts_are_read_once_per_worker(app, demo, client):
    translate(app, demo, "de")
    agree(client, "demo")
    advance_to(client, {"scale_trust", "scale_professional"})
    urls = ["/s/demo/trial?lang=de", "/s/demo/trial", "/s/demo/trial?lang=de"]
    assert block_text_reads(app, client, urls) == 1
    # A preview run's texts may still change (a draft): read on every page.
    with app.app_context():
        db.session.execute(sa.update(Participant).values(is_preview=True))
        db.session.commit()
    assert block_text_reads(app, client, urls) == 3
