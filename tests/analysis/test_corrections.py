"""Holm and Benjamini-Hochberg as R's p.adjust, checked by hand and against statsmodels."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.corrections import adjust

P = [0.01, 0.04, 0.03, 0.005]


def test_holm_by_hand():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm")
    # sorted: 4 * 0.005, 3 * 0.01, 2 * 0.03, 1 * 0.04 -> 0.02, 0.03, 0.06, max(0.04, 0.06)
    assert adjust(P, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_bh_by_hand():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH")
    # sorted p * 4 / rank: 0.02, 0.02, 0.04, 0.04; running minimum from the top
    assert adjust(P, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])


@pytest.mark.slow
@pytest.mark.parametrize("method, name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_against_statsmodels(method, name):
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 0.2, 25)
    assert adjust(p, method) == pytest.approx(multipletests(p, method=name)[1], rel=1e-12)


def test_capped_at_one_and_none_leaves_p():
    assert adjust([0.4, 0.6], "holm").tolist() == [0.8, 0.8]
    assert adjust([0.4, 0.6], "none").tolist() == [0.4, 0.6]


def test_missing_p_values_do_not_count():
    out = adjust([0.01, np.nan, 0.02], "holm")
    assert np.isnan(out[1])
    assert out[[0, 2]] == pytest.approx([0.02, 0.02])


def test_single_test_is_unchanged():
    assert adjust([0.03], "holm").tolist() == [0.03]
    assert adjust([0.03], "bh").tolist() == [0.03]


def test_errors():
    with pytest.raises(ValueError, match="correction must be one of holm, bh, none, got 'bonf'"):
        adjust(P, "bonf")
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        adjust([0.5, 1.5])
