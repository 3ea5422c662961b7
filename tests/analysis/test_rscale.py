"""The prior scale r of the Bayes factors from the command line (--rscale) and analyse(rscale=).

Expected values from R 4.2 with BayesFactor 0.9.12-4.7, on the participants' mean trust
ratings of the study below (ai <- c(4.5, 5.5, 3.5, 4.75, 5, 3.5); real <- c(5, 6, 4, 5, 6, 4)):

    extractBF(ttestBF(x = ai, y = real, paired = TRUE, rscale = r), logbf = TRUE)$bf
"""

import json
import math

import pytest

from analysis.cli import main
from analysis.report import analyse
from tests.analysis.helpers import make_participants, make_trials

PEOPLE = tuple(f"p{k}" for k in range(1, 7))
LOG_BF10 = {
    1.0: 3.03161755069,  # rscale = 1 ("wide")
    math.sqrt(2) / 2: 2.85875818988,  # rscale = sqrt(2) / 2 ("medium", the default)
    math.sqrt(2): 3.14060108431,  # rscale = sqrt(2) ("ultrawide")
}


def _rating(p, i, c):
    k = int(p[1:])
    return 4 + (k % 3) - (1 if c == "ai" and (k * ord(i)) % 5 < 2 else 0)


@pytest.fixture
def study(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    trials = make_trials(participants=PEOPLE, rating=_rating)
    trials.to_csv(folder / "trials.csv", index=False)
    make_participants(trials).to_csv(folder / "participants.csv", index=False)
    return folder


def _paired_t(results: dict) -> dict:
    return next(
        t
        for t in results["tests"]
        if t["outcome"] == "trust" and t["method"] == "paired_t" and t["level"] == "participant"
    )


@pytest.mark.parametrize(
    ("flag", "r"), [("1", 1.0), ("wide", 1.0), ("ultrawide", math.sqrt(2)), ("0.7071067811865476",
                    math.sqrt(2) / 2)]
)  # fmt: skip
def test_rscale_flag_sets_the_prior_of_the_report(study, tmp_path, flag, r):
    out = tmp_path / "out"
    assert main(["report", str(study), "--out", str(out), "--no-mixed", "--rscale", flag]) == 0
    results = json.loads((out / "results.json").read_text())
    test = _paired_t(results)
    assert test["bf_rscale"] == pytest.approx(r, rel=1e-15)
    assert test["log_bf10"] == pytest.approx(LOG_BF10[r], rel=1e-6)
    assert not any("prior scale" in w for w in results["warnings"])


def test_without_the_flag_the_plan_decides(study, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"bayes_rscale": math.sqrt(2)}))
    out = tmp_path / "out"
    assert main(["report", str(study), "--out", str(out), "--no-mixed", "--plan", str(plan)]) == 0
    test = _paired_t(json.loads((out / "results.json").read_text()))
    assert test["log_bf10"] == pytest.approx(LOG_BF10[math.sqrt(2)], rel=1e-6)


def test_the_flag_overrides_the_plan_and_says_so(study, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"bayes_rscale": math.sqrt(2)}))
    out = tmp_path / "out"
    argv = ["report", str(study), "--out", str(out), "--no-mixed", "--plan", str(plan)]
    assert main([*argv, "--rscale", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert _paired_t(results)["log_bf10"] == pytest.approx(LOG_BF10[1.0], rel=1e-6)
    assert (
        "the Bayes factors use the prior scale r = 1 given for this run, not the plan's "
        "bayes_rscale = 1.414"
    ) in results["warnings"]
    assert results["plan"]["bayes_rscale"] == pytest.approx(math.sqrt(2))  # the plan as written


def test_summary_takes_the_flag_too(study, capsys):
    assert main(["summary", str(study), "--rscale", "wide"]) == 0
    printed = capsys.readouterr().out
    assert "trust" in printed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "the prior scale must be a positive finite number, got '0'"),
        ("-1", "the prior scale must be a positive finite number, got '-1'"),
        ("inf", "the prior scale must be a positive finite number, got 'inf'"),
        ("nan", "the prior scale must be a positive finite number, got 'nan'"),
        ("huge", "expected a positive number or one of medium, wide, ultrawide, got 'huge'"),
        ("", "expected a positive number or one of medium, wide, ultrawide, got ''"),
    ],
)
def test_bad_rscale_is_a_usage_error(study, tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as info:
        main(["report", str(study), "--out", str(tmp_path / "o"), "--rscale", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --rscale: {message}" in err
    assert not (tmp_path / "o").exists()


def test_analyse_refuses_a_bad_rscale_before_any_work():
    trials = make_trials(participants=PEOPLE, rating=_rating)
    with pytest.raises(ValueError, match="rscale must be a positive finite number, got -2"):
        analyse(trials, make_participants(trials), mixed_models=False, rscale=-2)


def test_help_documents_the_flag(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--rscale R" in text
    assert "scale r of the Cauchy prior of the Bayes factors" in text
