"""A researcher, in Debian's chromium: sign up, create a study, upload a ZIP stimulus set,
configure blocks, preview, open the study and download trials.csv."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from survey.demo_faces import render
from survey.extensions import db
from survey.models import Block, Participant, Study
from survey.participant.simulate import simulate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRIALS_COLUMNS = [
    "study",
    "participant",
    "list",
    "trial",
    "block",
    "task",
    "identity",
    "condition",
    "probe",
    "is_match",
    "measure",
    "value",
    "correct",
    "rt_ms",
    "attention_check",
    "rt_flag",
    "simulated",
    "studied",
    "real_side",
    "image",
    "image_right",
    "probe_image",
    "shown_at",
    "answered_at",
    "timing",
    "refresh_hz",
    "fixation_ms_achieved",
    "exposure_ms_achieved",
    "mask_ms_achieved",
    "isi_ms_achieved",
]
N_IDENTITIES = 8


def stimulus_zip(path) -> None:
    """Write a stimulus set: 8 drawn identities, each a real and an ai headshot and a probe."""
    rows = ["identity,role,source,file,generator,gender,age_band,consent"]
    with zipfile.ZipFile(path, "w") as zf:
        for index in range(N_IDENTITIES):
            code, gender = f"P{index + 1:03d}", ("woman", "man")[index % 2]
            for variant, role, source in (
                ("real", "headshot", "real"),
                ("ai", "headshot", "ai"),
                ("probe", "probe", "photo"),
            ):
                name = f"{code}-{variant}.jpg"
                zf.writestr(name, render(index, variant, size=(240, 300)))
                rows.append(f"{code},{role},{source},{name},drawn for the test,{gender},30-44,yes")
        zf.writestr("manifest.csv", "\n".join(rows) + "\n")


def test_a_researcher_runs_a_study_from_the_browser(app, live_server, browser, tmp_path):
    archive = tmp_path / "stimuli.zip"
    stimulus_zip(archive)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    problems: list[str] = []
    # Script errors and CSP violations show as console errors; failed loads as responses.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )

    # Sign up.
    page.goto(f"{live_server}/r/signup")
    page.get_by_label("Your name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.org")
    page.get_by_label("Password", exact=True).fill("a long enough secret")
    page.get_by_label("Repeat the password").fill("a long enough secret")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/r/studies$"))

    # Create a study.
    page.get_by_role("link", name="New study").click()
    page.get_by_label("Title").fill("Headshot trust pilot")
    page.get_by_role("button", name="Create study").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Headshot trust pilot")
    study_url = page.url
    expect(
        page.get_by_text("Add at least one block before opening the study.").first
    ).to_be_visible()

    # Upload the stimulus set.
    page.get_by_role("navigation", name="Study").get_by_role("link", name="Stimuli").click()
    page.get_by_label("Stimulus set (ZIP)").set_input_files(str(archive))
    page.get_by_role("button", name="Check and import the set").click()
    expect(
        page.get_by_text(f"{N_IDENTITIES} identities, {3 * N_IDENTITIES} images.")
    ).to_be_visible()

    # Configure a match block, shown sequentially, with an attention check.
    page.get_by_role("navigation", name="Study").get_by_role("link", name="Blocks").click()
    page.get_by_label("Block name").fill("recognition")
    page.get_by_label("Task").select_option("match")
    page.get_by_role("button", name="Add block").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Block “recognition”")
    page.get_by_label("Presentation").select_option("sequential")
    page.get_by_label("Exposure (ms)").fill("800")
    page.get_by_label("Attention checks").fill("3")
    page.get_by_role("button", name="Save block").click()
    expect(page.get_by_text("Block 'recognition' saved.")).to_be_visible()

    # A rate block with a second scale, added in the form's blank row.
    page.get_by_label("Block name").fill("impressions")
    page.get_by_label("Task").select_option("rate")
    page.get_by_role("button", name="Add block").click()
    new_scale = page.get_by_role("group", name="New scale")
    new_scale.get_by_label("Key", exact=True).fill("professional")
    new_scale.get_by_label("Question", exact=True).fill("How professional does this person look?")
    new_scale.get_by_label("Label of the lowest value").fill("Not at all")
    new_scale.get_by_label("Label of the highest value").fill("Very")
    new_scale.get_by_label("Lowest value", exact=True).fill("1")
    new_scale.get_by_label("Highest value", exact=True).fill("7")
    page.get_by_role("button", name="Save block").click()
    expect(page.get_by_text("professional (1–7)")).to_be_visible()

    # Texts, with the Markdown shown as participants see it.
    page.get_by_role("navigation", name="Study").get_by_role(
        "link", name="Settings", exact=True
    ).click()
    page.get_by_label("Consent text").fill("**Welcome.** You may stop at any time.")
    page.get_by_label("Completion code").fill("PILOT-1")
    page.get_by_role("button", name="Show the texts as participants see them").click()
    expect(page.locator(".markdown-preview strong", has_text="Welcome.")).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved.")).to_be_visible()

    # Preview as a participant: a flagged run through the real pages.
    page.goto(study_url)
    expect(page.get_by_text("The design can run.")).to_be_visible()
    page.get_by_role("button", name="Preview as participant").click()
    expect(page.locator(".preview-flag")).to_be_visible()
    expect(page.get_by_text("You may stop at any time.")).to_be_visible()
    page.get_by_role("button", name="I agree, start the study").click()
    page.get_by_role("link", name="Begin").click()
    expect(
        page.get_by_text(re.compile(r"Practice: this one does not count|Question 1 of"))
    ).to_be_visible()

    # Open the study, and let three simulated participants take it.
    page.goto(study_url)
    page.get_by_role("link", name="Open to participants…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Open the study to participants?")
    page.get_by_role("button", name="Open the study").click()
    expect(page.get_by_text("The study is now open.")).to_be_visible()
    with app.app_context():
        study = db.session.scalar(sa.select(Study).where(Study.title == "Headshot trust pilot"))
        slug, study_id = study.slug, study.id
        blocks = {
            b.name: b.settings
            for b in db.session.scalars(sa.select(Block).where(Block.study_id == study_id))
        }
        preview_id = db.session.scalar(
            sa.select(Participant.public_id).where(Participant.is_preview.is_(True))
        )
    assert blocks["recognition"]["presentation"] == "sequential" and blocks["recognition"][
        "attention_checks"
    ] == [3]
    assert [s["key"] for s in blocks["impressions"]["scales"]] == ["trust", "professional"]
    simulate(app, slug, 3, seed=7)

    page.get_by_role("navigation", name="Study").get_by_role("link", name="Monitor").click()
    # Counted apart from real participants, of whom there are none yet.
    expect(page.locator('[data-figure="simulated.started"]')).to_have_text("3")
    expect(page.locator('[data-figure="participants.total.started"]')).to_have_text("0")
    expect(page.locator('[data-figure="previews.started"]')).to_have_text("1")

    # Download trials.csv.
    page.get_by_role("navigation", name="Study").get_by_role("link", name="Exports").click()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download trials.csv").click()
    download = download_info.value
    assert download.suggested_filename == "trials.csv"
    text = download.path().read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == TRIALS_COLUMNS
    assert len(rows) > 1 and {row[0] for row in rows[1:]} == {slug}
    assert {row[5] for row in rows[1:]} == {"match", "rate"}
    simulated = TRIALS_COLUMNS.index("simulated")
    assert {row[simulated] for row in rows[1:]} == {
        "1"
    }  # every answer is a simulated participant's
    assert preview_id not in text
    assert problems == [], problems
    context.close()
