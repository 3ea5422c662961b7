"""Condition plots: within-participant intervals that agree with the paired test."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.figures import within_intervals


def test_cousineau_morey_interval_by_hand():
    # real 1, 2, 3 and ai 2, 2, 5: participant means 1.5, 2, 4, grand mean 2.5; centred real
    # scores 2, 2.5, 1.5 (SD 0.5); Morey's factor sqrt(2 / 1); t(0.975, 2) = 4.302653
    wide = pd.DataFrame({"real": [1.0, 2.0, 3.0], "ai": [2.0, 2.0, 5.0]})
    intervals = within_intervals(wide)
    half = 4.302652729749464 * 0.5 / math.sqrt(3) * math.sqrt(2)
    assert intervals["real"] == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-12)
    assert intervals["ai"] == pytest.approx((3.0, 3.0 - half, 3.0 + half), rel=1e-12)


def test_within_interval_follows_the_paired_differences_not_the_spread_of_people():
    """With two conditions the half-width is the paired CI's divided by sqrt(2), whatever the
    differences between participants; the between-participant interval is far wider."""
    rng = np.random.default_rng(3)
    person = rng.normal(0, 3, 40)
    wide = pd.DataFrame(
        {"real": person + rng.normal(0, 0.3, 40), "ai": person - 0.4 + rng.normal(0, 0.3, 40)}
    )
    intervals = within_intervals(wide)
    d = wide["ai"] - wide["real"]
    paired_half = stats.t.ppf(0.975, 39) * d.std(ddof=1) / math.sqrt(40)
    mean, low, high = intervals["ai"]
    assert (high - low) / 2 == pytest.approx(paired_half / math.sqrt(2), rel=1e-12)
    between = stats.t.ppf(0.975, 39) * wide["ai"].std(ddof=1) / math.sqrt(40)
    assert (high - low) / 2 < between / 4
    assert within_intervals(wide.iloc[:1]) == {}


def test_text_outside_the_bundled_fonts_still_renders():
    """Regression: a hypothesis written in characters DejaVu lacks made the public chart fail.

    Matplotlib warns once per missing glyph; the figure is drawn with boxes in their place.
    """
    import warnings

    from matplotlib.figure import Figure

    from analysis.figures import render

    fig = Figure(figsize=(2, 1))
    fig.text(0.1, 0.5, "𐅧 𗶘 trust")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fmt in ("svg", "png"):
            assert len(render(fig, fmt)) > 100
