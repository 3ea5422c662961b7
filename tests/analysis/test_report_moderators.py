"""The report's moderators: identity descriptors and participant answers, flags and plan."""

import json
import re
import zlib

import pandas as pd
import pytest

from analysis.cli import main
from analysis.findings import moderation_claim
from analysis.io import ContractError, load
from analysis.plan import validate_plan
from analysis.report import analyse, write_report
from tests.analysis.helpers import make_participants, make_trials

PEOPLE = tuple(f"p{k:02d}" for k in range(12))
FACES = tuple("ABCDEFGH")
GENDER = {face: "fm"[k % 2] for k, face in enumerate(FACES)}


def _noise(*key) -> float:
    """A fixed pseudo-random value in [-1, 1) from the key."""
    return (zlib.crc32("-".join(key).encode()) % 2000) / 1000 - 1


def _rating(penalty_m: float):
    """Trust 1-7: AI rated 2 points lower for women, `penalty_m` lower for men."""

    def rating(p, i, c):
        base = 4.5 + _noise(p) + 0.5 * _noise(i)
        drop = (2.0 if GENDER[i] == "f" else penalty_m) if c == "ai" else 0.0
        return int(min(7, max(1, round(base - drop + 0.8 * _noise(p, i, c)))))

    return rating


def _by_method(results: dict, method: str = "lmm") -> list[dict]:
    """The moderation records of one model family."""
    return [m for m in results["moderation"] if m["method"] == method]


def _study(penalty_m: float = 0.0):
    trials = make_trials(participants=PEOPLE, identities=FACES, rating=_rating(penalty_m))
    participants = make_participants(trials).assign(
        familiarity=["high" if k % 3 else "low" for k in range(len(PEOPLE))]
    )
    identities = pd.DataFrame(
        {"identity": list(FACES), "gender": [GENDER[f] for f in FACES], "age_band": "30-49"}
    )
    return trials, participants, identities


@pytest.fixture(scope="module")
def differing():
    trials, participants, identities = _study(0.0)
    return analyse(trials, participants, identities=identities, random="intercepts")


@pytest.mark.slow
def test_a_differing_effect_is_reported_per_group(differing, tmp_path):
    results = differing.results
    # age_band has one level: not a grouping; gender is tested by default
    assert results["models"] == {"random": "intercepts", "family": "lmm", "moderators": ["gender"]}
    (entry,) = _by_method(results)
    assert entry["outcome"] == "trust" and entry["moderator"] == "gender"
    assert entry["source"] == "identity" and entry["tested"] and entry["family"] == "moderation"
    assert "(1 | participant) + (1 | identity)" in entry["formula"]
    assert entry["lrt"]["df"] == 1 and entry["p_adjusted"] < 0.001
    assert entry["verdict"] == "differs"
    women, men = entry["levels"]
    assert (women["level"], men["level"]) == ("f", "m")
    assert women["estimate"] < -1.5 and abs(men["estimate"]) < 0.5
    assert entry["claim"].startswith(
        "The AI-minus-real difference in trust differs by the gender of the person "
        "photographed (likelihood-ratio test χ²(1) = "
    )
    assert "an exploratory test" in entry["claim"] and "f: -" in entry["claim"]
    # the ordinal model asks the same question of the ratings, in its own correction family
    (ordinal,) = _by_method(results, "clmm")
    assert ordinal["tested"] and ordinal["family"] == "moderation_ordinal"
    assert ordinal["formula"] == (
        "ordered(value) ~ condition + gender + condition:gender + (1 | participant) "
        "+ (1 | identity)"
    )
    assert ordinal["p_adjusted"] == ordinal["p_value"] < 0.001  # alone in its family
    assert entry["p_adjusted"] == entry["p_value"]  # not diluted by the ordinal model's test
    assert ordinal["verdict"] == "differs"
    assert "(ordinal mixed model, likelihood-ratio test χ²(1) = " in ordinal["claim"]
    assert "on the log cumulative odds scale" in ordinal["claim"]
    women, men = ordinal["levels"]
    assert women["estimate"] < -2 and abs(men["estimate"]) < 1 and women["statistic_name"] == "z"
    write_report(differing, tmp_path)
    table = pd.read_csv(tmp_path / "moderation.csv")
    assert list(table["level"]) == ["f", "m", "f", "m"] and set(table["verdict"]) == {"differs"}
    assert list(table["method"]) == ["lmm", "lmm", "clmm", "clmm"]
    json.loads((tmp_path / "results.json").read_text())


@pytest.mark.slow
def test_no_interaction_claims_no_more_than_no_evidence():
    trials, participants, identities = _study(2.0)
    results = analyse(trials, participants, identities=identities, random="intercepts").results
    (entry,) = _by_method(results)
    assert entry["verdict"] == "no_evidence"
    assert entry["claim"].startswith(
        "No evidence that the AI-minus-real difference in trust differs by the gender of "
        "the person photographed (likelihood-ratio test χ²(1) = "
    )
    assert entry["claim"].endswith(
        "This does not show that it is the same for every group: each group's estimate "
        "below is less precise than the overall one."
    )
    assert "differs by" not in entry["claim"].replace("difference in trust differs by", "")


@pytest.mark.slow
def test_participant_answers_named_in_the_plan_and_unknown_names_warned():
    trials, participants, identities = _study(0.0)
    plan = {"models": {"random": "intercepts", "moderators": ["familiarity", "shoe_size"]}}
    results = analyse(trials, participants, plan=plan, identities=identities).results
    assert [m["moderator"] for m in _by_method(results)] == ["familiarity"]
    assert [m["moderator"] for m in _by_method(results, "clmm")] == ["familiarity"]
    entry = _by_method(results)[0]
    assert entry["source"] == "participant" and entry["preregistered"] is True
    assert entry["claim"].split(" (")[0].endswith("by participants' familiarity")
    assert any("moderator 'shoe_size' is neither" in w for w in results["warnings"])
    # the command line overrides the plan: no moderators at all
    none = analyse(trials, participants, plan=plan, identities=identities, moderators=[])
    assert none.results["moderation"] == [] and "moderation" not in none.tables


def test_not_tested_is_worded_with_its_reason():
    entry = {
        "outcome": "trust",
        "moderator": "gender",
        "source": "identity",
        "method": "lmm",
        "tested": False,
        "lrt": None,
        "notes": ["gender has one level ('f') in the data: there is nothing to compare, so "
                  "it was not tested"],
        "p_value": None,
        "p_adjusted": None,
        "correction": "holm",
    }  # fmt: skip
    verdict, claim = moderation_claim(entry)
    assert verdict == "not_tested"
    assert claim == (
        "Not tested whether the effect differs by the gender of the person photographed: "
        "gender has one level ('f') in the data: there is nothing to compare, so it was not "
        "tested."
    )


def test_identities_csv_is_read_beside_the_trials(tmp_path):
    trials, participants, identities = _study()
    trials.to_csv(tmp_path / "trials.csv", index=False)
    participants.to_csv(tmp_path / "participants.csv", index=False)
    assert load(tmp_path).identities is None
    identities.to_csv(tmp_path / "identities.csv", index=False)
    data = load(tmp_path)
    assert list(data.identities["gender"]) == [GENDER[f] for f in FACES]
    identities.iloc[[0, 0]].to_csv(tmp_path / "identities.csv", index=False)
    with pytest.raises(ContractError, match="identities.csv, row 3 .*identity 'A' appears twice"):
        load(tmp_path)


def test_plan_models_are_validated():
    assert "models" not in validate_plan({})
    assert validate_plan({"models": {}})["models"] == {
        "random": "auto",
        "family": "lmm",
        "moderators": None,
    }
    for models, message in [
        ({"random": "some"}, "models.random: 'some' is not one of auto, intercepts, slopes"),
        ({"family": "ols"}, "models.family: 'ols' is not one of lmm"),
        ({"moderators": "gender"}, "models.moderators: expected a list"),
        ({"moderators": ["a b"]}, "models.moderators[0]: 'a b' is not a column name"),
        ({"moderator": []}, "models.moderator: unknown field"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            validate_plan({"models": models})
    again = validate_plan({"models": {"moderators": ["gender"]}})
    assert validate_plan(again) == again


@pytest.mark.slow
def test_command_line_flags_reach_the_models(tmp_path, capsys):
    trials, participants, identities = _study(0.0)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    participants.to_csv(tmp_path / "participants.csv", index=False)
    identities.to_csv(tmp_path / "faces.csv", index=False)
    out = tmp_path / "out"
    status = main(
        [
            "report", str(tmp_path / "trials.csv"), "--out", str(out), "--random",
            "intercepts", "--identities", str(tmp_path / "faces.csv"), "--moderator",
            "gender", "--moderator", "familiarity",
        ]
    )  # fmt: skip
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert results["models"]["random"] == "intercepts"
    assert [m["moderator"] for m in _by_method(results)] == ["gender", "familiarity"]
    assert [m["moderator"] for m in _by_method(results, "clmm")] == ["gender", "familiarity"]
    ordinal = [t for t in results["tests"] if t["method"] == "clmm"]
    assert ordinal[0]["formula"] == (
        "ordered(value) ~ condition + (1 | participant) + (1 | identity)"
    )
    mixed = [t for t in results["tests"] if t["method"] == "lmm"]
    assert mixed[0]["formula"] == "value ~ condition + (1 | participant) + (1 | identity)"
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "trials.csv"), "--out", str(out), "--random", "x"])
    assert info.value.code == 2
    assert "invalid choice: 'x'" in capsys.readouterr().err
