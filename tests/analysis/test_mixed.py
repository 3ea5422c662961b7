"""Mixed models against R (lme4 1.1-31, lmerTest 3.1-3 on sim-small) and statsmodels."""

import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis import mixed, numderiv
from analysis.mixed import MixedFit, fit_glmm, fit_lmm
from analysis.power import VarianceComponents, simulate_trials
from tests.analysis.helpers import sim_small_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim_small():
    """sim-small rows, exclusions and reference numbers, read once."""
    return sim_small_rows()


@pytest.fixture(scope="module")
def trust_fit(sim_small):
    """The reference LMM on trust, random intercepts only."""
    rows = sim_small[0]
    return fit_lmm(rows[rows["measure"] == "trust"], slopes=False)


@pytest.fixture(scope="module")
def accuracy_fit(sim_small):
    """The reference GLMM on recognition accuracy, random intercepts only."""
    rows = sim_small[0]
    return fit_glmm(rows[rows["measure"] == "same"], dv="correct", slopes=False)


def test_default_exclusions_match_reference(sim_small):
    _, excluded, reference = sim_small
    assert excluded == reference["excluded"]


# R: lmer(value ~ condition + (1|participant) + (1|identity), data = trust, REML = TRUE)
#    summary() via lmerTest (Satterthwaite); as.data.frame(VarCorr(fit))$vcov
def test_lmm_matches_lmer(trust_fit, sim_small):
    r = sim_small[2]["trust_lmm"]
    fit = trust_fit
    assert fit.estimate == pytest.approx(r["estimate"], rel=1e-6)  # R: -0.38334461274
    assert fit.se == pytest.approx(r["se"], rel=1e-6)  # R: 0.036436441783
    assert fit.statistic == pytest.approx(r["t"], rel=1e-6)  # R: -10.5209124157
    assert fit.df == pytest.approx(r["df"], rel=1e-6)  # R: 2575.204162073
    assert fit.p_value == pytest.approx(r["p"], rel=1e-5)  # R: 2.2461151719e-25
    assert fit.residual_variance == pytest.approx(r["var_residual"], rel=1e-6)  # R: 0.89952382486
    variances = {e["group"]: e["variance"] for e in fit.random_effects}
    # lme4's BOBYQA stops ~6e-10 above the REML minimum this fit reaches, which moves the
    # flat identity direction by ~6e-6 relative: 2e-5 is as tight as R itself is.
    # R: 0.30065012903 and 0.13322326367
    assert variances["participant"] == pytest.approx(r["var_participant"], rel=2e-5)
    assert variances["identity"] == pytest.approx(r["var_identity"], rel=2e-5)
    assert fit.formula == "value ~ condition + (1 | participant) + (1 | identity)"
    assert (fit.method, fit.n_obs, fit.n_participants, fit.n_identities) == ("lmm", 2712, 113, 24)
    assert fit.converged and not fit.singular and fit.notes == []


def test_lmm_confidence_interval_uses_satterthwaite_t(trust_fit):
    fit = trust_fit
    # R: lmerTest::contest1D(fit, c(0, 1), confint = TRUE): estimate -/+ qt(.975, df) * se
    half = 1.9608805 * fit.se  # qt(0.975, 2575.204) = 1.960880...
    assert fit.ci_low == pytest.approx(fit.estimate - half, rel=1e-6)
    assert fit.ci_high == pytest.approx(fit.estimate + half, rel=1e-6)


# R: glmer(correct ~ condition + (1|participant) + (1|identity), data = recognition,
#          family = binomial)   (Laplace; vcov uses the finite-difference Hessian)
def test_glmm_matches_glmer(accuracy_fit, sim_small):
    r = sim_small[2]["accuracy_glmm"]
    fit = accuracy_fit
    assert fit.estimate == pytest.approx(r["estimate"], rel=2e-5)  # R: -0.5729667115
    assert fit.se == pytest.approx(r["se"], rel=1e-5)  # R: 0.091318640796
    assert fit.statistic == pytest.approx(r["z"], rel=2e-5)  # R: -6.2743674951
    assert fit.p_value == pytest.approx(r["p"], rel=1e-3)  # R: 3.5105844996e-10
    assert fit.df is None and fit.residual_variance is None
    assert fit.ci_low == pytest.approx(fit.estimate - 1.959963985 * fit.se, rel=1e-8)
    # the participant variance of accuracy is estimated at zero: a singular fit, said so
    assert fit.singular
    assert any("participant" in note and "zero" in note for note in fit.notes)


def test_auto_slopes_kept_when_estimable_and_dropped_when_singular(sim_small):
    rows = sim_small[0]
    trust = fit_lmm(rows[rows["measure"] == "trust"])
    assert trust.formula == (
        "value ~ condition + (1 + condition | participant) + (1 + condition | identity)"
    )
    assert not trust.singular and trust.converged
    terms = [(e["group"], e["term"]) for e in trust.random_effects]
    assert terms == [
        ("participant", "(Intercept)"),
        ("participant", "conditionai"),
        ("identity", "(Intercept)"),
        ("identity", "conditionai"),
    ]
    assert all(-1 <= e["correlation"] <= 1 for e in trust.random_effects if "correlation" in e)
    # slopes soak up item-by-condition variance: fewer df and a wider interval than intercepts
    assert trust.df < 100 and trust.se > 0.0365
    accuracy = fit_glmm(rows[rows["measure"] == "same"])
    assert accuracy.formula == "correct ~ condition + (1 | participant) + (1 | identity)"
    assert accuracy.notes[0].startswith(
        "random intercepts only: the random-slopes model was singular"
    )


def test_auto_uses_intercepts_when_a_group_saw_one_condition():
    data = simulate_trials(20, 8, -0.5, VarianceComponents(0.3, 0.2, 0.8), rng=3)
    one = data["participant"] == "p01"
    data = data[~one | (data["condition"] == "ai")]
    fit = fit_lmm(data)
    assert fit.formula.endswith("(1 | participant) + (1 | identity)")
    assert fit.notes[0] == (
        "random intercepts only: some participant levels have data in one condition only"
    )


def test_lmm_matches_statsmodels_mixedlm():
    # statsmodels MixedLM, REML, crossed effects as variance components of one all-rows group
    data = simulate_trials(30, 12, -0.4, VarianceComponents(0.4, 0.2, 0.8), replicates=2, rng=7)
    model = smf.mixedlm(
        "value ~ C(condition, Treatment('real'))",
        data.assign(whole=1),
        groups="whole",
        re_formula="0",
        vc_formula={"participant": "0 + C(participant)", "identity": "0 + C(identity)"},
    )
    reference = model.fit(reml=True)
    fit = fit_lmm(data, slopes=False)
    assert fit.estimate == pytest.approx(reference.fe_params.iloc[1], rel=1e-5)
    assert fit.se == pytest.approx(reference.bse_fe.iloc[1], rel=1e-4)
    assert fit.residual_variance == pytest.approx(reference.scale, rel=1e-4)
    vcomp = dict(zip(reference.model.exog_vc.names, reference.vcomp, strict=True))
    for effect in fit.random_effects:
        assert effect["variance"] == pytest.approx(vcomp[effect["group"]], rel=1e-4)
    assert fit.deviance == pytest.approx(-2 * reference.llf, abs=1e-4)  # REML criterion


def test_singular_fit_detected_and_named():
    # no identity variance at all, and with this seed the REML estimate is zero (theta on
    # its boundary), as lme4 would report it: a singular fit
    data = simulate_trials(40, 10, -0.3, VarianceComponents(0.5, 0.0, 1.0), rng=1)
    fit = fit_lmm(data, slopes=False)
    variances = {e["group"]: e["variance"] for e in fit.random_effects}
    assert variances["identity"] < 1e-8
    assert fit.singular
    assert any("identity" in note for note in fit.notes)
    assert math.isfinite(fit.df) and 0 < fit.p_value < 1


def test_slopes_true_fits_general_covariance():
    components = VarianceComponents(0.3, 0.2, 0.7, participant_slope=0.2, identity_slope=0.1)
    data = simulate_trials(60, 16, -0.4, components, replicates=2, rng=5)
    fit = fit_lmm(data, slopes=True)
    assert "(1 + condition | participant)" in fit.formula
    slope = {e["group"]: e["variance"] for e in fit.random_effects if e["term"] == "conditionai"}
    assert 0.05 < slope["participant"] < 0.5 and slope["identity"] > 0.01
    intercepts = fit_lmm(data, slopes=False)
    assert fit.se > intercepts.se  # ignoring slope variance understates the SE (Barr et al.)


def test_glmm_recovers_simulated_effect():
    data = simulate_trials(
        80,
        20,
        -0.8,
        VarianceComponents(0.3, 0.3, 1.0),
        intercept=1.0,
        replicates=2,
        binary=True,
        rng=9,
    )
    fit = fit_glmm(data, slopes=False)
    assert fit.ci_low < -0.8 < fit.ci_high
    assert fit.statistic == pytest.approx(fit.estimate / fit.se)
    assert fit.p_value < 1e-6


def test_to_dict_is_plain_json():
    data = simulate_trials(20, 8, -0.5, VarianceComponents(0.3, 0.2, 0.8), rng=1)
    fit = fit_lmm(data, slopes=False)
    payload = fit.to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text)["method"] == "lmm"
    assert set(payload) >= {
        "method",
        "estimate",
        "se",
        "statistic",
        "df",
        "p_value",
        "ci_low",
        "ci_high",
        "n_obs",
        "n_participants",
        "n_identities",
        "random_effects",
        "residual_variance",
        "singular",
        "converged",
        "notes",
        "formula",
    }
    assert isinstance(fit, MixedFit) and type(payload["ci_low"]) is float


def _valid() -> pd.DataFrame:
    """A small valid trials table."""
    return simulate_trials(6, 4, -0.5, VarianceComponents(0.3, 0.2, 0.8), rng=2)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.iloc[0:0], "data has no rows"),
        (lambda d: d.drop(columns="identity"), "column 'identity' is missing"),
        (
            lambda d: d.assign(condition="ai"),
            "column 'condition' has no row with the baseline 'real' (values: 'ai')",
        ),
        (
            lambda d: d.assign(condition=d["condition"].replace("real", "photo")),
            "column 'condition' has no row with the baseline 'real' (values: 'ai', 'photo')",
        ),
        (
            lambda d: d.assign(condition=d["condition"].where(d.index != 2, "photo")),
            "column 'condition' has 3 values ('ai', 'photo', 'real')",
        ),
        (lambda d: d.assign(identity="P1"), "column 'identity' has one level ('P1')"),
        (
            lambda d: d.assign(value=d["value"].astype(object).where(d.index != 5, "abc")),
            "column 'value' has a non-numeric value 'abc' at row 5",
        ),
        (lambda d: d.assign(value=np.nan), "no rows are left once rows with missing values"),
    ],
)
def test_lmm_bad_input(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fit_lmm(change(_valid()))


def test_glmm_rejects_non_binary_response():
    data = _valid().assign(correct=1)
    data.loc[7, "correct"] = 2
    with pytest.raises(ValueError, match=r"column 'correct' must be 0 or 1 .* got 2 at row 7"):
        fit_glmm(data)
    with pytest.raises(ValueError, match="column 'correct' has the single value 1"):
        fit_glmm(_valid().assign(correct=1))


def test_slopes_argument_checked():
    with pytest.raises(ValueError, match="slopes must be True, False or 'auto', got 'yes'"):
        fit_lmm(_valid(), slopes="yes")


def test_numderiv_ports_are_accurate():
    # numDeriv::hessian and numDeriv::jacobian (Richardson) on functions with known derivatives
    def f(x):
        return x[0] ** 2 * x[1] + math.exp(x[1]) + x[0] * x[2] ** 3

    x = np.array([0.7, -0.3, 1.2])
    expected = np.array(
        [
            [2 * x[1], 2 * x[0], 3 * x[2] ** 2],
            [2 * x[0], math.exp(x[1]), 0.0],
            [3 * x[2] ** 2, 0.0, 6 * x[0] * x[2]],
        ]
    )
    np.testing.assert_allclose(numderiv.hessian(f, x), expected, rtol=1e-7, atol=1e-8)
    jac = numderiv.jacobian(lambda v: np.array([v[0] * v[1], np.sin(v[2])]), x)
    np.testing.assert_allclose(jac, [[x[1], x[0], 0], [0, 0, math.cos(x[2])]], atol=1e-9)


def test_fit_does_not_warn():
    data = simulate_trials(20, 8, -0.5, VarianceComponents(0.3, 0.0, 0.8), rng=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_lmm(data)
        fit_glmm(data.assign(correct=(data["value"] > 3.5).astype(int)))


def test_singular_notes_cover_zero_variance_and_perfect_correlation():
    # lme4::isSingular flags a diagonal theta < 1e-4; a slope row whose diagonal is tiny next
    # to its off-diagonal (correlation +-1 to eight digits) is degenerate too
    d = mixed._prepare(_valid(), "value", "condition", "participant", "identity", binary=False)
    design = mixed._Design(mixed._terms(d, True), np.ones((len(d.y), 1)), d.y)
    healthy = np.array([0.5, 0.1, 0.3, 0.4, -0.2, 0.2])
    assert mixed._singular_notes(design, healthy) == []
    degenerate = np.array([0.5, 50.0, 0.003, 0.4, -0.2, 5e-5])
    notes = mixed._singular_notes(design, degenerate)
    assert notes == [
        "singular fit: the conditionai effect for participant is perfectly correlated with the "
        "intercept (correlation +-1)",
        "singular fit: the conditionai variance for identity is estimated at (or near) zero "
        "(theta = 5e-05)",
    ]


def test_convergence_is_judged_by_lme4s_scaled_gradient():
    """lme4's checkConv: max(pmin(|solve(chol(H), g)|, |g|)) <= 0.002, not a raw-gradient limit.

    A deviance a million times steeper (a large study) has a raw gradient of 2 one micro-unit
    from its minimum, which a raw limit calls a failure; scaled by the Hessian it is
    sqrt(2e6) * 1e-6 = 0.0014, which lme4 accepts.
    """

    def deviance(x):
        return 1e6 * ((x[0] - 0.3) ** 2 + (x[1] + 0.2) ** 2)

    near = np.array([0.3 + 1e-6, -0.2])
    converged, worst, note = mixed._lme4_convergence(deviance, near, deviance(near))
    assert converged and note is None
    assert worst == pytest.approx(math.sqrt(2e6) * 1e-6, rel=1e-3)
    far = np.array([0.3 + 1e-5, -0.2])
    converged, worst, note = mixed._lme4_convergence(deviance, far, deviance(far))
    assert not converged and worst == pytest.approx(math.sqrt(2e6) * 1e-5, rel=1e-3)
    assert note.startswith(
        "failed to converge by lme4's criterion: max|grad| = 0.0141 (tol = 0.002, component 1)"
    )

    # No Cholesky factor (a saddle): the raw gradient decides, and the note says so.
    def saddle(x):
        return x[0] ** 2 - x[1] ** 2

    flat = np.array([1e-4, 0.0])
    converged, worst, note = mixed._lme4_convergence(saddle, flat, saddle(flat))
    assert converged and "scaled gradient could not be evaluated" in note
