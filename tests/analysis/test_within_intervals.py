"""Within-participant (Cousineau–Morey) intervals in results.json, and the public chart card
that draws them: the same intervals as the report's figures, said so in plain words."""

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import ErrorbarContainer

from analysis.descriptives import within_ci
from analysis.figures import (
    CARD_WITHIN_NOTE,
    CARD_WITHIN_TITLE,
    claim_card_figure,
    paired_wide,
    within_intervals,
)
from analysis.report import analyse
from analysis.results import paired_means
from analysis.vocabulary import rating_outcome
from tests.analysis.helpers import make_participants, make_trials

PEOPLE = tuple(f"p{k}" for k in range(8))


def _rating(p, i, c):
    """Participants differ a lot in their level, little in their AI-minus-real difference."""
    level = 2 + int(p[1:]) * 0.6
    drop = 1 if c == "ai" else 0
    wobble = 1 if (int(p[1:]) + ord(i) + len(c)) % 3 == 0 else 0
    return int(min(7, max(1, round(level - drop + wobble))))


@pytest.fixture(scope="module")
def report():
    trials = make_trials(participants=PEOPLE, identities=tuple("ABCD"), rating=_rating)
    # p7 rates only real faces: a mean for real, but no pair
    trials = trials[~((trials["participant"] == "p7") & (trials["condition"] == "ai"))]
    return analyse(trials, make_participants(trials), mixed_models=False)


def test_descriptives_carry_the_within_participant_interval_of_the_paired_test(report):
    results = report.results
    rows = {
        d["condition"]: d
        for d in results["descriptives"]
        if d["outcome"] == "trust" and d["level"] == "participant"
    }
    scores = report.tables["participant_scores"]
    # the report's figure: paired_wide over complete pairs, then within_ci
    figure = within_intervals(paired_wide(scores, "trust", "participant"))
    expected = within_ci(scores[scores["outcome"] == "trust"]).set_index("condition")
    for condition in ("real", "ai"):
        row = rows[condition]
        assert row["within_n"] == 7  # p7 has no AI score
        assert row["n"] == (8 if condition == "real" else 7)
        assert row["within_mean"] == pytest.approx(figure[condition][0], rel=1e-12)
        assert row["within_ci_low"] == pytest.approx(figure[condition][1], rel=1e-12)
        assert row["within_ci_high"] == pytest.approx(figure[condition][2], rel=1e-12)
        assert row["within_ci_low"] == pytest.approx(expected.loc[condition, "ci_low"])
        # participants differ in level far more than in their difference: narrower than the
        # ordinary (between-participant) interval
        assert row["within_ci_high"] - row["within_ci_low"] < row["ci_high"] - row["ci_low"]
    unpaired = [
        d for d in results["descriptives"] if d["level"] == "identity" or d["condition"] is None
    ]
    assert unpaired and all("within_ci_low" not in d for d in unpaired)


def _error_limits(fig) -> list[tuple[float, float]]:
    """(low, high) in data units of every error bar of the card's axes."""
    ax = fig.axes[0]
    out = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            _line, _caps, (whiskers,) = container.lines
            for segment in whiskers.get_segments():
                ys = sorted(point[1] for point in segment)
                out.append((ys[0], ys[-1]))
    return out


def test_the_card_draws_the_within_participant_intervals_and_says_so(report):
    results = report.results
    finding = next(f for f in results["findings"] if f["outcome"] == "trust")
    fig = claim_card_figure(results, finding, "A study", "footer")
    FigureCanvasAgg(fig).draw()
    rows = {
        d["condition"]: d
        for d in results["descriptives"]
        if d["outcome"] == "trust" and d["level"] == "participant"
    }
    assert _error_limits(fig) == [
        pytest.approx((rows[c]["within_ci_low"], rows[c]["within_ci_high"])) for c in ("real", "ai")
    ]
    # the bars stand at the means of the participants with both conditions (p7 left out)
    heights = [p.get_y() + p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([rows[c]["within_mean"] for c in ("real", "ai")])
    assert rows["real"]["within_mean"] != pytest.approx(rows["real"]["mean"])
    ax = fig.axes[0]
    assert ax.get_title(loc="left") == CARD_WITHIN_TITLE
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "interval-note"]
    assert notes == [CARD_WITHIN_NOTE]
    assert "between participants" in CARD_WITHIN_NOTE and "paired" in CARD_WITHIN_NOTE


def test_older_results_without_within_intervals_keep_their_own_caption():
    outcome = rating_outcome("trust", {"trust": (1, 7)})
    results = {
        "n_participants": 10,
        "tests": [],
        "descriptives": [
            {"outcome": "trust", "level": "participant", "condition": c, "mean": m,
             "ci_low": m - 0.5, "ci_high": m + 0.5, "n": 10}
            for c, m in (("real", 4.5), ("ai", 4.0))
        ],
    }  # fmt: skip
    means, within = paired_means(results, outcome)
    assert not within
    assert means["ai"] == {"mean": 4.0, "low": 3.5, "high": 4.5, "n": 10}
    finding = {"outcome": "trust", "claim": "A claim.", "preregistered": False}
    fig = claim_card_figure(results, finding, "A study", "footer")
    FigureCanvasAgg(fig).draw()
    assert fig.axes[0].get_title(loc="left") == "Means with 95% confidence intervals"
    assert not [t for t in fig.axes[0].texts if t.get_gid() == "interval-note"]
    # one condition without its within interval: the card does not mix the two kinds
    results["descriptives"][0].update(
        within_mean=4.5, within_ci_low=4.3, within_ci_high=4.7, within_n=10
    )
    assert paired_means(results, outcome)[1] is False
