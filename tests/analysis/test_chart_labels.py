"""Public chart cards: a bar's value label never overlaps its error bar (measured, not eyed).

The card is laid out by matplotlib's own renderer and every label's bounding box is compared
with the extents of every error bar (whisker and caps) and of the other bars.
"""

import math

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import ErrorbarContainer
from matplotlib.transforms import Bbox

from analysis.figures import claim_card, claim_card_figure, identity_interval, report_figures


def _results(outcome: str, rows: list[tuple], scale=None) -> dict:
    """results.json with one finding and descriptives rows (condition, mean, low, high)."""
    test = {
        "outcome": outcome,
        "family": "primary",
        "level": "participant",
        "method": "paired_t",
        "n": 48,
        "estimate": 0.1,
        "ci_low": 0.0,
        "ci_high": 0.2,
    }
    if scale:
        test["scale"] = scale
    return {
        "n_participants": 48,
        "tests": [test],
        "descriptives": [
            {
                "outcome": outcome,
                "level": "participant",
                "condition": c,
                "mean": m,
                "ci_low": lo,
                "ci_high": hi,
                "n": 48,
            }
            for c, m, lo, hi in rows
        ],
        "findings": [
            {
                "outcome": outcome,
                "claim": "A claim long enough to wrap over a few "
                "lines of the card, as real claims do.",
                "preregistered": True,
                "verdict": "difference",
                "supported_by": [0],
            }
        ],
    }


# Narrow and wide intervals, a bar barely above its base, intervals reaching the axis limits.
CASES = {
    "rating-narrow": _results(
        "trust", [("real", 4.6, 4.55, 4.65), ("ai", 4.2, 4.15, 4.25)], [1, 7]
    ),
    "rating-wide": _results("trust", [("real", 4.6, 2.0, 6.9), ("ai", 1.3, 1.0, 3.5)], [1, 7]),
    "rating-at-base": _results("trust", [("real", 1.05, 1.0, 1.1), ("ai", 6.95, 6.9, 7.0)], [1, 7]),
    "accuracy": _results(
        "recognition_accuracy", [("real", 0.75, 0.70, 0.80), ("ai", 0.02, 0.0, 0.06)]
    ),
    "accuracy-full": _results(
        "recognition_accuracy", [("real", 0.99, 0.95, 1.0), ("ai", 0.5, 0.1, 0.9)]
    ),
    "share-at-chance": _results("choice_real", [(None, 0.5, 0.45, 0.55)]),
    "share-wide": _results("choice_real", [(None, 0.9, 0.4, 1.0)]),
    "detection-low": _results("detection_accuracy", [(None, 0.03, 0.0, 0.08)]),
}


def _boxes(fig):
    """Label boxes, error bar boxes and bar boxes of the card, in pixels."""
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == "bar-label"]
    errorbars = []
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer):
            _line, caps, whiskers = container.lines
            errorbars += [cap.get_window_extent(renderer) for cap in caps]
            for whisker in whiskers:  # a LineCollection: its segments in pixels, with its width
                pad = whisker.get_linewidth()[0] * fig.dpi / 72 / 2
                for segment in whisker.get_segments():
                    points = ax.transData.transform(segment)
                    errorbars.append(Bbox(points).padded(pad))
    bars = [p.get_window_extent(renderer) for p in ax.patches]
    others = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() != "bar-label"]
    assert all(math.isfinite(b.x0) and math.isfinite(b.x1) for b in labels + errorbars + others)
    return ax, labels, errorbars, bars, others


@pytest.mark.parametrize("case", sorted(CASES))
def test_bar_labels_clear_the_error_bars(case):
    results = CASES[case]
    fig = claim_card_figure(results, results["findings"][0], "A study", "footer")
    FigureCanvasAgg(fig).draw()
    ax, labels, errorbars, bars, others = _boxes(fig)
    rows = len(results["descriptives"])
    assert len(labels) == rows and len(errorbars) == 3 * rows  # two caps and a whisker each
    axes_box = ax.get_window_extent(fig.canvas.get_renderer())
    for label in labels:
        for box in errorbars + others:
            assert not label.overlaps(box), (case, label, box)
        # Beside the bars, not on them, and inside the plotting area.
        for box in bars:
            assert label.x0 >= box.x1 or label.x1 <= box.x0, (case, label, box)
        assert axes_box.x0 <= label.x0 and label.x1 <= axes_box.x1, (case, label, axes_box)


def test_card_png_is_still_1200_by_675():
    from io import BytesIO

    from PIL import Image

    results = CASES["rating-wide"]
    with Image.open(BytesIO(claim_card(results, results["findings"][0], "A study", "f"))) as im:
        assert im.size == (1200, 675)


def test_identity_chart_draws_the_t_interval_over_identities():
    """The mean of the identities' differences with the identity-level paired t interval,
    drawn and named in the alt text."""
    from scipy import stats

    diffs = {"A": -0.9, "B": -0.4, "C": -0.6, "D": 0.1, "E": -0.2}
    rows = []
    for identity, d in diffs.items():
        rows += [
            {
                "identity": identity,
                "outcome": "trust",
                "condition": "real",
                "value": 4.0,
                "n_trials": 10,
            },
            {
                "identity": identity,
                "outcome": "trust",
                "condition": "ai",
                "value": 4.0 + d,
                "n_trials": 10,
            },
        ]
    identity_scores = pd.DataFrame(rows)
    participants = pd.DataFrame(columns=["participant", "outcome", "condition", "value"])
    results = {
        "tests": [
            {
                "outcome": "trust",
                "family": "primary",
                "level": "participant",
                "method": "paired_t",
                "scale": [1, 7],
                "n": 30,
            }
        ],
        "descriptives": [],
    }
    spec = next(
        s
        for s in report_figures(results, participants, identity_scores)
        if s.name == "identities_trust"
    )
    test = stats.ttest_1samp(list(diffs.values()), 0.0)
    ci = test.confidence_interval(0.95)
    mean, low, high = identity_interval(pd.Series(diffs))
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert f"{mean:.2f}, with its 95% confidence interval, {low:.2f} to {high:.2f}" in spec.alt
    assert "t interval over the identities' differences" in spec.alt
    fig = spec.draw()
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    whisker = bars[0].lines[2][0].get_segments()[0]
    assert sorted(x for x, _y in whisker) == pytest.approx([low, high], rel=1e-12)
    assert "Mean (95% CI)" in [t.get_text() for t in ax.get_yticklabels()]
    assert identity_interval(pd.Series([0.3])) is None
