"""The preregistration plan schema."""

import pytest

from analysis.plan import preregistered_outcomes, validate_plan

FULL = {
    "hypotheses": [
        {"outcome": "trust", "direction": "less", "text": "AI headshots are trusted less"}
    ],
    "primary_outcomes": ["trust", "recognition_accuracy"],
    "alpha": 0.05,
    "correction": "holm",
    "exclusions": {
        "incomplete": True,
        "attention": True,
        "min_median_rt_ms": 250,
        "straightlining": False,
    },
    "equivalence_bounds": {"trust": [-0.3, 0.3], "recognition_accuracy": [-0.05, 0.05]},
    "target_n": 200,
    "bayes_rscale": 1.0,
}


def test_defaults():
    plan = validate_plan(None)
    assert plan == {
        "hypotheses": [],
        "primary_outcomes": [],
        "alpha": 0.05,
        "correction": "holm",
        "exclusions": {
            "incomplete": True,
            "attention": True,
            "min_median_rt_ms": 250.0,
            "straightlining": False,
        },
        "equivalence_bounds": {},
        "target_n": None,
        "rating_model": "paired_t",
        "bayes_rscale": pytest.approx(0.7071067811865476, rel=1e-15),
    }
    assert validate_plan({}) == plan


def test_full_plan_is_kept_and_validation_is_idempotent():
    plan = validate_plan(FULL)
    assert plan["hypotheses"] == FULL["hypotheses"]
    assert plan["equivalence_bounds"] == FULL["equivalence_bounds"]
    assert plan["target_n"] == 200 and plan["correction"] == "holm"
    assert plan["bayes_rscale"] == 1.0
    assert validate_plan(plan) == plan
    assert preregistered_outcomes(plan) == {"trust", "recognition_accuracy"}


def test_partial_exclusions_take_defaults():
    plan = validate_plan({"exclusions": {"straightlining": True, "min_median_rt_ms": None}})
    assert plan["exclusions"] == {
        "incomplete": True,
        "attention": True,
        "min_median_rt_ms": None,
        "straightlining": True,
    }


def test_hypothesis_direction_defaults_to_two_sided_and_rating_scales_are_outcomes():
    plan = validate_plan({"hypotheses": [{"outcome": "professional"}]})
    assert plan["hypotheses"] == [{"outcome": "professional", "direction": "two-sided", "text": ""}]


@pytest.mark.parametrize(
    "plan, field",
    [
        ([], "plan"),
        ({"primary_outcome": ["trust"]}, "primary_outcome"),
        ({"hypotheses": {"outcome": "trust"}}, "hypotheses"),
        ({"hypotheses": [{"outcome": "trust", "direction": "lower"}]}, "hypotheses[0].direction"),
        ({"hypotheses": [{"direction": "less"}]}, "hypotheses[0].outcome"),
        ({"hypotheses": [{"outcome": "same"}]}, "hypotheses[0].outcome"),
        ({"hypotheses": [{"outcome": "trust", "why": "x"}]}, "hypotheses[0].why"),
        ({"hypotheses": [{"outcome": "trust"}, {"outcome": "trust"}]}, "hypotheses"),
        ({"primary_outcomes": ["trust", "trust"]}, "primary_outcomes"),
        ({"primary_outcomes": ["has space"]}, "primary_outcomes[0]"),
        ({"alpha": 0.5}, "alpha"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": "0.05"}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"correction": "bonferroni"}, "correction"),
        ({"exclusions": {"attention": "yes"}}, "exclusions.attention"),
        ({"exclusions": {"speeders": True}}, "exclusions.speeders"),
        ({"exclusions": {"min_median_rt_ms": -1}}, "exclusions.min_median_rt_ms"),
        ({"equivalence_bounds": {"trust": [0.3, -0.3]}}, "equivalence_bounds.trust"),
        ({"equivalence_bounds": {"trust": [0.1, 0.3]}}, "equivalence_bounds.trust"),
        ({"equivalence_bounds": {"trust": 0.3}}, "equivalence_bounds.trust"),
        ({"equivalence_bounds": {"trust": [-0.3, float("inf")]}}, "equivalence_bounds.trust"),
        ({"target_n": 0}, "target_n"),
        ({"target_n": 12.5}, "target_n"),
        ({"bayes_rscale": 0}, "bayes_rscale"),
        ({"bayes_rscale": -0.5}, "bayes_rscale"),
        ({"bayes_rscale": "wide"}, "bayes_rscale"),
        ({"bayes_rscale": True}, "bayes_rscale"),
    ],
)
def test_invalid_fields_are_named(plan, field):
    with pytest.raises(ValueError) as info:
        validate_plan(plan)
    assert str(info.value).startswith(f"{field}:")
