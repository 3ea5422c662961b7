"""Fixtures for the analysis tests: the R reference export and small synthetic studies."""

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.io import TRIAL_COLUMNS, load

# The R reference data live in the repository, in tests/data/reference (its README says how to
# regenerate them).
REFERENCE_ROOT = Path(__file__).resolve().parents[1] / "data" / "reference"
SIM_SMALL = REFERENCE_ROOT / "sim-small"


@pytest.fixture(scope="session")
def sim_dir() -> Path:
    """The sim-small export (trials.csv, participants.csv, reference.json); fails if missing."""
    needed = [SIM_SMALL / name for name in ("trials.csv", "participants.csv", "reference.json")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        pytest.fail(f"reference data missing: {', '.join(missing)}", pytrace=False)
    return SIM_SMALL


@pytest.fixture(scope="session")
def reference(sim_dir) -> dict:
    """What R computed on sim-small with reference.R (see tests/data/reference/README.md)."""
    return json.loads((sim_dir / "reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def sim(sim_dir):
    """sim-small, loaded and validated."""
    return load(sim_dir)


@pytest.fixture(scope="session")
def sim_report(sim):
    """The report on sim-small without mixed models (computed once)."""
    from analysis.report import analyse

    return analyse(sim, mixed_models=False)


def make_trials(
    participants=("p1", "p2", "p3"),
    identities=("A", "B", "C", "D"),
    rating=lambda p, i, c: 4 if c == "real" else 3,
    same=None,
    choice=None,
    detect=None,
    attention=True,
) -> pd.DataFrame:
    """A small valid trials table: a rate block for every participant x identity x condition.

    `rating(p, i, condition)` gives the trust rating (None leaves the trial out);
    `same(p, i, condition, is_match)` adds match trials; `choice(p, i)` adds choose trials
    ("real"/"ai"); `detect(p, i, condition)` adds detect trials answering "real"/"ai".
    """
    rows = []

    def add(p, **cells):
        row = {c: "" for c in TRIAL_COLUMNS}
        row.update(
            study="demo",
            participant=p,
            list="A",
            block=cells.get("task", ""),
            rt_ms="900",
            attention_check="0",
        )
        row.update({k: str(v) for k, v in cells.items()})
        row["trial"] = str(sum(r["participant"] == p for r in rows) + 1)
        rows.append(row)

    for p in participants:
        for i in identities:
            for c in ("real", "ai"):
                value = rating(p, i, c) if rating else None
                if value is not None:
                    add(p, task="rate", identity=i, condition=c, measure="trust", value=value)
                if same is not None:
                    for is_match in (1, 0):
                        answer = same(p, i, c, is_match)
                        if answer is not None:
                            add(
                                p,
                                task="match",
                                identity=i,
                                condition=c,
                                probe=i if is_match else "X",
                                is_match=is_match,
                                measure="same",
                                value=answer,
                                correct=int(answer == is_match),
                            )
                if detect is not None:
                    answer = detect(p, i, c)
                    add(
                        p,
                        task="detect",
                        identity=i,
                        condition=c,
                        measure="source",
                        value=answer,
                        correct=int(answer == c),
                    )
            if choice is not None:
                add(p, task="choose", identity=i, measure="choice", value=choice(p, i))
        if attention:
            add(p, task="rate", measure="attention", value="2", correct="1", attention_check="1")
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


def make_participants(trials: pd.DataFrame, status=None) -> pd.DataFrame:
    """A participants table matching `trials`; `status` maps participant -> status."""
    ids = list(dict.fromkeys(trials["participant"]))
    return pd.DataFrame(
        {
            "participant": ids,
            "list": "A",
            "status": [(status or {}).get(p, "completed") for p in ids],
            "attention_passed": 1,
            "attention_total": 1,
        }
    )
