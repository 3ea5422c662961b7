"""Cumulative-link mixed models against R's ordinal::clmm (ordinal 2022.11.16, Matrix 1.5-3).

Expected values come from tests/data/clmm/clmm_reference.R (R 4.2); the R call is written
beside each. `wine` is the data set shipped with ordinal (Randall 1989), written to
tests/data/clmm/wine.csv by that script; `tr` and `pr` are the trust and professional ratings
of tests/data/reference/sim-small after the default exclusions.

Tolerance is 1e-4 relative. Where clmm's own optimiser (nlminb) stopped visibly short of the
optimum (its logLik lower than ours, its max|gradient| large), the numbers it reports carry
that error; those comparisons say so and use an absolute floor of the size of clmm's error.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import clmm
from analysis.clmm import ClmmFit, fit_clmm
from analysis.mixed import _Design, _Term
from tests.analysis.helpers import sim_small_rows

WINE = Path(__file__).resolve().parents[1] / "data" / "clmm" / "wine.csv"

R = {
    # clmm(rating ~ temp + contact + (1 | judge), data = wine)
    "wine_judge": {
        "coef": {
            "1|2": -1.623666924069,
            "2|3": 1.513365182919,
            "3|4": 4.228526688495,
            "4|5": 6.088772558481,
            "tempwarm": 3.062996625844,
            "contactyes": 1.834884922284,
        },
        "se": {
            "1|2": 0.6824410319592,
            "2|3": 0.6037533304308,
            "3|4": 0.8089660503245,
            "4|5": 0.9724536541848,
            "tempwarm": 0.5953761831312,
            "contactyes": 0.5125293320054,
        },
        "var": {"judge": 1.279460909255},  # VarCorr(fit), as.vector
        "logLik": -81.565409292127,
        "max_grad": 1.033392038607e-05,  # max(abs(fit$gradient))
    },
    # clmm(rating ~ temp + contact + (1 | judge) + (1 | bottle), data = wine)
    "wine_crossed": {
        "coef": {
            "1|2": -1.623665427985,
            "2|3": 1.513360207176,
            "3|4": 4.228527103662,
            "4|5": 6.088776438823,
            "tempwarm": 3.06300324035,
            "contactyes": 1.834902703528,
        },
        "se": {
            "1|2": 0.6824372154499,
            "2|3": 0.6037368203993,
            "3|4": 0.8089581242963,
            "4|5": 0.9724586438916,
            "tempwarm": 0.5953916357946,
            "contactyes": 0.5125587134214,
        },
        "var": {"judge": 1.279488270692, "bottle": 1.617138148195e-11},  # VarCorr(fit), as.vector
        "logLik": -81.565412776967,
        "max_grad": 3.344339916111e-05,  # max(abs(fit$gradient))
    },
    # clmm(rating ~ temp + contact + (1 + temp | judge), data = wine)
    "wine_slopes": {
        "coef": {
            "1|2": -1.599319157654,
            "2|3": 1.496774765542,
            "3|4": 4.222327013485,
            "4|5": 6.114387824594,
            "tempwarm": 3.065595781926,
            "contactyes": 1.831975379266,
        },
        "se": {
            "1|2": 0.6888805546002,
            "2|3": 0.6000887421521,
            "3|4": 0.8160321542874,
            "4|5": 1.019814578347,
            "tempwarm": 0.6147221808269,
            "contactyes": 0.5155804121167,
        },
        "var": {
            "judge": [1.156075958868, 0.116723222794, 0.116723222794, 0.0280081489717]
        },  # VarCorr(fit), as.vector
        "logLik": -81.546395255368,
        "max_grad": 2.562664747074e-05,  # max(abs(fit$gradient))
    },
    # clmm(ordered(value) ~ condition + (1 | participant) + (1 | identity), data = tr)
    "trust": {
        "coef": {
            "1|2": -5.59199201132,
            "2|3": -3.289159883285,
            "3|4": -1.224263849841,
            "4|5": 0.5050452133052,
            "5|6": 2.489386019324,
            "6|7": 4.74584744833,
            "conditionai": -0.7306336299866,
        },
        "se": {
            "1|2": 0.2560285118357,
            "2|3": 0.1936275343875,
            "3|4": 0.18164391242,
            "4|5": 0.1803338522268,
            "5|6": 0.1888347352234,
            "6|7": 0.2485416013543,
            "conditionai": 0.07205086939283,
        },
        "var": {
            "participant": 1.116652013772,
            "identity": 0.4654481430116,
        },  # VarCorr(fit), as.vector
        "logLik": -3862.18454077931,
        "max_grad": 0.004185844773019,  # max(abs(fit$gradient))
    },
    # clmm(ordered(value) ~ condition + (1 + condition | participant)
    #      + (1 + condition | identity), data = tr)
    "trust_slopes": {
        "coef": {
            "1|2": -5.607667189189,
            "2|3": -3.299807293422,
            "3|4": -1.228388188323,
            "4|5": 0.5069003449443,
            "5|6": 2.496705433655,
            "6|7": 4.756774733661,
            "conditionai": -0.7328090002779,
        },
        "se": {
            "1|2": 0.2597131605676,
            "2|3": 0.1976132469227,
            "3|4": 0.1853749297676,
            "4|5": 0.1840304393268,
            "5|6": 0.1927030681814,
            "6|7": 0.251934452058,
            "conditionai": 0.07978921936313,
        },
        "var": {
            "participant": [1.097544334717, 0.01268444956223, 0.01268444956223, 0.05062339836772],
            "identity": [0.5013180133263, -0.03733288182545, -0.03733288182545, 0.01711176145049],
        },  # VarCorr(fit), as.vector
        "logLik": -3861.65227259678,
        "max_grad": 0.005410902303993,  # max(abs(fit$gradient))
    },
    # clmm(ordered(value) ~ condition + (1 | participant) + (1 | identity), data = pr)
    "professional": {
        "coef": {
            "1|2": -4.421947630248,
            "2|3": -2.883768189599,
            "3|4": -1.452466866431,
            "4|5": 0.02858914940184,
            "5|6": 1.381652762795,
            "6|7": 2.930272510836,
            "conditionai": -0.6397462287337,
        },
        "se": {
            "1|2": 0.1908570668238,
            "2|3": 0.1589832483483,
            "3|4": 0.1493003907013,
            "4|5": 0.1466119521721,
            "5|6": 0.149424984461,
            "6|7": 0.1650589255979,
            "conditionai": 0.07006949413627,
        },
        "var": {
            "participant": 0.6288410973392,
            "identity": 0.3123266696671,
        },  # VarCorr(fit), as.vector
        "logLik": -4445.14012016417,
        "max_grad": 0.002776559995255,  # max(abs(fit$gradient))
    },
}


REL = 1e-4


def _wine_fit(name: str, hessian: str = "gradient") -> dict:
    """Fit one of the wine models through the design-level fitter (two fixed effects)."""
    wine = pd.read_csv(WINE)
    y = wine["rating"].to_numpy() - 1
    X = np.column_stack([(wine["temp"] == "warm"), (wine["contact"] == "yes")]).astype(float)

    def term(column: str, slope: bool = False) -> _Term:
        codes, levels = pd.factorize(wine[column], sort=True)
        columns = (
            np.column_stack([np.ones(len(wine)), X[:, 0]]) if slope else np.ones((len(wine), 1))
        )
        names = ("(Intercept)", "tempwarm")[: columns.shape[1]]
        return _Term(column, codes.astype(np.intp), len(levels), columns, names)

    terms = {
        "wine_judge": [term("judge")],
        "wine_crossed": [term("judge"), term("bottle")],
        "wine_slopes": [term("judge", slope=True)],
    }[name]
    design = _Design(terms, X, y.astype(float))
    with clmm._one_blas_thread():
        fit = clmm._fit_design(design, y, 5, hessian)
    fit["se"] = np.sqrt(np.diag(fit["cov"]))
    fit["design"] = design
    return fit


@pytest.mark.parametrize("name", ["wine_judge", "wine_crossed", "wine_slopes"])
def test_wine_matches_clmm(name):
    """Thresholds, temp and contact effects, SEs, variances and logLik of the wine models."""
    fit = _wine_fit(name)
    ref = R[name]
    expected = list(ref["coef"].values())
    assert fit["pars"][:6] == pytest.approx(expected, rel=REL)
    assert fit["se"][:6] == pytest.approx(list(ref["se"].values()), rel=REL)
    assert -fit["nll"] == pytest.approx(ref["logLik"], rel=REL)
    assert fit["converged"]
    T = fit["design"].factors(fit["theta"])
    if name == "wine_slopes":
        cov = T[0] @ T[0].T
        # VarCorr(fit)$judge, column-major 2 x 2
        assert cov.ravel(order="F") == pytest.approx(ref["var"]["judge"], rel=1e-3)
        assert cov[0, 0] == pytest.approx(ref["var"]["judge"][0], rel=REL)
    else:
        # terms are held largest first (judge: 9 levels, bottle: 8), as clmm orders them
        assert T[0][0, 0] ** 2 == pytest.approx(ref["var"]["judge"], rel=REL)


def test_wine_crossed_is_singular_with_bottle_sd_on_the_boundary():
    """clmm estimates the bottle variance at ~0 (1.6e-11) and leaves it out of the Hessian."""
    fit = _wine_fit("wine_crossed")
    assert abs(fit["theta"][1]) < 1e-3
    assert math.isnan(fit["se"][-1])  # not in the Hessian
    assert any("boundary" in note for note in fit["notes"])
    notes = clmm._singular_notes(fit["design"], fit["theta"])
    assert notes and "bottle" in notes[0]


def test_clmm_hessian_mode_matches_clmm_more_closely():
    """hessian='clmm' repeats deriv12 on clmm's inner Newton; both modes agree with R."""
    fast = _wine_fit("wine_crossed")
    like = _wine_fit("wine_crossed", hessian="clmm")
    ref = list(R["wine_crossed"]["se"].values())
    assert like["se"][:6] == pytest.approx(ref, rel=2e-5)
    assert fast["se"][:6] == pytest.approx(like["se"][:6], rel=REL)


@pytest.fixture(scope="module")
def sim_rows():
    """sim-small rows kept by the default exclusions."""
    return sim_small_rows()[0]


@pytest.mark.parametrize("measure", ["trust", "professional"])
def test_sim_small_matches_clmm(sim_rows, measure):
    """The project's own simulated ratings: estimate, SE, z, p, thresholds, variances, logLik."""
    fit = fit_clmm(sim_rows[sim_rows["measure"] == measure], slopes=False)
    ref = R[measure]
    assert isinstance(fit, ClmmFit)
    assert fit.method == "clmm"
    assert fit.formula == "ordered(value) ~ condition + (1 | participant) + (1 | identity)"
    assert fit.estimate == pytest.approx(ref["coef"]["conditionai"], rel=REL)
    assert fit.se == pytest.approx(ref["se"]["conditionai"], rel=REL)
    assert fit.statistic == pytest.approx(fit.estimate / fit.se)
    assert fit.p_value == pytest.approx(2 * (1 - _phi(abs(fit.statistic))), rel=1e-6)
    assert fit.ci_low == pytest.approx(fit.estimate - 1.959963984540054 * fit.se)
    assert fit.log_likelihood == pytest.approx(ref["logLik"], rel=REL)
    assert fit.deviance == pytest.approx(-2 * ref["logLik"], rel=REL)
    names = [t["name"] for t in fit.thresholds]
    assert names == ["1|2", "2|3", "3|4", "4|5", "5|6", "6|7"]
    thresholds = [ref["coef"][n] for n in names]
    # The professional 4|5 threshold is 0.0286: clmm's nlminb stopped 6.7e-7 short in logLik,
    # which moves it by 4.5e-5 absolute, so an absolute floor of 1e-4 applies there.
    assert [t["estimate"] for t in fit.thresholds] == pytest.approx(thresholds, rel=REL, abs=1e-4)
    assert [t["se"] for t in fit.thresholds] == pytest.approx(
        [ref["se"][n] for n in names], rel=REL
    )
    variances = {r["group"]: r["variance"] for r in fit.random_effects}
    assert variances["participant"] == pytest.approx(ref["var"]["participant"], rel=REL)
    assert variances["identity"] == pytest.approx(ref["var"]["identity"], rel=REL)
    for row in fit.random_effects:
        assert row["sd"] == pytest.approx(math.sqrt(row["variance"]))
    assert fit.converged and not fit.singular
    assert fit.categories == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    json.dumps(fit.to_dict(), allow_nan=False)


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_sim_small_slopes_match_clmm(sim_rows):
    """Random condition slopes by participant and identity (general 2 x 2 covariances)."""
    fit = fit_clmm(sim_rows[sim_rows["measure"] == "trust"], slopes=True)
    ref = R["trust_slopes"]
    assert fit.formula == (
        "ordered(value) ~ condition + (1 + condition | participant) + (1 + condition | identity)"
    )
    assert fit.estimate == pytest.approx(ref["coef"]["conditionai"], rel=REL)
    assert fit.se == pytest.approx(ref["se"]["conditionai"], rel=REL)
    assert fit.log_likelihood == pytest.approx(ref["logLik"], rel=REL)
    # clmm stopped with max|gradient| 5.4e-3 (logLik 1e-7 below ours): its thresholds and
    # variances are within 1e-4 of ours in absolute terms, not always relative.
    names = [t["name"] for t in fit.thresholds]
    assert [t["estimate"] for t in fit.thresholds] == pytest.approx(
        [ref["coef"][n] for n in names], rel=REL, abs=1e-4
    )
    rows = {(r["group"], r["term"]): r for r in fit.random_effects}
    for group in ("participant", "identity"):
        v = ref["var"][group]  # VarCorr(fit)[[group]], column-major 2 x 2
        assert rows[(group, "(Intercept)")]["variance"] == pytest.approx(v[0], rel=REL, abs=1e-5)
        assert rows[(group, "conditionai")]["variance"] == pytest.approx(v[3], rel=REL, abs=1e-5)
        corr = v[1] / math.sqrt(v[0] * v[3])
        assert rows[(group, "conditionai")]["correlation"] == pytest.approx(corr, abs=1e-3)


# ----------------------------------------------------------------------------- edge cases


def _ratings(seed: int = 3, n_p: int = 30, n_i: int = 12, sd_p: float = 1.0, sd_i: float = 0.7):
    """A small crossed rating study on a 1-7 scale (latent logistic, ai lowers ratings)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, sd_p, n_p), rng.normal(0, sd_i, n_i)
    rows = []
    for p in range(n_p):
        for i in range(n_i):
            ai = (p + i) % 2
            latent = -0.6 * ai + a[p] + b[i] + rng.logistic()
            value = int(np.clip(np.digitize(latent, [-3, -1.8, -0.6, 0.6, 1.8, 3]) + 1, 1, 7))
            rows.append(
                {
                    "participant": f"p{p}",
                    "identity": f"i{i}",
                    "condition": "ai" if ai else "real",
                    "value": value,
                }
            )
    return pd.DataFrame(rows)


def test_unused_category_is_noted_and_dropped():
    data = _ratings()
    data.loc[data["value"] == 7, "value"] = 6
    fit = fit_clmm(data, slopes=False, categories=range(1, 8))
    assert [t["name"] for t in fit.thresholds] == ["1|2", "2|3", "3|4", "4|5", "5|6"]
    assert any("7 of the scale never used" in note for note in fit.notes)
    assert fit.converged


def test_rating_off_the_scale_is_an_error():
    data = _ratings()
    data.loc[0, "value"] = 9
    with pytest.raises(ValueError, match="not on the scale"):
        fit_clmm(data, slopes=False, categories=range(1, 8))


def test_participant_with_one_rating():
    data = _ratings()
    keep = (data["participant"] != "p0") | (
        data.index == data.index[data["participant"] == "p0"][0]
    )
    data = data[keep]
    fit = fit_clmm(data)  # slopes="auto" falls back: p0 saw one condition
    assert fit.n_participants == 30
    assert fit.notes[0].startswith("random intercepts only")
    assert math.isfinite(fit.estimate) and math.isfinite(fit.se)


def test_perfect_separation_is_a_clear_error():
    data = _ratings()
    data["value"] = np.where(data["condition"] == "ai", 5, 2)
    data.loc[data.index[:3], "value"] = np.where(data["condition"][:3] == "ai", 6, 1)
    with pytest.raises(ValueError, match="perfect separation"):
        fit_clmm(data)


def test_single_category_is_a_clear_error():
    data = _ratings()
    data["value"] = 4
    with pytest.raises(ValueError, match="at least two rating categories"):
        fit_clmm(data)


def test_only_one_condition_is_a_clear_error():
    data = _ratings()
    data["condition"] = "ai"
    with pytest.raises(ValueError, match="no row with the baseline 'real'"):
        fit_clmm(data)


def test_singular_identity_variance_is_flagged():
    """No identity variance in the data: its SD is estimated at zero and the fit says so."""
    data = _ratings(seed=6, sd_i=0.0)
    fit = fit_clmm(data, slopes=False)
    identity = next(r for r in fit.random_effects if r["group"] == "identity")
    assert identity["variance"] < 1e-6
    assert fit.singular
    assert any("singular fit" in note and "identity" in note for note in fit.notes)
    assert math.isfinite(fit.se)


def test_gradient_is_exact():
    """The analytic gradient of the Laplace deviance agrees with finite differences."""
    from analysis import numderiv

    data = _ratings()
    d = clmm._prepare(data, "value", "condition", "participant", "identity", binary=False)
    codes = (d.y - 1).astype(np.intp)
    design = _Design(clmm._terms(d, True), d.ai[:, None], d.y)
    model = clmm._CLMM(design, codes, 7)
    pars = np.array([-3, -1.8, -0.6, 0.6, 1.8, 3, -0.5, 1.0, 0.2, 0.3, 0.7, -0.1, 0.2])
    value, gradient = model.nll_and_gradient(pars)
    numeric = numderiv.jacobian(lambda x: np.array([model.nll(x)]), pars)[0]
    assert value == pytest.approx(model.nll(pars), rel=1e-12)
    assert gradient == pytest.approx(numeric, rel=1e-5, abs=1e-5)


# ----------------------------------------------------------------------------- the report


@pytest.mark.slow
def test_report_puts_the_clmm_primary_when_the_plan_says_so(sim):
    """rating_model 'clmm': the CLMM is each rating's main test; the paired t-test stays."""
    from analysis.report import analyse

    results = analyse(sim, plan={"rating_model": "clmm", "primary_outcomes": ["trust"]}).results
    tests = results["tests"]
    clmm_tests = {t["outcome"]: t for t in tests if t["method"] == "clmm"}
    assert set(clmm_tests) == {"trust", "professional"}  # every rating outcome
    trust = clmm_tests["trust"]
    assert (trust["family"], trust["level"], trust["preregistered"]) == ("primary", "trial", True)
    assert clmm_tests["professional"]["family"] == "secondary"
    # the report keeps slopes when they fit: R's estimate with slopes is -0.7328 on all rows
    # (here 2712 after exclusions and attention checks)
    assert trust["estimate"] == pytest.approx(R["trust_slopes"]["coef"]["conditionai"], abs=0.01)
    assert trust["statistic_name"] == "z" and trust["df"] is None
    assert trust["effect_size"] == pytest.approx(math.exp(trust["estimate"]))
    assert [t["name"] for t in trust["thresholds"]][0] == "1|2"
    paired = next(
        t
        for t in tests
        if (t["outcome"], t["method"], t["level"]) == ("trust", "paired_t", "participant")
    )
    assert paired["family"] == "participant_t" and not paired["preregistered"]
    lmm = next(t for t in tests if (t["outcome"], t["method"]) == ("trust", "lmm"))
    assert lmm["family"] == "mixed"
    finding = next(f for f in results["findings"] if f["outcome"] == "trust")
    assert tests[finding["supported_by"][0]]["method"] == "clmm"
    assert "log cumulative odds" in finding["claim"] and finding["verdict"] == "difference"
    assert {"participant_t", "primary"} <= {f["family"] for f in results["families"]}
    assert any(
        r["method"] == "clmm" and r["group"] == "identity" for r in results["random_effects"]
    )
    json.dumps(results, allow_nan=False)


def test_plan_rating_model_is_checked():
    from analysis.plan import validate_plan

    assert validate_plan({"rating_model": "clmm"})["rating_model"] == "clmm"
    assert validate_plan({})["rating_model"] == "paired_t"
    with pytest.raises(ValueError, match="rating_model: 'lmm' is not one of paired_t, clmm"):
        validate_plan({"rating_model": "lmm"})
