"""Sample size: the paired t test against R's power.t.test, the simulated search for the
mixed models (bounded, seeded, reproducible) and the sample-size command."""

import math

import numpy as np
import pytest

from analysis import cli, power
from analysis.power import VarianceComponents
from tests.analysis.helpers import SIM_SMALL

# (delta, sd, power, sig.level, n as R reports it, n with tol = 1e-12, ceiling(n)), from
#   power.t.test(delta = delta, sd = sd, power = power, sig.level = sig.level,
#                type = "paired", strict = TRUE)$n              (R 4.x, default tol)
#   power.t.test(..., type = "paired", strict = TRUE, tol = 1e-12)$n
R_SAMPLE_SIZES = [
    (0.5, 1, 0.8, 0.05, 33.367129103907, 33.367128953319, 34),
    (-0.3, 0.9, 0.9, 0.05, 96.508013984164, 96.508013793518, 97),
    (0.2, 1, 0.95, 0.01, 448.677818638534, 448.677818573083, 449),
    (3, 1, 0.8, 0.05, 3.144028060512, 3.144024707629, 4),
    (10, 1, 0.8, 0.05, 2.059392475275, 2.059393713771, 3),
    (1.2, 2.5, 0.8, 0.005, 61.739117605864, 61.739095944506, 62),
    (0.05, 1, 0.8, 0.05, 3141.465474070697, 3141.465474073685, 3142),
]

# (n, delta, sd, sig.level, power), from
#   power.t.test(n = n, delta = delta, sd = sd, sig.level = sig.level,
#                type = "paired", strict = TRUE)$power
R_POWERS = [
    (20, 0.5, 1, 0.05, 0.564504418439),
    (12, -0.35, 0.8, 0.05, 0.282987165872),
    (200, 0.1, 1, 0.05, 0.290657617662),
    (7.5, 1, 1, 0.01, 0.308034385318),
    (2, 0.8, 1, 0.05, 0.078820614543),
    (60, 0.3, 0.9, 0.005, 0.377936707983),
    (1000, 0.02, 0.5, 0.05, 0.243763088922),
]


@pytest.mark.parametrize("delta, sd, target, alpha, r_n, r_exact, r_ceiling", R_SAMPLE_SIZES)
def test_sample_size_matches_power_t_test(delta, sd, target, alpha, r_n, r_exact, r_ceiling):
    found = power.sample_size_paired_t(delta, sd, power=target, alpha=alpha)
    # R's default uniroot tolerance is .Machine$double.eps^0.25 (1.2e-4)
    assert found.n == pytest.approx(r_n, abs=1.2e-4)
    assert found.n == pytest.approx(r_exact, abs=1e-6)
    assert found.n_required == r_ceiling
    assert found.power_at_n_required >= target
    assert power.power_for_n_paired_t(delta, sd, r_ceiling - 1, alpha) < target or r_ceiling == 2
    assert found.d_z == pytest.approx(abs(delta) / sd)
    assert found.note == ""


@pytest.mark.parametrize("n, delta, sd, alpha, r_power", R_POWERS)
def test_power_for_n_matches_power_t_test(n, delta, sd, alpha, r_power):
    assert power.power_for_n_paired_t(delta, sd, n, alpha) == pytest.approx(r_power, abs=1e-9)


def test_analytic_power_agrees_with_the_strict_power():
    # the older analytic_power_paired_t (signed effect, integer n) is the same formula
    assert power.analytic_power_paired_t(-0.35, 0.8, 12) == pytest.approx(0.282987165872, abs=1e-9)


def test_two_pairs_already_enough_is_said():
    # power.t.test(delta = 40, sd = 1, power = 0.8, type = "paired", strict = TRUE)$n is
    # 1.69097035889 (uniroot extends below 2). A paired t test needs 2 pairs, so 2 is the
    # answer, with a note. Its power, 1 - P(|X| > (Z + 40 sqrt 2) / t_.975,1) for standard
    # normal X and Z, is 0.99999093348472 by quadrature; R's power.t.test(n = 2, delta = 40,
    # ...)$power says 0.999999902134 because R's pt is inaccurate for ncp > 37.62 (?pt).
    found = power.sample_size_paired_t(40, 1, power=0.8)
    assert (found.n, found.n_required) == (2.0, 2)
    assert found.power_at_n_required == pytest.approx(0.99999093348472, abs=1e-12)
    assert "at least 2" in found.note


def test_huge_noncentrality_does_not_give_nan():
    # SciPy's noncentral t has NaN far tails; the power is then 1 to double precision
    assert power.power_for_n_paired_t(0.5, 1, 5000) == 1.0
    assert power.power_for_n_paired_t(10, 1, 11) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"effect": 0, "sd_difference": 1}, "must not be 0"),
        ({"effect": math.nan, "sd_difference": 1}, "effect must be a finite"),
        ({"effect": 0.3, "sd_difference": 0}, "sd_difference must be > 0"),
        ({"effect": 0.3, "sd_difference": 1, "power": 0.04}, "power must be above alpha"),
        ({"effect": 0.3, "sd_difference": 1, "power": 1.0}, "power must be above alpha"),
        ({"effect": 0.3, "sd_difference": 1, "alpha": 0}, "alpha must be between"),
        ({"effect": 1e-5, "sd_difference": 1}, "more than 10,000,000 pairs"),
    ],
)
def test_bad_sample_size_inputs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        power.sample_size_paired_t(**kwargs)


def test_power_for_n_rejects_fewer_than_two():
    with pytest.raises(ValueError, match="n must be a number >= 2"):
        power.power_for_n_paired_t(0.5, 1, 1.5)


def test_analytic_curve_rises():
    curve = power.analytic_curve(0.4, 1, [40, 10, 20, 20, 80])
    assert curve["n_participants"].tolist() == [10, 20, 40, 80]
    assert np.all(np.diff(curve["power"]) > 0)


# ----------------------------------------------------------------------------- simulation

NO_ITEMS = VarianceComponents(participant=0.3, identity=0.0, residual=0.9, participant_slope=0.05)


def test_simulated_paired_t_finds_the_analytic_n():
    # Without identity variance the simulated paired t has the noncentral-t power, so the
    # search finds the analytic n within simulation error: sd(d) = sqrt(0.05 + 0.9 (2/12)).
    sd = math.sqrt(0.05 + 0.9 * (1 / 12 + 1 / 12))
    exact = power.sample_size_paired_t(-0.25, sd, power=0.8).n_required
    found = power.sample_size_simulated(
        -0.25,
        NO_ITEMS,
        identities=[24],
        participants=[10, 20, 40, 80],
        test="paired_t",
        n_sims=20_000,
        refine=6,
    )
    row = found.required.iloc[0]
    assert abs(row["n_required"] - exact) <= 1
    assert found.curve["n_sims"].eq(20_000).all()
    assert found.studies_simulated == 20_000 * len(found.curve)


def test_simulated_search_is_seeded_and_points_do_not_depend_on_the_grid():
    kwargs = {"identities": [16], "test": "paired_t", "n_sims": 4000, "refine": 0}
    one = power.sample_size_simulated(-0.3, participants=[10, 30, 60], seed=7, **kwargs)
    again = power.sample_size_simulated(-0.3, participants=[10, 30, 60], seed=7, **kwargs)
    other = power.sample_size_simulated(-0.3, participants=[30], seed=7, **kwargs)
    reseeded = power.sample_size_simulated(-0.3, participants=[30], seed=8, **kwargs)
    assert one.curve.equals(again.curve)
    at_30 = one.curve.set_index("n_participants").loc[30, "power"]
    assert other.curve["power"].iloc[0] == at_30
    assert reseeded.curve["power"].iloc[0] != at_30


def test_simulated_power_rises_with_participants_and_identities():
    found = power.sample_size_simulated(
        -0.2,
        identities=[8, 40],
        participants=[6, 20, 60, 180],
        test="paired_t",
        n_sims=4000,
        refine=0,
    )
    for _, curve in found.curve.groupby("n_identities"):
        assert np.all(np.diff(curve["power"].to_numpy()) > 0)
    by = found.curve.set_index(["n_identities", "n_participants"])["power"]
    assert by[(40, 20)] > by[(8, 20)]


@pytest.mark.slow
def test_lmm_search_is_reproducible_and_bounded():
    kwargs = {
        "identities": [12],
        "participants": [8, 40],
        "test": "lmm",
        "n_sims": 15,
        "refine": 1,
        "seed": 3,
    }
    components = VarianceComponents(0.3, 0.1, 0.9)
    one = power.sample_size_simulated(-0.5, components, **kwargs)
    again = power.sample_size_simulated(-0.5, components, **kwargs)
    assert one.curve.equals(again.curve)
    assert one.test == "lmm"
    assert len(one.curve) in (2, 3)  # the grid and at most one refinement
    curve = one.curve.set_index("n_participants")["power"]
    assert curve[40] > curve[8]
    # a point's 95 % Clopper-Pearson interval holds its estimate
    assert (one.curve["ci_low"] <= one.curve["power"]).all()
    assert (one.curve["power"] <= one.curve["ci_high"]).all()


@pytest.mark.slow
def test_glmm_search_runs_on_binary_outcomes():
    found = power.sample_size_simulated(
        1.0,
        VarianceComponents(0.3, 0.2, 1.0),
        identities=[10],
        participants=[6, 30],
        test="glmm",
        n_sims=10,
        refine=0,
        seed=5,
    )
    curve = found.curve.set_index("n_participants")["power"]
    assert curve[30] >= curve[6]
    assert found.curve["n_sims"].eq(10).all()


def test_simulation_budget_is_enforced_before_simulating():
    with pytest.raises(ValueError, match="more than the limit of 5,000"):
        power.sample_size_simulated(-0.3, participants=list(range(10, 110, 10)), n_sims=500)


def test_time_bound_leaves_points_out_and_says_so():
    found = power.sample_size_simulated(
        -0.3,
        identities=[12],
        participants=[10, 20, 40],
        test="paired_t",
        n_sims=200,
        max_seconds=0.0,  # the first point starts, then the clock has run out
    )
    assert not found.complete
    assert "not simulated" in found.notes[-1]


def test_target_not_reached_is_reported():
    found = power.sample_size_simulated(
        -0.05, identities=[8], participants=[4, 8], test="paired_t", n_sims=1000, refine=0
    )
    assert found.required.iloc[0]["n_required"] is None or math.isnan(
        found.required.iloc[0]["n_required"]
    )
    assert "not reached" in found.notes[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test": "anova"}, "test must be one of"),
        ({"target_power": 0.01}, "target_power must be above alpha"),
        ({"participants": [1, 10]}, "n_participants must be an integer >= 2"),
        ({"identities": []}, "at least one number"),
        ({"n_sims": 0}, "n_sims must be an integer >= 1"),
        ({"refine": -1}, "refine must be an integer >= 0"),
    ],
)
def test_bad_simulation_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        power.sample_size_simulated(-0.3, **kwargs)


# ----------------------------------------------------------------------------- pilot and CLI


def _trust_rows():
    from analysis.exclusions import included_trials, screen_participants
    from analysis.io import load

    if not SIM_SMALL.is_dir():
        raise FileNotFoundError(f"reference data missing: {SIM_SMALL}")
    trials, participants = load(SIM_SMALL)
    rows = included_trials(trials, screen_participants(trials, participants))
    return rows[rows["measure"] == "trust"]


def test_differences_from_pilot_match_r():
    # R, on the included trust rows of sim-small (participant, condition, value):
    #   m <- tapply(d$value, list(d$participant, d$condition), mean)
    #   x <- na.omit(m[, "ai"] - m[, "real"]); c(mean(x), sd(x), length(x))
    #   -0.376106194690 0.497278686248 113
    mean, sd, n = power.differences_from_pilot(_trust_rows())
    assert mean == pytest.approx(-0.376106194690, abs=1e-10)
    assert sd == pytest.approx(0.497278686248, abs=1e-10)
    assert n == 113


def test_differences_from_pilot_needs_both_conditions():
    rows = _trust_rows()
    with pytest.raises(ValueError, match="both conditions"):
        power.differences_from_pilot(rows[rows["condition"] == "ai"])
    with pytest.raises(ValueError, match="at least 3 needed"):
        power.differences_from_pilot(rows[rows["participant"].isin(rows["participant"].iloc[:1])])


def test_cli_sample_size_prints_n_and_curve(capsys):
    assert (
        cli.main(["sample-size", "--effect", "-0.3", "--sd", "0.9", "--target-power", "0.9"]) == 0
    )
    out = capsys.readouterr().out
    # power.t.test(delta = -0.3, sd = 0.9, power = 0.9, type = "paired", strict = TRUE)$n
    # = 96.508013984164
    assert "n = 96.5080 pairs" in out and "recruit 97 included participants" in out
    curve = [line.split() for line in out.splitlines()[3:]]
    numbers = [int(row[0]) for row in curve]
    powers = [float(row[1]) for row in curve]
    assert 97 in numbers and numbers == sorted(numbers)
    assert powers == sorted(powers)


def test_cli_sample_size_dz_and_simulation(capsys):
    status = cli.main(
        [
            "sample-size",
            "--dz",
            "0.5",
            "--simulate",
            "paired_t",
            "--participants",
            "10",
            "40",
            "--identities",
            "24",
            "--sims",
            "500",
            "--refine",
            "1",
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "n = 33.3671 pairs" in out  # power.t.test(delta = 0.5, sd = 1, power = 0.8, ...)$n
    assert "paired_t by simulation" in out and "95% MC interval" in out
    assert "24 identities:" in out


def test_cli_sample_size_with_pilot(capsys):
    status = cli.main(["sample-size", "--pilot", str(SIM_SMALL), "--target-power", "0.8"])
    assert status == 0
    out = capsys.readouterr().out
    assert "113 participants, mean difference -0.376, sd 0.497" in out
    found = power.sample_size_paired_t(-0.376106194690, 0.497278686248)
    assert f"recruit {found.n_required} included participants" in out


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["sample-size", "--effect", "0.3"], 1, "give --sd"),
        (["sample-size", "--sd", "1"], 1, "give --effect"),
        (["sample-size", "--dz", "0.3", "--effect", "1"], 1, "not both"),
        (["sample-size", "--effect", "0", "--sd", "1"], 1, "must not be 0"),
        (
            ["sample-size", "--effect", "0.3", "--sd", "1", "--target-power", "0.01"],
            1,
            "above alpha",
        ),
        (["sample-size", "--effect", "0.3", "--sd", "0"], 2, "'0' must be > 0.0"),
        (["sample-size", "--effect", "x", "--sd", "1"], 2, "'x' is not a number"),
        (["sample-size", "--dz", "1", "--simulate", "anova"], 2, "invalid choice"),
        (
            ["sample-size", "--effect", "-0.3", "--simulate", "lmm", "--sims", "5000"],
            1,
            "more than the limit",
        ),
    ],
)
def test_cli_sample_size_errors(argv, status, message, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as stop:
        code = stop.code
    assert code == status
    assert message in capsys.readouterr().err


def test_components_for_sd_give_the_participant_difference_that_sd():
    # without identity variance, the simulated paired t's participant differences have the
    # SD the components were scaled to
    base = VarianceComponents(participant=0.3, identity=0.0, residual=1.0, participant_slope=0.04)
    scaled = power.components_for_sd(0.8, 12, base)
    assert scaled.residual == pytest.approx((0.64 - 0.04) / (2 / 6))
    d = power.simulate_participant_differences(2000, 12, 0.0, scaled, 1, rng=1)
    assert d.std() == pytest.approx(0.8, rel=0.05)
    with pytest.raises(ValueError, match="must be above 0.2"):
        power.components_for_sd(0.1, 12, base)


def test_grid_order_is_kept_for_the_time_limit():
    found = power.sample_size_simulated(
        -0.3,
        identities=[12],
        participants=[40, 10, 20],
        test="paired_t",
        n_sims=200,
        refine=0,
        max_seconds=0.0,
    )
    assert found.curve["n_participants"].tolist() == [40]  # the first given, not the smallest


def test_a_singular_pilot_is_said_not_hidden(tmp_path, capsys):
    """A pilot in which identities do not differ: its identity variance is 0, and the
    command prints the pilot model's note instead of simulating with it silently."""
    from tests.analysis.helpers import make_participants, make_trials

    people = tuple(f"p{k:02d}" for k in range(12))
    faces = tuple("ABCDEF")

    def rating(p, i, c):  # participants differ, identities do not
        k = int(p[1:])
        drop = 0 if c == "ai" else 1 + (k % 3 == 0)  # each participant's own difference
        return 1 + k % 4 + drop + (k + faces.index(i)) % 2

    trials = make_trials(participants=people, identities=faces, rating=rating)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    make_participants(trials).to_csv(tmp_path / "participants.csv", index=False)
    argv = ["sample-size", "--pilot", str(tmp_path), "--simulate", "paired_t", "--sims", "20"]
    assert cli.main([*argv, "--participants", "10", "20"]) == 0
    out = capsys.readouterr().out
    assert (
        f"pilot model {tmp_path} (trust): singular fit: the (Intercept) variance for identity"
        in (out)
    )
