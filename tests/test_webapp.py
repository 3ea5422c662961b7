"""The app's Flask class: remembered sync checks and static URLs, the lazy signed-in researcher."""

from __future__ import annotations

import pytest
from flask import render_template_string, url_for


def test_static_urls_match_url_for_under_any_script_root(app):
    for root in ("", "/likeness"):
        with app.test_request_context("/", base_url=f"http://localhost{root}"):
            for name in ("css/survey.css", "js/survey.js", "css/likeness.css"):
                assert app.static_url(name) == url_for("static", filename=name)
                assert app.static_url(name).startswith(f"{root}/static/")
                # Asked again, the same answer (from the per-app memory).
                assert app.static_url(name) == url_for("static", filename=name)


def test_pages_link_the_static_files_under_the_script_root(app, client):
    page = client.get("/", base_url="http://localhost/likeness").get_data(as_text=True)
    assert 'href="/likeness/static/css/likeness.css"' in page
    static = client.get("/static/css/likeness.css")
    assert static.status_code == 200
    static.close()


def test_the_sync_check_is_remembered_per_function(app):
    def plain():
        return "plain"

    assert app.ensure_sync(plain) is plain
    assert app._sync[plain] is plain

    async def coroutine():
        return "async"

    # Without asgiref Flask refuses an async function: the refusal is not remembered as an
    # answer, and comes again on the next call.
    for _ in range(2):
        with pytest.raises(RuntimeError):
            app.ensure_sync(coroutine)
    assert coroutine not in app._sync


def test_templates_see_the_signed_in_researcher_and_nobody_otherwise(
    app, client, make_researcher, auth
):
    template = "{{ 'in:' ~ current_user.email if current_user.is_authenticated else 'out' }}"
    with app.test_request_context("/"):
        assert render_template_string(template) == "out"
    auth.sign_in(make_researcher("ada@example.org"))
    page = client.get("/r/account")
    assert page.status_code == 200
    assert "<dd>ada@example.org</dd>" in page.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/s/demo", "/"])
def test_a_participant_page_has_no_researcher_and_no_session_cookie(app, client, demo, path):
    response = client.get(path)
    assert response.status_code == 200
    assert not any(c.startswith("session=") for c in response.headers.getlist("Set-Cookie"))
