"""In chromium: the demo study taken by real participants (two of them in the browser) and by
simulated ones; the report, the exports, publishing and the public page count only the real ones."""

from __future__ import annotations

import csv
import io
import random
import zipfile

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from survey.extensions import db
from survey.models import Participant
from tests.browser.helpers import take_study
from tests.findings.support import fill, set_state
from tests.helpers import DEMO_TRIALS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_report_is_published_and_a_chart_downloads_at_1200_by_675(
    app, live_server, browser, runner, demo
):
    """24 real participants from the service, 2 who take the study in chromium and 6 simulated
    ones; close, read the report (of the real ones), check the exports, publish, open the public
    page, download a chart."""
    result = runner.invoke(
        args=["simulate-participants", "--study", "demo", "-n", "6", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    fill(app, demo, 24, seed=5, close=False)
    with app.app_context():
        simulated = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Participant)
            .where(Participant.is_simulated.is_(True))
        )
    assert simulated == 6
    people = browser.new_context(viewport={"width": 390, "height": 844})
    rng = random.Random(7)
    for index in range(2):
        page = people.new_page()
        assert (
            take_study(page, live_server, "demo", f"?PROLIFIC_PID=browser{index}", rng)
            == DEMO_TRIALS
        )
        page.close()
    people.close()
    with app.app_context():
        sources = dict(
            db.session.execute(
                sa.select(Participant.source, sa.func.count())
                .where(Participant.is_simulated.is_(False), Participant.status == "completed")
                .group_by(Participant.source)
            ).all()
        )
    assert sources == {"link": 24, "prolific": 2}
    set_state(app, demo, "closed")

    team = browser.new_context(viewport={"width": 1280, "height": 900})
    page = team.new_page()
    page.goto(f"{live_server}/r/login")
    page.fill("input[name=identifier]", "demo")
    page.fill("input[name=password]", "demo")
    page.locator("main button[type=submit]").click()
    page.wait_for_url(f"{live_server}/r/**")
    page.goto(f"{live_server}/r/studies/{demo}/report", timeout=120_000)
    page.get_by_role("heading", name="Findings", exact=True).wait_for()
    assert page.locator(".claim").count() >= 6
    # The first screen holds every verdict; the outcomes open on demand.
    assert page.locator(".summary-table tbody tr").count() >= 6
    assert page.locator(".summary-table").bounding_box()["y"] < 900
    assert "6 simulated participants are left out" in page.locator("#simulated-switch").inner_text()
    methods = page.locator("#methods-text").text_content()
    assert methods.startswith("26 participants took part through ")
    assert "a direct link (24)" in methods and "Prolific (2)" in methods
    assert "6 simulated participants (test runs by the study platform, not people)" in methods
    page.locator("details.outcome > summary").first.click()
    figure = page.locator(".report-figure img").first
    figure.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=figure.element_handle()
    )
    assert len(figure.get_attribute("alt")) > 80
    # The exports hold every participant, the simulated ones marked; the reproduction bundle
    # holds the rows the report analysed: the real participants only.
    bundle = page.request.get(
        live_server + page.locator("a", has_text="Reproduction bundle (ZIP)").get_attribute("href")
    )
    with zipfile.ZipFile(io.BytesIO(bundle.body())) as archive:
        name = next(n for n in archive.namelist() if n.endswith("participants.csv"))
        analysed = list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
    assert len(analysed) == 26 and {row["simulated"] for row in analysed} == {"0"}
    report_url = page.url
    page.goto(f"{live_server}/r/studies/{demo}/exports")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download participants.csv").click()
    with open(download_info.value.path(), encoding="utf-8-sig") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == 32
    assert sum(row["simulated"] == "1" for row in exported) == 6
    page.goto(report_url)
    # Publishing shows what becomes public first, then publishes on its confirmation.
    page.get_by_role("link", name="Publish findings…").click()
    page.get_by_role("heading", name="What becomes public").wait_for()
    page.get_by_role("button", name="Publish these findings").click()
    page.get_by_text("The findings are published at").wait_for()
    team.close()

    reader = browser.new_context(
        viewport={"width": 390, "height": 844}, accept_downloads=True, java_script_enabled=False
    )
    public = reader.new_page()
    response = public.goto(f"{live_server}/f/demo")
    assert response.status == 200
    assert public.locator(".claim").count() >= 6
    assert "Preregistered" in public.content() or "Exploratory" in public.content()
    public_text = public.locator("main").inner_text()
    assert "26 participants took part" in public_text and "Prolific (2)" in public_text
    assert "32 participants" not in public_text
    # The page fits a phone: nothing wider than the viewport but the (scrollable) tables.
    overflow = public.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    with public.expect_download() as download_info:
        public.get_by_role("link", name="PNG 1200×675").first.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".png")
    with PILImage.open(download.path()) as image:
        assert (image.format, image.size) == ("PNG", (1200, 675))
    reader.close()
