"""Power simulation: checked against the noncentral t, statsmodels, and the design it simulates."""

import argparse
import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestPower

from analysis import cli, power
from analysis.mixed import fit_glmm, fit_lmm
from analysis.power import VarianceComponents
from tests.analysis.helpers import SIM_SMALL

NO_ITEMS = VarianceComponents(participant=0.3, identity=0.0, residual=0.9, participant_slope=0.05)


def _sd_difference(c: VarianceComponents, n_identities: int, replicates: int = 1) -> float:
    """SD of a participant's ai-minus-real mean when identities add no variance."""
    half = n_identities // 2
    return math.sqrt(
        c.participant_slope + c.residual * (1 / half + 1 / (n_identities - half)) / replicates
    )


def _mc_tolerance(p: float, n_sims: int) -> float:
    """Four Monte Carlo standard errors of a simulated proportion (two-sided 6e-5 to fail)."""
    return 4 * math.sqrt(p * (1 - p) / n_sims)


@pytest.mark.parametrize("effect, n", [(0.2, 20), (0.35, 12), (-0.5, 30), (0.1, 200)])
def test_analytic_power_matches_statsmodels(effect, n):
    # statsmodels TTestPower().power(effect_size = d_z, nobs = n, alpha = .05, two-sided)
    # R: pwr::pwr.t.test(n, d, type = "paired") gives the same noncentral-t value
    sd = 0.8
    expected = TTestPower().power(
        effect_size=abs(effect) / sd, nobs=n, alpha=0.05, alternative="two-sided"
    )
    assert power.analytic_power_paired_t(effect, sd, n) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("n_participants, n_identities, replicates", [(20, 24, 1), (40, 16, 2)])
def test_simulated_power_matches_noncentral_t(n_participants, n_identities, replicates):
    # Without identity variance the participants' differences are iid normal, so the paired
    # t test's power is exactly the noncentral-t value; 20,000 simulations give a Monte Carlo
    # SE of at most 0.0035, and the tolerance is four of them.
    n_sims = 20_000
    expected = power.analytic_power_paired_t(
        -0.2, _sd_difference(NO_ITEMS, n_identities, replicates), n_participants
    )
    row = power.power_paired_t(
        n_participants, n_identities, -0.2, NO_ITEMS, replicates=replicates, n_sims=n_sims, rng=12
    )
    assert row["power"] == pytest.approx(expected, abs=_mc_tolerance(expected, n_sims))
    assert row["ci_low"] < row["power"] < row["ci_high"]
    assert row["ci_high"] - row["ci_low"] < 4 * 1.96 * math.sqrt(0.25 / n_sims)


def test_type_one_error_at_alpha_without_identity_slopes():
    # effect 0: the rejection rate is alpha (identity intercepts only make the test conservative)
    c = VarianceComponents(0.3, 0.2, 0.9)
    row = power.power_paired_t(30, 20, 0.0, c, n_sims=20_000, rng=3)
    assert row["power"] <= 0.05 + _mc_tolerance(0.05, 20_000)


def test_identity_slopes_inflate_false_positives():
    # Judd, Westfall & Kenny (2012): by-participant tests ignore identities as a random
    # factor, so item-by-condition variance makes a null effect "significant" too often.
    c = VarianceComponents(0.3, 0.1, 0.9, identity_slope=0.15)
    row = power.power_paired_t(100, 10, 0.0, c, n_sims=5_000, rng=4)
    assert row["ci_low"] > 0.15


def test_identity_intercepts_cost_power_in_counterbalanced_lists():
    # list A and list B see opposite identity sets, so identity intercepts widen sd(d)
    with_items = VarianceComponents(0.3, 0.4, 0.9, participant_slope=0.05)
    plain = power.power_paired_t(40, 12, -0.25, NO_ITEMS, n_sims=10_000, rng=5)["power"]
    items = power.power_paired_t(40, 12, -0.25, with_items, n_sims=10_000, rng=5)["power"]
    assert plain - items > 0.1


@pytest.mark.slow
def test_shortcut_differences_match_trial_level_simulation():
    c = VarianceComponents(0.3, 0.2, 0.8, participant_slope=0.1, identity_slope=0.05)
    n_p, n_i, reps, n_sims = 8, 6, 2, 600
    fast = power.simulate_participant_differences(n_p, n_i, -0.3, c, 20_000, replicates=reps, rng=1)
    rng = np.random.default_rng(2)
    slow = []
    for _ in range(n_sims):
        trials = power.simulate_trials(n_p, n_i, -0.3, c, replicates=reps, rng=rng)
        means = trials.groupby(["participant", "condition"])["value"].mean().unstack()
        slow.append((means["ai"] - means["real"]).to_numpy())
    slow = np.array(slow)
    # Var(d_p) = slope_p + (id + id_slope)/n_ai + id/n_real + residual (1/n_ai + 1/n_real)/R
    expected_var = 0.1 + 0.25 / 3 + 0.2 / 3 + 0.8 * (2 / 3) / 2
    assert fast.var() == pytest.approx(expected_var, rel=0.03)
    assert slow.var() == pytest.approx(expected_var, rel=0.12)  # 600 studies: SE ~4 %
    assert fast.mean() == pytest.approx(-0.3, abs=0.02)
    assert slow.mean() == pytest.approx(-0.3, abs=0.06)


def test_simulated_design_is_counterbalanced():
    trials = power.simulate_trials(6, 8, -0.3, NO_ITEMS, replicates=2, rng=0)
    assert len(trials) == 6 * 8 * 2
    per_pair = trials.groupby(["participant", "identity"])["condition"].nunique()
    assert (per_pair == 1).all()  # one condition per identity for each participant
    per_participant = trials.groupby(["participant", "condition"]).size().unstack()
    assert (per_participant == 8).all().all()  # 4 identities x 2 replicates per condition
    by_list = trials.groupby(["identity", "list"])["condition"].first().unstack()
    assert (by_list["A"] != by_list["B"]).all()  # the lists swap every identity
    assert sorted(trials.groupby("list")["participant"].nunique()) == [3, 3]


def test_binary_simulation_is_zero_one():
    trials = power.simulate_trials(10, 6, -0.5, NO_ITEMS, intercept=1.0, binary=True, rng=1)
    assert set(trials["correct"]) <= {0, 1} and "value" not in trials


def test_components_from_pilot_fit_and_rows():
    truth = VarianceComponents(participant=0.4, identity=0.2, residual=0.8)
    pilot = power.simulate_trials(80, 30, -0.3, truth, rng=21)
    fit = fit_lmm(pilot, slopes=False)
    from_fit = power.components_from_pilot(fit)
    effects = {e["group"]: e["variance"] for e in fit.random_effects}
    assert (from_fit.participant, from_fit.identity, from_fit.residual) == (
        effects["participant"],
        effects["identity"],
        fit.residual_variance,
    )
    assert from_fit.participant == pytest.approx(0.4, rel=0.35)
    assert from_fit.identity == pytest.approx(0.2, rel=0.6)
    assert from_fit.residual == pytest.approx(0.8, rel=0.05)
    assert power.components_from_pilot(pilot, slopes=False) == from_fit


def test_components_from_pilot_rejects_glmm():
    pilot = power.simulate_trials(20, 8, -0.3, NO_ITEMS, binary=True, rng=3)
    with pytest.raises(ValueError, match="pilot must be trial rows or an LMM fit, got 'glmm'"):
        power.components_from_pilot(fit_glmm(pilot, slopes=False))


def test_power_table_grid_is_reproducible_and_monotone():
    table = power.power_table([20, 60, 120], [16], -0.3, n_sims=4000)
    assert list(table.columns) == [
        "n_participants",
        "n_identities",
        "test",
        "power",
        "ci_low",
        "ci_high",
        "n_sims",
        "effect",
        "alpha",
    ]
    assert table["power"].is_monotonic_increasing and table["power"].iloc[-1] > 0.9
    again = power.power_table([60], [16], -0.3, n_sims=4000)
    assert again["power"].iloc[0] == table["power"].iloc[1]  # a cell ignores the rest of the grid


@pytest.mark.slow
def test_power_table_with_lmm():
    c = VarianceComponents(0.3, 0.1, 0.8)
    table = power.power_table([24], [8], -1.0, c, n_sims=500, lmm=True, lmm_sims=20)
    assert list(table["test"]) == ["paired_t", "lmm"]
    lmm_row = table.iloc[1]
    assert lmm_row["n_sims"] == 20 and lmm_row["power"] == 1.0  # d_z ~ 2: every study rejects
    null = power.power_lmm(24, 8, 0.0, c, n_sims=40, rng=8)
    assert null["power"] <= 0.15  # nominal 0.05; 40 studies: P(> 6 rejections) < 0.02


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: power.power_paired_t(1, 10, -0.3),
            "n_participants must be an integer >= 2, got 1",
        ),
        (lambda: power.power_paired_t(10, 1, -0.3), "n_identities must be an integer >= 2, got 1"),
        (lambda: power.power_paired_t(10, 10, -0.3, replicates=0), "replicates must be an integer"),
        (lambda: power.power_paired_t(10, 10, -0.3, alpha=1.0), "alpha must be between 0 and 1"),
        (lambda: power.power_paired_t(10, 10, math.nan), "effect must be a finite number"),
        (lambda: power.power_paired_t(10, 10, -0.3, n_sims=0), "n_sims must be an integer >= 1"),
        (lambda: VarianceComponents(0.3, -0.1, 0.9), "variance 'identity' must be a finite number"),
        (lambda: VarianceComponents(0.3, 0.1, 0.0), "variance 'residual' must be > 0"),
        (lambda: power.power_table([], [10], -0.3), "participants and identities must each list"),
    ],
)
def test_bad_settings_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _parser() -> argparse.ArgumentParser:
    """A parser carrying the power options, as the analysis command line builds it."""
    parser = argparse.ArgumentParser(prog="power")
    cli.add_power_arguments(parser)
    return parser


def test_cli_prints_table(capsys):
    args = _parser().parse_args(
        ["--participants", "40", "80", "--identities", "24", "--effect", "-0.3", "--sims", "500"]
    )
    assert cli.run_power(args) == 0
    out = capsys.readouterr().out
    assert "effect (ai - real) -0.3" in out and "variances from given/default values" in out
    lines = [line.split() for line in out.splitlines()[2:]]
    assert [line[:3] for line in lines] == [["40", "24", "paired_t"], ["80", "24", "paired_t"]]
    assert float(lines[0][3]) < float(lines[1][3])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--participants", "1", "--identities", "24", "--effect", "-0.3"], "'1' must be >= 2"),
        (["--participants", "40", "--identities", "0", "--effect", "-0.3"], "'0' must be >= 2"),
        (
            ["--participants", "40", "--identities", "24", "--effect", "abc"],
            "'abc' is not a number",
        ),
        (["--participants", "40", "--identities", "24"], "required: --effect"),
        (["--participants", "x", "--identities", "24", "--effect", "1"], "'x' is not an integer"),
        (
            ["--participants", "40", "--identities", "24", "--effect", "1", "--alpha", "1.5"],
            "'1.5' must be > 0.0 and < 1.0",
        ),
        (
            ["--participants", "40", "--identities", "24", "--effect", "1", "--residual-var", "0"],
            "'0' must be > 0.0",
        ),
        (
            ["--participants", "40", "--identities", "24", "--effect", "1", "--sims", "0"],
            "'0' must be >= 1",
        ),
    ],
)
def test_cli_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_through_analysis_command_with_pilot(capsys):
    from analysis.cli import main

    if not SIM_SMALL.is_dir():
        raise FileNotFoundError(f"reference data missing: {SIM_SMALL}")
    status = main(
        [
            "power",
            "--participants",
            "60",
            "--identities",
            "24",
            "--effect",
            "-0.3",
            "--pilot",
            str(SIM_SMALL),
            "--sims",
            "300",
            "--identity-slope-var",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"variances from pilot {SIM_SMALL} (trust)" in out
    assert "60" in out.splitlines()[-1] and "paired_t" in out.splitlines()[-1]
