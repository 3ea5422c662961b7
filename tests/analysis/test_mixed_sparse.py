"""The sparse path of the mixed models (a crossed, unbalanced design) against lme4 and lmerTest.

tests/data/reference/crossed-sparse/rows.csv: 150 participants each rating 10-30 of 200
identities (2,868 rows), simulated by bench/crossed.py's ``simulate(150, 200, 20,
seed=20261205)``. R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, with
``rows$condition <- factor(rows$condition, levels = c("real", "ai"))`` and
``m <- lmerTest::lmer(value ~ condition + (1 + condition | participant)
+ (1 + condition | identity), data = rows, REML = TRUE)``.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import numderiv
from analysis.clmm import _CLMM, _start
from analysis.mixed import (
    _LMM,
    _Design,
    _ml_deviance,
    _prepare,
    _satterthwaite,
    _terms,
    _Tests,
    fit_lmm,
)

ROWS = Path(__file__).resolve().parents[1] / "data" / "reference" / "crossed-sparse" / "rows.csv"

# getME(m, "theta"): identity (200 levels) first, as lme4 orders terms by their levels
R_THETA = np.array(
    [
        0.3998012449970521,  # identity.(Intercept)
        0.0826658059184120,  # identity.conditionai.(Intercept)
        0.1322756267064068,  # identity.conditionai
        0.6507933285710406,  # participant.(Intercept)
        -0.0677978308872722,  # participant.conditionai.(Intercept)
        0.3029139972605988,  # participant.conditionai
    ]
)
R_REML = 8455.16016225258  # REMLcrit(m)
R_ML = 8447.03504208342  # deviance(update(m, REML = FALSE))
R_SIGMA2 = 0.8908639834489094  # as.data.frame(VarCorr(m))["Residual", "vcov"]
# summary(m)$coefficients
R_COEF = {
    "(Intercept)": {
        "estimate": 4.004704382245690,
        "se": 0.0628028876157763,
        "df": 195.771609640240,
        "t": 63.76624601636460,
        "p": 6.43706509620912e-133,
    },
    "conditionai": {
        "estimate": -0.244777955853686,
        "se": 0.0456730850857871,
        "df": 108.815311055777,
        "t": -5.35934797034016,
        "p": 4.71956537687321e-07,
    },
}
# as.data.frame(VarCorr(m))$vcov: participant intercept, slope; identity intercept, slope
R_VARIANCES = [0.3773093658967023, 0.0858378054659899, 0.1423966216051912, 0.0216751455602907]


@pytest.fixture(scope="module")
def data():
    """The crossed-sparse rows, prepared as fit_lmm prepares them."""
    rows = pd.read_csv(ROWS)
    return rows, _prepare(rows, "value", "condition", "participant", "identity", binary=False)


def _model(d, sparse: bool) -> _LMM:
    design = _Design(_terms(d, True), d.X, d.y)
    design.sparse = sparse
    return _LMM(design)


def test_unbalanced_crossing_takes_the_sparse_path(data):
    """A participant rating a tenth of the identities is sparse; a fully crossed study is not."""
    rows, d = data
    assert _Design(_terms(d, True), d.X, d.y).sparse
    full = rows.drop_duplicates("identity").head(20)["identity"]
    crossed = pd.DataFrame(
        [
            {"participant": p, "identity": i, "condition": ("ai" if (k + j) % 2 else "real")}
            for k, p in enumerate(range(60))
            for j, i in enumerate(full)
        ]
    ).assign(value=lambda f: np.arange(len(f)) % 7 + 1.0)
    dense = _prepare(crossed, "value", "condition", "participant", "identity", binary=False)
    assert not _Design(_terms(dense, True), dense.X, dense.y).sparse


def test_sparse_path_at_lme4_theta_gives_lmertest_numbers(data):
    """At R's theta the sparse factorisation, exact derivatives and Satterthwaite df are R's."""
    _, d = data
    model = _model(d, sparse=True)
    state = model.pls(R_THETA)
    assert model.reml(R_THETA) == pytest.approx(R_REML, rel=1e-12)
    sigma = math.sqrt(state["pwrss"] / (model.n - model.p))
    assert sigma**2 == pytest.approx(R_SIGMA2, rel=1e-10)
    exact = model.varpar_derivatives(R_THETA, sigma)
    vcov, jacobians, A = _satterthwaite(model, R_THETA, sigma, [], exact[:2])
    tests = _Tests("t", state["beta"], vcov, jacobians, A)
    for i, name in enumerate(["(Intercept)", "conditionai"]):
        got = tests.contrast(np.eye(2)[i])
        r = R_COEF[name]
        assert got["estimate"] == pytest.approx(r["estimate"], rel=1e-10)
        assert got["se"] == pytest.approx(r["se"], rel=1e-10)
        assert got["statistic"] == pytest.approx(r["t"], rel=1e-10)
        assert got["df"] == pytest.approx(r["df"], rel=1e-6)
        assert got["p_value"] == pytest.approx(r["p"], rel=1e-6)
    # the dense path, the one fully crossed studies take, agrees at the same theta
    assert _model(d, sparse=False).reml(R_THETA) == pytest.approx(R_REML, rel=1e-12)


def test_exact_gradient_equals_finite_differences(data):
    """The REML and ML gradients from the selected inverse are the criteria's derivatives."""
    _, d = data
    model = _model(d, sparse=True)
    theta = np.array([0.5, -0.2, 0.3, 0.7, 0.1, -0.25])  # negative entries, off the optimum
    for both, f in ((model.reml_and_gradient, model.reml), (model.ml_and_gradient, model.ml)):
        value, gradient = both(theta)
        assert value == f(theta)
        numeric = numderiv.jacobian(lambda x, f=f: np.array([f(x)]), theta, d=1e-3)[0]
        assert np.allclose(gradient, numeric, rtol=1e-6, atol=1e-5)


@pytest.mark.slow
def test_fit_lmm_on_sparse_design_matches_lmertest(data):
    """fit_lmm's own optimum: R's numbers to the precision R's optimiser stopped at.

    lme4's BOBYQA stops 9e-8 above the minimum found here (REML 8455.160162159 against R's
    8455.160162253), which moves the flat variance directions by up to 1e-4 relative, the
    standard error by about 5e-6, the df by up to 4e-5 and p by 1.2e-4; at R's theta the
    numbers agree to 1e-8 (above).
    """
    rows, d = data
    fit = fit_lmm(rows, slopes=True)
    assert fit.converged and not fit.notes
    assert fit.deviance <= R_REML and fit.deviance == pytest.approx(R_REML, rel=1e-10)
    for got in fit.coefficients:
        r = R_COEF[got["term"]]
        assert got["estimate"] == pytest.approx(r["estimate"], rel=2e-6)
        assert got["se"] == pytest.approx(r["se"], rel=2e-5)
        assert got["df"] == pytest.approx(r["df"], rel=1e-4)
        assert got["p_value"] == pytest.approx(r["p"], rel=5e-4)
    variances = [row["variance"] for row in fit.random_effects]
    assert np.allclose(variances, R_VARIANCES, rtol=5e-4)
    assert fit.residual_variance == pytest.approx(R_SIGMA2, rel=1e-5)
    deviance, n_parameters, converged = _ml_deviance(d, True)
    assert converged and n_parameters == 9
    # R's ML refit stops 2.4e-6 above the minimum found here
    assert deviance <= R_ML and deviance == pytest.approx(R_ML, rel=1e-9)


def test_clmm_sparse_and_dense_paths_agree(data):
    """The CLMM's Laplace likelihood and its exact gradient are the same through both paths."""
    rows, d = data
    codes = rows["rating"].to_numpy() - 1
    out = []
    for sparse in (True, False):
        design = _Design(_terms(d, True), d.ai[:, None], codes.astype(float))
        design.sparse = sparse
        model = _CLMM(design, codes, 7)
        pars = _start(codes, 7, design)
        pars[7:] = [0.3, 0.5, 0.1, 0.2, -0.05, 0.3]  # after 6 thresholds and beta
        out.append(model.nll_and_gradient(pars))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-12)
    assert np.allclose(out[0][1], out[1][1], rtol=1e-9, atol=1e-9)
