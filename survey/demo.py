"""The demo study: a researcher account, 8 drawn identities, a short memory test (learn, then
recognise) and the four other tasks, open."""

from __future__ import annotations

import sqlalchemy as sa

from survey.block_settings import DEFAULT_SCALE
from survey.demo_faces import render
from survey.extensions import db
from survey.media import store_image
from survey.models import Block, Identity, Researcher, Study, StudyMember, StudyQuestion
from survey.questions import default_questions
from survey.stimuli.images import process_image

DEMO_SLUG = "demo"
DEMO_LOGIN = "demo"
DEMO_PASSWORD = "demo"
DEMO_IDENTITIES = 8
_GENDERS = ("woman", "man")
_AGE_BANDS = ("18-29", "30-44", "45-59", "60+")

DEMO_BLOCKS = [
    (
        "recognition",
        "match",
        {"presentation": "side_by_side", "confidence": True, "attention_checks": [3]},
    ),
    (
        "impressions",
        "rate",
        {
            "scales": [
                dict(DEFAULT_SCALE),
                {
                    "key": "professional",
                    "question": "How professional does this person look?",
                    "low_anchor": "Not at all",
                    "high_anchor": "Very",
                    "min": 1,
                    "max": 7,
                },
            ],
            "attention_checks": [2],
            # One short break within the block, so a newcomer sees one.
            "break_every": 5,
        },
    ),
    ("detection", "detect", {"confidence": True}),
    # A short memory test: meet four colleagues, then recognise them in new photos. In a real
    # study it runs before any block that shows the foils' faces (here every face was shown
    # before, so the question asks about the colleagues met).
    (
        "meet",
        "learn",
        {
            "exposure_ms": 3000,
            "label": "Your new colleague Dr {name}",
            "orienting_question": "",
            # The memory test's own instructions page, before its first trial.
            "instructions": "**Meet your new colleagues.** You will see four people, one at a "
            "time, each for three seconds, with their name. Try to remember them: you will be "
            "asked about them soon.",
        },
    ),
    (
        "meet again",
        "recognise",
        {
            "question": "Did you meet this person as a new colleague?",
            "confidence": True,
            "name_recall": True,
        },
    ),
    ("preference", "choose", {"question": "Which photo do you trust more?"}),
]

CONSENT = """\
**Welcome.** This is a demonstration of Likeness. You will see drawn faces (no real
people) and answer a few questions about them. It takes about five minutes.

- Taking part is voluntary; you may withdraw at any time and your answers are deleted.
- We record your answers and how long you take to answer; nothing that identifies you.
"""
INSTRUCTIONS = """\
You will see faces and answer one question at a time.

- **Same person?** Two pictures side by side: do they show the same person?
- **Impressions:** rate a face on a 1–7 scale.
- **Real or AI?** Decide whether a picture is a real photograph or AI-generated.
- **Meet and recognise:** you meet four new colleagues, one photo at a time; then, in new
  photos, say whether you met each person as a colleague, and their name.
- **Preference:** pick one of two pictures.

On a keyboard, use **f** / **j** or the number keys. Answer by first impression.
"""
DEBRIEF = """\
Thank you! Every face in this demo was drawn by the program: in each pair, one drawing
stood in for a real photograph and one for an AI-generated headshot of the same person.
Real studies compare real photographs with AI headshots of consenting people.
"""


def seed_demo() -> tuple[Researcher, Study, bool]:
    """Create the demo researcher and study unless present; return them and whether created."""
    from survey.studies import open_study

    researcher = db.session.scalar(sa.select(Researcher).where(Researcher.email == DEMO_LOGIN))
    if researcher is None:
        researcher = Researcher(email=DEMO_LOGIN, name="Demo researcher")
        researcher.set_password(DEMO_PASSWORD)
        db.session.add(researcher)
    study = db.session.scalar(sa.select(Study).where(Study.slug == DEMO_SLUG))
    if study is not None:
        db.session.commit()
        return researcher, study, False

    study = Study(
        slug=DEMO_SLUG,
        name="Demo: real photographs vs AI headshots",
        # Neutral, as a real study's title must be: it does not say what is compared.
        title="Faces and first impressions (demo)",
        description="A demonstration study with drawn faces standing in for photographs. "
        "Private note: the drawings are the program's, not real people.",
        public_summary="A demonstration of Likeness: people recognised, rated and chose between "
        "drawn faces, one drawing standing in for a real photograph and one for an AI headshot "
        "of the same person. The numbers below come from demo data and say nothing about real "
        "photographs.",
        consent_text=CONSENT,
        instructions_text=INSTRUCTIONS,
        debrief_text=DEBRIEF,
        completion_code="LIKENESS-DEMO",
        target_n=None,
        # The memory test rotates each identity through studied-real, studied-AI and foil.
        n_lists=4,
    )
    db.session.add(study)
    db.session.add(StudyMember(study=study, researcher=researcher, role="owner", is_author=True))
    db.session.flush()
    for index in range(DEMO_IDENTITIES):
        identity = Identity(
            study=study,
            code=f"P{index + 1:03d}",
            gender=_GENDERS[index % 2],
            age_band=_AGE_BANDS[(index // 2) % len(_AGE_BANDS)],
            consent_recorded=True,
            consent_note="Drawn by the program; not a real person.",
        )
        db.session.add(identity)
        for variant, role, source, generator in (
            ("real", "headshot", "real", "Likeness demo drawing (photo style)"),
            ("ai", "headshot", "ai", "Likeness demo drawing (AI style)"),
            ("probe", "probe", "photo", "Likeness demo drawing (candid)"),
        ):
            processed = process_image(
                render(index, variant), filename=f"{identity.code}-{variant}.jpg"
            )
            store_image(
                study,
                identity,
                processed,
                role=role,
                source=source,
                generator=generator,
                filename=f"{identity.code}-{variant}.jpg",
            )
    for position, (name, task, settings) in enumerate(DEMO_BLOCKS, start=1):
        db.session.add(
            Block(study=study, position=position, name=name, task=task, settings=settings)
        )
    for position, question in enumerate(default_questions(), start=1):
        db.session.add(StudyQuestion(study=study, position=position, **question))
    db.session.flush()
    open_study(study, researcher)
    db.session.commit()
    return researcher, study, True
