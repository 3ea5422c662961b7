"""The generated R script runs the models and tests that results.json names (checked by text)."""

from __future__ import annotations

import copy
import random
import re

import pytest

from analysis.io import TRIAL_COLUMNS
from analysis.report import analyse
from analysis.rscript import r_script
from analysis.vocabulary import FIXED_OUTCOMES
from tests.analysis.helpers import make_participants, make_trials

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


def call_arguments(script: str, start: int) -> list[str]:
    """The top-level arguments of the call whose opening parenthesis is at `start`."""
    depth, args, begin = 0, [], start + 1
    for i in range(start, len(script)):
        ch = script[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                args.append(script[begin:i].strip())
                return args
        elif ch == "," and depth == 1:
            args.append(script[begin:i].strip())
            begin = i + 1
    raise AssertionError(f"call at {start} is never closed")


def frame_columns(script: str, start: int) -> set[str]:
    """Column names of the data.frame(...) call whose parenthesis is at `start`."""
    names = set()
    for arg in call_arguments(script, start):
        match = re.match(r"(\w+)\s*=(?!=)", arg)
        if match and match.group(1) != "stringsAsFactors":
            names.add(match.group(1))
    return names


def formula_variables(formula: str) -> set[str]:
    """Names a model formula reads from its data (function names and 1 left out)."""
    return set(re.findall(r"\b([A-Za-z_.][\w.]*)\b(?!\s*\()", formula))


def model_data_problems(script: str) -> list[str]:
    """Walk the generated script and name every column that a model or score reads from a data
    frame without the script having put it there.

    `rows` starts as trials.csv's rows (``d[...]``), becomes ``rows_of(...)`` (the columns of the
    data.frame built by that helper) or an inline ``data.frame(...)``, and gains columns through
    ``rows$x <- ...``; a moderation's `m` is `rows` plus the moderator column
    (``with_moderator(rows, "x", ...)``). Each lmer/glmer formula, each clmm formula and each
    ``rows$x`` read must name columns that exist at that point.
    """
    helper = script.index("rows_of <- function")
    rows_of = frame_columns(script, script.index("data.frame(", helper) + len("data.frame"))
    frames: dict[str, set[str]] = {"rows": set(), "m": set()}
    problems = []
    body = script[script.index("# --- scores and tests") :]
    for line in body.splitlines():
        code = line.split("#", 1)[0]
        target = re.match(r"\s*(rows|m)(?:\$(\w+))?\s*<-\s*(.*)", code)
        value = target.group(3) if target else code
        columns = frames["rows"]
        for column in re.findall(r"\brows\$(\w+)", value):
            if columns and column not in columns:
                problems.append(
                    f"{line.strip()!r} reads rows${column}, not among {sorted(columns)}"
                )
        fit = re.search(r"\bg?lmer\((.*?), data = (rows|m)\b", code)
        clmm = re.search(r"^report_clmm\((?:\"[^\"]*\", ){2}(.*), (rows)\)$", code)
        for match in (fit, clmm):
            if match:
                missing = formula_variables(match.group(1)) - frames[match.group(2)]
                if missing:
                    problems.append(f"{line.strip()!r} uses {sorted(missing)}, not in data")
        if not target:
            continue
        name = target.group(1)
        if target.group(2):
            frames[name].add(target.group(2))
        elif value.startswith("d["):
            frames[name] = set(TRIAL_COLUMNS)
        elif value.startswith("rows_of("):
            frames[name] = set(rows_of)
        elif value.startswith("data.frame("):
            frames[name] = frame_columns(code, code.index("data.frame(") + len("data.frame"))
        elif value.startswith("with_moderator(rows, "):
            moderator = re.match(r'with_moderator\(rows, "(\w+)"', value)
            assert moderator, line
            frames[name] = frames["rows"] | {moderator.group(1)}
    return problems


def moderation_record(**changes) -> dict:
    """A tested moderation record of results.json (condition x an identity's gender)."""
    record = {
        "outcome": "recognition_accuracy",
        "moderator": "gender",
        "method": "glmm",
        "source": "identity",
        "reference": "man",
        "tested": True,
        "formula": (
            "correct ~ condition + gender + condition:gender + (1 | participant) + (1 | identity)"
        ),
        "lrt": {"statistic": 2.7068043, "df": 1, "p_value": 0.0999},
        "p_value": 0.0999,
        "p_adjusted": 0.7994,
    }
    return {**record, **changes}


def test_moderations_are_refitted_and_compared(results):
    """Each tested moderation: the full model by ML, the model without the interaction, and
    anova() between them, compared with the record's likelihood-ratio test."""
    records = [
        moderation_record(),
        moderation_record(
            outcome="trust",
            method="lmm",
            moderator="age_band",
            reference="18-29",
            formula="value ~ condition + age_band + condition:age_band + (1 | participant)"
            " + (1 | identity)",
        ),
        moderation_record(moderator="age", tested=False),
        moderation_record(moderator="my gender", formula="correct ~ condition * `my gender`"),
        moderation_record(moderator='x\nsystem("id")', formula='correct ~ x\nsystem("id")'),
    ]
    script = r_script({**results, "moderation": records})
    assert (
        "full <- glmer(correct ~ condition + gender + condition:gender + (1 | participant) + "
        "(1 | identity), data = m, family = binomial)"
    ) in script
    assert "reduced <- update(full, . ~ . - condition:gender)" in script
    assert (
        'report_moderation("recognition_accuracy", "gender", reduced, full, "moderation")' in script
    )
    assert 'm <- with_moderator(rows, "age_band", "identity", "18-29")' in script
    assert "value ~ condition + age_band + condition:age_band" in script
    assert "data = m, REML = FALSE)" in script
    assert "x <- anova(without, with)" in script
    # Untested records are left out; a name R cannot read in a formula is said, not fitted.
    assert '"age"' not in script
    assert "# my gender is not a name R can use in a formula: not refitted here" in script
    # A column name with a line break stays inside its comment.
    assert '# x system("id") is not a name R can use in a formula' in script
    assert not re.search(r"^system", script, flags=re.MULTILINE)
    # They join the table R compares with; the one not refitted shows as found on one side only.
    plain = r_script({**results, "moderation": records[:4]})
    levels = re.search(r"  level = c\(([^)]*)\)", plain)
    assert levels and re.findall(r'"([^"]*)"', levels.group(1))[-3:] == [
        "gender",
        "age_band",
        "my gender",
    ]
    assert "2.7068043" in plain
    assert "Tests with a value on one side only" in plain
    check_balanced(script)


def test_ordinal_moderations_are_refitted_with_clmm(results):
    """A CLMM moderation: both models by ordinal::clmm (when installed), its own family."""
    record = moderation_record(
        outcome="trust",
        method="clmm",
        moderator="gender",
        reference="f",
        formula="ordered(value) ~ condition + gender + condition:gender + (1 | participant)"
        " + (1 | identity)",
    )
    script = r_script({**results, "moderation": [record]})
    block = script[script.index("# moderation (ordinal mixed model): condition x gender") :]
    assert block.splitlines()[1:6] == [
        "if (has_ordinal) {",
        '  m <- with_moderator(rows, "gender", "identity", "f")',
        "  full <- ordinal::clmm(ordered(value) ~ condition + gender + condition:gender + "
        "(1 | participant) + (1 | identity), data = m)",
        "  reduced <- update(full, . ~ . - condition:gender)",
        '  report_moderation("trust", "gender", reduced, full, "moderation_ordinal")',
    ]
    assert block.splitlines()[6] == "}"
    # the test from the two Laplace log-likelihoods; the expected row is of the same family
    assert "chisq <- 2 * (as.numeric(l1) - as.numeric(l0))" in script
    expected = script[script.index("expected <- data.frame(") :]
    expected = expected[: expected.index("stringsAsFactors")]
    method = re.search(r"  method = c\(([^)]*)\)", expected)
    assert method and re.findall(r'"([^"]*)"', method.group(1))[-1] == "moderation_ordinal"
    check_balanced(script)


def test_every_model_variable_is_a_column_of_the_data_it_is_fitted_to(results):
    """Each formula of results.json names columns of the data frame the script fits it to.

    The GLMM formulas say `correct` (as trials.csv does) while rows_of() calls the score
    `value`: R stopped with "object 'correct' not found". This catches that without R.
    """
    script = r_script(results)
    assert {t["method"] for t in results["tests"]} >= {"lmm", "glmm", "clmm"}
    assert model_data_problems(script) == []
    # The check itself finds a formula over a column the script never builds.
    broken = copy.deepcopy(results)
    glmm = next(t for t in broken["tests"] if t["method"] == "glmm")
    glmm["formula"] = glmm["formula"].replace("correct ~", "accuracy ~")
    assert any("uses ['accuracy']" in p for p in model_data_problems(r_script(broken)))
    moderated = copy.deepcopy(results)
    lmm = next(t for t in moderated["tests"] if t["method"] == "lmm")
    lmm["formula"] = lmm["formula"].replace("condition +", "condition * gender +", 1)
    assert any("uses ['gender']" in p for p in model_data_problems(r_script(moderated)))
    # A moderation refit sees the moderator column, merged in by with_moderator().
    with_moderation = {**results, "moderation": [moderation_record()]}
    script = r_script(with_moderation)
    assert 'm <- with_moderator(rows, "gender", "identity", "man")' in script
    assert model_data_problems(script) == []


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


def test_script_refits_the_ordinal_mixed_models_with_clmm(results):
    """ordinal::clmm with results.json's formula, skipped (with a message) without ordinal."""
    script = r_script(results)
    ordinal = [t for t in results["tests"] if t["method"] == "clmm"]
    assert [t["outcome"] for t in ordinal] == ["trust"]
    for test in ordinal:
        assert test["formula"].startswith("ordered(value) ~ condition")
        assert (
            f'report_clmm("{test["outcome"]}", "{test["family"]}", {test["formula"]}, rows)'
            in script
        )
    assert 'has_ordinal <- requireNamespace("ordinal", quietly = TRUE)' in script
    assert "fit <- ordinal::clmm(formula, data = rows)" in script
    check_balanced(script)


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
    calls = re.findall(
        r"^(run_\w+|report_lmm|report_glmm|report_clmm)\(", script, flags=re.MULTILINE
    )
    # Bayes factors are not tests of their own: they sit beside the t-tests.
    assert len([c for c in calls if not c.startswith("run_bf_")]) == len(results["tests"])
    expected = {
        "paired_t": "run_paired_t",
        "one_sample_t": "run_one_sample_t",
        "binomial": "run_binomial",
        "lmm": "report_lmm",
        "glmm": "report_glmm",
        "clmm": "report_clmm",
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
