"""The memory test's old/new GLMM: "met before?" by status (studied real, studied AI, foil)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# The status of a test photo's person, reference first: never studied, studied in the real
# photograph, studied in the AI headshot. R: factor(status, levels = STATUS_LEVELS).
STATUS_LEVELS = ("foil", "studied_real", "studied_ai")
FORMULA = "said_old ~ status + (1 | participant) + (1 | identity)"
# What each coefficient compares, as the report says it.
TERM_WORDS = {
    "(Intercept)": "foils (log-odds of a false alarm)",
    "statusstudied_real": "studied in the real photograph vs foil",
    "statusstudied_ai": "studied in the AI headshot vs foil",
}


def status_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Return the old/new answers of the test phase with each person's status.

    Attention checks aside; a row's condition is the condition the person was studied in, and
    empty for a foil.
    """
    rows = trials[
        (trials["task"] == "recognise")
        & (trials["measure"] == "old")
        & (trials.get("attention_check", 0) == 0)
    ]
    status = np.where(
        rows["condition"] == "real",
        "studied_real",
        np.where(rows["condition"] == "ai", "studied_ai", "foil"),
    )
    return pd.DataFrame(
        {
            "participant": rows["participant"].to_numpy(),
            "identity": rows["identity"].to_numpy(),
            "status": status,
            "said_old": pd.to_numeric(rows["value"], errors="coerce").to_numpy(),
        }
    )


def fit_old_new(trials: pd.DataFrame) -> dict[str, Any]:
    """Fit ``said_old ~ status + (1 | participant) + (1 | identity)`` (logistic, Laplace) as
    lme4::glmer with status's treatment contrasts against foils, and return it plainly.

    Besides each coefficient (Wald z), the AI-minus-real contrast among studied people (on the
    log-odds of saying "met before") and the joint Wald chi-square of status (2 df).
    ValueError when the data cannot carry the model (a status missing, one participant).
    """
    from analysis import mixed

    rows = status_rows(trials)
    missing = [s for s in STATUS_LEVELS if not (rows["status"] == s).any()]
    if missing:
        raise ValueError(f"no test answers for status {', '.join(missing)}")
    # Treatment coding with foils as reference, as the two-condition fitter takes it: the
    # studied-AI indicator as its condition and the studied-real indicator as a covariate,
    # so the model matrix is R's model.matrix(~ status) column for column.
    data = pd.DataFrame(
        {
            "said_old": rows["said_old"],
            "participant": rows["participant"],
            "identity": rows["identity"],
            "studied_ai": np.where(rows["status"] == "studied_ai", "yes", "no"),
            "studied_real": (rows["status"] == "studied_real").astype(float),
        }
    )
    fit = mixed.fit_glmm(
        data,
        dv="said_old",
        condition="studied_ai",
        baseline="no",
        treatment="yes",
        fixed="studied_real + studied_ai",
        slopes=False,
    )
    names = {
        "(Intercept)": "(Intercept)",
        "studied_real": "statusstudied_real",
        "studied_aiyes": "statusstudied_ai",
    }
    coefficients = [
        {
            "term": names[c["term"]],
            "compares": TERM_WORDS[names[c["term"]]],
            "estimate": c["estimate"],
            "se": c["se"],
            "z": c["statistic"],
            "p_value": c["p_value"],
            "ci_low": c["ci_low"],
            "ci_high": c["ci_high"],
        }
        for c in fit.coefficients
    ]
    order = {name: i for i, name in enumerate(TERM_WORDS)}
    coefficients.sort(key=lambda c: order[c["term"]])
    contrast = fit.contrast({"studied_aiyes": 1.0, "studied_real": -1.0})
    joint = fit.joint(["studied_real", "studied_aiyes"])
    variances = {r["group"]: r["variance"] for r in fit.random_effects}
    return {
        "method": "glmm",
        "formula": FORMULA,
        "levels": list(STATUS_LEVELS),
        "n": fit.n_obs,
        "n_participants": fit.n_participants,
        "n_identities": fit.n_identities,
        "coefficients": coefficients,
        "ai_vs_real": {
            "estimate": contrast["estimate"],
            "se": contrast["se"],
            "z": contrast["statistic"],
            "p_value": contrast["p_value"],
            "ci_low": contrast["ci_low"],
            "ci_high": contrast["ci_high"],
            "odds_ratio": math.exp(contrast["estimate"]),
        },
        "status_test": {
            "chisq": joint["statistic"],
            "df": joint["df"],
            "p_value": joint["p_value"],
        },
        "random_effects": {
            "participant": variances.get("participant"),
            "identity": variances.get("identity"),
        },
        "singular": fit.singular,
        "converged": fit.converged,
        "notes": list(fit.notes),
    }
