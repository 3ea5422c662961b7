"""Moderators for the report: does the AI effect hold for every group?

Identity descriptors (identities.csv: gender, age band, ethnicity, ...) and participant
answers (participants.csv columns) are merged into the trial rows, and each outcome's mixed
model is refitted as ``condition * moderator`` by :func:`analysis.mixed.moderation`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis.corrections import adjust
from analysis.findings import moderation_claim
from analysis.mixed import Moderation, moderation

# participants.csv columns that describe the session, not the person: never automatic moderators
_SESSION_COLUMNS = {"participant", "status", "started_at", "completed_at", "duration_s"}
MAX_LEVELS = 12  # a moderator with more levels (free text, ages in years) is not a grouping
# Correction families: the main models' interaction tests are adjusted together; the ordinal
# model's (CLMM, asked the same questions of the ratings) apart, so that fitting it beside
# the LMM does not dilute the LMM's tests.
FAMILY_OF = {"lmm": "moderation", "glmm": "moderation", "clmm": "moderation_ordinal"}


def _blank(values: pd.Series) -> pd.Series:
    """Missing or blank cells."""
    return values.isna() | values.astype(str).str.strip().eq("")


def choose_moderators(
    identities: pd.DataFrame | None,
    participants: pd.DataFrame | None,
    names: list[str] | None,
    warnings: list[str],
) -> list[tuple[str, str]]:
    """The moderators to test, as (column, source) with source "identity" or "participant".

    Without ``names``, every identity descriptor with two or more levels (participant answers
    are tested only when named, e.g. in the plan). A named column is looked up in the
    identities table first, then in the participants table; one found in neither is warned
    about and skipped.
    """
    descriptors = [
        c for c in (identities.columns if identities is not None else []) if c != "identity"
    ]
    answers = [
        c
        for c in (participants.columns if participants is not None else [])
        if c not in _SESSION_COLUMNS
    ]
    if names is None:
        chosen = []
        for column in descriptors:
            assert identities is not None
            levels = set(identities.loc[~_blank(identities[column]), column].astype(str))
            if len(levels) >= 2:
                chosen.append((column, "identity"))
        return chosen
    chosen = []
    for name in names:
        if name in descriptors:
            chosen.append((name, "identity"))
        elif name in answers:
            chosen.append((name, "participant"))
        else:
            warnings.append(
                f"moderator {name!r} is neither an identity descriptor (identities.csv) nor a "
                "participants.csv column; it was not tested"
            )
    return chosen


def with_moderators(
    rows: pd.DataFrame,
    moderators: list[tuple[str, str]],
    identities: pd.DataFrame | None,
    participants: pd.DataFrame | None,
) -> pd.DataFrame:
    """Trial rows with one column per moderator (blank where the table has no value)."""
    out = rows.copy()
    for column, source in moderators:
        table = identities if source == "identity" else participants
        assert table is not None
        key = "identity" if source == "identity" else "participant"
        mapping = dict(zip(table[key].astype(str), table[column], strict=True))
        out[column] = out[key].astype(str).map(mapping)
    return out


def _entry(result: Moderation, source: str, preregistered: bool) -> dict[str, Any]:
    """results.json record of one moderation."""
    record = result.to_dict()
    record.update(
        source=source,
        family=FAMILY_OF.get(result.method, "moderation"),
        preregistered=preregistered,
        p_value=(result.lrt or {}).get("p_value"),
    )
    return record


def moderation_tests(
    outcome: str,
    rows: pd.DataFrame,
    method: str,
    slopes: bool | str,
    moderators: list[tuple[str, str]],
    named: list[str],
    scale: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Test each moderator on one outcome's trial rows (columns added by `with_moderators`).

    ``method`` is the model family: ``lmm`` or ``clmm`` (ratings) or ``glmm`` (0/1 outcomes).
    """
    dv = "correct" if method == "glmm" else "value"
    data = rows.rename(columns={"value": "correct"}) if method == "glmm" else rows
    out = []
    for column, source in moderators:
        levels = data[column][~_blank(data[column])].astype(str).nunique()
        if levels > MAX_LEVELS:
            result = Moderation(
                outcome, column, method, False, None, None, [], None, None, [], len(data), 0,
                None, [f"{column} has {levels} levels (more than {MAX_LEVELS}): it is not "
                       "tested as a grouping; not tested"],
            )  # fmt: skip
        else:
            try:
                result = moderation(data, dv, column, method, slopes=slopes)
            except Exception as exc:  # noqa: BLE001 - a failing model must not stop the report
                result = Moderation(
                    outcome, column, method, False, None, None, [], None, None, [], len(data),
                    0, None, [f"the model could not be fitted ({exc}); not tested"],
                )  # fmt: skip
        result.outcome = outcome
        entry = _entry(result, source, column in named)
        entry["outcome"] = outcome
        if scale:
            entry["scale"] = list(scale)
        out.append(entry)
    return out


def finish(entries: list[dict[str, Any]], alpha: float, correction: str) -> None:
    """Adjust the interaction tests of each family together and word each one."""
    for family in dict.fromkeys(e.get("family", "moderation") for e in entries):
        members = [e for e in entries if e.get("family", "moderation") == family]
        p = [e["p_value"] if e.get("p_value") is not None else float("nan") for e in members]
        for entry, adjusted in zip(members, adjust(p, correction), strict=True):
            entry["p_adjusted"] = None if adjusted != adjusted else float(adjusted)
            entry["correction"] = correction
    for entry in entries:
        entry["verdict"], entry["claim"] = moderation_claim(entry, alpha)


def moderation_table(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """Tidy moderation.csv: one row per outcome, moderator and level."""
    columns = [
        "outcome", "method", "moderator", "source", "level", "n_trials", "estimate", "se",
        "statistic", "df", "p_value", "ci_low", "ci_high", "note", "lrt_chisq", "lrt_df",
        "lrt_p_value", "lrt_p_adjusted", "correction", "verdict",
    ]  # fmt: skip
    rows = []
    for e in entries:
        lrt = e.get("lrt") or {}
        shared = {
            "outcome": e["outcome"],
            "method": e["method"],
            "moderator": e["moderator"],
            "source": e["source"],
            "lrt_chisq": lrt.get("statistic"),
            "lrt_df": lrt.get("df"),
            "lrt_p_value": lrt.get("p_value"),
            "lrt_p_adjusted": e.get("p_adjusted"),
            "correction": e.get("correction"),
            "verdict": e.get("verdict"),
        }
        for level in e.get("levels") or [{"note": "; ".join(e.get("notes", []))}]:
            rows.append({**shared, **{k: level.get(k) for k in columns if k in level}})
    return pd.DataFrame(rows, columns=columns)
