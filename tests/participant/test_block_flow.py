"""Block flow end to end: the order each participant gets (fixed, randomised, counterbalanced by
arrival, blocks kept last), the pages between trials (block instructions, breaks, a block's
questions) through reloads, double posts and without script, and what the exports say."""

from __future__ import annotations

import csv
import io
import json
import re

import sqlalchemy as sa

from survey import exports
from survey.extensions import db
from survey.models import Block, Participant, Study, StudyQuestion, StudyText, Trial
from survey.participant import starting
from survey.participant.simulate import agree
from tests.helpers import DEMO_TRIALS, refreeze
from tests.participant.support import answer_trials, participants, trial_form

CHOOSE = "preference"
NOT_CHOOSE = {"recognition", "impressions", "detection"}


def without_memory(app, study_id: int, **settings) -> None:
    """Drop the demo's memory blocks (their order is fixed) and set the study's flow."""
    with app.app_context():
        db.session.execute(
            sa.delete(Block).where(
                Block.study_id == study_id, Block.task.in_(("learn", "recognise"))
            )
        )
        study = db.session.get(Study, study_id)
        study.settings = {**(study.settings or {}), **settings}
        db.session.commit()
        refreeze(study_id)


def start(app, study_id: int, n: int) -> list[Participant]:
    """Start `n` participants one after another, as consents do."""
    with app.app_context():
        for _ in range(n):
            starting.start_participant(db.session.get(Study, study_id))
    return participants(app)


def ran(app, participant: Participant) -> list[str]:
    """Return the blocks in the order the participant's trials run them."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(Block.name)
            .join(Trial, Trial.block_id == Block.id)
            .where(Trial.participant_id == participant.id)
            .order_by(Trial.position)
        ).scalars()
        return list(dict.fromkeys(rows))


def participants_rows(app, study_id: int) -> list[dict[str, str]]:
    """Return participants.csv as rows."""
    with app.app_context():
        return list(csv.DictReader(io.StringIO("".join(exports.participants_csv(study_id)))))


# --- the order --------------------------------------------------------------------------------


def test_fixed_order_is_the_listed_order_with_choose_last(app, demo):
    without_memory(app, demo)
    for p in start(app, demo, 3):
        assert (
            ran(app, p)
            == p.block_order
            == [
                "recognition",
                "impressions",
                "detection",
                CHOOSE,
            ]
        )
        assert p.block_order_row is None


def test_randomised_order_differs_between_participants_and_keeps_choose_last(app, demo):
    without_memory(app, demo, block_order="random")
    started = start(app, demo, 12)
    orders = set()
    for p in started:
        assert ran(app, p) == p.block_order
        assert set(p.block_order[:3]) == NOT_CHOOSE and p.block_order[3] == CHOOSE
        assert p.block_order_row is None
        orders.add(tuple(p.block_order))
    assert len(orders) > 1
    # The schedule rebuilt for audit from the seed and the recorded order is the stored one.
    with app.app_context():
        p = db.session.get(Participant, started[0].id)
        assert starting.regenerate_schedule(p) == starting.stored_schedule(p)


def test_counterbalanced_rows_cycle_in_order_of_arrival(app, demo):
    without_memory(app, demo, block_order="counterbalanced")
    started = start(app, demo, 7)
    # Three blocks before the choose block: a balanced Latin square of 6 rows (3 is odd).
    assert [p.block_order_row for p in started] == [0, 1, 2, 3, 4, 5, 0]
    firsts = [p.block_order[:3] for p in started[:6]]
    for position in range(3):
        # Each block in each position equally often over the 6 rows.
        assert sorted(f[position] for f in firsts) == sorted([*NOT_CHOOSE, *NOT_CHOOSE])
    for p in started:
        assert ran(app, p) == p.block_order and p.block_order[-1] == CHOOSE
        # The practice trial opens the block that runs first.
        with app.app_context():
            first = db.session.scalar(
                sa.select(Trial).where(Trial.participant_id == p.id, Trial.position == 1)
            )
            assert first.is_practice and first.block.name == p.block_order[0]
    assert started[6].block_order == started[0].block_order
    # participants.csv: the order as block names joined by ";", and the row.
    by_id = {p.public_id: p for p in started}
    for row in participants_rows(app, demo):
        participant = by_id[row["participant"].lstrip("'")]
        assert row["block_order"] == ";".join(participant.block_order)
        assert row["block_order_row"] == str(participant.block_order_row)
    with app.app_context():
        p = db.session.get(Participant, started[3].id)
        assert starting.regenerate_schedule(p) == starting.stored_schedule(p)


def test_blocks_kept_last_stay_at_the_end(app, demo):
    without_memory(app, demo, block_order="counterbalanced", blocks_last=["recognition"])
    for p in start(app, demo, 4):
        assert set(p.block_order[:2]) == {"impressions", "detection"}
        assert set(p.block_order[2:]) == {"recognition", CHOOSE}
        assert ran(app, p) == p.block_order


# --- pages between trials ---------------------------------------------------------------------


def flow_step(app) -> int:
    """Return the only participant's count of pages passed."""
    (p,) = participants(app)
    return p.flow_step


def step_number(page: str) -> str:
    """Return the number of the page between trials a page's form passes."""
    return re.search(r'name="step" value="(\d+)"', page).group(1)


def test_the_demo_break_and_block_instructions_work_without_script_and_through_reloads(
    app, client, demo
):
    assert agree(client, "demo").status_code == 303
    # The rate block has a break after every 5 of its trials: before the 16th trial.
    answer_trials(client, 15)
    page = client.get("/s/demo/trial")
    assert page.status_code == 302 and page.headers["Location"].endswith("/s/demo/step")
    shown = client.get("/s/demo/step")
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200
    assert f"You have answered 15 of {DEMO_TRIALS} trials." in text
    assert '<form method="post"' in text and 'name="go"' in text
    # A reload, or the trial page asked again, writes nothing: the trial waits, unstamped.
    assert client.get("/s/demo/step").status_code == 200 and flow_step(app) == 0
    (p,) = participants(app)
    with app.app_context():
        waiting = db.session.scalar(
            sa.select(Trial).where(Trial.participant_id == p.id, Trial.position == 16)
        )
        assert waiting.shown_at is None
    number = step_number(text)
    data = {"csrf_token": "x", "step": number, "go": "1"}
    assert client.post("/s/demo/step", data=data).status_code == 303
    assert flow_step(app) == 1
    # A double click (the same page posted again) and the back button pass nothing more.
    assert client.post("/s/demo/step", data=data).status_code == 303
    assert flow_step(app) == 1
    back = client.get("/s/demo/step")
    assert back.status_code == 303 and back.headers["Location"].endswith("/s/demo/trial")
    form = trial_form(client)
    assert form is not None and flow_step(app) == 1
    # The memory test's instructions come before its first trial (the 28th).
    answer_trials(client, 12)
    assert client.get("/s/demo/trial").headers["Location"].endswith("/s/demo/step")
    text = client.get("/s/demo/step").get_data(as_text=True)
    assert "Meet your new colleagues." in text and 'id="start"' in text
    assert "Block 4 of 6" in text
    client.post("/s/demo/step", data={"step": step_number(text), "go": "1"})
    assert flow_step(app) == 2
    answer_trials(client, DEMO_TRIALS - 27)
    (p,) = participants(app)
    assert p.status == "completed"
    with app.app_context():
        # No duplicate rows: one answer set per trial, every trial answered once.
        answered = db.session.scalar(
            sa.select(sa.func.count()).where(
                Trial.participant_id == p.id, Trial.answered_at.is_not(None)
            )
        )
        assert answered == DEMO_TRIALS


def test_breaks_between_blocks_say_which_block_is_done(app, client, demo):
    with app.app_context():
        study = db.session.get(Study, demo)
        study.settings = {"block_breaks": True, "break_message": "Look away for a moment."}
        db.session.commit()
    agree(client, "demo")
    answer_trials(client, 10)  # the match block: a practice, 8 trials and a check
    text = client.get("/s/demo/step").get_data(as_text=True)
    assert "Block 1 of 6 done." in text and f"answered 10 of {DEMO_TRIALS} trials" in text
    assert "Look away for a moment." in text


def test_a_closed_study_stops_at_a_page_between_trials(app, client, demo):
    agree(client, "demo")
    answer_trials(client, 15)
    with app.app_context():
        db.session.execute(sa.update(Study).values(state="closed"))
        db.session.commit()
    assert client.get("/s/demo/step").status_code == 410
    assert client.post("/s/demo/step", data={"step": "0", "go": "1"}).status_code == 410
    assert flow_step(app) == 0


# --- questions asked after a block ------------------------------------------------------------


def ask_after(app, study_id: int, block: str) -> None:
    """Ask two questions right after a block (one required)."""
    with app.app_context():
        block_id = db.session.scalar(
            sa.select(Block.id).where(Block.study_id == study_id, Block.name == block)
        )
        db.session.add_all(
            [
                StudyQuestion(
                    study_id=study_id,
                    position=10,
                    code="sure_same",
                    kind="likert",
                    text="How hard was telling the faces apart?",
                    required=True,
                    spec={"min": 1, "max": 5, "anchors": {"1": "Easy", "5": "Hard"}},
                    block_id=block_id,
                ),
                StudyQuestion(
                    study_id=study_id,
                    position=11,
                    code="strategy",
                    kind="text",
                    text="How did you decide?",
                    spec={"max_length": 100},
                    block_id=block_id,
                ),
            ]
        )
        db.session.commit()


def test_questions_after_a_block_are_asked_once_refused_when_missing_and_exported(
    app, client, demo
):
    ask_after(app, demo, "recognition")
    agree(client, "demo")
    answer_trials(client, 10)
    text = client.get("/s/demo/step").get_data(as_text=True)
    assert "How hard was telling the faces apart?" in text and 'id="skip"' not in text
    number = step_number(text)
    # The required question left out: its message beside it, a 400, nothing stored.
    refused = client.post("/s/demo/step", data={"step": number, "strategy": "gut"})
    assert refused.status_code == 400
    assert "Please answer this question." in refused.get_data(as_text=True)
    (p,) = participants(app)
    assert p.flow_step == 0 and not p.block_answers
    answered = client.post(
        "/s/demo/step", data={"step": number, "sure_same": "4", "strategy": "gut"}
    )
    assert answered.status_code == 303
    # Posted again (a double click, the back button): nothing changes.
    client.post("/s/demo/step", data={"step": number, "sure_same": "1", "strategy": "other"})
    (p,) = participants(app)
    assert p.block_answers == {"sure_same": 4, "strategy": "gut"} and p.flow_step == 1
    answer_trials(client, DEMO_TRIALS - 10)
    rows = participants_rows(app, demo)
    assert rows[0]["sure_same"] == "4" and rows[0]["strategy"] == "gut"
    with app.app_context():
        columns = {c["name"]: c for c in exports.codebook(demo) if c["file"] == "participants.csv"}
        document = json.loads(exports.codebook_json(demo))
    assert "asked right after the block 'recognition'" in columns["sure_same"]["description"]
    assert "block_order_row" in columns
    asked = {q["code"]: q for q in document["questions"]}
    assert asked["sure_same"]["asked_after_block"] == "recognition"
    assert "asked_after_block" not in asked["age_band"]


def test_the_last_blocks_questions_come_before_the_questions_page(app, client, demo):
    ask_after(app, demo, CHOOSE)
    agree(client, "demo")
    answer_trials(client, DEMO_TRIALS)
    (p,) = participants(app)
    assert p.status == "completed"
    # The debrief and the questions page wait until the block's questions are answered.
    assert client.get("/s/demo/done").headers["Location"].endswith("/s/demo/step")
    assert client.get("/s/demo/trial").headers["Location"].endswith("/s/demo/step")
    text = client.get("/s/demo/step").get_data(as_text=True)
    client.post("/s/demo/step", data={"step": step_number(text), "sure_same": "2"})
    after = client.get("/s/demo/trial")
    assert after.headers["Location"].endswith("/s/demo/questions")
    (p,) = participants(app)
    assert p.block_answers == {"sure_same": 2}
    # The questions page asks its own questions only, not the block's again.
    page = client.get("/s/demo/questions").get_data(as_text=True)
    assert 'name="age_band"' in page and "sure_same" not in page


# --- the pages between trials in the participant's language -----------------------------------


def speak(app, study_id: int, languages: list[str], **settings) -> None:
    """Give the study its languages (and other settings), as the researcher's pages write them."""
    with app.app_context():
        study = db.session.get(Study, study_id)
        study.settings = {**(study.settings or {}), "languages": languages, **settings}
        db.session.commit()
        refreeze(study_id)


def write_text(app, study_id: int, language: str, key: str, text: str, block: str | None = None):
    """Store one of the study's texts written in another language."""
    with app.app_context():
        block_id = None
        if block is not None:
            block_id = db.session.scalar(
                sa.select(Block.id).where(Block.study_id == study_id, Block.name == block)
            )
            key = f"block:{block_id}:{key}"
        db.session.add(
            StudyText(study_id=study_id, block_id=block_id, language=language, key=key, text=text)
        )
        db.session.commit()


def test_a_german_participant_meets_the_pages_between_trials_in_german(app, client, demo):
    speak(app, demo, ["en", "de"])
    write_text(
        app, demo, "de", "instructions", "**Lernen Sie Ihre neuen Kollegen kennen.**", "meet"
    )
    agree(client, "demo", "?lang=de")
    answer_trials(client, 15)
    text = client.get("/s/demo/step").get_data(as_text=True)
    assert f"Sie haben 15 von {DEMO_TRIALS} Fragen beantwortet." in text
    assert "Eine kurze Pause" in text and ">Weiter</button>" in text
    assert "You have answered" not in text and "Take a moment" not in text
    client.post("/s/demo/step", data={"step": step_number(text), "go": "1"})
    answer_trials(client, 12)
    text = client.get("/s/demo/step").get_data(as_text=True)
    # The block's instructions as the researcher wrote them in German, and the page's words.
    assert "<strong>Lernen Sie Ihre neuen Kollegen kennen.</strong>" in text
    assert "Meet your new colleagues." not in text
    assert "Block 4 von 6" in text and ">Starten</button>" in text


def test_block_instructions_not_written_in_a_language_fall_back_to_the_default(app, client, demo):
    speak(app, demo, ["en", "fr"])
    agree(client, "demo", "?lang=fr")
    answer_trials(client, 15)
    text = client.get("/s/demo/step").get_data(as_text=True)
    assert f"Vous avez répondu à 15 des {DEMO_TRIALS} questions." in text
    client.post("/s/demo/step", data={"step": step_number(text), "go": "1"})
    answer_trials(client, 12)
    text = client.get("/s/demo/step").get_data(as_text=True)
    assert "Meet your new colleagues." in text and "Bloc 4 sur 6" in text


def test_an_arabic_break_and_a_blocks_questions_speak_arabic(app, client, demo):
    speak(app, demo, ["en", "ar"], block_breaks=True, break_message="Look away for a moment.")
    write_text(app, demo, "ar", "break_message", "انظر بعيدًا لحظة.")
    ask_after(app, demo, "recognition")
    with app.app_context():
        question_id = db.session.scalar(
            sa.select(StudyQuestion.id).where(StudyQuestion.code == "sure_same")
        )
    write_text(app, demo, "ar", f"question:{question_id}:text", "ما مدى صعوبة التمييز بين الوجوه؟")
    agree(client, "demo", "?lang=ar")
    answer_trials(client, 10)
    text = client.get("/s/demo/step").get_data(as_text=True)
    # The block's questions come first, in Arabic; a required one left out is refused in Arabic.
    assert "ما مدى صعوبة التمييز بين الوجوه؟" in text and "How hard" not in text
    assert "How did you decide?" in text  # not written in Arabic: the default's wording
    assert "بعض الأسئلة" in text and "إرسال ومتابعة" in text
    refused = client.post("/s/demo/step", data={"step": step_number(text), "strategy": "x"})
    assert refused.status_code == 400
    assert "Please answer this question." not in refused.get_data(as_text=True)
    client.post("/s/demo/step", data={"step": step_number(text), "sure_same": "3"})
    text = client.get("/s/demo/step").get_data(as_text=True)
    assert "انتهى الجزء 1 من 6." in text
    # 47 trials: Arabic's form for 11 to 99 ("سؤالًا").
    assert f"أجبت حتى الآن عن 10 من أصل {DEMO_TRIALS} سؤالًا." in text
    assert "انظر بعيدًا لحظة." in text and "Look away" not in text
