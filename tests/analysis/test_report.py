"""The full report: results.json as the contract says, R's numbers end to end, bad inputs."""

import json
import math
import sys

import numpy as np
import pytest

from analysis import mixed
from analysis.corrections import adjust
from analysis.io import load
from analysis.report import analyse, write_report
from tests.analysis.helpers import make_participants, make_trials

CONTRACT_TEST_KEYS = {
    "outcome",
    "method",
    "level",
    "estimate",
    "ci_low",
    "ci_high",
    "statistic",
    "df",
    "p_value",
    "p_adjusted",
    "correction",
    "effect_size",
    "effect_size_name",
    "n",
    "preregistered",
}


def strict_json(text: str) -> dict:
    """Parse JSON, refusing NaN and Infinity."""

    def refuse(name):
        raise AssertionError(f"{name} in results.json")

    return json.loads(text, parse_constant=refuse)


def no_nan(value) -> bool:
    """True when no float anywhere in a nested structure is NaN or infinite."""
    if isinstance(value, dict):
        return all(no_nan(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nan(v) for v in value)
    return not (isinstance(value, float) and not math.isfinite(value))


def find(results: dict, outcome: str, method: str, level: str = "participant") -> dict:
    """The one test of an outcome by method and level."""
    found = [
        t
        for t in results["tests"]
        if (t["outcome"], t["method"], t["level"]) == (outcome, method, level)
    ]
    assert len(found) == 1, (outcome, method, level, len(found))
    return found[0]


def test_results_follow_the_contract(sim_report, sim, reference, tmp_path):
    results = sim_report.results
    assert results["study"] == "sim"
    assert results["n_participants"] == reference["n_participants"] == 113
    assert results["n_identities"] == 24
    assert results["n_excluded"] == 7
    assert sorted(e["participant"] for e in results["exclusions"]) == reference["excluded"]
    assert all(e["reason"] in ("attention", "incomplete") for e in results["exclusions"])
    assert results["data_sha256"] == sim.data_sha256
    for test in results["tests"]:
        assert CONTRACT_TEST_KEYS <= set(test), test
        assert test["correction"] == "holm" and test["family"]
        assert test["n_excluded"] == 7
    for row in results["descriptives"]:
        assert {"outcome", "condition", "mean", "sd", "n", "level"} <= set(row)
    assert {f["outcome"] for f in results["findings"]} == {
        "trust",
        "professional",
        "recognition_accuracy",
        "d_prime",
        "criterion",
        "choice_real",
    }
    for f in results["findings"]:
        main = results["tests"][f["supported_by"][0]]
        assert main["outcome"] == f["outcome"] and main["family"] == "primary"
        assert f["claim"].startswith("Exploratory: ")  # no plan: nothing is preregistered
    path = write_report(sim_report, tmp_path)
    parsed = strict_json(path.read_text(encoding="utf-8"))
    assert parsed == results and no_nan(parsed)


@pytest.mark.parametrize(
    "outcome, key",
    [
        ("trust", "trust_paired"),
        ("recognition_accuracy", "accuracy_paired"),
        ("d_prime", "dprime_paired"),
        ("criterion", "criterion_paired"),
    ],
)
def test_report_reproduces_r(sim_report, reference, outcome, key):
    # R: t.test(ai, real, paired = TRUE) and
    #    wilcox.test(ai, real, paired = TRUE, exact = FALSE, correct = FALSE)
    expected = reference[key]
    t = find(sim_report.results, outcome, "paired_t")
    for ours, theirs in [
        ("estimate", "estimate"),
        ("ci_low", "ci_low"),
        ("ci_high", "ci_high"),
        ("statistic", "t"),
        ("p_value", "p"),
        ("effect_size", "d_z"),
    ]:
        assert t[ours] == pytest.approx(expected[theirs], rel=1e-6), ours
    assert t["df"] == expected["df"] and t["n"] == expected["n"]
    w = find(sim_report.results, outcome, "wilcoxon")
    assert w["statistic"] == expected["wilcoxon_V"]
    assert w["p_value"] == pytest.approx(expected["wilcoxon_p"], rel=1e-6)


def test_report_reproduces_r_choice(sim_report, reference):
    # R: t.test(share, mu = 0.5) on each participant's share of choices for the real headshot
    t = find(sim_report.results, "choice_real", "one_sample_t")
    expected = reference["choice_real"]
    assert t["mean"] == pytest.approx(expected["mean"], rel=1e-6)
    assert t["statistic"] == pytest.approx(expected["t"], rel=1e-6)
    assert t["p_value"] == pytest.approx(expected["p"], rel=1e-6)
    assert t["ci_low"] + 0.5 == pytest.approx(expected["ci_low"], rel=1e-6)
    assert t["estimate_label"] == "mean minus 0.5"


def test_descriptives_match_r_means(sim_report, reference):
    # R: mean(m[, "real"]) of participant means (reference.R, trust_means / accuracy_means)
    rows = {
        (d["outcome"], d["level"], d["condition"]): d for d in sim_report.results["descriptives"]
    }
    for outcome, key in [
        ("trust", "trust_means"),
        ("recognition_accuracy", "accuracy_means"),
        ("d_prime", "dprime_means"),
    ]:
        for condition in ("real", "ai"):
            row = rows[(outcome, "participant", condition)]
            assert row["mean"] == pytest.approx(reference[key][condition], rel=1e-9)
            assert row["n"] == 113
    assert rows[("choice_real", "participant", None)]["n"] == 113
    assert rows[("trust", "identity", "ai")]["n"] == 24


def test_holm_within_each_family(sim_report):
    tests = sim_report.results["tests"]
    families = {t["family"] for t in tests}
    assert {
        "primary",
        "participant_wilcoxon",
        "identity_t",
        "identity_wilcoxon",
        "pooled_binomial",
    } <= families
    for family in families:
        members = [t for t in tests if t["family"] == family]
        expected = adjust([t["p_value"] for t in members], "holm")
        assert [t["p_adjusted"] for t in members] == pytest.approx(list(expected), rel=1e-12)
    described = {f["family"]: f["n_tests"] for f in sim_report.results["families"]}
    assert described["primary"] == 6


def test_plan_marks_preregistered_tests_and_sets_alpha(sim):
    plan = {
        "primary_outcomes": ["trust"],
        "alpha": 0.01,
        "correction": "bh",
        "hypotheses": [
            {
                "outcome": "recognition_accuracy",
                "direction": "less",
                "text": "AI headshots are recognised less",
            }
        ],
        "equivalence_bounds": {"criterion": [-0.5, 0.5]},
    }
    results = analyse(sim, plan=plan, mixed_models=False).results
    assert results["alpha"] == 0.01 and results["correction"] == "bh"
    assert results["plan"]["primary_outcomes"] == ["trust"]
    prereg = {
        (t["outcome"], t["method"], t["level"]) for t in results["tests"] if t["preregistered"]
    }
    assert prereg == {
        ("trust", "paired_t", "participant"),
        ("recognition_accuracy", "paired_t", "participant"),
    }
    assert find(results, "d_prime", "paired_t")["family"] == "secondary"
    assert find(results, "trust", "paired_t")["family"] == "primary"
    assert all(t["correction"] == "bh" for t in results["tests"])
    claims = {f["outcome"]: f for f in results["findings"]}
    assert claims["recognition_accuracy"]["hypothesis_supported"] is True
    assert claims["recognition_accuracy"]["claim"].startswith("Preregistered: ")
    tost = find(results, "criterion", "tost")
    assert tost["family"] == "equivalence" and tost["bound_high"] == 0.5
    assert claims["criterion"]["supported_by"] == [
        results["tests"].index(find(results, "criterion", "paired_t")),
        results["tests"].index(tost),
    ]


def test_invalid_plan_is_refused(sim):
    with pytest.raises(ValueError, match="correction"):
        analyse(sim, plan={"correction": "bonferroni"}, mixed_models=False)


def test_csv_tables(sim_report, tmp_path):
    write_report(sim_report, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "results.json",
        "tests.csv",
        "descriptives.csv",
        "exclusions.csv",
        "findings.csv",
        "participant_scores.csv",
        "identity_scores.csv",
        "sdt_match.csv",
    } <= names
    import pandas as pd

    tests = pd.read_csv(tmp_path / "tests.csv")
    assert len(tests) == len(sim_report.results["tests"])
    assert {"outcome", "method", "family", "p_adjusted", "n_excluded"} <= set(tests.columns)
    scores = pd.read_csv(tmp_path / "participant_scores.csv")
    assert set(scores.columns) == {"participant", "outcome", "condition", "value", "n_trials"}
    assert len(pd.read_csv(tmp_path / "exclusions.csv")) == 120


def small_report(trials, participants=None, **kwargs):
    """The report of a small synthetic study (no mixed models unless asked)."""
    kwargs.setdefault("mixed_models", False)
    report = analyse(load(trials, participants), **kwargs)
    assert no_nan(report.results)
    json.dumps(report.results, allow_nan=False)
    return report.results


def test_everyone_excluded_is_a_clear_error():
    trials = make_trials()
    parts = make_participants(trials, {p: "partial" for p in ("p1", "p2", "p3")})
    with pytest.raises(
        ValueError,
        match=r"no data left to analyse: 3 of 3 participant\(s\) "
        r"excluded \(incomplete: 3\)",
    ):
        analyse(load(trials, parts), mixed_models=False)


def test_one_participant_gives_warnings_not_nan():
    results = small_report(make_trials(participants=("p1",)))
    assert results["n_participants"] == 1
    assert not any(t["level"] == "participant" for t in results["tests"])
    assert any("only one participant" in w for w in results["warnings"])
    assert any(
        "trust: no participant-level tests: 1 participant(s) have both conditions" in w
        for w in results["warnings"]
    )
    desc = [d for d in results["descriptives"] if d["level"] == "participant"]
    assert all(d["sd"] is None for d in desc)
    assert results["findings"] == [
        {
            "claim": "Exploratory (inconclusive): trust could not be tested (no participant-level "
            "tests: 1 participant(s) have both conditions (ai: 1, real: 1); a paired test "
            "needs at least 2).",
            "verdict": "inconclusive",
            "outcome": "trust",
            "preregistered": False,
            "hypothesis_supported": None,
            "supported_by": [],
        }
    ]


def test_a_condition_without_trials():
    results = small_report(make_trials(rating=lambda p, i, c: 4 if c == "real" else None))
    assert {d["condition"] for d in results["descriptives"]} == {"real"}
    assert not [t for t in results["tests"] if t["outcome"] == "trust"]
    assert any(
        "trust: no participant-level tests: 0 participant(s) have both conditions "
        "(ai: 0, real: 3)" in w
        for w in results["warnings"]
    )


def test_all_hits_are_corrected_and_constant_differences_warned():
    trials = make_trials(
        participants=("p1", "p2", "p3", "p4"), same=lambda p, i, c, is_match: is_match
    )
    results = small_report(trials)
    sdt = [d for d in results["descriptives"] if d["outcome"] == "d_prime"]
    assert sdt and all(math.isfinite(d["mean"]) for d in sdt)
    warnings = " | ".join(results["warnings"])
    assert "hit or false-alarm rate of 0 or 1 (e.g. all hits)" in warnings
    assert (
        "recognition_accuracy: paired t-test at the participant level not computed: "
        "paired t-test: the data are essentially constant" in warnings
    )
    assert (
        "recognition_accuracy: Wilcoxon test at the participant level not computed: "
        "Wilcoxon test: every difference is zero" in warnings
    )


def test_detect_block():
    rng = np.random.default_rng(3)
    answers = {
        (p, i, c): ("ai" if rng.random() < (0.7 if c == "ai" else 0.4) else "real")
        for p in ("p1", "p2", "p3", "p4", "p5")
        for i in "ABCD"
        for c in ("real", "ai")
    }
    trials = make_trials(
        participants=("p1", "p2", "p3", "p4", "p5"), detect=lambda p, i, c: answers[(p, i, c)]
    )
    results = small_report(trials, plan={"equivalence_bounds": {"detection_accuracy": [-0.1, 0.1]}})
    accuracy = find(results, "detection_accuracy", "one_sample_t")
    assert accuracy["reference_value"] == 0.5 and accuracy["family"] == "primary"
    assert accuracy["n"] == 5  # one score per participant, over AI and real headshots
    correct_by_participant = [
        np.mean([answers[(p, i, c)] == c for i in "ABCD" for c in ("real", "ai")])
        for p in ("p1", "p2", "p3", "p4", "p5")
    ]
    assert accuracy["mean"] == pytest.approx(np.mean(correct_by_participant))
    shown = {
        (d["level"], d["condition"]): d["n"]
        for d in results["descriptives"]
        if d["outcome"] == "detection_accuracy"
    }
    assert shown == {
        ("participant", None): 5,
        ("participant", "ai"): 5,
        ("participant", "real"): 5,
        ("identity", None): 4,
        ("identity", "ai"): 4,
        ("identity", "real"): 4,
    }
    correct = sum(answers[k] == k[2] for k in answers)
    pooled = find(results, "detection_accuracy", "binomial", "trial")
    assert pooled["statistic"] == correct and pooled["n"] == 40
    assert find(results, "detection_d_prime", "one_sample_t")["reference_value"] == 0.0
    assert find(results, "detection_accuracy", "tost")["bound_low"] == -0.1
    per_participant = results["detection_by_participant"]
    assert [r["participant"] for r in per_participant] == ["p1", "p2", "p3", "p4", "p5"]
    assert all(r["n"] == 8 for r in per_participant)
    assert "detection_accuracy" in {f["outcome"] for f in results["findings"]}


def test_straightliners_are_flagged(sim):
    trials = make_trials(rating=lambda p, i, c: 4 if p == "p1" else (5 if c == "real" else 3))
    results = small_report(trials)
    assert results["flags"] == [{"participant": "p1", "flag": "straightlining", "excluded": False}]
    strict = small_report(trials, plan={"exclusions": {"straightlining": True}})
    assert strict["exclusions"] == [
        {
            "participant": "p1",
            "reason": "straightlining",
            "detail": "same rating on every rate trial",
        }
    ]
    assert strict["n_participants"] == 2


def test_no_participants_table_is_warned():
    results = small_report(make_trials())
    assert any("'incomplete' exclusion rule was not applied" in w for w in results["warnings"])


def test_preregistered_outcome_without_data_is_warned_and_stays_in_the_findings():
    plan = {
        "primary_outcomes": ["recognition_accuracy"],
        "hypotheses": [
            {
                "outcome": "recognition_accuracy",
                "direction": "less",
                "text": "AI headshots are recognised less",
            }
        ],
    }
    results = small_report(make_trials(), plan=plan)
    assert (
        "preregistered outcome 'recognition_accuracy' has no data in this study"
        in results["warnings"]
    )
    finding = next(f for f in results["findings"] if f["outcome"] == "recognition_accuracy")
    assert finding["claim"] == (
        "Preregistered (inconclusive): recognition accuracy could not be tested (no data in this "
        "study). The preregistered hypothesis (AI headshots are recognised less) was not "
        "supported."
    )
    assert finding["hypothesis_supported"] is False and finding["supported_by"] == []


def varied(p, i, c):
    """Trust ratings whose ai-minus-real differences vary between participants."""
    return 4 if c == "real" else 3 + (p == "p1") - (p == "p2")


def test_failing_mixed_model_becomes_a_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("matrix is singular")

    monkeypatch.setattr(mixed, "fit_lmm", broken)
    results = small_report(make_trials(rating=varied), mixed_models=True)
    assert "trust: lmm not fitted: LinAlgError: matrix is singular" in results["warnings"]
    assert find(results, "trust", "paired_t")["p_value"] is not None


def test_absent_mixed_module_becomes_a_warning(monkeypatch):
    import analysis

    monkeypatch.setitem(sys.modules, "analysis.mixed", None)
    monkeypatch.delattr(analysis, "mixed")
    results = small_report(make_trials(), mixed_models=True)
    assert any(
        w.startswith("trust: mixed model not fitted: analysis.mixed is not available")
        for w in results["warnings"]
    )


@pytest.mark.slow
def test_mixed_models_in_the_report(sim, reference):
    results = analyse(sim).results
    lmm = find(results, "trust", "lmm", "trial")
    assert lmm["family"] == "mixed" and lmm["n"] == 2712 and lmm["statistic_name"] == "t"
    # R (lme4, intercepts only) finds -0.3833; the report may add random slopes, so the
    # estimate agrees to the second decimal rather than to 1e-3
    assert lmm["estimate"] == pytest.approx(reference["trust_lmm"]["estimate"], abs=0.01)
    assert lmm["effect_size_name"] == "d_westfall"
    assert lmm["formula"].startswith("value ~ condition")
    glmm = find(results, "recognition_accuracy", "glmm", "trial")
    assert glmm["df"] is None and glmm["effect_size"] == pytest.approx(math.exp(glmm["estimate"]))
    assert glmm["estimate"] == pytest.approx(reference["accuracy_glmm"]["estimate"], abs=0.01)
    groups = {(r["outcome"], r["group"]) for r in results["random_effects"]}
    assert {
        ("trust", "participant"),
        ("trust", "identity"),
        ("trust", "residual"),
        ("recognition_accuracy", "identity"),
    } <= groups
    mixed_tests = [t for t in results["tests"] if t["family"] == "mixed"]
    assert {t["outcome"] for t in mixed_tests} == {"trust", "professional", "recognition_accuracy"}
    assert no_nan(results)


def test_interval_that_cannot_be_computed_is_null_with_a_warning():
    results = small_report(make_trials(rating=varied))
    wilcoxon = find(results, "trust", "wilcoxon", "identity")
    assert wilcoxon["ci_low"] is None and wilcoxon["ci_high"] is None
    assert (
        "trust: wilcoxon at the identity level: ci_low is not available (too few "
        "differences for the interval); written as null"
    ) in results["warnings"]


def test_wilcoxon_tests_can_use_r_default_continuity_correction():
    """continuity_correction=True runs every Wilcoxon test as wilcox.test(correct = TRUE) and
    records it; the default keeps correct = FALSE; analysis.R repeats the same choice."""
    from scipy import stats as sps

    from analysis.rscript import r_script

    people = [f"p{i}" for i in range(12)]
    trials = make_trials(
        people,
        rating=lambda p, i, c: 4 + int(p[1:]) % 3 - (c == "ai") * ((int(p[1:]) + ord(i)) % 3),
    )
    participants = make_participants(trials)
    plain = analyse(trials, participants, mixed_models=False).results
    corrected = analyse(
        trials, participants, mixed_models=False, continuity_correction=True
    ).results
    w_plain, w_corrected = (find(r, "trust", "wilcoxon") for r in (plain, corrected))
    assert w_plain["continuity_correction"] is False
    assert w_corrected["continuity_correction"] is True
    assert w_corrected["statistic"] == w_plain["statistic"]
    scores = {}
    for row in trials[trials["measure"] == "trust"].itertuples():
        scores.setdefault(row.participant, {}).setdefault(row.condition, []).append(
            float(row.value)
        )
    ai = [np.mean(scores[p]["ai"]) for p in people]
    real = [np.mean(scores[p]["real"]) for p in people]
    expected = sps.wilcoxon(ai, real, method="approx", correction=True, zero_method="wilcox")
    assert w_corrected["p_value"] == pytest.approx(expected.pvalue, rel=1e-10)
    assert w_corrected["p_value"] > w_plain["p_value"]
    assert "correct = TRUE" in r_script(corrected)
    assert "scores, correct = TRUE)" not in r_script(plain)
