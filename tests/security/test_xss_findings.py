"""Hostile study texts and member names on the report and the public findings pages, and in
the embed code that other sites paste into their own pages."""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Researcher, Study
from tests.findings.support import count_analyses, fill, owner_id, publish_findings
from tests.security.helpers import SSTI, SSTI_RAN, active_content

pytestmark = pytest.mark.once

HOSTILE = f'"><img src=x onerror=alert(1)><script>xfind</script>{SSTI}'


@pytest.fixture
def hostile_published(app, client, demo, monkeypatch, auth):
    """The demo, filled, closed and published, with a hostile title, description and names."""
    count_analyses(monkeypatch)
    fill(app, demo, 20, seed=5)
    with app.app_context():
        study = db.session.get(Study, demo)
        study.title, study.description = HOSTILE, HOSTILE
        for researcher in db.session.scalars(sa.select(Researcher)):
            researcher.name = HOSTILE
        db.session.commit()
        slug = study.slug
    auth.sign_in(owner_id(app))
    assert client.get(f"/r/studies/{demo}/report").status_code == 200
    assert publish_findings(client, demo).status_code == 302
    return slug


@pytest.mark.slow
def test_report_and_public_pages_show_hostile_texts_escaped(app, client, demo, hostile_published):
    slug = hostile_published
    visitor = app.test_client()
    pages = {
        "report": client.get(f"/r/studies/{demo}/report"),
        "public": visitor.get(f"/f/{slug}"),
        "embed": visitor.get(f"/f/{slug}/embed"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        text = response.get_data(as_text=True)
        found = [item for item in active_content(text) if item != "<iframe>"]
        assert found == [] and "<script>x" not in text and SSTI_RAN not in text, name
        assert html.escape("<script>xfind</script>") in text, name
    assert visitor.get(f"/f/{slug}/findings.json").mimetype == "application/json"


@pytest.mark.slow
def test_the_embed_code_is_safe_to_paste(app, client, demo, hostile_published):
    """The snippet is shown escaped, and once copied into another site's page it is one iframe."""
    page = app.test_client().get(f"/f/{hostile_published}").get_data(as_text=True)
    snippet = html.unescape(
        re.search(r'<pre class="snippet"><code>(.*?)</code></pre>', page, re.DOTALL).group(1)
    )
    assert snippet.startswith("<iframe ") and snippet.count("<") == 2 and "</iframe>" in snippet
    assert active_content(snippet) == ["<iframe>"]
