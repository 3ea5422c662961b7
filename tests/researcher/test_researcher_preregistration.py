"""Preregistration: the plan form, its checks, canonical JSON and hash, freezing."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa

from analysis.plan import validate_plan
from survey.extensions import db
from survey.models import AuditEvent, Preregistration

PLAN = {
    "hypotheses-0-outcome": "trust",
    "hypotheses-0-direction": "less",
    "hypotheses-0-text": "AI headshots are trusted less",
    "hypotheses-1-outcome": "recognition_accuracy",
    "hypotheses-1-direction": "two-sided",
    "hypotheses-1-text": "",
    "primary_outcomes": ["trust", "recognition_accuracy"],
    "alpha": "0.05",
    "correction": "holm",
    "exclude_incomplete": "y",
    "exclude_attention": "y",
    "min_median_rt_ms": "300",
    "bounds-0-outcome": "trust",
    "bounds-0-low": "-0.3",
    "bounds-0-high": "0.3",
    "target_n": "200",
}


def stored(app, study_id: int) -> Preregistration | None:
    """Return the study's stored plan (detached), if any."""
    with app.app_context():
        prereg = db.session.scalar(
            sa.select(Preregistration).where(Preregistration.study_id == study_id)
        )
        if prereg is not None:
            db.session.expunge(prereg)
        return prereg


def test_the_form_offers_the_outcomes_the_blocks_measure(app, team, owner_client):
    page = owner_client.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    for outcome in ("trust", "recognition_accuracy", "d_prime", "criterion"):
        assert f'value="{outcome}"' in page
    assert 'value="detection_accuracy"' not in page
    assert 'value="0.05"' in page and 'value="250' in page  # the contract's defaults


def test_save_stores_canonical_json_and_its_hash(app, team, owner_client):
    response = owner_client.post(f"/r/studies/{team.study_id}/preregistration", data=PLAN)
    assert response.status_code == 302
    prereg = stored(app, team.study_id)
    expected = validate_plan(
        {
            "hypotheses": [
                {"outcome": "trust", "direction": "less", "text": "AI headshots are trusted less"},
                {"outcome": "recognition_accuracy", "direction": "two-sided", "text": ""},
            ],
            "primary_outcomes": ["trust", "recognition_accuracy"],
            "alpha": 0.05,
            "correction": "holm",
            "exclusions": {
                "incomplete": True,
                "attention": True,
                "min_median_rt_ms": 300,
                "straightlining": False,
            },
            "equivalence_bounds": {"trust": [-0.3, 0.3]},
            "target_n": 200,
        }
    )
    assert prereg.plan == expected
    assert prereg.plan_json == json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert prereg.sha256 == hashlib.sha256(prereg.plan_json.encode()).hexdigest()
    assert prereg.frozen_at is None
    page = owner_client.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    assert (
        "AI headshots are trusted less" in page and prereg.sha256 in page and "Freeze plan" in page
    )
    # Saving again replaces the plan (not frozen yet).
    owner_client.post(f"/r/studies/{team.study_id}/preregistration", data={**PLAN, "alpha": "0.01"})
    assert stored(app, team.study_id).plan["alpha"] == 0.01
    # The prior scale of the Bayes factors: √2/2 unless given, and shown on the page.
    assert prereg.plan["bayes_rscale"] == pytest.approx(2**0.5 / 2, rel=1e-15)
    owner_client.post(
        f"/r/studies/{team.study_id}/preregistration", data={**PLAN, "bayes_rscale": "1"}
    )
    assert stored(app, team.study_id).plan["bayes_rscale"] == 1.0
    page = owner_client.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    assert 'name="bayes_rscale"' in page and 'value="1.0"' in page
    owner_client.post(f"/r/studies/{team.study_id}/preregistration", data=PLAN)
    page = owner_client.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    assert 'placeholder="0.7071 (√2/2)"' in page and 'value="0.7071' not in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"alpha": "0"}, "Alpha must be a number more than 0 and at most 0.5; you wrote 0."),
        ({"alpha": "0.7"}, "Alpha must be a number more than 0 and at most 0.5; you wrote 0.7."),
        (
            {"alpha": "lots"},
            "Alpha must be a number more than 0 and at most 0.5; you wrote &#39;lots&#39;.",
        ),
        ({"alpha": ""}, "Give alpha, e.g. 0.05."),
        (
            {"bounds-0-low": "0.2"},
            "The lower bound must be a number between -1,000,000 and 0; you wrote 0.2.",
        ),
        ({"bounds-0-low": "0"}, "The lower bound must be below 0; you wrote 0."),
        ({"bounds-0-high": "0"}, "The upper bound must be above 0; you wrote 0."),
        ({"bounds-0-high": ""}, "Give both a lower and an upper bound for trust."),
        (
            {"bounds-1-outcome": "trust", "bounds-1-low": "-1", "bounds-1-high": "1"},
            "Bounds 2 are for trust, like bounds 1: give one pair of bounds per outcome.",
        ),
        (
            {"hypotheses-0-outcome": "detection_accuracy"},
            "Hypothesis 1: &#39;detection_accuracy&#39; is not measured by this study&#39;s blocks",
        ),
        (
            {"hypotheses-1-outcome": "trust"},
            "Hypothesis 2 is about trust, like hypothesis 1: give one hypothesis per outcome.",
        ),
        ({"hypotheses-0-direction": "sideways"}, "Not a valid choice."),
        (
            {"primary_outcomes": ["choice_real"]},
            "Primary outcome &#39;choice_real&#39; is not measured by this study&#39;s blocks",
        ),
        (
            {"min_median_rt_ms": "-5"},
            "The median response time limit must be a number between 0 and 60,000 ms; you wrote"
            " -5.",
        ),
        (
            {"target_n": "0"},
            "The target number of participants must be a whole number between 1 and 1,000,000; "
            "you wrote 0.",
        ),
        (
            {"bayes_rscale": "0"},
            "The prior scale r of the Bayes factors must be a number more than 0 and at most 100;"
            " you wrote 0.",
        ),
        (
            {"bayes_rscale": "-1"},
            "The prior scale r of the Bayes factors must be a number more than 0 and at most 100;"
            " you wrote -1.",
        ),
        ({"correction": "bonferroni"}, "Not a valid choice."),
    ],
)
def test_bad_plans_are_refused_and_nothing_is_stored(app, team, owner_client, fields, message):
    response = owner_client.post(
        f"/r/studies/{team.study_id}/preregistration", data={**PLAN, **fields}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert stored(app, team.study_id) is None


def test_freeze_makes_the_plan_read_only(app, team, owner_client):
    url = f"/r/studies/{team.study_id}/preregistration"
    nothing = owner_client.post(f"{url}/freeze")
    assert nothing.status_code == 409 and "Save a plan before freezing it." in nothing.get_data(
        as_text=True
    )
    owner_client.post(url, data=PLAN)
    assert owner_client.post(f"{url}/freeze").status_code == 302
    prereg = stored(app, team.study_id)
    assert prereg.frozen_at is not None
    page = owner_client.get(url).get_data(as_text=True)
    assert (
        "Frozen plan" in page
        and prereg.sha256 in page
        and prereg.plan_json.replace('"', "&#34;") in page
    )
    assert "Save plan" not in page
    for response in (
        owner_client.post(url, data={**PLAN, "alpha": "0.01"}),
        owner_client.post(f"{url}/freeze"),
    ):
        assert response.status_code == 409 and "cannot change" in response.get_data(as_text=True)
    assert stored(app, team.study_id).plan == prereg.plan
    with app.app_context():
        assert db.session.scalars(sa.select(AuditEvent.action)).all()[-2:] == [
            "preregistration.save",
            "preregistration.freeze",
        ]


def test_opening_the_study_freezes_the_plan(app, team, owner_client):
    owner_client.post(f"/r/studies/{team.study_id}/preregistration", data=PLAN)
    owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    prereg = stored(app, team.study_id)
    assert prereg.frozen_at is not None
    response = owner_client.post(f"/r/studies/{team.study_id}/preregistration", data=PLAN)
    assert response.status_code == 409


def test_no_plan_can_be_written_after_opening(app, team, owner_client):
    owner_client.post(f"/r/studies/{team.study_id}/state", data={"state": "open"})
    page = owner_client.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    assert "would not be a preregistration" in page and "Save plan" not in page
    response = owner_client.post(f"/r/studies/{team.study_id}/preregistration", data=PLAN)
    assert response.status_code == 409 and "would not be a preregistration" in response.get_data(
        as_text=True
    )
    assert stored(app, team.study_id) is None


def test_viewers_read_the_plan_but_cannot_save_it(app, team, owner_client):
    owner_client.post(f"/r/studies/{team.study_id}/preregistration", data=PLAN)
    viewer = team.client(app, "viewer")
    page = viewer.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    assert "AI headshots are trusted less" in page and "Save plan" not in page
    assert viewer.post(f"/r/studies/{team.study_id}/preregistration", data=PLAN).status_code == 403


def test_the_plan_can_make_the_ordinal_mixed_model_primary(app, team, owner_client):
    page = owner_client.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    assert 'value="clmm"' in page
    response = owner_client.post(
        f"/r/studies/{team.study_id}/preregistration", data={**PLAN, "rating_model": "clmm"}
    )
    assert response.status_code == 302
    assert stored(app, team.study_id).plan["rating_model"] == "clmm"
    response = owner_client.post(
        f"/r/studies/{team.study_id}/preregistration", data={**PLAN, "rating_model": "anova"}
    )
    assert response.status_code == 400
    assert stored(app, team.study_id).plan["rating_model"] == "clmm"
