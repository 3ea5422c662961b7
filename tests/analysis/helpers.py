"""Helpers for the analysis tests that are not fixtures: small synthetic studies."""

from __future__ import annotations

import pandas as pd

from analysis.io import TRIAL_COLUMNS
from bench.sim_small import SIM_SMALL, sim_small_rows


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


MODERATORS = SIM_SMALL.parent / "moderators"


def moderator_rows() -> pd.DataFrame:
    """sim-small rows kept by the default exclusions, with the reference moderators merged in.

    identities.csv (gender, age_band, ethnicity; blanks kept as "") and answers.csv
    (ai_familiarity: numbers, NaN if blank) of tests/data/reference/moderators.
    """
    rows = sim_small_rows()[0]
    identities = pd.read_csv(MODERATORS / "identities.csv", dtype=str, keep_default_na=False)
    answers = pd.read_csv(MODERATORS / "answers.csv")
    rows = rows.merge(identities, on="identity").merge(answers, on="participant")
    return rows.assign(value=pd.to_numeric(rows["value"], errors="coerce"))
