"""The memory (learn-then-recognise) analysis against a hand calculation and against R.

The data are tests/data/memory (trials.csv, participants.csv; written by make.py there) and R's
results on them in reference.json (reference.R there: R 4.2.2, lme4 1.1-31). R calls are
written beside the expected values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.figures import report_figures
from analysis.io import ContractError, load
from analysis.report import analyse
from analysis.sdt import memory_sdt

MEMORY = Path(__file__).resolve().parents[1] / "data" / "memory"


@pytest.fixture(scope="module")
def data():
    return load(MEMORY)


@pytest.fixture(scope="module")
def r() -> dict:
    return json.loads((MEMORY / "reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report(data):
    return analyse(data)


def _test(report, outcome: str, method: str, level: str = "participant") -> dict:
    (found,) = [
        t
        for t in report.results["tests"]
        if t["outcome"] == outcome and t["method"] == method and t["level"] == level
    ]
    return found


def test_memory_d_prime_by_hand_for_one_participant(data):
    # s-0001 studied 4 people in real photographs and 4 in AI headshots, and saw 8 foils.
    # Said "met before": 3 of 4 real, 4 of 4 AI, 1 of 8 foils. Log-linear correction:
    #   H(real) = 3.5 / 5 = 0.7, H(ai) = 4.5 / 5 = 0.9, F = 1.5 / 9 = 1/6 (shared).
    #   R: qnorm(c(0.7, 0.9, 1/6)) = 0.524400512708041, 1.281551565544601, -0.967421566101701
    #   d'(real) = 0.524400512708041 + 0.967421566101701 = 1.491822078809742
    #   d'(ai)   = 1.281551565544601 + 0.967421566101701 = 2.248973131646302
    #   c(real) = -(0.524400512708041 - 0.967421566101701) / 2 = 0.22151052669683
    table = memory_sdt(data.trials)
    one = table[table["participant"] == "s-0001"].set_index("condition")
    assert one.loc["real", ["hits", "n_signal", "false_alarms", "n_noise"]].tolist() == [3, 4, 1, 8]
    assert one.loc["ai", ["hits", "n_signal", "false_alarms", "n_noise"]].tolist() == [4, 4, 1, 8]
    assert one.loc["real", "d_prime"] == pytest.approx(1.491822078809742, abs=1e-12)
    assert one.loc["ai", "d_prime"] == pytest.approx(2.248973131646302, abs=1e-12)
    assert one.loc["real", "criterion"] == pytest.approx(0.22151052669683, abs=1e-12)
    assert one.loc["ai", "hit_rate"] == 1.0 and one.loc["ai", "fa_rate"] == 0.125


@pytest.mark.slow
def test_every_participant_cell_matches_r(report, r):
    # R: per participant and condition, qnorm(H) - qnorm(F) with the corrections above
    mine = report.tables["sdt_memory"].set_index(["participant", "condition"])
    theirs = pd.DataFrame(r["cells"]).set_index(["participant", "condition"])
    assert sorted(mine.index) == sorted(theirs.index)  # 31 completers x 2 conditions
    for column in ("hits", "n_signal", "false_alarms", "n_noise"):
        assert (mine[column] == theirs.loc[mine.index, column]).all()
    for column in ("d_prime", "criterion", "hit_rate", "fa_rate"):
        assert mine[column].to_numpy() == pytest.approx(
            theirs.loc[mine.index, column].to_numpy(), abs=1e-12
        )


@pytest.mark.slow
def test_report_memory_d_prime_by_encoding_condition_matches_r(report, r):
    memory = report.results["memory"]
    # R: mean(real$d_prime) = 1.30340509905071, mean(ai$d_prime) = 0.859877195643113
    assert memory["conditions"]["real"]["d_prime"] == pytest.approx(1.30340509905071, abs=1e-12)
    assert memory["conditions"]["ai"]["d_prime"] == pytest.approx(0.859877195643113, abs=1e-12)
    assert memory["conditions"]["real"]["d_prime"] == pytest.approx(r["mean_d_prime"]["real"])
    # R: mean(real$criterion) = 0.0428131537894213, mean(ai$criterion) = 0.264577105493221
    assert memory["conditions"]["real"]["criterion"] == pytest.approx(0.0428131537894213)
    assert memory["conditions"]["ai"]["criterion"] == pytest.approx(0.264577105493221)
    # R: mean(real$hit_rate) = 0.758064516129032, mean(ai$hit_rate) = 0.564516129032258,
    #    mean(real$fa_rate) = 0.245967741935484
    assert memory["conditions"]["real"]["hit_rate"] == pytest.approx(0.758064516129032)
    assert memory["conditions"]["ai"]["hit_rate"] == pytest.approx(0.564516129032258)
    assert memory["false_alarm_rate"] == pytest.approx(0.245967741935484)
    assert memory["conditions"]["ai"]["n_participants"] == 31 == r["n_participants"]
    assert memory["n_targets"] == memory["n_foils"] == 31 * 8
    descriptive = {
        d["condition"]: d["mean"]
        for d in report.results["descriptives"]
        if d["outcome"] == "memory_d_prime" and d["level"] == "participant"
    }
    assert descriptive["ai"] == pytest.approx(0.859877195643113, abs=1e-12)


@pytest.mark.slow
def test_memory_d_prime_paired_test_matches_r(report):
    # R: t.test(ai$d_prime, real$d_prime, paired = TRUE)
    test = _test(report, "memory_d_prime", "paired_t")
    assert test["estimate"] == pytest.approx(-0.443527903407599, abs=1e-12)
    assert test["statistic"] == pytest.approx(-3.02292850915532, rel=1e-9)
    assert test["df"] == 30
    assert test["p_value"] == pytest.approx(0.00508745326942504, rel=1e-7)


@pytest.mark.slow
def test_hits_glmm_matches_glmer(report, r):
    # R: glmer(said_old ~ condition + (1 | participant) + (1 | identity),
    #          data = targets, family = binomial)   (condition levels real, ai; Laplace)
    test = _test(report, "memory_hit_rate", "glmm", "trial")
    assert test["formula"] == "said_old ~ condition + (1 | participant) + (1 | identity)"
    assert test["estimate"] == pytest.approx(-0.903077357397709, rel=2e-5)
    assert test["se"] == pytest.approx(0.282756735679397, rel=1e-4)
    assert test["statistic"] == pytest.approx(-3.19383145808296, rel=1e-4)
    assert test["p_value"] == pytest.approx(0.00140398059557596, rel=1e-3)
    assert test["estimate"] == pytest.approx(r["hits_glmm"]["estimate"], rel=2e-5)
    assert test["n"] == 31 * 8 and test["n_participants"] == 31 and test["n_identities"] == 16
    assert test["effect_size"] == pytest.approx(math.exp(test["estimate"]))
    effects = {
        e["group"]: e["variance"]
        for e in report.results["random_effects"]
        if e["outcome"] == "memory_hit_rate"
    }
    # R: as.data.frame(VarCorr(fit))$vcov: participant 0.0856392745594956, identity
    # 0.0341090554169227 (flat likelihood there: looser)
    assert effects["participant"] == pytest.approx(0.0856392745594956, rel=5e-3)
    assert effects["identity"] == pytest.approx(0.0341090554169227, rel=5e-3)


@pytest.mark.slow
def test_old_new_glmm_by_status_matches_glmer(report, r):
    # R (reference.R): every completer's old/new answer, status foil / studied_real /
    # studied_ai, foils the reference:
    #   test$status <- factor(ifelse(test$condition == "real", "studied_real",
    #                         ifelse(test$condition == "ai", "studied_ai", "foil")),
    #                         levels = c("foil", "studied_real", "studied_ai"))
    #   fit3 <- glmer(said_old ~ status + (1 | participant) + (1 | identity),
    #                 data = test, family = binomial)
    fit = report.results["memory"]["old_new_glmm"]
    assert fit["formula"] == "said_old ~ status + (1 | participant) + (1 | identity)"
    assert (fit["n"], fit["n_participants"], fit["n_identities"]) == (496, 31, 16)
    coefficients = {c["term"]: c for c in fit["coefficients"]}
    assert list(coefficients) == ["(Intercept)", "statusstudied_real", "statusstudied_ai"]
    # R: summary(fit3)$coefficients (Estimate, Std. Error, z value, Pr(>|z|)):
    #   (Intercept)        -1.20052124645718 0.187042080906085 -6.41845535850283
    #                      1.37663962381518e-10
    #   statusstudied_real  2.42544825511388 0.274136778084801  8.84758430466267
    #                      8.94340705918861e-19
    #   statusstudied_ai    1.48210046019749 0.246156078448320  6.02097851712673
    #                      1.73365769896173e-09
    expected = {
        "(Intercept)": (
            -1.20052124645718,
            0.187042080906085,
            -6.41845535850283,
            1.37663962381518e-10,
        ),
        "statusstudied_real": (
            2.42544825511388,
            0.274136778084801,
            8.84758430466267,
            8.94340705918861e-19,
        ),
        "statusstudied_ai": (
            1.48210046019749,
            0.246156078448320,
            6.02097851712673,
            1.73365769896173e-09,
        ),
    }
    for term, (estimate, se, z, p) in expected.items():
        found = coefficients[term]
        assert found["estimate"] == pytest.approx(estimate, rel=1e-4), term
        assert found["se"] == pytest.approx(se, rel=1e-4), term
        assert found["z"] == pytest.approx(z, rel=1e-4), term
        assert found["p_value"] == pytest.approx(p, rel=5e-3), term
    # R: L <- c(0, -1, 1); est <- sum(L * fixef(fit3))
    #    se <- sqrt(drop(t(L) %*% as.matrix(vcov(fit3)) %*% L)); z <- est / se
    #    -0.94334779491639, 0.28753757398982, -3.28078094917008, p = 2 * pnorm(-abs(z))
    #    = 0.0010352010785067
    contrast = fit["ai_vs_real"]
    assert contrast["estimate"] == pytest.approx(-0.94334779491639, rel=1e-4)
    assert contrast["se"] == pytest.approx(0.28753757398982, rel=1e-4)
    assert contrast["z"] == pytest.approx(-3.28078094917008, rel=1e-4)
    assert contrast["p_value"] == pytest.approx(0.0010352010785067, rel=2e-3)
    assert contrast["odds_ratio"] == pytest.approx(math.exp(contrast["estimate"]))
    # R: b <- fixef(fit3)[2:3]; V <- as.matrix(vcov(fit3))[2:3, 2:3]
    #    drop(t(b) %*% solve(V) %*% b) = 85.9241288723457 on 2 df,
    #    pchisq(85.9241288723457, 2, lower.tail = FALSE) = 2.19691110527193e-19
    assert fit["status_test"]["chisq"] == pytest.approx(85.9241288723457, rel=1e-4)
    assert fit["status_test"]["df"] == 2
    assert fit["status_test"]["p_value"] == pytest.approx(2.19691110527193e-19, rel=1e-2)
    # R: as.data.frame(VarCorr(fit3))$vcov: participant 0.329389183409673, identity
    #    1.41483501283748e-08 (at the boundary: singular, as here)
    assert fit["random_effects"]["participant"] == pytest.approx(0.329389183409673, rel=5e-3)
    assert fit["random_effects"]["identity"] == pytest.approx(0, abs=1e-6)
    assert fit["singular"] is True
    # The same as reference.json, which reference.R writes.
    assert [coefficients[t]["estimate"] for t in r["old_new_glmm"]["terms"]] == pytest.approx(
        r["old_new_glmm"]["estimate"], rel=1e-4
    )
    # Beside the hits GLMM, which compares the studied conditions among targets only.
    assert _test(report, "memory_hit_rate", "glmm", "trial")["n"] == 31 * 8


@pytest.mark.slow
def test_memory_outcomes_findings_and_figure(report):
    names = {o for o in (t["outcome"] for t in report.results["tests"])}
    assert {"memory_hit_rate", "memory_d_prime", "memory_criterion"} <= names
    claims = {f["outcome"]: f.get("claim", "") for f in report.results["findings"]}
    assert claims["memory_d_prime"].startswith(
        "Exploratory: Memory sensitivity (d') was lower for people met in an AI headshot"
    )
    specs = {
        s.name: s
        for s in report_figures(
            report.results, report.tables["participant_scores"], report.tables["identity_scores"]
        )
    }
    assert "memory_sdt" in specs and "paired_memory_hit_rate" in specs
    assert "31 participants" in specs["memory_sdt"].alt
    figure = specs["memory_sdt"].draw()
    assert [ax.get_title(loc="left") for ax in figure.axes] == [
        "Memory sensitivity (d')",
        "Memory response criterion (c)",
    ]


def _with(trials: pd.DataFrame, **changes) -> pd.DataFrame:
    rows = trials.copy()
    first = rows.index[(rows["task"] == "recognise") & (rows["measure"] == "old")][0]
    for column, value in changes.items():
        rows.loc[first, column] = value
    return rows


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"value": "2"}, "old must be 1 (met before) or 0, got '2'"),
        ({"studied": "2"}, "'2' is not 0, 1 or empty"),
        ({"condition": ""}, "studied='1' disagrees with the condition"),
        ({"measure": "same"}, "unknown measure 'same' for this task"),
    ],
)
def test_memory_rows_are_checked(changes, message):
    raw = pd.read_csv(MEMORY / "trials.csv", dtype=str, keep_default_na=False)
    # The first old row is a target's (studied 1): make each change there.
    target = raw[(raw["task"] == "recognise") & (raw["measure"] == "old") & (raw["studied"] == "1")]
    rows = raw.copy()
    for column, value in changes.items():
        rows.loc[target.index[0], column] = value
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(rows)


def test_old_correct_must_agree_with_studied():
    raw = pd.read_csv(MEMORY / "trials.csv", dtype=str, keep_default_na=False)
    old = raw.index[(raw["task"] == "recognise") & (raw["measure"] == "old")][0]
    raw.loc[old, "correct"] = "1" if raw.loc[old, "correct"] == "0" else "0"
    with pytest.raises(ContractError, match="disagrees with old == studied"):
        load(raw)


def test_studied_is_derived_when_the_column_is_absent(data):
    raw = pd.read_csv(MEMORY / "trials.csv", dtype=str, keep_default_na=False)
    older = load(raw.drop(columns=["studied"]))
    assert older.trials["studied"].fillna(-1).tolist() == data.trials["studied"].fillna(-1).tolist()
    assert older.data_sha256 == data.data_sha256


@pytest.mark.slow
def test_r_script_recomputes_the_memory_tests(report):
    """The generated script's memory calls (run by hand on this export with R 4.2.2 / lme4
    1.1-31: every statistic and p within 3e-6 of results.json)."""
    from analysis.rscript import r_script

    script = r_script(report.results)
    assert 'd$task == "recognise" & d$measure == "old" & d$condition %in% c("real", "ai")' in script
    assert "rows$said_old <- rows$value" in script
    assert (
        "fit <- glmer(said_old ~ condition + (1 | participant) + (1 | identity), data = rows,"
        " family = binomial)" in script
    )
    assert "rows <- memory_cells(data.frame(" in script
    assert 'scores <- sdt_paired(sdt(rows, "identity", "condition"), "criterion")' in script
    assert script.count('run_paired_t("memory_d_prime"') == 2


@pytest.mark.slow
def test_the_r_script_refits_the_old_new_glmm_and_compares(report):
    from analysis.rscript import r_script

    script = r_script(report.results)
    assert (
        "fit <- glmer(said_old ~ status + (1 | participant) + (1 | identity), data = rows,"
        in script
    )
    assert 'levels = c("foil", "studied_real", "studied_ai")' in script
    assert '"statusstudied_ai", "ai_vs_real")' in script  # the expected rows
    fit = report.results["memory"]["old_new_glmm"]
    assert repr(fit["ai_vs_real"]["estimate"]) in script  # results.json's value, to compare
