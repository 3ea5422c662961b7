"""The sim-small reference export (tests/data/reference) and its rows after the default
exclusions, as the analysis tests and the benchmarks read them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SIM_SMALL = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference" / "sim-small"


def sim_small_rows() -> tuple[pd.DataFrame, list[str], dict]:
    """sim-small rows kept by the default exclusions, the excluded ids and R's numbers."""
    if not SIM_SMALL.is_dir():
        raise FileNotFoundError(f"reference data missing: {SIM_SMALL}")
    trials = pd.read_csv(SIM_SMALL / "trials.csv", dtype={"value": str})
    people = pd.read_csv(SIM_SMALL / "participants.csv")
    median_rt = trials.groupby("participant")["rt_ms"].median()
    keep = people.loc[
        (people["status"] == "completed")
        & (people["attention_passed"] == people["attention_total"]),
        "participant",
    ]
    keep = [p for p in keep if median_rt[p] >= 250]
    excluded = sorted(set(people["participant"]) - set(keep))
    rows = trials[trials["participant"].isin(keep) & (trials["attention_check"] == 0)]
    reference = json.loads((SIM_SMALL / "reference.json").read_text())
    return rows, excluded, reference
