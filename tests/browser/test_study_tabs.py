"""In chromium: a study with every tab there is (an owner's, in several languages) shows them in
one row on a desktop, the rarely used ones under More, and in a menu on a phone; both open
without script and mark the page shown."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Study, StudyMember
from tests.browser.helpers import researcher_context
from tests.helpers import refreeze

pytestmark = [pytest.mark.browser]

# Every tab of a study whose viewer may edit it and that runs in more than one language.
ROW = [
    "Overview",
    "Settings",
    "Blocks",
    "Questions",
    "Stimuli",
    "Preregistration",
    "Monitor",
    "Exports",
    "Report",
]
MORE = ["Languages", "Jobs", "Members", "Participants", "Audit log"]

# The row's items (its links and the More control): each one's top and whether it is cut, by
# its row or the window.
ROW_ITEMS = r"""row => Array.from(row.children).map(li => {
    const r = li.getBoundingClientRect(), box = row.getBoundingClientRect();
    const shown = li.querySelector(':scope > a, :scope > details > summary');
    return {text: shown.textContent.replace(/\s+/g, ' ').trim(), top: li.offsetTop,
            cut: shown.scrollWidth > shown.clientWidth + 1 || r.left < box.left - 1
                 || r.right > box.right + 1 || r.right > innerWidth};
})"""


@pytest.fixture
def owner(app, demo) -> int:
    """The demo study in English and German (so its Languages tab shows); returns its owner."""
    with app.app_context():
        study = db.session.get(Study, demo)
        study.settings = {**(study.settings or {}), "languages": ["en", "de"]}
        db.session.commit()
        refreeze(demo)
        return db.session.scalar(
            sa.select(StudyMember.researcher_id).where(StudyMember.study_id == demo)
        )


def labels(page, selector: str) -> list[str]:
    """The words of the links under `selector`."""
    return [text.strip() for text in page.locator(selector).all_text_contents()]


# From just past the width the phone menu gives way to the row (56rem) to a common laptop.
@pytest.mark.parametrize("width", [900, 1280, 1366])
def test_every_tab_fits_one_row_on_a_desktop(app, live_server, browser, demo, owner, width):
    context = researcher_context(
        browser, app, live_server, owner, viewport={"width": width, "height": 900}
    )
    page = context.new_page()
    # The overview, and a page under More: its name then shows on the More control (after words
    # for screen readers only).
    pages = (("", "Overview", "More"), ("/participants", "Participants", "More: Participants"))
    for path, current, control in pages:
        page.goto(f"{live_server}/r/studies/{demo}{path}")
        assert page.locator(".tabs-menu").is_hidden()
        items = page.eval_on_selector(".tabs-row", ROW_ITEMS)
        assert [item["text"] for item in items] == [*ROW, control]
        assert len({item["top"] for item in items}) == 1, items
        assert not [item for item in items if item["cut"]]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert labels(page, ".tabs-row a[aria-current=page]") == [current]

        # More opens from the keyboard, below the row and inside the window, listing the rest.
        more = page.locator(".tabs-more summary")
        assert page.locator(".tabs-more .tabs").is_hidden()
        more.focus()
        page.keyboard.press("Enter")
        listed = page.locator(".tabs-more .tabs a")
        assert labels(page, ".tabs-more .tabs a") == MORE
        assert all(link.is_visible() for link in listed.all())
        box, row = listed.last.bounding_box(), page.locator(".tabs-row").bounding_box()
        assert box and row and box["y"] >= row["y"] + row["height"] - 1
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        page.keyboard.press("Enter")
        assert page.locator(".tabs-more .tabs").is_hidden()
    context.close()


def test_the_tabs_are_a_menu_on_a_phone(app, live_server, browser, demo, owner):
    context = researcher_context(
        browser, app, live_server, owner, viewport={"width": 390, "height": 844}
    )
    page = context.new_page()
    page.goto(f"{live_server}/r/studies/{demo}/audit")
    assert page.locator(".tabs-row").is_hidden()
    menu = page.locator(".tabs-menu summary")
    assert menu.is_visible() and menu.inner_text().startswith("Audit log")
    assert page.locator(".tabs-menu .tabs").is_hidden()
    menu.click()
    links = page.locator(".tabs-menu .tabs a")
    assert labels(page, ".tabs-menu .tabs a") == ROW + MORE
    assert all(link.is_visible() for link in links.all())
    assert labels(page, ".tabs-menu a[aria-current=page]") == ["Audit log"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()
