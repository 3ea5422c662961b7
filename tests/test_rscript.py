"""The generated R script runs the models and tests that results.json names (checked by text)."""

from __future__ import annotations

import copy
import random
import re

import pytest

from analysis.report import analyse
from analysis.rscript import r_script
from analysis.vocabulary import FIXED_OUTCOMES
from tests.analysis.conftest import make_participants, make_trials

pytestmark = pytest.mark.slow

PLAN = {
    "equivalence_bounds": {"trust": [-0.5, 0.5], "choice_real": [-0.1, 0.1]},
    "exclusions": {"straightlining": True, "min_median_rt_ms": None},
    "correction": "bh",
}


@pytest.fixture(scope="module")
def results() -> dict:
    """results.json of a small study with every task, mixed models and a plan with TOSTs."""
    rng = random.Random(1)
    trials = make_trials(
        participants=[f"p{i}" for i in range(8)],
        identities=("A", "B", "C", "D", "E", "F"),
        rating=lambda p, i, c: rng.randint(2, 5) + (c == "real"),
        same=lambda p, i, c, m: m if rng.random() < 0.8 else 1 - m,
        choice=lambda p, i: "real" if rng.random() < 0.6 else "ai",
        detect=lambda p, i, c: c if rng.random() < 0.7 else ("ai" if c == "real" else "real"),
    )
    # p7 rates everything 3: a straight-liner, excluded by the plan's rule.
    trials.loc[(trials["participant"] == "p7") & (trials["measure"] == "trust"), "value"] = "3"
    return analyse(trials, make_participants(trials), plan=PLAN).results


def check_balanced(script: str) -> None:
    """Fail unless every string is closed and (), [] and {} nest, outside comments and strings."""
    stack, i, pairs = [], 0, {")": "(", "]": "[", "}": "{"}
    while i < len(script):
        ch = script[i]
        if ch == "#":
            i = script.index("\n", i) if "\n" in script[i:] else len(script)
            continue
        if ch in "\"'":
            end = i + 1
            while script[end] != ch:
                end += 2 if script[end] == "\\" else 1
                assert end < len(script), f"string opened at {i} is never closed"
            i = end + 1
            continue
        if ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}":
            assert stack and stack[-1][0] == pairs[ch], f"unbalanced {ch!r} at {i}"
            stack.pop()
        i += 1
    assert not stack, f"unclosed {stack[-1]}"


def test_script_fits_the_mixed_models_named_in_results(results):
    """lmer with REML and glmer with family = binomial, with results.json's formulas verbatim."""
    script = r_script(results)
    mixed = [t for t in results["tests"] if t["method"] in ("lmm", "glmm")]
    assert {t["outcome"] for t in mixed} == {"trust", "recognition_accuracy", "detection_accuracy"}
    for test in mixed:
        if test["method"] == "lmm":
            assert f"fit <- lmer({test['formula']}, data = rows, REML = TRUE)" in script
        else:
            assert f"fit <- glmer({test['formula']}, data = rows, family = binomial)" in script
    assert script.count("lmer(") - script.count("glmer(") == sum(
        t["method"] == "lmm" for t in mixed
    )
    assert script.count("glmer(") == sum(t["method"] == "glmm" for t in mixed)
    assert "library(lme4)" in script and "library(lmerTest)" in script


def test_a_slope_formula_is_fitted_as_named(results):
    """When the analysis fitted random slopes, the script fits that very model."""
    changed = copy.deepcopy(results)
    slopes = "value ~ condition + (1 + condition | participant) + (1 + condition | identity)"
    lmm = next(t for t in changed["tests"] if t["method"] == "lmm")
    lmm["formula"] = slopes
    assert f"fit <- lmer({slopes}, data = rows, REML = TRUE)" in r_script(changed)


def test_script_runs_every_test_of_results_with_r_calls(results):
    """One R call per test of results.json, the same paired and one-sample tests as R names them."""
    script = r_script(results)
    calls = re.findall(r"^(run_\w+|report_lmm|report_glmm)\(", script, flags=re.MULTILINE)
    # Bayes factors are not tests of their own: they sit beside the t-tests.
    assert len([c for c in calls if not c.startswith("run_bf_")]) == len(results["tests"])
    expected = {
        "paired_t": "run_paired_t",
        "one_sample_t": "run_one_sample_t",
        "binomial": "run_binomial",
        "lmm": "report_lmm",
        "glmm": "report_glmm",
    }
    for test in results["tests"]:
        name = expected.get(test["method"])
        if name is not None:
            assert re.search(rf'^{name}\("{test["outcome"]}"', script, flags=re.MULTILINE), test
    assert "t.test(w$ai, w$real, paired = TRUE)" in script
    # correct = FALSE unless the test in results.json used the continuity correction.
    assert "run_wilcoxon_paired <- function(outcome, level, family, w, correct = FALSE)" in script
    assert "wilcox.test(w$ai, w$real, paired = TRUE, exact = FALSE, correct = correct)" in script
    assert "wilcox.test(x$value, mu = mu, exact = FALSE, correct = correct)" in script
    assert "t.test(x$value, mu = mu)" in script
    assert "binom.test(sum(value), length(value), p = chance)" in script
    # TOST: two one-sided tests against the preregistered bounds of each outcome.
    assert 'run_tost_paired("trust", "participant", scores, -0.5, 0.5)' in script
    assert 'run_tost_one("choice_real", "participant", scores, 0.5, -0.1, 0.1)' in script
    assert 'alternative = "greater"' in script and 'alternative = "less"' in script
    # Every test appears in the table R compares its numbers with.
    for test in results["tests"]:
        assert f'"{test["outcome"]}"' in script and f'"{test["method"]}"' in script


def test_script_recomputes_the_bayes_factors_when_bayesfactor_is_installed(results):
    """ttestBF beside each participant-level t-test, with results.json's rscale and log BF10."""
    script = r_script(results)
    assert 'has_bf <- requireNamespace("BayesFactor", quietly = TRUE)' in script
    assert "BayesFactor::ttestBF(x = w$ai, y = w$real, paired = TRUE," in script
    assert "BayesFactor::ttestBF(x = x$value, mu = mu, rscale = rscale)" in script
    with_bf = [t for t in results["tests"] if t.get("log_bf10") is not None]
    assert {t["level"] for t in with_bf} == {"participant"}
    assert {t["method"] for t in with_bf} == {"paired_t", "one_sample_t"}
    for test in with_bf:
        call = (
            f'run_bf_paired("{test["outcome"]}", scores, {test["bf_rscale"]!r}, '
            f"{test['log_bf10']!r})"
            if test["method"] == "paired_t"
            else f'run_bf_one("{test["outcome"]}", scores, '
            f"{FIXED_OUTCOMES[test['outcome']].reference_value!r}, {test['bf_rscale']!r}, "
            f"{test['log_bf10']!r})"
        )
        assert call in script
    assert len(re.findall(r"^run_bf_\w+\(", script, flags=re.MULTILINE)) == len(with_bf)
    # Without Bayes factors in results.json (an older report) there are no calls.
    old = copy.deepcopy(results)
    for test in old["tests"]:
        test.pop("log_bf10", None)
    assert not re.search(r"^run_bf_\w+\(", r_script(old), flags=re.MULTILINE)


def test_exclusions_and_corrections_follow_the_plan(results):
    """The plan's rules, the excluded participants and its correction method (BH here)."""
    script = r_script(results)
    assert (
        "rules <- list(incomplete = TRUE, attention = TRUE, min_median_rt_ms = NULL, "
        "straightlining = TRUE)"
    ) in script
    assert [e["participant"] for e in results["exclusions"]] == ["p7"]
    assert 'expected_excluded <- c("p7")' in script
    assert 'correction <- "BH"' in script
    assert "p.adjust(r$p_value[i], method = correction)" in script
    defaults = r_script({**results, "plan": None, "correction": "holm", "exclusions": []})
    assert (
        "rules <- list(incomplete = TRUE, attention = TRUE, min_median_rt_ms = 250.0, "
        "straightlining = FALSE)"
    ) in defaults
    assert 'correction <- "holm"' in defaults
    assert "expected_excluded <- character(0)" in defaults


def test_script_is_well_formed_even_with_awkward_ids(results):
    """Strings are escaped (quotes, backslashes) and brackets nest."""
    awkward = copy.deepcopy(results)
    awkward["exclusions"] = [{"participant": "a\"b\\c'd", "reason": "attention"}]
    script = r_script(awkward, title='A "quoted" title')
    check_balanced(script)
    assert 'expected_excluded <- c("a\\"b\\\\c\'d")' in script
    check_balanced(r_script(results))


def test_script_reads_the_export_and_unguards_cells(results):
    """It reads trials.csv and participants.csv as text and strips the spreadsheet guard."""
    script = r_script(results)
    assert 'read_table("trials.csv")' in script and 'read_table("participants.csv")' in script
    assert 'sub("^\'(?=[-=+@\\t\\r])", "", x, perl = TRUE)' in script
    assert 'colClasses = "character"' in script


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"tests": None}, "'tests' must be a list"),
        (
            {"tests": [], "correction": "bonferroni"},
            "correction 'bonferroni' is not one of holm, bh",
        ),
    ],
)
def test_bad_results_are_refused(bad, message):
    """Input that is not results.json raises ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=re.escape(message)):
        r_script(bad)
