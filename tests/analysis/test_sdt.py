"""Signal detection: R's qnorm, the log-linear correction, per-unit tables."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.exclusions import included_trials, screen_participants
from analysis.io import load
from analysis.sdt import detect_sdt, dprime, match_sdt, qnorm, sdt_table
from tests.analysis.helpers import make_trials


def test_qnorm_known_values():
    # R: qnorm(0.975) = 1.959963984540054; qnorm(0.5) = 0; qnorm(1e-10) = -6.361340902404056
    assert qnorm(0.975) == pytest.approx(1.959963984540054, rel=1e-15)
    assert qnorm(0.5) == 0.0
    assert qnorm(1e-10) == pytest.approx(-6.361340902404056, rel=1e-14)
    assert qnorm([0.0, 1.0]).tolist() == [-np.inf, np.inf]


def test_qnorm_agrees_with_scipy_everywhere():
    p = np.concatenate([np.linspace(1e-12, 1 - 1e-12, 20001), [1e-300, 1e-20, 0.075, 0.925]])
    assert np.allclose(qnorm(p), sps.norm.ppf(p), rtol=1e-14, atol=1e-14)


def test_qnorm_is_odd():
    # AS 241 is symmetric around 0.5 by construction: z(p) = -z(1 - p) when 1 - p is exact
    p = np.array([0.0625, 0.125, 0.25, 0.375, 0.4375])
    assert np.array_equal(qnorm(p), -qnorm(1 - p))


def test_dprime_formula():
    # 8 of 10 hits, 3 of 10 false alarms: H = 8.5/11, F = 3.5/11
    row = dprime([8], [10], [3], [10]).iloc[0]
    h, f = 8.5 / 11, 3.5 / 11
    assert row["hit_rate"] == 0.8 and row["fa_rate"] == 0.3
    assert row["d_prime"] == pytest.approx(sps.norm.ppf(h) - sps.norm.ppf(f), rel=1e-14)
    assert row["criterion"] == pytest.approx(-(sps.norm.ppf(h) + sps.norm.ppf(f)) / 2, rel=1e-14)


def test_all_hits_and_no_false_alarms_stay_finite():
    row = dprime([12], [12], [0], [12]).iloc[0]
    assert row["hit_rate"] == 1.0 and row["fa_rate"] == 0.0
    assert row["hit_rate_corrected"] == pytest.approx(12.5 / 13)
    assert np.isfinite(row["d_prime"]) and row["d_prime"] == pytest.approx(
        2 * sps.norm.ppf(12.5 / 13)
    )
    assert row["criterion"] == pytest.approx(0.0, abs=1e-15)


def test_no_signal_trials_leave_d_prime_undefined():
    row = dprime([0], [0], [2], [5]).iloc[0]
    assert np.isnan(row["hit_rate"]) and np.isnan(row["d_prime"]) and np.isnan(row["criterion"])


def test_dprime_rejects_impossible_counts():
    with pytest.raises(ValueError, match="hits <= n_signal"):
        dprime([5], [4], [0], [4])


def test_sdt_table_counts():
    data = pd.DataFrame(
        {
            "participant": ["a"] * 6 + ["b"] * 2,
            "signal": [1, 1, 1, 0, 0, 0, 1, 0],
            "yes": [1, 1, 0, 1, 0, 0, 1, 1],
        }
    )
    table = sdt_table(data, "yes", "signal", within=None)
    a = table.set_index("participant").loc["a"]
    assert (a["n_signal"], a["hits"], a["n_noise"], a["false_alarms"]) == (3, 2, 3, 1)


def test_match_sdt_means_match_r(sim, reference):
    # R (reference.R): per participant and condition, H = (hits + .5) / (signal + 1),
    # dprime = qnorm(H) - qnorm(F); mean over participants of each condition
    kept = included_trials(sim.trials, screen_participants(sim.trials, sim.participants))
    table = match_sdt(kept)
    means = table.groupby("condition")["d_prime"].mean()
    assert means["real"] == pytest.approx(reference["dprime_means"]["real"], rel=1e-9)
    assert means["ai"] == pytest.approx(reference["dprime_means"]["ai"], rel=1e-9)
    assert len(table) == 2 * 113


def test_detect_sdt_uses_ai_as_signal():
    # p1 answers "ai" to every headshot: hit rate 1, false-alarm rate 1 -> d' = 0
    # p2 answers correctly: H = 4.5/5, F = 0.5/5
    trials = make_trials(
        participants=("p1", "p2"),
        rating=None,
        attention=False,
        detect=lambda p, i, c: "ai" if p == "p1" else c,
    )
    table = detect_sdt(load(trials).trials).set_index("participant")
    assert table.loc["p1", "d_prime"] == pytest.approx(0.0, abs=1e-15)
    assert table.loc["p2", "d_prime"] == pytest.approx(2 * sps.norm.ppf(0.9))
    assert table.loc["p2", "n_signal"] == 4 and table.loc["p2", "hits"] == 4
