"""The public page's means table and chart cards use the within-participant intervals of the
report's figures, and say so in plain words."""

from __future__ import annotations

import re

import matplotlib.figure
import pytest

import analysis.figures
from analysis.figures import CARD_WITHIN_NOTE, CARD_WITHIN_TITLE
from tests.findings.support import fill, owner_id, page_text

pytestmark = pytest.mark.once


@pytest.fixture
def cards(monkeypatch) -> list[matplotlib.figure.Figure]:
    """Every chart card figure drawn."""
    drawn = []
    real = analysis.figures.claim_card_figure

    def recording(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(analysis.figures, "claim_card_figure", recording)
    return drawn


def test_means_table_and_card_show_within_participant_intervals(
    app, client, demo, analyses, cards, auth
):
    fill(app, demo, 20, seed=3)
    auth.sign_in(owner_id(app))
    assert client.get(f"/r/studies/{demo}/report").status_code == 200
    results = client.get(f"/r/studies/{demo}/findings/preview/findings.json").get_json()
    rows = {
        d["condition"]: d
        for d in results["descriptives"]
        if d["outcome"] == "trust" and d["level"] == "participant"
    }
    response = client.get(f"/r/studies/{demo}/findings/preview")
    assert response.status_code == 200
    text = page_text(response)
    assert (
        "Means with 95% within-participant confidence intervals Participants with both "
        "conditions; the intervals leave out differences between participants, as the paired "
        "comparison of AI and real does. The chart shows the same."
    ) in text
    html = response.get_data(as_text=True)
    table = html[html.index('<table class="means">') :]
    table = table[: table.index("</table>")]
    for label, condition in (("Real photograph", "real"), ("AI headshot", "ai")):
        row = rows[condition]
        cells = re.search(rf"{label}</th><td>([^<]*)</td><td>([^<]*)</td><td>(\d+)</td>", table)
        assert cells is not None, label
        assert cells.group(1) == f"{row['within_mean']:.2f}"
        assert cells.group(2) == f"{row['within_ci_low']:.2f} to {row['within_ci_high']:.2f}"
        assert int(cells.group(3)) == row["within_n"]
    chart = client.get(f"/r/studies/{demo}/findings/preview/charts/trust.svg")
    assert chart.status_code == 200
    (card,) = cards
    ax = card.axes[0]
    assert ax.get_title(loc="left") == CARD_WITHIN_TITLE
    assert [t.get_text() for t in ax.texts if t.get_gid() == "interval-note"] == [CARD_WITHIN_NOTE]
    whiskers = [c.lines[2][0].get_segments()[0] for c in ax.containers if hasattr(c, "lines")]
    limits = [sorted(p[1] for p in segment) for segment in whiskers]
    assert limits == [
        pytest.approx([rows[c]["within_ci_low"], rows[c]["within_ci_high"]]) for c in ("real", "ai")
    ]
