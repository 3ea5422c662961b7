"""The sample-size page: the required n and power curve before preregistering, its
validation, the pilot from the study's own data, and the bounded mixed-model simulation."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from analysis import power
from survey.researcher import planning
from tests.findings.support import Effects, fill, owner_id, page_text


def url(study_id: int, **query) -> str:
    args = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/r/studies/{study_id}/preregistration/sample-size" + (f"?{args}" if args else "")


def _errors_of(page: str, field_id: str) -> str:
    """The error list rendered beside one field."""
    found = re.search(rf'<ul class="field-errors" id="{field_id}-errors">(.*?)</ul>', page, re.S)
    return found.group(1) if found else ""


def test_the_preregistration_page_links_to_the_planner(team, owner_client):
    page = owner_client.get(f"/r/studies/{team.study_id}/preregistration").get_data(as_text=True)
    assert url(team.study_id) in page


def test_blank_form_without_data_offers_no_pilot(team, owner_client):
    response = owner_client.get(url(team.study_id))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Plan the sample size" in page and 'value="pilot"' not in page
    assert "<svg" not in page  # nothing calculated yet


def test_viewers_may_plan_and_strangers_may_not(app, team):
    viewer = team.client(app, "viewer")
    query = {"source": "difference", "effect": "-0.3", "sd": "0.9", "alpha": "0.05"}
    assert viewer.get(url(team.study_id, **query, target_power="0.9")).status_code == 200
    assert team.client(app, "stranger").get(url(team.study_id)).status_code in (403, 404)


def test_answer_and_curve_match_power_t_test(team, owner_client):
    response = owner_client.get(
        url(
            team.study_id,
            source="difference",
            effect="-0.3",
            sd="0.9",
            alpha="0.05",
            target_power="0.9",
        )
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    text = page_text(response)
    # power.t.test(delta = -0.3, sd = 0.9, power = 0.9, type = "paired", strict = TRUE)$n
    # = 96.508013984164
    assert "Recruit 97 participants (after exclusions)" in text
    assert "n = 96.51" in text
    assert '<svg viewBox="0 0 480 300" role="img"' in page
    assert "<polyline" in page and "reaches the target 0.9 at 97 participants" in text
    # the table holds the curve, 97 among its rows, power rising
    rows = re.findall(r"<tr(?: class=\"chosen\")?><td>(\d+)</td><td>([0-9.]+)</td></tr>", page)
    numbers, powers = [int(n) for n, _ in rows], [float(p) for _, p in rows]
    assert 97 in numbers and powers == sorted(powers)
    # power.t.test(n = 97, delta = 0.3, sd = 0.9, type = "paired", strict = TRUE)$power
    assert f"{power.power_for_n_paired_t(0.3, 0.9, 97):.3f}" in text


def test_effect_size_route(team, owner_client):
    response = owner_client.get(
        url(team.study_id, source="dz", dz="0.5", alpha="0.05", target_power="0.8")
    )
    assert response.status_code == 200
    # power.t.test(delta = 0.5, sd = 1, power = 0.8, type = "paired", strict = TRUE)$n
    # = 33.367129103907
    assert "Recruit 34 participants" in page_text(response)


def test_the_effect_size_route_speaks_of_d_z_not_a_difference(team, owner_client):
    response = owner_client.get(
        url(team.study_id, source="dz", dz="-0.5", alpha="0.05", target_power="0.8")
    )
    text = page_text(response)
    assert "finds an effect of d_z = -0.5 with probability" in text
    assert "finds a difference of" not in text


def test_the_two_participant_floor_is_not_called_exact(team, owner_client):
    # A d_z so large that R's power.t.test would extrapolate below 2: the page answers 2 and
    # says why, and does not present 2.00 as R's exact n.
    response = owner_client.get(
        url(team.study_id, source="dz", dz="50", alpha="0.05", target_power="0.8")
    )
    text = page_text(response)
    assert "Recruit 2 participants" in text and "2 pairs already give power" in text
    assert "Exactly, n =" not in text


def _as_shown(note: str) -> str:
    """An analysis note as the page showed it before it wrote its own: a sentence."""
    return f"{note[0].upper()}{note[1:]}."


def test_the_pages_notes_say_what_the_analysis_notes_say(app):
    # The page writes its notes in its own words (gettext) from the analysis' numbers; in
    # English they are the analysis' notes as sentences. The paired t test simulates fast.
    floor = power.sample_size_paired_t(50, 1)
    cases = [
        # (grid, max_seconds, n_sims): the target not reached; reached but within the
        # simulation's error; points left out by the time limit
        ([4, 6], None, 40),
        ([8, 16], None, 20),
        ([40, 6, 80], 0, 20),
    ]
    with app.test_request_context("/r/studies"):
        assert planning.answer_note(floor) == _as_shown(floor.note)
        assert planning.answer_note(power.sample_size_paired_t(0.5, 1)) == ""
        shown = []
        for grid, seconds, n_sims in cases:
            simulated = power.sample_size_simulated(
                0.5,
                identities=[12],
                participants=grid,
                test="paired_t",
                n_sims=n_sims,
                refine=0,
                max_seconds=seconds,
            )
            notes = planning.simulation_notes(simulated, grid, seconds or 0)
            assert notes == [_as_shown(note) for note in simulated.notes]
            shown.extend(notes)
    assert any("is not reached by 6 participants" in note for note in shown)
    assert any("Monte Carlo interval" in note for note in shown)
    assert any(
        note.startswith("Stopped after 0 s: not simulated: 6 participants x 12") for note in shown
    )


def test_the_pages_note_on_failed_fits():
    # Outside a request, in English.
    curve = pd.DataFrame(
        [{"n_participants": 20, "n_identities": 12, "power": 0.9, "ci_low": 0.85,
          "ci_high": 0.95, "n_sims": 30, "failed": 2}]
    )  # fmt: skip
    required = pd.DataFrame(
        [{"n_identities": 12, "n_required": 20, "n_confident": 20, "power": 0.9,
          "ci_low": 0.85, "ci_high": 0.95}]
    )  # fmt: skip
    simulated = power.SimulatedSampleSize(
        "lmm", 0.8, 0.05, 0.5, 30, curve, required, 30, notes=(), complete=True
    )
    assert planning.simulation_notes(simulated, [20]) == [
        "12 identities: 2 simulated fits failed and count as not significant."
    ]


@pytest.mark.parametrize(
    "query, field, message",
    [
        ({"source": "difference", "sd": "0.9"}, "effect", "Give the difference"),
        ({"source": "difference", "effect": "-0.3"}, "sd", "Give the standard deviation"),
        ({"source": "difference", "effect": "abc", "sd": "0.9"}, "effect", "Not a valid float"),
        ({"source": "difference", "effect": "0", "sd": "0.9"}, "effect", "must not be 0"),
        ({"source": "difference", "effect": "-0.3", "sd": "-1"}, "sd", "must be above 0"),
        (
            {"source": "difference", "effect": "-0.3", "sd": "1", "alpha": "0.7"},
            "alpha",
            "at most 0.5",
        ),
        (
            {"source": "difference", "effect": "-0.3", "sd": "1", "target_power": "1.5"},
            "target_power",
            "between 0 and 1",
        ),
        (
            {
                "source": "difference",
                "effect": "-0.3",
                "sd": "1",
                "alpha": "0.2",
                "target_power": "0.1",
            },
            "target_power",
            "above alpha",
        ),
        ({"source": "difference", "effect": "0.00001", "sd": "1"}, "effect", "Effect too small"),
        ({"source": "dz"}, "dz", "Give the effect size"),
        ({"source": "dz", "dz": "0.4", "simulate": "y"}, "simulate", "needs a difference"),
        ({"source": "pilot"}, "source", "Not a valid choice"),
        (
            {
                "source": "difference",
                "effect": "-0.3",
                "sd": "1",
                "simulate": "y",
                "identities": "1",
            },
            "identities",
            "from 2 to 200",
        ),
    ],
)
def test_bad_input_is_a_400_with_the_error_beside_the_field(
    team, owner_client, query, field, message
):
    query = {"alpha": "0.05", "target_power": "0.8", **query}
    response = owner_client.get(url(team.study_id, **query))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in _errors_of(page, field), page_text(response)[:2000]
    assert 'role="alert"' in page and "see the messages beside the fields" in page
    assert "<svg" not in page


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"source": "difference", "effect": "-0.3", "sd": "inf"}, "sd", "a finite number"),
        ({"source": "difference", "effect": "inf", "sd": "0.9"}, "effect", "a finite number"),
        ({"source": "dz", "dz": "nan"}, "dz", "a finite number"),
        # Each finite, their ratio not: no d_z to plan with.
        ({"source": "difference", "effect": "1e308", "sd": "1e-308"}, "effect", "too large"),
        (
            {"source": "difference", "effect": "0.3", "sd": "0.01", "simulate": "y"},
            "sd",
            "For the simulation, the standard deviation must be above",
        ),
    ],
)
def test_errors_name_the_fields_as_the_form_does(team, owner_client, query, field, message):
    query = {"alpha": "0.05", "target_power": "0.8", "identities": "24", **query}
    response = owner_client.get(url(team.study_id, **query))
    assert response.status_code == 400
    errors = _errors_of(response.get_data(as_text=True), field)
    assert message in errors, page_text(response)[:2000]
    assert "sd_difference" not in errors.lower() and "Effect must" not in errors


def test_simulation_is_bounded_and_shown(team, owner_client, monkeypatch):
    calls = []
    real = power.sample_size_simulated

    def spy(*args, **kwargs):
        calls.append({**kwargs, "args": args})
        return real(*args, **{**kwargs, "n_sims": 3})  # a quick check of the page

    monkeypatch.setattr(power, "sample_size_simulated", spy)
    response = owner_client.get(
        url(
            team.study_id,
            source="difference",
            effect="-0.5",
            sd="0.8",
            alpha="0.05",
            target_power="0.8",
            simulate="y",
            identities="12",
        )
    )
    assert response.status_code == 200
    (kwargs,) = calls
    kwargs = {k: v for k, v in kwargs.items() if k != "args"}
    assert kwargs["n_sims"] == planning.WEB_SIMS and kwargs["refine"] == 0
    assert kwargs["max_seconds"] == planning.WEB_SECONDS
    assert len(kwargs["participants"]) <= planning.WEB_POINTS
    assert max(kwargs["participants"]) * 12 <= planning.WEB_MAX_TRIALS
    text = page_text(response)
    assert "Mixed model, by simulation" in text and "95 % simulation interval" in text
    assert "typical of a 1–7 trust rating" in text
    # the simulated variances give a participant's difference the SD the form gave
    assert kwargs["participants"][0] == 2 * round(
        power.sample_size_paired_t(-0.5, 0.8).n_required / 2
    )
    components = calls[0]["args"][1]
    assert components == power.components_for_sd(0.8, 12)
    page = response.get_data(as_text=True)
    assert page.count('class="simulated"') == len(kwargs["participants"])


def test_simulation_grid_respects_the_trial_cap():
    # the answer first, then above and below it: a time limit stops at the least telling
    assert planning.simulation_grid(40, 24) == [40, 60, 30, 80, 20]
    grid = planning.simulation_grid(400, 100)
    assert max(grid) * 100 <= planning.WEB_MAX_TRIALS and len(grid) <= planning.WEB_POINTS


@pytest.mark.slow
def test_pilot_from_the_studys_own_ratings(app, client, demo, auth):
    fill(app, demo, 12, seed=4, effects=Effects(rating_drop=0.6))
    auth.sign_in(owner_id(app))
    blank = client.get(url(demo))
    assert blank.status_code == 200
    assert re.search(r'<input checked[^>]*value="pilot"', blank.get_data(as_text=True))
    response = client.get(
        url(demo, source="pilot", measure="trust", alpha="0.05", target_power="0.8")
    )
    assert response.status_code == 200, page_text(response)[:2000]
    text = page_text(response)
    with app.app_context():
        pilot = planning.pilot_of(planning.study_trials(_study(app, demo)), "trust")
    expected = power.sample_size_paired_t(pilot.mean_difference, pilot.sd_difference)
    assert f"From this study's data so far (trust, {pilot.n_participants} included" in text
    assert f"Recruit {expected.n_required} participants" in text
    # an unknown scale is an error beside the pilot field
    bad = client.get(url(demo, source="pilot", measure="nope", alpha="0.05", target_power="0.8"))
    assert bad.status_code == 400
    assert "The pilot cannot be used" in _errors_of(bad.get_data(as_text=True), "measure")


def _study(app, study_id):
    from survey.extensions import db
    from survey.models import Study

    return db.session.get(Study, study_id)


def test_data_the_analysis_refuses_leave_the_page_working(team, owner_client, monkeypatch):
    def refuse(study):
        raise ValueError("trials.csv: bad rows")

    monkeypatch.setattr(planning, "study_trials", refuse)
    response = owner_client.get(url(team.study_id))
    assert response.status_code == 200
    assert "cannot serve as a pilot: trials.csv: bad rows" in page_text(response)
    answer = owner_client.get(
        url(team.study_id, source="dz", dz="0.5", alpha="0.05", target_power="0.8")
    )
    assert answer.status_code == 200 and "Recruit 34 participants" in page_text(answer)
