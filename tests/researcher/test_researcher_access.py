"""Every researcher route with a study in its URL, tried as a stranger, a viewer, an editor and
with another researcher's study id: strangers get 404, lower roles 403."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Block, StudyMember

METHODS = ("GET", "POST")


def study_routes(app) -> list[tuple[str, str, object]]:
    """Return (endpoint, method, rule) for every researcher route taking a study id."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("researcher.") or "study_id" not in rule.arguments:
            continue
        for method in sorted(set(rule.methods) & set(METHODS)):
            routes.append((rule.endpoint, method, rule))
    return sorted(routes, key=lambda r: (r[0], r[1]))


def url_for_rule(app, rule, study_id: int, block_id: int, member_id: int) -> str:
    """Build a URL for the rule with the study's own ids for its other parts."""
    values = {"study_id": study_id}
    for name in rule.arguments - {"study_id"}:
        values[name] = {"block_id": block_id, "member_id": member_id}.get(
            name, 1 if "id" in name else "x"
        )
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


@pytest.fixture
def ids(app, team):
    """Return a block id and a membership id of the team's study."""
    with app.app_context():
        block_id = db.session.scalar(sa.select(Block.id).where(Block.study_id == team.study_id))
        member_id = db.session.scalar(
            sa.select(StudyMember.id).where(
                StudyMember.study_id == team.study_id, StudyMember.researcher_id == team.viewer
            )
        )
    return block_id, member_id


def test_every_study_route_checks_the_role(app):
    routes = study_routes(app)
    assert len(routes) > 25
    missing = [
        endpoint
        for endpoint, _m, _r in routes
        if not hasattr(app.view_functions[endpoint], "required_role")
    ]
    assert missing == []


def test_strangers_get_404_everywhere(app, team, ids):
    client = team.client(app, "stranger")
    for endpoint, method, rule in study_routes(app):
        url = url_for_rule(app, rule, team.study_id, *ids)
        response = client.open(url, method=method)
        assert response.status_code == 404, (endpoint, method, url, response.status_code)


def test_another_researchers_study_id_gets_404_everywhere(app, team, ids, make_study):
    other_study = make_study(team.stranger, title="Stranger's second", slug="second")
    client = team.client(app, "owner")
    for endpoint, method, rule in study_routes(app):
        url = url_for_rule(app, rule, other_study, *ids)
        assert client.open(url, method=method).status_code == 404, (endpoint, method, url)


def test_signed_out_visitors_are_sent_to_sign_in(app, team, ids):
    client = app.test_client()
    for endpoint, method, rule in study_routes(app):
        response = client.open(url_for_rule(app, rule, team.study_id, *ids), method=method)
        assert response.status_code == 302 and "/r/login" in response.location, (endpoint, method)


@pytest.mark.parametrize(
    ("who", "refused"), [("viewer", ("editor", "owner")), ("editor", ("owner",))]
)
def test_lower_roles_get_403_and_change_nothing(app, team, ids, who, refused):
    client = team.client(app, who)
    checked = 0
    for endpoint, method, rule in study_routes(app):
        need = app.view_functions[endpoint].required_role
        response = client.open(url_for_rule(app, rule, team.study_id, *ids), method=method)
        if need in refused:
            assert response.status_code == 403, (endpoint, method, response.status_code)
            assert "This needs the" in response.get_data(as_text=True)
            checked += 1
        else:
            assert response.status_code != 403, (endpoint, method)
    assert checked >= (10 if who == "viewer" else 4)
    with app.app_context():
        roles = db.session.scalars(
            sa.select(StudyMember.role)
            .where(StudyMember.study_id == team.study_id)
            .order_by(StudyMember.id)
        ).all()
        assert roles == ["owner", "editor", "viewer"]


def test_viewer_pages_open_for_viewers(app, team, ids):
    client = team.client(app, "viewer")
    for endpoint in (
        "study",
        "blocks",
        "block_edit",
        "preregistration",
        "monitor",
        "monitor_json",
        "members",
        "audit_log",
        "study_definition",
    ):
        rule = next(
            r for e, m, r in study_routes(app) if e == f"researcher.{endpoint}" and m == "GET"
        )
        response = client.get(url_for_rule(app, rule, team.study_id, *ids))
        assert response.status_code == 200, endpoint


def test_routes_without_a_study_need_sign_in(app):
    client = app.test_client()
    for url in ("/r/studies", "/r/studies/new", "/r/studies/import", "/r/account"):
        response = client.get(url)
        assert response.status_code == 302 and "/r/login" in response.location
    assert client.post("/r/account/invite").status_code == 302
