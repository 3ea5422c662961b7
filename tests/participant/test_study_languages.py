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
from survey.participant import hotdb
from survey.participant.hotdb import hot_path
from survey.participant.simulate import agree, is_step, parse_trial_form
from survey.studies import design_sha256
from survey.study_texts import catalogue, text_for
from tests.helpers import DEMO_TRIALS, set_study
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


TITLE = "Faces and first impressions (demo)"


def shows_title(html: str, title: str) -> bool:
    """Tell whether a participant page shows `title` in its header and its window's title."""
    header = f'<span class="survey-title" dir="auto">{title}</span>' in html
    return header and in_window_title(html, title)


def in_window_title(html: str, title: str) -> bool:
    """Tell whether a page's window title ends with `title` (a trial page's header shows the
    progress instead)."""
    return f"— {title}</title>" in html


def page(client, url: str) -> str:
    """GET a page that must answer 200 and return its text."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def test_every_page_around_the_trials_reads_the_chosen_language(app, demo, client):
    translate(app, demo, "de")
    consent = page(client, "/s/demo?lang=de")
    assert "DE: <strong>Welcome.</strong>" in consent
    assert f'<h1 id="consent-title" dir="auto">DE: {TITLE}</h1>' in consent
    assert shows_title(consent, f"DE: {TITLE}")
    # The consent form keeps the language for the next step.
    assert re.search(r'action="/s/demo/consent\?lang=de"', consent)
    assert "DE:" not in page(client, "/s/demo") and "<strong>Welcome.</strong>" in consent
    assert agree(client, "demo", "?lang=de").status_code == 303
    # From the consent on, the participant's language is kept: no ?lang= needed.
    instructions = page(client, "/s/demo/instructions")
    assert "DE: You will see faces" in instructions and shows_title(instructions, f"DE: {TITLE}")
    answer_trials(client, DEMO_TRIALS)
    questions = page(client, "/s/demo/questions")
    assert shows_title(questions, f"DE: {TITLE}")
    assert "DE: Your age" in questions and ">DE: Woman<" in questions
    assert '<span class="visually-hidden"> (DE: Very familiar)</span>' in questions
    assert 'value="woman"' in questions  # the stored values stay the same in every language
    skipped = client.post("/s/demo/questions", data={"skip": "1"})
    assert skipped.status_code == 303
    done = page(client, "/s/demo/done")
    assert "DE: Thank you!" in done and shows_title(done, f"DE: {TITLE}")
    # Another participant of the same study, in English, reads none of it.
    english = app.test_client()
    assert agree(english, "demo").status_code == 303
    assert "DE:" not in page(english, "/s/demo/instructions")
    assert shows_title(page(english, "/s/demo/instructions"), TITLE)


def _to_step(client) -> str:
    """Answer trials until a page between trials is due; return that page."""
    for _ in range(DEMO_TRIALS):
        response = client.get("/s/demo/trial")
        if is_step(response):
            return page(client, "/s/demo/step")
        form = parse_trial_form(response.get_data(as_text=True))
        assert client.post(form.action, data=first_answers(form)).status_code == 303
    raise AssertionError("no page between trials came")


def test_the_title_reads_in_the_participants_language_on_every_page(app, demo, client):
    translate(app, demo, "de")
    agree(client, "demo", "?lang=de")
    english = app.test_client()
    agree(english, "demo")
    for who, title in ((client, f"DE: {TITLE}"), (english, TITLE)):
        assert shows_title(_to_step(who), title)
        advance_to(who, {"scale_trust", "scale_professional"})
        assert in_window_title(page(who, "/s/demo/trial"), title)
        assert shows_title(page(who, "/s/demo/withdraw"), title)
    # A study closed under a participant: its page says so under the participant's title.
    set_study(app, demo, state="closed")
    closed = client.get("/s/demo/trial")
    assert closed.status_code == 410 and shows_title(closed.get_data(as_text=True), f"DE: {TITLE}")


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


def test_a_role_label_without_a_name_is_shown_as_written(app, demo, client):
    with app.app_context():
        study = db.session.get(Study, demo)
        for block in study.blocks:
            if block.task == "learn":
                block.settings = {**block.settings, "label": "Your new colleague"}
            elif block.task == "recognise":
                block.settings = {**block.settings, "name_recall": False}
        db.session.flush()
        study.design_sha256 = design_sha256(study)  # as if it had opened so
        db.session.commit()
    agree(client, "demo")
    _to_learn_trial(client)
    assert re.search(
        r"<figcaption[^>]*>Your new colleague</figcaption>", page(client, "/s/demo/trial")
    )


def test_a_missing_text_falls_back_to_the_default_language(app, demo, client):
    translate(app, demo, "fr", only=("consent", "scale:trust:question"))
    consent = page(client, "/s/demo?lang=fr")
    assert "FR: <strong>Welcome.</strong>" in consent
    assert f'<h1 id="consent-title" dir="auto">{TITLE}</h1>' in consent
    agree(client, "demo", "?lang=fr")
    instructions = page(client, "/s/demo/instructions")
    assert "FR:" not in instructions and "You will see faces" in instructions
    advance_to(client, {"scale_trust", "scale_professional"})
    html = page(client, "/s/demo/trial")
    assert "FR: How much do you trust this person?" in html and in_window_title(html, TITLE)
    assert "How professional does this person look?" in html and "FR: How prof" not in html
    # A language the study does not offer reads the default.
    german = app.test_client()
    agree(german, "demo", "?lang=de")
    advance_to(german, {"scale_trust", "scale_professional"})
    assert "FR:" not in page(german, "/s/demo/trial")
    with app.app_context():
        study = db.session.get(Study, demo)
        assert text_for(study, "debrief", "fr") == DEBRIEF
        assert text_for(study, "title", "fr") == TITLE
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
    """GET trial pages with a worker that has no block texts kept yet; count the reads of a
    block's texts (the page's own statement reads the title in its language)."""
    read: list[str] = []

    def count(conn, cursor, statement, *args):
        if "study_text.block_id" in statement:
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


def test_a_trial_page_reads_its_title_in_its_own_statement_and_never_keeps_it(
    app, demo, client, monkeypatch
):
    translate(app, demo, "de")
    agree(client, "demo", "?lang=de")
    advance_to(client, {"scale_trust", "scale_professional"})
    assert in_window_title(page(client, "/s/demo/trial"), f"DE: {TITLE}")
    run: list[str] = []

    def count(conn, cursor, statement, *args):
        run.append(statement)

    with app.app_context():
        engine = db.engine
        # The title is corrected while the study is open (its texts can be, on the Languages
        # page): the next page shows the new one.
        db.session.execute(
            sa.update(StudyText)
            .where(StudyText.language == "de", StudyText.key == "title")
            .values(text="Gesichter und erste Eindrücke")
        )
        # A row in the default language (left from when German was the default, say) is
        # never read: the default language's title is the study's own.
        db.session.add(StudyText(study_id=demo, language="en", key="title", text="Stale"))
        db.session.commit()
    hot: list[str] = []
    original = hotdb.rows

    def counted(statement, params):
        hot.append(str(statement))
        return original(statement, params)

    monkeypatch.setattr(hotdb, "rows", counted)
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        html = page(client, "/s/demo/trial")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert in_window_title(html, "Gesichter und erste Eindrücke")
    # One hot statement reads the title with the page; nothing else runs on the app's own
    # connections (on PostgreSQL the hot path has a pool of its own, on SQLite it is the engine).
    assert len(hot) == 1 and "study_text" in hot[0]
    with app.app_context():
        assert len(run) == (0 if hotdb.is_postgres() else 1)
    english = app.test_client()
    agree(english, "demo")
    advance_to(english, {"scale_trust", "scale_professional"})
    assert in_window_title(page(english, "/s/demo/trial"), TITLE)
    assert shows_title(page(english, "/s/demo/instructions"), TITLE)
