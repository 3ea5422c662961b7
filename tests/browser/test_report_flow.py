"""In chromium: the demo study filled by simulated participants, its report, publishing, the page."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from tests.test_findings_support import set_state

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_report_is_published_and_a_chart_downloads_at_1200_by_675(app, live_server, browser,
                                                                    runner, demo):
    """Simulate 30 participants, close, read the report, publish, open the public page, download."""
    result = runner.invoke(args=["simulate-participants", "--study", "demo", "-n", "30",
                                 "--seed", "1"])
    assert result.exit_code == 0, result.output
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
    page.locator("details.outcome > summary").first.click()
    figure = page.locator(".report-figure img").first
    figure.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
    assert len(figure.get_attribute("alt")) > 80
    # Publishing shows what becomes public first, then publishes on its confirmation.
    page.get_by_role("link", name="Publish findings…").click()
    page.get_by_role("heading", name="What becomes public").wait_for()
    page.get_by_role("button", name="Publish these findings").click()
    page.get_by_text("The findings are published at").wait_for()
    team.close()

    reader = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True,
                                 java_script_enabled=False)
    public = reader.new_page()
    response = public.goto(f"{live_server}/f/demo")
    assert response.status == 200
    assert public.locator(".claim").count() >= 6
    assert "Preregistered" in public.content() or "Exploratory" in public.content()
    # The page fits a phone: nothing wider than the viewport but the (scrollable) tables.
    overflow = public.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    with public.expect_download() as download_info:
        public.get_by_role("link", name="PNG 1200×675").first.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".png")
    with PILImage.open(download.path()) as image:
        assert (image.format, image.size) == ("PNG", (1200, 675))
    reader.close()
