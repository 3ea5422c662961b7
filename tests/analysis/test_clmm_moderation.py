"""condition x moderator in the ordinal mixed model (CLMM) against R's ordinal::clmm.

Data: tests/data/reference/sim-small trust ratings after the default exclusions, with
moderators/identities.csv merged in (`moderator_rows`). R 4.2, ordinal 2022.11-16, clmm's
optimiser run to convergence (its default nlminb tolerances stop about 1e-4 short in the
coefficients near zero):

    tight <- clmm.control(rel.tol = 1e-13, x.tol = 1e-13, eval.max = 2000, iter.max = 2000)
    x <- trust[!is.na(trust[[MOD]]), ]; x[[MOD]] <- factor(x[[MOD]])
    m1 <- clmm(ordered(value) ~ condition * MOD + (1 | participant) + (1 | identity),
               data = x, control = tight)
    m0 <- update(m1, . ~ . - condition:MOD)
    coef(summary(m1)); logLik(m1); logLik(m0); anova(m0, m1)
    x[[MOD]] <- relevel(x[[MOD]], ref = L); coef(summary(update(m1)))["conditionai", ]
"""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.clmm import fit_clmm
from analysis.mixed import FAMILIES, moderation
from tests.analysis.helpers import moderator_rows

REL = 1e-4

# coef(summary(m1)) rows: (Estimate, Std. Error, z value, Pr(>|z|))
R_COEFFICIENTS = {
    "gender": {
        "conditionai": (-0.71657795338, 0.1010395257, -7.0920557901, 1.321342197e-12),
        "genderm": (0.31511863018, 0.2896171249, 1.0880524773, 2.765719414e-01),
        "conditionai:genderm": (-0.02834157731, 0.1418191849, -0.1998430419, 8.416033377e-01),
    },
    "age_band": {
        "conditionai": (-0.8930095966, 0.1233032687, -7.2423838052, 4.408661071e-13),
        "age_band30-49": (-0.2869455244, 0.3594524950, -0.7982849705, 4.247051378e-01),
        "age_band50+": (-0.3950783546, 0.3595547242, -1.0987989533, 2.718557689e-01),
        "conditionai:age_band30-49": (0.1473655030, 0.1733868180, 0.8499233372, 3.953677099e-01),
        "conditionai:age_band50+": (0.3400804946, 0.1735156046, 1.9599418471, 5.000258771e-02),
    },
}
# logLik(m1), logLik(m0); anova(m0, m1): LR.stat, df
R_LOGLIK = {"gender": (-3861.60339921, -3861.62336772), "age_band": (-3859.9919982, -3861.92391671)}
R_LRT_DF = {"gender": 1, "age_band": 2}
R_LRT_P = {"gender": 0.8416, "age_band": 0.14487}  # anova(m0, m1)$"Pr(>Chisq)" as printed
# thresholds of m1 for gender: coef(summary(m1))[c("1|2", ..., "6|7"), "Estimate"]
R_THRESHOLDS_GENDER = [
    -5.43426785818,
    -3.13160422668,
    -1.06693527646,
    0.66233937036,
    2.64694673278,
    4.90378143872,
]
# the conditionai row after relevel(MOD, ref = L): (Estimate, Std. Error, z value, Pr(>|z|))
R_SIMPLE = {
    ("gender", "m"): (-7.449192314e-01, 1.011427885e-01, -7.365025649e00, 1.771128108e-13),
    ("age_band", "30-49"): (-7.456456330e-01, 1.236422787e-01, -6.030668805e00, 1.632825135e-09),
    ("age_band", "50+"): (-5.529339143e-01, 1.233855138e-01, -4.481351960e00, 7.417167419e-06),
}


def _close(actual, expected, rel=REL):
    return actual == pytest.approx(expected, rel=rel, abs=1e-6)


@pytest.fixture(scope="module")
def trust() -> pd.DataFrame:
    rows = moderator_rows()
    return rows[rows["measure"] == "trust"]


def test_clmm_is_a_moderation_family():
    assert FAMILIES["clmm"].fit_is_ml  # the Laplace logLik of the full fit is its ML value


@pytest.mark.slow
@pytest.mark.parametrize("moderator", ["gender", "age_band"])
def test_moderation_matches_clmm(trust, moderator):
    result = moderation(trust, "value", moderator, "clmm", slopes=False)
    assert result.method == "clmm" and result.tested and result.n_obs == 2712
    assert result.formula == (
        f"ordered(value) ~ condition + {moderator} + condition:{moderator} "
        "+ (1 | participant) + (1 | identity)"
    )
    expected = R_COEFFICIENTS[moderator]
    assert [c["term"] for c in result.coefficients] == list(expected)
    for row in result.coefficients:
        estimate, se, z, p = expected[row["term"]]
        assert _close(row["estimate"], estimate), row["term"]
        assert row["se"] == pytest.approx(se, rel=REL), row["term"]
        assert _close(row["statistic"], z), row["term"]
        assert row["p_value"] == pytest.approx(p, rel=1e-3, abs=1e-6), row["term"]
        assert row["statistic_name"] == "z" and row["df"] is None
    with_, without = R_LOGLIK[moderator]
    assert result.lrt["deviance_with"] == pytest.approx(-2 * with_, rel=1e-8)
    assert result.lrt["deviance_without"] == pytest.approx(-2 * without, rel=1e-8)
    assert result.lrt["statistic"] == pytest.approx(2 * (with_ - without), rel=REL, abs=1e-5)
    assert result.lrt["df"] == R_LRT_DF[moderator]
    assert result.lrt["p_value"] == pytest.approx(R_LRT_P[moderator], abs=5e-5)
    # the Wald chi-square of the interaction coefficients sits beside the likelihood ratio
    assert result.interaction["statistic_name"] == "chisq"
    assert result.interaction["df"] == R_LRT_DF[moderator]
    assert result.interaction["statistic"] == pytest.approx(result.lrt["statistic"], rel=0.01)
    reference, *others = result.levels
    assert reference["level"] == result.reference
    assert _close(reference["estimate"], expected["conditionai"][0])
    for level in others:
        estimate, se, z, p = R_SIMPLE[(moderator, level["level"])]
        assert _close(level["estimate"], estimate), level["level"]
        assert level["se"] == pytest.approx(se, rel=REL), level["level"]
        assert _close(level["statistic"], z), level["level"]
        assert level["p_value"] == pytest.approx(p, rel=1e-3), level["level"]
        half = 1.959963984540054 * level["se"]
        assert level["ci_low"] == pytest.approx(level["estimate"] - half)
        assert level["ci_high"] == pytest.approx(level["estimate"] + half)
        assert level["n_identities"] == 12 if moderator == "gender" else 8


@pytest.mark.slow
def test_fit_clmm_takes_a_fixed_formula(trust):
    fit = fit_clmm(trust, slopes=False, fixed="condition * gender")
    assert fit.names == list(R_COEFFICIENTS["gender"])
    assert fit.log_likelihood == pytest.approx(R_LOGLIK["gender"][0], rel=1e-8)
    assert [t["estimate"] for t in fit.thresholds] == pytest.approx(
        R_THRESHOLDS_GENDER, rel=REL, abs=1e-4
    )
    assert fit.n_parameters == 6 + 3 + 2  # clmm's no.par 11 in anova(m0, m1)
    # the simple effect for men, as the contrast of the two coefficients
    men = fit.contrast({"conditionai": 1.0, "conditionai:genderm": 1.0})
    assert _close(men["estimate"], R_SIMPLE[("gender", "m")][0])
    assert men["se"] == pytest.approx(R_SIMPLE[("gender", "m")][1], rel=REL)
    assert math.isfinite(fit.joint(["conditionai:genderm"])["statistic"])


# ----------------------------------------------------------------------------- edge cases


def _small() -> pd.DataFrame:
    """16 participants x 8 identities rating 1-7, with a two-level identity descriptor."""
    from analysis.power import VarianceComponents, simulate_trials

    data = simulate_trials(16, 8, -0.5, VarianceComponents(0.3, 0.2, 0.8), rng=4)
    codes = sorted(data["identity"].unique())
    return data.assign(
        value=np.clip(np.round(data["value"]), 1, 7),
        gender=data["identity"].map({c: "fm"[i % 2] for i, c in enumerate(codes)}),
    )


@pytest.mark.parametrize("family", ["clmm", "glmm"])
def test_a_separated_level_is_named_not_given_a_runaway_estimate(family):
    data = _small()
    men_ai = (data["gender"] == "m") & (data["condition"] == "ai")
    if family == "clmm":
        data.loc[men_ai, "value"] = 7  # every AI rating of men at the top, above every real one
        data.loc[(data["gender"] == "m") & ~men_ai, "value"] = data["value"].clip(upper=6)
        outcome = "value"
    else:
        data["correct"] = (data["value"] >= data["value"].median()).astype(int)
        data.loc[men_ai, "correct"] = 1
        outcome = "correct"
    result = moderation(data, outcome, "gender", family, slopes=False)
    women, men = result.levels
    assert men["estimate"] is None and men["se"] is None and men["ci_low"] is None
    assert men["note"] == (
        "no finite estimate: perfect separation (every ai value is at or above every real value)"
    )
    assert math.isfinite(women["estimate"]) and women["note"] is None
    assert (
        "gender = 'm': every ai value is at or above every real value (perfect separation): "
        "the condition effect there has no finite estimate, and the interaction test leans on "
        "that level"
    ) in result.notes


def test_a_level_with_one_identity_is_estimated_with_a_note():
    data = _small()
    first = sorted(data["identity"].unique())[0]
    data["gender"] = np.where(data["identity"] == first, "x", data["gender"])
    result = moderation(data, "value", "gender", "clmm", slopes=False)
    assert result.tested and [lv["level"] for lv in result.levels] == ["f", "m", "x"]
    x = result.levels[2]
    assert x["n_identities"] == 1 and x["n_participants"] == 16 and math.isfinite(x["estimate"])
    assert (
        "gender = 'x' has trials of one identity only: its estimate rests on that one identity "
        "and cannot be told apart from its own effect"
    ) in result.notes


def test_a_participant_with_one_rating_keeps_the_model_with_intercepts():
    data = _small()
    first = data["participant"].iloc[0]
    data = data[(data["participant"] != first) | (data.index == data.index[0])]
    result = moderation(data, "value", "gender", "clmm")  # slopes="auto"
    assert result.tested and result.slopes is False
    assert result.notes[0] == (
        "random intercepts only: some participant levels have data in one condition only"
    )


def test_a_singular_fit_is_flagged_in_the_notes():
    from analysis.power import VarianceComponents, simulate_trials

    data = simulate_trials(16, 8, -0.5, VarianceComponents(0.3, 0.0, 0.8), rng=2)
    codes = sorted(data["identity"].unique())
    data = data.assign(
        value=np.clip(np.round(data["value"]), 1, 7),
        gender=data["identity"].map({c: "fm"[i % 2] for i, c in enumerate(codes)}),
    )
    result = moderation(data, "value", "gender", "clmm", slopes=False)
    assert result.tested and math.isfinite(result.lrt["statistic"])
    assert any(
        n.startswith("singular fit: the (Intercept) variance for identity") for n in result.notes
    )


def test_a_one_level_moderator_and_a_never_used_category_are_notes():
    data = _small()
    result = moderation(data.assign(gender="f"), "value", "gender", "clmm", slopes=False)
    assert not result.tested and result.notes == [
        "gender has one level ('f') in the data: there is nothing to compare, so it was not tested"
    ]
    # a scale point used by no trial carries no threshold and no error
    fit = fit_clmm(
        data.assign(value=data["value"].replace(7, 6)),
        slopes=False,
        fixed="condition * gender",
        categories=range(1, 8),
    )
    assert any("7 of the scale never used" in n for n in fit.notes)
    assert "conditionai:genderm" in fit.names
