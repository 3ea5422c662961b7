"""CSRF on every state-changing route and authorization on every researcher route, found by
walking the app's URL map: a route added later is covered without a new test.

A route that anybody may open must be named in PUBLIC with the reason; every other route is a
researcher's and must send signed-out visitors to sign-in.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Report
from survey.participant import csrf as participant_csrf
from survey.researcher.access import ROLE_RANK
from tests.findings.support import simulate
from tests.security.helpers import (
    STATE_CHANGING,
    build_url,
    csrf_token,
    fingerprint,
    participant_client,
    routes,
    table_fingerprints,
    url_values,
)

# Routes open to visitors who are not signed in, and why that is safe.
PUBLIC = {
    "static": "stylesheets and scripts, the same for everyone",
    "main.index": "the front page",
    "main.healthz": "says only whether the database answers",
    "researcher.home": "only redirects to the studies list, which needs sign-in",
    "researcher.login": "the sign-in form, rate limited",
    "researcher.signup": "sign-up, refused unless SIGNUP_OPEN or an invitation",
    "researcher.logout": "ends the caller's own session (a POST with a CSRF token)",
    # Participants: the survey itself, each page scoped to the participant's signed cookie.
    "participant.entry": "the study link",
    "participant.consent": "consent creates the caller's own participant",
    "participant.instructions": "the caller's own flow",
    "participant.trial": "the caller's own current trial",
    "participant.answer": "an answer to one of the caller's own trials",
    "participant.questions": "the caller's own demographics",
    "participant.step": "the caller's own page between trials (instructions, break, questions)",
    "participant.done": "the caller's own debrief",
    "participant.withdraw": "withdraws the caller's own participation",
    "participant.withdrawn": "confirms the caller's own withdrawal",
    "participant.distractor": "the caller's own distractor before a memory test",
    "participant.later": "ends the caller's own first session of a memory study",
    "participant.come_back": "a second session by its unguessable 50-bit return code",
    "participant.image": "a stimulus image by its unguessable 128-bit id",
    # Findings a researcher chose to publish: aggregates only, 404 until published.
    "findings.public": "published findings page",
    "findings.public_chart": "chart of a published finding",
    "findings.public_results": "published findings as JSON",
    "findings.embed": "the embeddable view of published findings",
}
# Researcher routes outside /r/: they check the sign-in and the role themselves.
RESEARCHER_ELSEWHERE = {
    "participant.preview": "a member of the study runs it as a flagged preview participant",
}
# Every researcher route, with the least role it needs and what it does: "read" (no personal
# data: viewers may), "write" (changes something) or "personal" (shows participants'
# personal data, recruitment-platform ids). Viewers read everything that is not personal and
# change nothing; SECURITY.md's role table says the same in words. "signed-in" routes have no
# study: they act on the caller's own account or make a study of their own.
ROLE_TABLE = {
    ("researcher.account", "GET"): ("signed-in", "read"),
    ("researcher.account", "POST"): ("signed-in", "write"),
    ("researcher.invite", "POST"): ("signed-in", "write"),  # administrators only, checked inside
    ("researcher.sign_out_everywhere", "POST"): ("signed-in", "write"),
    ("researcher.account_name", "POST"): ("signed-in", "write"),
    ("researcher.studies", "GET"): ("signed-in", "read"),
    ("researcher.study_new", "GET"): ("signed-in", "read"),
    ("researcher.study_new", "POST"): ("signed-in", "write"),
    ("researcher.study_import", "GET"): ("signed-in", "read"),
    ("researcher.study_import", "POST"): ("signed-in", "write"),
    ("researcher.study", "GET"): ("viewer", "read"),
    ("researcher.audit_log", "GET"): ("viewer", "read"),
    ("researcher.blocks", "GET"): ("viewer", "read"),
    ("researcher.block_edit", "GET"): ("viewer", "read"),
    ("researcher.block_add", "POST"): ("editor", "write"),
    ("researcher.block_save", "POST"): ("editor", "write"),
    ("researcher.block_flow_save", "POST"): ("editor", "write"),
    # Deletions ask on a confirmation page (GET) first; design parts can be undone.
    ("researcher.block_delete", "GET"): ("editor", "write"),
    ("researcher.block_delete", "POST"): ("editor", "write"),
    ("researcher.undo_delete", "POST"): ("editor", "write"),
    ("researcher.forget_delete", "POST"): ("editor", "write"),
    ("researcher.block_move", "POST"): ("editor", "write"),
    ("researcher.questions", "GET"): ("viewer", "read"),
    ("researcher.question_add", "POST"): ("editor", "write"),
    ("researcher.question_edit", "GET"): ("viewer", "read"),
    ("researcher.question_save", "POST"): ("editor", "write"),
    ("researcher.question_move", "POST"): ("editor", "write"),
    ("researcher.question_delete", "GET"): ("editor", "write"),
    ("researcher.question_delete", "POST"): ("editor", "write"),
    # The Languages page, one language's texts beside the default's, and saving them.
    ("researcher.study_texts", "GET"): ("viewer", "read"),
    ("researcher.study_texts_language", "GET"): ("viewer", "read"),
    ("researcher.study_texts_save", "POST"): ("editor", "write"),
    ("researcher.study_definition", "GET"): ("viewer", "read"),
    ("researcher.study_delete", "GET"): ("owner", "write"),
    ("researcher.study_delete", "POST"): ("owner", "write"),
    # A copy takes the study's photographs along into a study the copier owns.
    ("researcher.study_duplicate", "POST"): ("editor", "write"),
    ("researcher.study_edit", "GET"): ("editor", "write"),
    ("researcher.study_edit", "POST"): ("editor", "write"),
    # The confirmation page of opening, closing or archiving, then the POST that does it.
    ("researcher.study_state", "GET"): ("editor", "write"),
    ("researcher.study_state", "POST"): ("editor", "write"),
    ("researcher.exports", "GET"): ("viewer", "read"),
    # A download; with recruitment ids asked for it is personal (see PERSONAL_VARIANTS).
    ("researcher.export_file", "POST"): ("viewer", "read"),
    # Background jobs: the list, a job's page, its JSON status and an export job's file.
    ("researcher.jobs_page", "GET"): ("viewer", "read"),
    ("researcher.job_page", "GET"): ("viewer", "read"),
    ("researcher.job_status", "GET"): ("viewer", "read"),
    ("researcher.job_download", "GET"): ("viewer", "read"),
    # Retrying a failed job (the public charts' job needs the owner, checked inside).
    ("researcher.job_retry", "POST"): ("editor", "write"),
    ("researcher.members", "GET"): ("viewer", "read"),
    ("researcher.member_add", "POST"): ("owner", "write"),
    ("researcher.member_role", "POST"): ("owner", "write"),
    ("researcher.member_author", "POST"): ("owner", "write"),
    ("researcher.member_remove", "GET"): ("owner", "write"),
    ("researcher.member_remove", "POST"): ("owner", "write"),
    ("researcher.monitor", "GET"): ("viewer", "read"),
    ("researcher.monitor_json", "GET"): ("viewer", "read"),
    ("researcher.participant_lookup", "GET"): ("editor", "personal"),
    ("researcher.participant_delete", "POST"): ("editor", "write"),
    # Deletes every simulated participant of the study: a confirmation page, then the POST.
    ("researcher.simulated_delete", "GET"): ("owner", "write"),
    ("researcher.simulated_delete", "POST"): ("owner", "write"),
    ("researcher.preregistration", "GET"): ("viewer", "read"),
    ("researcher.preregistration_save", "POST"): ("editor", "write"),
    ("researcher.preregistration_freeze", "GET"): ("editor", "write"),
    ("researcher.preregistration_freeze", "POST"): ("editor", "write"),
    ("researcher.sample_size", "GET"): ("viewer", "read"),
    ("researcher.stimuli", "GET"): ("viewer", "read"),
    ("researcher.stimuli_upload_zip", "POST"): ("editor", "write"),
    ("researcher.stimuli_upload_image", "POST"): ("editor", "write"),
    ("researcher.stimuli_delete_identity", "GET"): ("editor", "write"),
    ("researcher.stimuli_delete_identity", "POST"): ("editor", "write"),
    ("researcher.stimuli_delete_image", "GET"): ("editor", "write"),
    ("researcher.stimuli_delete_image", "POST"): ("editor", "write"),
    ("findings.report", "GET"): ("viewer", "read"),
    ("findings.figure", "GET"): ("viewer", "read"),
    ("findings.download_html", "GET"): ("viewer", "read"),
    ("findings.download_results", "GET"): ("viewer", "read"),
    ("findings.download_tables", "GET"): ("viewer", "read"),
    ("findings.download_bundle", "GET"): ("viewer", "read"),
    # Retrying deletes the failed computations.
    ("findings.retry", "POST"): ("editor", "write"),
    # The confirmation page of publishing: what becomes public, and the button that does it.
    ("findings.publish_confirm", "GET"): ("owner", "write"),
    ("findings.publish", "POST"): ("owner", "write"),
    # The public page before publishing, for those who prepare it (owners and editors).
    ("findings.preview", "GET"): ("editor", "write"),
    ("findings.preview_chart", "GET"): ("editor", "write"),
    ("findings.preview_results", "GET"): ("editor", "write"),
    ("findings.unpublish", "POST"): ("owner", "write"),
    # Runs the study as a participant flagged as a preview, never exported or analysed.
    ("participant.preview", "GET"): ("viewer", "read"),
    ("participant.preview", "POST"): ("viewer", "read"),
}
# Read routes that turn personal with a form field: (endpoint, URL part values, form data).
PERSONAL_VARIANTS = [
    ("researcher.export_file", {"name": name}, {f"{name.replace('.', '-')}-recruitment_ids": "y"})
    for name in ("participants.csv", "psych-ds.zip")
]
# Read routes naming a report by id; the world has none, so a viewer gets 404 (not 403) there.
NEEDS_A_REPORT = {
    # Likewise an export job's file: the world's job is of another kind.
    "researcher.job_download",
    "findings.figure",
    "findings.download_html",
    "findings.download_results",
    "findings.download_tables",
    "findings.download_bundle",
}
# GET requests that may write, the only tables they may write, and why: a record of who read
# what, or a cache derived from the data, never a change a person asked for.
GET_WRITES = {
    "researcher.study_definition": ({"audit_event"}, "records the download in the audit log"),
    "researcher.participant_lookup": (
        {"audit_event"},
        "records who looked up a participant (recruitment ids are personal data)",
    ),
    "findings.report": (
        {"report"},
        "computes the report of the current data once and keeps it (a cache keyed by the data's "
        "hash), and marks computations that outlived their worker as failed",
    ),
    "findings.download_html": (
        {"report_chart"},
        "stores each figure it draws for the report (a cache keyed by report, deleted with it)",
    ),
    "participant.trial": (
        {"trial"},
        "stamps the trial's shown_at the first time the participant's own page serves it (a "
        "reload keeps the first time; trials.csv reports it)",
    ),
}
# Query strings a GET route is also walked with, so that its search or filter runs.
GET_QUERIES = {
    "researcher.participant_lookup": ("?platform=prolific&external_id=PROLIFIC-0-000",),
}


def researcher_routes(app):
    """Yield (rule, method) of every route that needs a signed-in researcher."""
    for rule, method in routes(app):
        if rule.endpoint not in PUBLIC:
            yield rule, method


def test_every_route_is_either_public_or_a_researchers(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert set(PUBLIC) <= endpoints, "PUBLIC names a route that no longer exists"
    assert set(RESEARCHER_ELSEWHERE) <= endpoints
    unplaced = [
        rule.rule
        for rule, _m in researcher_routes(app)
        if not rule.rule.startswith("/r/") and rule.endpoint not in RESEARCHER_ELSEWHERE
    ]
    # A new public route must be added to PUBLIC on purpose, with its reason.
    assert unplaced == []
    assert len(list(researcher_routes(app))) > 40


def test_every_route_with_a_study_checks_the_role(app):
    missing = [
        rule.endpoint
        for rule, _m in routes(app)
        if "study_id" in rule.arguments
        and not hasattr(app.view_functions[rule.endpoint], "required_role")
    ]
    assert missing == []


def test_every_researcher_route_is_in_the_role_table(app):
    found = {(rule.endpoint, method) for rule, method in researcher_routes(app)}
    found -= {("researcher.home", "GET")}
    assert found == set(ROLE_TABLE), "a route is missing from ROLE_TABLE, or the table is stale"
    for (endpoint, _method), (role, _kind) in ROLE_TABLE.items():
        need = getattr(app.view_functions[endpoint], "required_role", None)
        if endpoint == "participant.preview":
            continue  # any member: the view checks the membership itself
        assert need == (None if role == "signed-in" else role), endpoint


def test_the_role_table_keeps_viewers_to_reading_what_is_not_personal():
    for key, (role, kind) in ROLE_TABLE.items():
        assert kind in ("read", "write", "personal"), key
        if kind != "read" and role != "signed-in":
            assert ROLE_RANK[role] > ROLE_RANK["viewer"], key


def add_failed_report(app, world) -> None:
    """Give the world's study a failed report, which retrying would delete."""
    with app.app_context():
        db.session.add(
            Report(
                study_id=world.study_id,
                data_sha256="f" * 64,
                analysis_version="test",
                status="failed",
                error="it broke",
            )
        )
        db.session.commit()


@pytest.mark.slow
def test_a_viewer_reads_every_read_route_and_is_refused_every_other(app, world):
    """The role table, checked against the app: 200 on reads, 403 on writes and personal data."""
    add_failed_report(app, world)
    client = world.client(app, "viewer")
    before = fingerprint(app)
    seen = {"read": 0, "write": 0, "personal": 0}
    for rule, method in routes(app):
        role, kind = ROLE_TABLE.get((rule.endpoint, method), (None, None))
        if role in (None, "signed-in"):
            continue
        url = build_url(app, rule, url_values(rule, world))
        if (rule.endpoint, method) == ("participant.preview", "POST"):
            continue  # starts a preview participant (a write of its own kind), checked elsewhere
        response = client.open(url, method=method)
        response.close()
        if kind == "read":
            expected = 404 if rule.endpoint in NEEDS_A_REPORT else 200
        else:
            expected = 403
        assert response.status_code == expected, (rule.endpoint, method, response.status_code)
        seen[kind] += 1
        if kind != "read":
            assert fingerprint(app) == before, rule.endpoint
        before = fingerprint(app)
    assert seen["read"] > 15 and seen["write"] > 20 and seen["personal"] >= 1
    for endpoint, values, data in PERSONAL_VARIANTS:
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        url = build_url(app, rule, {**url_values(rule, world), **values})
        response = client.post(url, data=data)
        assert response.status_code == 403, (endpoint, values)
        # Without the personal field the same download is a viewer's to read.
        assert client.post(url).status_code == 200
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report)) == 1


def test_editors_get_the_recruitment_ids_a_viewer_is_refused(app, world):
    client = world.client(app, "editor")
    response = client.post(
        f"/r/studies/{world.study_id}/exports/participants.csv",
        data={"participants-csv-recruitment_ids": "y"},
    )
    assert response.status_code == 200
    assert "recruitment_id" in response.get_data(as_text=True).splitlines()[0]
    viewer = world.client(app, "viewer")
    page = viewer.get(f"/r/studies/{world.study_id}/exports").get_data(as_text=True)
    assert "Include recruitment-platform ids" not in page
    assert "Duplicate as a new draft" not in viewer.get(f"/r/studies/{world.study_id}").get_data(
        as_text=True
    )


def test_only_the_participant_form_views_leave_csrf_to_their_own_check(app):
    """The session's check skips only views checked by the participant form key instead."""
    csrf = app.extensions["csrf"]
    assert csrf._exempt_blueprints == set()
    assert csrf._exempt_views == participant_csrf.PROTECTED_VIEWS
    protected = {
        name
        for name, view in app.view_functions.items()
        if f"{view.__module__}.{view.__name__}" in participant_csrf.PROTECTED_VIEWS
    }
    assert protected == {
        "participant.consent",
        "participant.answer",
        "participant.questions",
        "participant.step",
        "participant.withdraw",
        "participant.distractor",
        "participant.later",
        "participant.come_back",
    }
    assert app.config["WTF_CSRF_METHODS"] == ["POST", "PUT", "PATCH", "DELETE"] or set(
        app.config["WTF_CSRF_METHODS"]
    ) >= set(STATE_CHANGING)


@pytest.mark.parametrize("who", ["owner", "participant"])
def test_every_state_changing_route_refuses_a_post_without_a_valid_token(app, world, who):
    app.config["WTF_CSRF_ENABLED"] = True
    client = participant_client(app, world) if who == "participant" else world.client(app, who)
    token = csrf_token(client, "/r/account" if who == "owner" else "/r/login")
    other_token = csrf_token(world.client(app, "editor"), "/r/account")
    before = fingerprint(app)
    checked = 0
    for rule, method in routes(app, STATE_CHANGING):
        url = build_url(app, rule, url_values(rule, world))
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": other_token}):
            response = client.open(url, method=method, data=data)
            assert response.status_code == 400, (rule.endpoint, method, data, response.status_code)
            text = response.get_data(as_text=True)
            assert "expired" in text and "Traceback" not in text, rule.endpoint
        checked += 1
    assert checked > 25
    assert fingerprint(app) == before
    # The token of the caller's own session is accepted: the refusals above were the token's.
    response = client.post("/r/logout", data={"csrf_token": token})
    assert response.status_code == 302


@pytest.mark.slow
def test_get_requests_change_nothing(app, world):
    """CSRF tokens guard only POSTs, so no GET may write beyond GET_WRITES' records and caches.

    The study has answers, so the report is computed and a lookup finds its participant.
    """
    with app.app_context():
        simulate(world.study_id, 2, prolific=True)
        db.session.commit()
    clients = [world.client(app, "owner"), participant_client(app, world), world.client(app)]
    before = table_fingerprints(app)
    written: dict[str, set[str]] = {}
    for rule, _method in routes(app, ("GET",)):
        url = build_url(app, rule, url_values(rule, world))
        for query in ("", *GET_QUERIES.get(rule.endpoint, ())):
            for client in clients:
                response = client.get(url + query)
                response.close()
                assert response.status_code < 500, (rule.endpoint, response.status_code)
            after = table_fingerprints(app)
            tables = {name for name in after if after[name] != before[name]}
            if tables:
                written.setdefault(rule.endpoint, set()).update(tables)
            before = after
    assert written == {endpoint: tables for endpoint, (tables, _why) in GET_WRITES.items()}


@pytest.mark.parametrize("who", ["anonymous", "participant"])
def test_researcher_routes_send_visitors_and_participants_to_sign_in(app, world, who):
    client = participant_client(app, world) if who == "participant" else world.client(app)
    if who == "participant":
        # Even a participant cookie sent to every path opens nothing of the workspace.
        client.set_cookie(
            "likeness_participant",
            client.get_cookie("likeness_participant", path=f"/s/{world.slug}").value,
        )
    before = fingerprint(app)
    for rule, method in researcher_routes(app):
        url = build_url(app, rule, url_values(rule, world))
        response = client.open(url, method=method)
        assert response.status_code == 302, (rule.endpoint, method, response.status_code)
        assert response.location.startswith("/r/login"), (rule.endpoint, response.location)
    assert fingerprint(app) == before


@pytest.mark.slow
def test_strangers_get_404_on_every_study_route(app, world):
    client = world.client(app, "stranger")
    before = fingerprint(app)
    for rule, method in routes(app):
        if "study_id" not in rule.arguments:
            continue
        response = client.open(build_url(app, rule, url_values(rule, world)), method=method)
        assert response.status_code == 404, (rule.endpoint, method, response.status_code)
    # The preview runs the study as a participant: members only.
    assert client.get(f"/s/{world.slug}/preview").status_code == 404
    assert client.post(f"/s/{world.slug}/preview").status_code == 404
    assert fingerprint(app) == before


@pytest.mark.parametrize(("who", "rank"), [("viewer", 1), ("editor", 2)])
def test_lower_roles_are_refused_every_route_above_them(app, world, who, rank):
    ranks = {"viewer": 1, "editor": 2, "owner": 3}
    client = world.client(app, who)
    before = fingerprint(app)
    refused = 0
    for rule, method in routes(app):
        need = getattr(app.view_functions[rule.endpoint], "required_role", None)
        if need is None or ranks[need] <= rank:
            continue
        response = client.open(build_url(app, rule, url_values(rule, world)), method=method)
        assert response.status_code == 403, (rule.endpoint, method, response.status_code)
        refused += 1
    assert refused > (15 if who == "viewer" else 4)
    assert fingerprint(app) == before


def test_a_participant_token_is_bound_to_its_browser(app, world):
    """A token copied from another browser's page, or sent without its cookie, is refused."""
    app.config["WTF_CSRF_ENABLED"] = True
    mine, theirs = participant_client(app, world), participant_client(app, world)
    url = f"/s/{world.slug}/withdraw"
    token_of = {}
    for name, client in (("mine", mine), ("theirs", theirs)):
        page = client.get(url).get_data(as_text=True)
        token_of[name] = re.search(r'name="csrf_token" type="hidden" value="([0-9a-f]+)"', page)[1]
    assert token_of["mine"] != token_of["theirs"]
    before = fingerprint(app)
    assert mine.post(url, data={"csrf_token": token_of["theirs"]}).status_code == 400
    mine.delete_cookie(participant_csrf.COOKIE, path=participant_csrf.COOKIE_PATH)
    assert mine.post(url, data={"csrf_token": token_of["mine"]}).status_code == 400
    assert fingerprint(app) == before
    # Its own token with its own key is accepted (the withdrawal goes through).
    assert theirs.post(url, data={"csrf_token": token_of["theirs"]}).status_code == 303
    assert fingerprint(app) != before
