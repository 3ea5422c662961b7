"""The command line: report, summary, power dispatch and usage errors."""

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import cli
from analysis.cli import main
from tests.analysis.helpers import make_trials

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_report_writes_results_and_tables(sim_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(sim_dir), "--out", str(out), "--no-mixed"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'results.json'}" in printed
    assert "113 participants analysed, 7 excluded" in printed
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["n_participants"] == 113
    assert (out / "tests.csv").is_file() and (out / "descriptives.csv").is_file()


def test_report_with_plan_and_scale(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    make_trials(rating=lambda p, i, c: 9 if c == "real" else 3 + (p == "p1")).to_csv(
        data / "trials.csv", index=False
    )
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"primary_outcomes": ["trust"], "alpha": 0.01}))
    code = main(
        [
            "report",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--plan",
            str(plan),
            "--scale",
            "trust=1:10",
            "--no-mixed",
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert results["alpha"] == 0.01
    assert results["tests"][0]["scale"] == [1, 10] and results["tests"][0]["preregistered"]


@pytest.mark.slow
def test_summary_of_data_and_of_results_json(sim_dir, sim_report, tmp_path, capsys):
    assert main(["summary", str(sim_dir)]) == 0
    from_data = capsys.readouterr().out
    lines = from_data.splitlines()
    assert lines[0] == (
        "study sim: 113 participants analysed, 7 excluded, 24 identities; "
        "alpha 0.05, correction holm"
    )
    assert lines[1] == "excluded: attention 4, incomplete 3"
    assert lines[2].split() == [
        "outcome",
        "test",
        "level",
        "estimate",
        "95%",
        "CI",
        "p",
        "p",
        "adj",
        "N",
        "verdict",
    ]
    trust = next(line for line in lines if line.startswith("trust "))
    assert trust.split()[:4] == ["trust", "paired_t", "participant", "-0.376"]
    assert trust.split()[-2:] == ["113", "difference"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(sim_report.results))
    assert main(["summary", str(path)]) == 0
    assert capsys.readouterr().out == from_data


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["analyse"], "invalid choice: 'analyse'"),
        (["report", "trials.csv"], "the following arguments are required: --out"),
        (["summary"], "the following arguments are required: PATH"),
        (["summary", "x.csv", "--scale", "trust"], "expected KEY=LOW:HIGH"),
        (["summary", "x.csv", "--scale", "trust=7:1"], "with LOW < HIGH"),
    ],
)
def test_wrong_arguments_print_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m analysis") and message in err


def test_bad_data_is_a_clear_error(tmp_path, capsys):
    trials = make_trials()
    trials.loc[2, "condition"] = "human"
    trials.to_csv(tmp_path / "trials.csv", index=False)
    assert main(["summary", str(tmp_path / "trials.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "row 4 (the header is row 1), column 'condition'" in err


@pytest.mark.parametrize(
    "plan_text, message",
    [
        ("{not json", "the plan is not valid JSON"),
        ('{"alpha": 2}', "alpha: must be between 0 and 0.5"),
    ],
)
def test_bad_plan_is_a_clear_error(sim_dir, tmp_path, capsys, plan_text, message):
    plan = tmp_path / "plan.json"
    plan.write_text(plan_text)
    assert (
        main(
            [
                "report",
                str(sim_dir),
                "--out",
                str(tmp_path / "o"),
                "--plan",
                str(plan),
                "--no-mixed",
            ]
        )
        == 1
    )
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_power_is_dispatched_to_the_power_command(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "run_power", lambda args: calls.append(args.participants) or 0)
    assert main(["power", "--participants", "40", "--identities", "24", "--effect", "-0.3"]) == 0
    assert calls == [[40]]
    with pytest.raises(SystemExit) as info:
        main(["power", "--participants", "many", "--identities", "24", "--effect", "-0.3"])
    assert info.value.code == 2
    assert "'many' is not an integer" in capsys.readouterr().err


@pytest.mark.slow
def test_report_does_not_need_the_power_module(monkeypatch, sim_dir, capsys):
    import analysis

    monkeypatch.setitem(sys.modules, "analysis.power", None)
    monkeypatch.delattr(analysis, "power", raising=False)
    assert main(["summary", str(sim_dir)]) == 0
    assert main(["power", "--participants", "40"]) == 2
    assert "power analysis is not available" in capsys.readouterr().err


@pytest.mark.slow
def test_power_usage_through_python_m():
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "power", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m analysis power")


@pytest.mark.slow
def test_report_on_sim_small_takes_under_ten_seconds(sim_dir, tmp_path):
    """The whole report, mixed models included, as a user runs it.

    CPU time of the child process is measured: with tests running in parallel the wall time
    says more about the other tests than about the report.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "report", str(sim_dir), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 10, f"report took {cpu:.1f} s of CPU"
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert any(t["method"] == "lmm" for t in results["tests"])
