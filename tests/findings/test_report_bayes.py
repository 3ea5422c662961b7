"""The report page shows each Bayes factor beside its t-test and in the claim's facts."""

from __future__ import annotations

import html
import math
import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.findings import service
from survey.models import Report
from tests.findings.support import GUARD_EFFECTS, PLAN, fill, owner_id, preregister

pytestmark = [pytest.mark.slow, pytest.mark.once]


def test_bayes_factors_on_the_report_page(app, client, demo, analyses, auth):
    preregister(app, demo, {**PLAN, "bayes_rscale": 1.0})
    fill(app, demo, 24, seed=2, effects=GUARD_EFFECTS)
    auth.sign_in(owner_id(app))
    response = client.get(f"/r/studies/{demo}/report")
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    with app.app_context():
        results = service.results_json(db.session.scalar(sa.select(Report)))
    with_bf = [t for t in results["tests"] if t.get("log_bf10") is not None]
    assert with_bf and all(t["bf_rscale"] == 1.0 for t in with_bf)
    for test in with_bf:
        log_bf10 = test["log_bf10"]
        name, value = ("BF10", log_bf10) if log_bf10 >= 0 else ("BF01", -log_bf10)
        shown = re.search(rf"{name} = ([0-9.,e+]+) \(r = 1\)", page)
        assert shown, test["outcome"]
    # The facts of each claim, and the professional scale's claim itself (no difference there),
    # say which hypothesis the data favour and how strongly.
    assert page.count("<dt>Bayes factor</dt>") == len(with_bf)
    professional = next(f for f in results["findings"] if f["outcome"] == "professional")
    test = results["tests"][professional["supported_by"][0]]
    expected = math.exp(-test["log_bf10"])
    assert "(JZS prior, r = 1)" in professional["claim"]
    assert expected >= 3  # 24 participants (seed 2), no difference simulated: BF01 = 6.35
    assert "more likely under no difference than under a difference" in professional["claim"]
    assert "JZS Bayes factor (Rouder et al., 2009" in page
