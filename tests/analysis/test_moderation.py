"""condition x moderator mixed models against R (lme4 1.1-31, lmerTest 3.1-3).

Expected values: tests/data/reference/moderators/moderators.json, written by moderators.R
beside it, with these calls (trust: rate trials of the measure trust; accuracy: match trials
of the measure same; moderators merged from identities.csv and answers.csv, blanks as NA):

    m1 <- lmer(value ~ condition * MOD + (1|participant) + (1|identity), REML = TRUE)
    m0 <- lmer(value ~ condition + MOD + (1|participant) + (1|identity), REML = TRUE)
    coef(summary(m1))                  # -> coefficients (Satterthwaite df)
    anova(m0, m1)                      # -> lrt (both refitted by ML)
    anova(m1)["condition:MOD", ]       # -> interaction (type III, Satterthwaite F)
    MOD <- relevel(factor(MOD), ref = L); coef(summary(update(m1)))["conditionai", ]
                                       # -> simple[L], CI from contest(m1, L, joint = FALSE)
    glmer(correct ~ condition * MOD + (1|participant) + (1|identity), family = binomial)
                                       # GLMM: interaction = Wald chi^2 b' V^-1 b of the
                                       # conditionai:MOD coefficients, Wald CI
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.mixed import fit_lmm, moderation
from tests.analysis.helpers import MODERATORS, moderator_rows


def _study() -> tuple[pd.DataFrame, dict]:
    """sim-small after the default exclusions, with the moderators merged in, and R's values."""
    return moderator_rows(), json.loads((MODERATORS / "moderators.json").read_text())


@pytest.fixture(scope="module")
def study():
    return _study()


CASES = {
    # name: (measure, moderator, family, slopes, rows kept)
    "trust_gender": ("trust", "gender", "lmm", False, None),
    "trust_age_band": ("trust", "age_band", "lmm", False, None),
    "trust_gender_slopes": ("trust", "gender", "lmm", True, None),
    "trust_familiarity": ("trust", "ai_familiarity", "lmm", False, None),
    "trust_ethnicity": ("trust", "ethnicity", "lmm", False, None),
    "trust_age_band_no_old_ai": ("trust", "age_band", "lmm", False, "no_old_ai"),
    "binary_gender": (None, "gender", "glmm", False, None),
    "binary_familiarity": (None, "familiarity", "glmm", False, None),
}


def _fit(study, name):
    rows, expected = study
    measure, moderator, family, slopes, subset = CASES[name]
    if measure is None:
        data = pd.read_csv(MODERATORS / "binary.csv", keep_default_na=False)
    else:
        data = rows[rows["measure"] == measure]
    if subset == "no_old_ai":
        data = data[~((data["age_band"] == "50+") & (data["condition"] == "ai"))]
    outcome = "value" if family == "lmm" else "correct"
    return moderation(data, outcome, moderator, family, slopes=slopes), expected[name]


def _close(actual, expected, rel):
    """Equal to rel relative, or 1e-12 absolute for quantities near zero (tiny p values)."""
    return actual == pytest.approx(expected, rel=rel, abs=1e-12)


def _p_rel(rel_p, rel, row):
    """The tolerance of a p value: in the tail p moves about statistic² times as much as the
    statistic in relative terms (d log p / d log t ~ t²), so a t of 5 within 1e-5 gives p
    within 2.5e-4 (floating-point paths of other BLAS builds differ by that much)."""
    statistic = row["Estimate"] / row["Std. Error"]
    return max(rel_p, rel * statistic**2)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_moderation_matches_lme4(study, name):
    result, r = _fit(study, name)
    rel = 1e-5 if result.method == "lmm" else 1e-4
    # p moves z^2 times as much as z in relative terms (d log p / d log z ~ z^2 for |z| ~ 3):
    # a GLMM z within 1e-4 (its SE from a finite-difference Hessian) gives p within ~1e-3
    rel_p = rel if result.method == "lmm" else 1e-3
    p_key = "Pr(>|t|)" if result.method == "lmm" else "Pr(>|z|)"
    stat_key = "t value" if result.method == "lmm" else "z value"
    assert result.tested and result.n_obs == r["n"]
    # coef(summary(m1)): every fixed effect, in R's order and with R's names
    assert [c["term"] for c in result.coefficients] == [c["term"] for c in r["coefficients"]]
    for ours, theirs in zip(result.coefficients, r["coefficients"], strict=True):
        assert _close(ours["estimate"], theirs["Estimate"], rel), ours["term"]
        assert _close(ours["se"], theirs["Std. Error"], rel), ours["term"]
        assert _close(ours["statistic"], theirs[stat_key], rel), ours["term"]
        assert _close(ours["p_value"], theirs[p_key], _p_rel(rel_p, rel, theirs)), ours["term"]
        if result.method == "lmm":
            assert _close(ours["df"], theirs["df"], rel), ours["term"]
    # anova(m0, m1): likelihood-ratio test of the interaction
    assert result.lrt["df"] == r["lrt"]["df"]
    assert result.lrt["statistic"] == pytest.approx(r["lrt"]["chisq"], rel=rel, abs=1e-6)
    assert result.lrt["p_value"] == pytest.approx(r["lrt"]["p"], rel=rel, abs=1e-6)
    assert result.lrt["deviance_with"] == pytest.approx(r["lrt"]["deviance1"], rel=1e-9)
    # anova(m1) (Satterthwaite F) or the Wald chi-square of the interaction coefficients
    if result.method == "lmm":
        assert result.interaction["df"] == r["interaction"]["df1"]
        assert _close(result.interaction["statistic"], r["interaction"]["F"], rel)
        assert _close(result.interaction["df_denominator"], r["interaction"]["df2"], rel)
    else:
        assert result.interaction["df"] == r["interaction"]["df"]
        assert _close(result.interaction["statistic"], r["interaction"]["chisq"], rel)
    assert _close(result.interaction["p_value"], r["interaction"]["p"], rel_p)
    # the conditionai row after relevel(MOD, ref = L), for every estimable level
    estimable = [lv for lv in result.levels if lv["estimate"] is not None]
    assert [lv["level"] for lv in estimable] == [s["level"] for s in r["simple"]]
    for ours, theirs in zip(estimable, r["simple"], strict=True):
        assert _close(ours["estimate"], theirs["Estimate"], rel), ours["level"]
        assert _close(ours["se"], theirs["Std. Error"], rel), ours["level"]
        assert _close(ours["p_value"], theirs[p_key], _p_rel(rel_p, rel, theirs)), ours["level"]
        # An interval's end is estimate ± 1.96 SE, each within rel: an end near zero is held
        # to rel of the parts it is made of, not of itself.
        scale = rel * (abs(theirs["Estimate"]) + 2 * theirs["Std. Error"])
        for end in ("ci_low", "ci_high"):
            assert ours[end] == pytest.approx(theirs[end], rel=rel, abs=scale), ours["level"]
        if result.method == "lmm":
            assert _close(ours["df"], theirs["df"], rel), ours["level"]


def test_missing_moderator_values_are_dropped_and_counted(study):
    result, r = _fit(study, "trust_ethnicity")
    assert result.n_dropped == 452 and result.n_obs == r["n"]
    assert result.notes[0] == (
        "452 of 2712 rows dropped for missing values (ethnicity: 452), as R's na.omit"
    )


def test_level_without_ai_trials_is_named_not_estimated(study):
    result, _r = _fit(study, "trust_age_band_no_old_ai")
    old = next(lv for lv in result.levels if lv["level"] == "50+")
    assert old["estimate"] is None and old["n_ai"] == 0 and old["n_real"] > 0
    assert old["note"] == "not estimable: trials in one condition only"
    assert "age_band = '50+' has no ai trials: the condition effect cannot be estimated there" in (
        result.notes
    )
    assert any("rank deficient so dropping 1 column" in n for n in result.notes)
    assert result.lrt["df"] == 1  # one estimable interaction coefficient, as in R


def _small() -> pd.DataFrame:
    """A quick simulated rating study with a two-level identity descriptor."""
    from analysis.power import VarianceComponents, simulate_trials

    data = simulate_trials(16, 8, -0.5, VarianceComponents(0.3, 0.2, 0.8), rng=4)
    codes = sorted(data["identity"].unique())
    return data.assign(gender=data["identity"].map({c: "fm"[i % 2] for i, c in enumerate(codes)}))


def test_one_level_moderator_is_a_note_not_a_crash():
    result = moderation(_small().assign(gender="f"), "value", "gender", slopes=False)
    assert not result.tested and result.lrt is None and result.levels == []
    assert result.notes == [
        "gender has one level ('f') in the data: there is nothing to compare, so it was not tested"
    ]
    assert result.table().empty


def test_all_moderator_values_missing_is_a_note():
    result = moderation(_small().assign(gender=""), "value", "gender", slopes=False)
    assert not result.tested
    assert result.notes[-1] == (
        "gender has no values in the data: there is nothing to compare, so it was not tested"
    )


def test_only_one_complete_level_is_not_tested():
    data = _small()
    data = data[~((data["gender"] == "m") & (data["condition"] == "ai"))]
    result = moderation(data, "value", "gender", slopes=False)
    assert not result.tested
    assert "gender = 'm' has no ai trials" in result.notes[0]
    assert result.notes[-1].startswith("fewer than two levels of gender have trials in both")


def test_reference_without_both_conditions_falls_back_to_a_complete_level():
    data = _small()
    data = data.assign(gender=np.where(data["identity"] == "P01", "a", data["gender"]))
    data = data[~((data["gender"] == "a") & (data["condition"] == "ai"))]
    result = moderation(data, "value", "gender", slopes=False, reference="a")
    assert result.reference == "f" and result.tested
    assert any("the named reference 'a'" in n for n in result.notes)
    assert [lv["level"] for lv in result.levels][:1] == ["f"]


def test_tidy_table_and_json(study):
    result, _r = _fit(study, "trust_gender")
    table = result.table()
    assert list(table["level"]) == ["f", "m"]
    assert {"estimate", "se", "df", "ci_low", "ci_high", "lrt_p_value", "n_ai"} <= set(table)
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["moderator"] == "gender"


def test_moderation_bad_arguments():
    with pytest.raises(ValueError, match="family must be one of lmm, glmm"):
        moderation(_small(), "value", "gender", family="ols")
    with pytest.raises(ValueError, match="column 'mood' is missing"):
        moderation(_small(), "value", "mood")
    with pytest.raises(ValueError, match="the moderator 'identity' is already a column"):
        moderation(_small(), "value", "identity")


def test_fixed_formula_parser():
    from analysis.mixed import parse_fixed

    assert parse_fixed("condition * gender") == [
        ("condition",),
        ("gender",),
        ("condition", "gender"),
    ]
    assert parse_fixed("a*b*c")[-1] == ("a", "b", "c") and len(parse_fixed("a*b*c")) == 7
    assert parse_fixed("y ~ 1 + condition + age + condition:age") == [
        ("condition",),
        ("age",),
        ("condition", "age"),
    ]
    assert parse_fixed("condition + condition") == [("condition",)]
    for bad, message in [
        ("", "fixed must be a non-empty formula"),
        ("condition + ", "an empty term"),
        ("condition + log(age)", "'log(age)' is not a column name"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_fixed(bad)


def test_interaction_needs_its_main_effects_and_the_condition():
    data = _small()
    with pytest.raises(ValueError, match=r"needs the main effect of gender .*condition\*gender"):
        fit_lmm(data, fixed="condition + condition:gender", slopes=False)
    with pytest.raises(ValueError, match="must include the condition column 'condition'"):
        fit_lmm(data, fixed="gender", slopes=False)


def test_any_two_condition_labels_with_a_named_baseline():
    data = _small()
    renamed = data.assign(group=data["condition"].map({"real": "photo", "ai": "synthetic"}))
    ours = fit_lmm(data, slopes=False)
    theirs = fit_lmm(renamed, condition="group", baseline="photo", slopes=False)
    assert theirs.coefficient == "groupsynthetic" and theirs.levels == ["photo", "synthetic"]
    assert theirs.estimate == pytest.approx(ours.estimate, rel=1e-10)
    flipped = fit_lmm(renamed, condition="group", baseline="synthetic", slopes=False)
    assert flipped.coefficient == "groupphoto"
    assert flipped.estimate == pytest.approx(-ours.estimate, rel=1e-6)
    with pytest.raises(ValueError, match="has no row with the baseline 'real'"):
        fit_lmm(renamed, condition="group", slopes=False)


def test_numeric_columns_enter_as_numbers_and_factors_on_request():
    data = _small()
    data = data.assign(age=data["identity"].str[1:].astype(int) * 5.0)
    numeric = fit_lmm(data, fixed="condition * age", slopes=False)
    assert numeric.names == ["(Intercept)", "conditionai", "age", "conditionai:age"]
    data = data.assign(band=(data["age"] > 20).astype(int) + 1)
    factor = fit_lmm(data, fixed="condition * band", factors=["band"], slopes=False)
    assert factor.names == ["(Intercept)", "conditionai", "band2", "conditionai:band2"]
    assert factor.factor_levels["band"] == ["1", "2"]


def test_missing_responses_dropped_with_a_note_as_r_does():
    data = _small()
    full = fit_lmm(data.iloc[3:], slopes=False)
    holes = data.assign(value=data["value"].where(data.index >= 3))
    fit = fit_lmm(holes, slopes=False)
    assert fit.n_dropped == 3 and fit.n_obs == len(data) - 3
    assert (
        fit.notes[0]
        == f"3 of {len(data)} rows dropped for missing values (value: 3), as R's na.omit"
    )
    assert fit.estimate == pytest.approx(full.estimate, rel=1e-12)
    assert math.isfinite(fit.df)
