"""Load a study export (trials.csv, a folder, a psych-DS ZIP or folder, or DataFrames) and check
it against the data contract, so every later step can trust its input."""

from __future__ import annotations

import hashlib
import io as _io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.vocabulary import (
    DEFAULT_RATING_RANGE,
    FIXED_MEASURES,
    REAL_SIDES,
    RT_FAST_MS,
    RT_FLAGS,
    RT_SLOW_MS,
    TRIAL_DETAIL_COLUMNS,
    rt_flag,
)

# The columns every trials table must have; the data hash is computed over these alone.
TRIAL_COLUMNS = (
    "study",
    "participant",
    "list",
    "trial",
    "block",
    "task",
    "identity",
    "condition",
    "probe",
    "is_match",
    "measure",
    "value",
    "correct",
    "rt_ms",
    "attention_check",
)
# Columns added to the contract later: read when present, derived when absent (older exports).
# `simulated` (1: a participant simulated by the platform) is 0 when absent; the web report
# reads the tables without simulated participants unless asked to include them.
# `studied` (recognise rows: 1 for a person met in the learn block, 0 for a foil) follows from
# the condition (a target's is the condition it was studied in, a foil's is empty).
DERIVED_TRIAL_COLUMNS = ("rt_flag", "simulated", "studied")
# TRIAL_DETAIL_COLUMNS (analysis.vocabulary: what each trial showed, where and when) follow
# `studied`: checked when present, empty text when absent (older exports); never analysed.
# A time of trials.csv: ISO 8601 in UTC with a Z, to the second or a fraction of it.
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")
TASKS = ("match", "rate", "choose", "detect", "learn", "recognise")
CONDITIONS = ("real", "ai")
STATUSES = ("completed", "partial")
TASK_MEASURES = {
    "match": ("same", "confidence"),
    "choose": ("choice", "confidence"),
    "detect": ("source", "confidence"),
    "learn": ("seen", "orienting"),
    "recognise": ("old", "confidence", "name"),
}
# The orienting question of a learn block is answered on this scale.
ORIENTING_RANGE = (1, 5)
DEFAULT_CONFIDENCE_RANGE = (1, 5)
RATING_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PSYCHDS_DATA = re.compile(r"^study-.+_data\.csv$")
_PSYCHDS_PARTICIPANTS = re.compile(r"^study-.+_table-participants_data\.csv$")
# Exports prefix text cells that a spreadsheet would evaluate with an apostrophe.
_ESCAPED_CELL = re.compile(r"^'[=+\-@\t\r]")
# A psych-DS ZIP member larger than this is refused rather than read into memory.
MAX_MEMBER_BYTES = 2 * 1024**3


class ContractError(ValueError):
    """Input that breaks the data contract; names the file, the row and the column."""

    def __init__(
        self,
        message: str,
        *,
        file: str,
        row: int | None = None,
        column: str | None = None,
        header: bool = True,
    ):
        self.file = file
        self.row = row
        self.column = column
        self.problem = message
        where = [file]
        if row is not None:
            where.append(f"row {row} (the header is row 1)" if header else f"row {row} (from 1)")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass
class StudyData:
    """A validated trials table, the participants table (when there is one) and their sources."""

    trials: pd.DataFrame
    participants: pd.DataFrame | None
    trials_source: str
    participants_source: str | None
    scale_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    # identities.csv (identity code and its descriptors), when the export has one
    identities: pd.DataFrame | None = None

    def __iter__(self):
        """Unpack as ``trials, participants``."""
        return iter((self.trials, self.participants))

    @property
    def study(self) -> str:
        """The study slug shared by every trial row."""
        return str(self.trials["study"].iloc[0])

    @property
    def data_sha256(self) -> str:
        """SHA-256 of the trials table in canonical form (see `canonical_trials_csv`)."""
        return hashlib.sha256(canonical_trials_csv(self.trials).encode("utf-8")).hexdigest()


def load(
    source,
    participants=None,
    *,
    scale_ranges: Mapping[str, tuple[int, int]] | None = None,
    identities=None,
) -> StudyData:
    """Read and validate a study export.

    Parameters
    ----------
    source : str, Path or pandas.DataFrame
        A trials CSV (``trials.csv`` or a psych-DS ``study-<slug>_data.csv``), a folder that holds
        ``trials.csv`` (and ``participants.csv``), a psych-DS folder or ZIP
        (``dataset_description.json`` beside ``data/``; a ZIP may also hold trials.csv), or the
        trials table itself as a DataFrame (e.g. from the database).
    participants : str, Path or pandas.DataFrame, optional
        The participants table. By default it is looked up beside the trials file.
    scale_ranges : mapping of str to (int, int), optional
        Allowed range of each rating scale (and of ``confidence``); a scale not named here
        ranges over 1..7 (confidence over 1..5).
    identities : str, Path or pandas.DataFrame, optional
        The identities table (``identity`` and descriptor columns such as ``gender``). By
        default ``identities.csv`` (psych-DS: ``study-<slug>_table-identities_data.csv``) beside
        the trials file or in the ZIP, when there is one.

    Returns
    -------
    StudyData
        ``trials`` has the contract columns with ``trial`` and ``attention_check`` as int,
        ``is_match``, ``correct`` and ``rt_ms`` as float (NaN when empty), ``value`` as text, plus
        ``value_number`` (float: the value of same, confidence and rating measures, else NaN)
        and ``rt_flag`` (text: "fast" below 50 ms, "slow" above 10 minutes, else empty), derived
        from ``rt_ms`` when the file predates the column, and the detail columns
        (``TRIAL_DETAIL_COLUMNS``: real_side, image ids, shown_at, answered_at) as text, empty
        when the file predates them.
        ``participants`` (or None) has ``participant`` and ``status`` as text and, when present,
        ``attention_passed`` and ``attention_total`` as int.

    Raises
    ------
    ContractError
        On the first row (in file order) that breaks the contract, naming file, row and column.
    """
    ranges = _scale_ranges(scale_ranges)
    ids_beside: Path | None = None
    if isinstance(source, pd.DataFrame):
        trials_raw, trials_name = _frame_to_text(source), "trials (DataFrame)"
        parts_raw, parts_name = _participants_input(participants, None)
    else:
        path = Path(source)
        if not path.exists():
            raise ContractError("no such file or folder", file=str(path))
        if path.is_file() and zipfile.is_zipfile(path):
            (trials_raw, trials_name), (zip_parts, zip_parts_name) = _read_zip(path)
            if participants is None:
                parts_raw, parts_name = zip_parts, zip_parts_name
            else:
                parts_raw, parts_name = _participants_input(participants, None)
        else:
            trials_path, beside = _locate_files(path)
            trials_raw, trials_name = _read_csv(trials_path), str(trials_path)
            parts_raw, parts_name = _participants_input(participants, beside)
            ids_beside = trials_path.with_name(_identities_name(trials_path.name))
    trials = validate_trials(trials_raw, trials_name, ranges)
    parts = None
    if parts_raw is not None:
        parts = validate_participants(parts_raw, parts_name)
        _check_participants_known(trials_raw, trials_name, parts)
    ids = None
    if identities is not None or ids_beside is not None:
        ids_raw, ids_name = _participants_input(identities, ids_beside)
        if ids_raw is not None:
            named = "identities (DataFrame)" if isinstance(identities, pd.DataFrame) else ids_name
            ids = validate_identities(ids_raw, named or "identities.csv")
    elif not isinstance(source, pd.DataFrame) and zipfile.is_zipfile(source):
        ids = _zip_identities(Path(source), trials_name)
    return StudyData(trials, parts, trials_name, parts_name, ranges, ids)


def _identities_name(trials_name: str) -> str:
    """identities.csv beside trials.csv, or the psych-DS table beside study-<slug>_data.csv."""
    match = re.match(r"^(study-.+)_data\.csv$", trials_name)
    return f"{match.group(1)}_table-identities_data.csv" if match else "identities.csv"


def _zip_identities(path: Path, trials_name: str) -> pd.DataFrame | None:
    """The identities table beside the trials file in a ZIP export, or None."""
    member = trials_name.split(":", 1)[1] if trials_name.startswith(f"{path}:") else trials_name
    folder, _sep, base = member.rpartition("/")
    wanted = f"{folder}/{_identities_name(base)}" if folder else _identities_name(base)
    with zipfile.ZipFile(path) as archive:
        if wanted not in archive.namelist():
            return None
        if archive.getinfo(wanted).file_size > MAX_MEMBER_BYTES:
            raise ContractError("file in the ZIP is too large to read", file=f"{path}:{wanted}")
        raw = _read_csv(_io.BytesIO(archive.read(wanted)), f"{path}:{wanted}")
    return validate_identities(raw, f"{path}:{wanted}")


def validate_identities(raw: pd.DataFrame, name: str = "identities.csv") -> pd.DataFrame:
    """Check an identities table of text cells: one row per identity code, descriptors as text.

    Blank descriptors stay empty strings (the analysis treats them as missing).

    Raises
    ------
    ContractError
        No ``identity`` column, an empty or repeated identity code.
    """
    _require_columns(raw, ("identity",), name)
    table = raw.copy()
    for column in table.columns:
        table[column] = _unescape(table[column].fillna("").astype(str)).str.strip()
    check = _Checker(name, table)
    check.check(table["identity"] == "", "identity", lambda v: "identity is empty")
    check.check(
        table["identity"].duplicated() & (table["identity"] != ""),
        "identity",
        lambda v: f"identity {v!r} appears twice",
    )
    check.raise_first()
    return table.reset_index(drop=True)


def _scale_ranges(scale_ranges) -> dict[str, tuple[int, int]]:
    """Check a scale-range mapping: integer (low, high) with low < high."""
    ranges = {}
    for key, bounds in (scale_ranges or {}).items():
        try:
            low, high = (int(b) for b in bounds)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"scale_ranges[{key!r}] must be (low, high) integers, got {bounds!r}"
            ) from exc
        if low >= high or any(float(b) != int(b) for b in bounds):
            raise ValueError(f"scale_ranges[{key!r}] must be integers low < high, got {bounds!r}")
        ranges[str(key)] = (low, high)
    return ranges


def _participants_input(participants, beside: Path | None):
    """Return (raw text table, name) for the participants table, or (None, None)."""
    if isinstance(participants, pd.DataFrame):
        return _frame_to_text(participants), "participants (DataFrame)"
    if participants is not None:
        path = Path(participants)
        if not path.is_file():
            raise ContractError("no such file", file=str(path))
        return _read_csv(path), str(path)
    if beside is not None and beside.is_file():
        return _read_csv(beside), str(beside)
    return None, None


def _locate_files(path: Path) -> tuple[Path, Path | None]:
    """Find the trials file and where its participants file would be, for a file or folder."""
    if path.is_file():
        match = re.match(r"^(study-.+)_data\.csv$", path.name)  # psych-DS naming
        if match:
            return path, path.with_name(f"{match.group(1)}_table-participants_data.csv")
        return path, path.with_name("participants.csv")
    if (path / "trials.csv").is_file():
        return path / "trials.csv", path / "participants.csv"
    data_dir = path / "data" if (path / "data").is_dir() else path
    names = [p.name for p in data_dir.iterdir() if p.is_file()]
    trials_name, parts_name = _export_names(names, str(path))
    return data_dir / trials_name, (data_dir / parts_name) if parts_name else None


def _export_names(names: list[str], where: str) -> tuple[str, str | None]:
    """Pick the trials file and the participants table among file paths (plain or psych-DS)."""

    def base(name: str) -> str:
        return name.rsplit("/", 1)[-1]

    def folder(name: str) -> str:
        return name.rsplit("/", 1)[0] if "/" in name else ""

    trials = [n for n in names if base(n) == "trials.csv"]
    if trials:
        participants_name = "participants.csv"
    else:
        trials = [n for n in names if _PSYCHDS_DATA.match(base(n)) and "_table-" not in base(n)]
        participants_name = None
    if len(trials) != 1:
        what = (
            "no trials.csv and no psych-DS data file"
            if not trials
            else f"{len(trials)} candidate trials files ({', '.join(sorted(trials))})"
        )
        raise ContractError(
            f"{what}; expected trials.csv or data/study-<slug>_data.csv", file=where
        )

    def is_participants(name: str) -> bool:
        if participants_name:
            return base(name) == participants_name
        return bool(_PSYCHDS_PARTICIPANTS.match(base(name)))

    beside = [n for n in names if folder(n) == folder(trials[0]) and is_participants(n)]
    return trials[0], (beside[0] if beside else None)


def _read_zip(path: Path):
    """Read the trials and participants tables from a ZIP export without extracting it."""
    with zipfile.ZipFile(path) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        trials_name, parts_name = _export_names(
            [n for n in names if "__MACOSX" not in n], str(path)
        )

        def read(member: str):
            if archive.getinfo(member).file_size > MAX_MEMBER_BYTES:
                raise ContractError("file in the ZIP is too large to read", file=f"{path}:{member}")
            return _read_csv(_io.BytesIO(archive.read(member)), f"{path}:{member}")

        trials = (read(trials_name), f"{path}:{trials_name}")
        parts = (read(parts_name), f"{path}:{parts_name}") if parts_name else (None, None)
    return trials, parts


def _read_csv(source, name: str | None = None) -> pd.DataFrame:
    """Read a CSV as text cells (empty cells stay empty strings, nothing is guessed)."""
    name = name or str(source)
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise ContractError("the file is empty (no header row)", file=name) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ContractError(f"not a readable UTF-8 CSV file ({exc})", file=name) from exc
    return table.rename(columns=lambda c: str(c).strip())


def _frame_to_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A typed DataFrame's cells as the text an export holds, so one check serves both."""

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and not np.isfinite(v)) or v is pd.NA or v is pd.NaT:
            return ""
        if isinstance(v, (bool, np.bool_)):
            return "1" if v else "0"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return str(int(v)) if float(v).is_integer() else repr(float(v))
        return str(v)

    return pd.DataFrame(
        {str(c): [cell(v) for v in frame[c].tolist()] for c in frame.columns},
        index=pd.RangeIndex(len(frame)),
        dtype=object,
    )


def _unescape(column: pd.Series) -> pd.Series:
    """Undo the export's spreadsheet guard: a leading apostrophe before = + - @ tab or CR."""
    text = column.astype(str)
    escaped = text.str.match(_ESCAPED_CELL)
    return text.where(~escaped, text.str.slice(1))


class _Checker:
    """Collects contract violations and raises the one that comes first in the file."""

    def __init__(self, name: str, table: pd.DataFrame):
        self.name = name
        self.table = table
        # Files count the header as row 1; DataFrames have no header row.
        self.header = not name.endswith("(DataFrame)")
        self.problems: list[tuple[int, int, str, str, int]] = []

    def check(self, bad: pd.Series, column: str, message) -> None:
        """Record rows where `bad` is true; `message(value)` says what is wrong with the first."""
        positions = np.flatnonzero(bad.to_numpy(dtype=bool))
        if len(positions):
            first = int(positions[0])
            value = self.table[column].iloc[first] if column in self.table else ""
            self.problems.append(
                (first, len(self.problems), column, message(value), len(positions))
            )

    def raise_first(self) -> None:
        """Raise a ContractError for the earliest problem, if any."""
        if not self.problems:
            return
        first, _, column, message, count = min(self.problems)
        more = f" ({count} rows break this rule)" if count > 1 else ""
        raise ContractError(
            message + more,
            file=self.name,
            row=first + (2 if self.header else 1),
            column=column,
            header=self.header,
        )


def _require_columns(table: pd.DataFrame, columns, name: str) -> None:
    """Raise for the first required column missing from the header."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ContractError(
            f"required column is missing (missing: {', '.join(missing)}; found: "
            f"{', '.join(map(str, table.columns))})",
            file=name,
            row=None if name.endswith("(DataFrame)") else 1,
            column=missing[0],
        )


def _integers(text: pd.Series) -> pd.Series:
    """Parse integer cells; anything else (empty, text, 2.5) becomes NaN."""
    numbers = pd.to_numeric(text, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers) & (numbers == np.round(numbers)))


def validate_trials(
    raw: pd.DataFrame,
    name: str = "trials.csv",
    scale_ranges: Mapping[str, tuple[int, int]] | None = None,
) -> pd.DataFrame:
    """Check a trials table of text cells against the contract and return it typed.

    Parameters
    ----------
    raw : pandas.DataFrame
        Text cells as read from trials.csv (empty cells as "").
    name : str
        File name used in error messages.
    scale_ranges : mapping, optional
        Allowed (low, high) per rating scale or ``confidence``.

    Returns
    -------
    pandas.DataFrame
        The same rows with typed columns, as described in `load`.

    Raises
    ------
    ContractError
        For the first row in file order that breaks a rule.
    """
    ranges = dict(scale_ranges or {})
    _require_columns(raw, TRIAL_COLUMNS, name)
    if raw.empty:
        raise ContractError("the table has a header but no data rows", file=name)
    t = raw.copy()
    for column in t.columns:
        t[column] = _unescape(t[column].fillna(""))
    for column in (
        "study",
        "participant",
        "list",
        "block",
        "task",
        "identity",
        "condition",
        "probe",
        "measure",
    ):
        t[column] = t[column].str.strip()
    check = _Checker(name, t)

    check.check(t["study"] == "", "study", lambda v: "study is empty")
    check.check(
        t["study"] != t["study"].iloc[0],
        "study",
        lambda v: (
            f"a second study {v!r} (the file starts with {t['study'].iloc[0]!r}); "
            "analyse one study at a time"
        ),
    )
    check.check(t["participant"] == "", "participant", lambda v: "participant is empty")
    trial = _integers(t["trial"])
    check.check(trial.isna() | (trial < 1), "trial", lambda v: f"{v!r} is not a positive integer")
    check.check(
        ~t["task"].isin(TASKS),
        "task",
        lambda v: f"unknown task {v!r} (expected one of {', '.join(TASKS)})",
    )
    check.check(
        ~t["attention_check"].isin(["0", "1"]), "attention_check", lambda v: f"{v!r} is not 0 or 1"
    )

    attention = t["attention_check"] == "1"
    measure = t["measure"]
    check.check(
        attention & (measure != "attention"),
        "measure",
        lambda v: f"attention-check rows must have measure 'attention', got {v!r}",
    )
    check.check(
        ~attention & (measure == "attention"),
        "attention_check",
        lambda v: "measure 'attention' on a row whose attention_check is not 1",
    )
    is_rating = (t["task"] == "rate") & ~measure.isin(FIXED_MEASURES)
    allowed = pd.Series(False, index=t.index)
    for task, measures in TASK_MEASURES.items():
        allowed |= (t["task"] == task) & measure.isin(measures)
    allowed |= is_rating & measure.str.match(RATING_KEY)
    check.check(
        ~attention & ~allowed,
        "measure",
        lambda v: (
            f"unknown measure {v!r} for this task (match: same, confidence; choose: "
            "choice; detect: source, confidence; rate: a rating-scale key; learn: seen, "
            "orienting; recognise: old, confidence, name)"
        ),
    )

    data = ~attention
    check.check(data & (t["identity"] == ""), "identity", lambda v: "identity is empty")
    needs_condition = data & t["task"].isin(["match", "rate", "detect", "learn"])
    check.check(
        needs_condition & ~t["condition"].isin(CONDITIONS),
        "condition",
        lambda v: f"condition {v!r} is not 'real' or 'ai'",
    )
    check.check(
        ~needs_condition & ~t["condition"].isin(("",) + CONDITIONS),
        "condition",
        lambda v: f"condition {v!r} is not 'real', 'ai' or empty",
    )
    check.check(
        data & (t["task"] == "choose") & (t["condition"] != ""),
        "condition",
        lambda v: f"choose rows have an empty condition (the pair holds both), got {v!r}",
    )

    is_match = t["is_match"]
    match_rows = data & (t["task"] == "match")
    check.check(
        match_rows & ~is_match.isin(["0", "1"]),
        "is_match",
        lambda v: f"{v!r} is not 0 or 1 on a match row",
    )
    check.check(~is_match.isin(["", "0", "1"]), "is_match", lambda v: f"{v!r} is not 0, 1 or empty")
    check.check(match_rows & (t["probe"] == ""), "probe", lambda v: "probe is empty on a match row")
    recognise_rows = data & (t["task"] == "recognise")
    studied = t["condition"].isin(CONDITIONS).astype(int).astype(str).where(recognise_rows, "")
    if "studied" in t.columns:
        given_studied = t["studied"].str.strip()
        check.check(
            ~given_studied.isin(["", "0", "1"]),
            "studied",
            lambda v: f"{v!r} is not 0, 1 or empty",
        )
        check.check(
            given_studied.isin(["", "0", "1"]) & (given_studied != studied),
            "studied",
            lambda v: (
                f"studied={v!r} disagrees with the condition (recognise rows: 1 when the "
                "condition is real or ai, 0 when it is empty; empty on other tasks)"
            ),
        )

    value = t["value"].str.strip()
    number = _integers(value)
    binary = data & measure.isin(["same", "old"])
    check.check(
        binary & measure.eq("same") & ~value.isin(["0", "1"]),
        "value",
        lambda v: f"same must be 1 (same person) or 0, got {v!r}",
    )
    check.check(
        binary & measure.eq("old") & ~value.isin(["0", "1"]),
        "value",
        lambda v: f"old must be 1 (met before) or 0, got {v!r}",
    )
    check.check(
        data & measure.eq("seen") & (value != "1"),
        "value",
        lambda v: f"seen must be 1, got {v!r}",
    )
    check.check(
        data & measure.eq("name") & (value == ""),
        "value",
        lambda v: "name is empty",
    )
    categorical = data & measure.isin(["choice", "source"])
    check.check(
        categorical & ~value.isin(CONDITIONS),
        "value",
        lambda v: f"choice and source must be 'real' or 'ai', got {v!r}",
    )
    value_number = pd.Series(np.nan, index=t.index)
    value_number[binary] = number[binary]
    scaled = data & ((measure == "confidence") | (measure == "orienting") | is_rating)
    for key in measure[scaled].unique():
        rows = scaled & (measure == key)
        default = {"confidence": DEFAULT_CONFIDENCE_RANGE, "orienting": ORIENTING_RANGE}.get(
            key, DEFAULT_RATING_RANGE
        )
        low, high = ranges.get(key, default)
        check.check(
            rows & (number.isna() | (number < low) | (number > high)),
            "value",
            lambda v, key=key, low=low, high=high: (
                f"{key} must be an integer from {low} to {high}, got {v!r}"
            ),
        )
        value_number[rows] = number[rows]
    t["value"] = value

    correct = t["correct"].str.strip()
    scored = (data & measure.isin(["same", "source", "old", "name"])) | attention
    check.check(
        scored & ~correct.isin(["0", "1"]),
        "correct",
        lambda v: f"correct must be 0 or 1 on this row, got {v!r}",
    )
    check.check(~correct.isin(["", "0", "1"]), "correct", lambda v: f"{v!r} is not 0, 1 or empty")
    same_ok = (value == is_match).astype(int).astype(str)
    check.check(
        binary
        & match_rows
        & correct.isin(["0", "1"])
        & is_match.isin(["0", "1"])
        & (correct != same_ok),
        "correct",
        lambda v: f"correct={v} disagrees with same == is_match on this row",
    )
    old_ok = (value == studied).astype(int).astype(str)
    check.check(
        recognise_rows & measure.eq("old") & correct.isin(["0", "1"]) & (correct != old_ok),
        "correct",
        lambda v: f"correct={v} disagrees with old == studied on this row",
    )
    source_rows = data & measure.eq("source") & t["condition"].isin(CONDITIONS)
    source_ok = (value == t["condition"]).astype(int).astype(str)
    check.check(
        source_rows & correct.isin(["0", "1"]) & (correct != source_ok),
        "correct",
        lambda v: f"correct={v} disagrees with source == condition on this row",
    )

    rt_text = t["rt_ms"].str.strip()
    rt = pd.to_numeric(rt_text, errors="coerce").astype(float)
    rt_bad = (rt_text != "") & (rt.isna() | ~np.isfinite(rt) | (rt < 0))
    check.check(
        rt_bad, "rt_ms", lambda v: f"rt_ms must be a non-negative number or empty, got {v!r}"
    )
    derived_flag = rt.map(rt_flag)
    if "rt_flag" in t.columns:
        given_flag = t["rt_flag"].str.strip()
        check.check(
            ~given_flag.isin(RT_FLAGS),
            "rt_flag",
            lambda v: f"rt_flag must be empty, 'fast' or 'slow', got {v!r}",
        )
        check.check(
            given_flag.isin(RT_FLAGS) & ~rt_bad & (given_flag != derived_flag),
            "rt_flag",
            lambda v: (
                f"rt_flag={v!r} disagrees with rt_ms (fast: below {RT_FAST_MS:g} "
                f"ms, slow: above {RT_SLOW_MS:g} ms, else empty)"
            ),
        )

    _check_details(t, check)

    duplicated = (
        trial.notna() & pd.DataFrame({"p": t["participant"], "t": trial, "m": measure}).duplicated()
    )
    check.check(
        duplicated,
        "measure",
        lambda v: f"a second row for the same participant, trial and measure {v!r}",
    )
    check.raise_first()

    t["trial"] = trial.astype(np.int64)
    t["attention_check"] = t["attention_check"].astype(np.int64)
    t["is_match"] = pd.to_numeric(is_match, errors="coerce").astype(float)
    t["correct"] = pd.to_numeric(correct, errors="coerce").astype(float)
    t["rt_ms"] = rt
    t["rt_flag"] = derived_flag
    t["studied"] = pd.to_numeric(studied, errors="coerce").astype(float)
    t["value_number"] = value_number.astype(float)
    # The same column order whichever columns the file had.
    detail = list(TRIAL_DETAIL_COLUMNS)
    order = [c for c in t.columns if c not in detail and c != "value_number"]
    t = t[[*order, *detail, "value_number"]]
    return t.reset_index(drop=True)


def _check_details(t: pd.DataFrame, check: _Checker) -> None:
    """Check the per-trial detail columns when the file has them; add them empty when not.

    real_side is empty, left or right, and set on choose rows only; shown_at and answered_at are
    empty or ISO 8601 UTC times with a Z, and a trial is never answered before it was shown.
    """
    for column in TRIAL_DETAIL_COLUMNS:
        t[column] = t[column].str.strip() if column in t.columns else ""
    side = t["real_side"]
    check.check(
        ~side.isin(REAL_SIDES),
        "real_side",
        lambda v: f"real_side must be empty, 'left' or 'right', got {v!r}",
    )
    check.check(
        (side != "") & (t["task"] != "choose"),
        "real_side",
        lambda v: f"real_side {v!r} on a row that is not a choose trial",
    )
    times = {}
    for column in ("shown_at", "answered_at"):
        text = t[column]
        written = text.where(text.str.fullmatch(ISO_UTC.pattern), "")
        moment = pd.to_datetime(
            written.replace("", None), utc=True, format="ISO8601", errors="coerce"
        )
        check.check(
            (text != "") & moment.isna(),
            column,
            lambda v, c=column: (
                f"{c} must be empty or an ISO 8601 UTC time ending in Z "
                f"(e.g. 2025-03-01T09:30:20.123Z), got {v!r}"
            ),
        )
        times[column] = moment
    shown, answered = times["shown_at"], times["answered_at"]
    check.check(
        shown.notna() & answered.notna() & (answered < shown),
        "answered_at",
        lambda v: f"answered_at {v!r} is before the trial's shown_at",
    )


def validate_participants(raw: pd.DataFrame, name: str = "participants.csv") -> pd.DataFrame:
    """Check a participants table of text cells and return it typed.

    Returns
    -------
    pandas.DataFrame
        ``participant`` and ``status`` as text; ``attention_passed``, ``attention_total`` as
        int when the columns are present; other columns as read.

    Raises
    ------
    ContractError
        Missing ``participant`` or ``status`` column, an empty or repeated participant, a status
        other than completed/partial, or attention counts that are not 0 <= passed <= total.
    """
    _require_columns(raw, ("participant", "status"), name)
    p = raw.copy()
    for column in p.columns:
        p[column] = _unescape(p[column].fillna("")).str.strip()
    check = _Checker(name, p)
    check.check(p["participant"] == "", "participant", lambda v: "participant is empty")
    check.check(
        p["participant"].duplicated() & (p["participant"] != ""),
        "participant",
        lambda v: f"participant {v!r} appears twice",
    )
    check.check(
        ~p["status"].isin(STATUSES),
        "status",
        lambda v: f"status {v!r} is not one of {', '.join(STATUSES)}",
    )
    counts = {}
    for column in ("attention_passed", "attention_total"):
        if column in p:
            counts[column] = _integers(p[column])
            check.check(
                counts[column].isna() | (counts[column] < 0),
                column,
                lambda v: f"{v!r} is not a non-negative integer",
            )
    if len(counts) == 2:
        check.check(
            counts["attention_passed"] > counts["attention_total"],
            "attention_passed",
            lambda v: f"attention_passed {v} exceeds attention_total",
        )
    check.raise_first()
    for column, values in counts.items():
        p[column] = values.astype(np.int64)
    return p.reset_index(drop=True)


def _check_participants_known(raw_trials: pd.DataFrame, name: str, parts: pd.DataFrame) -> None:
    """Every participant in the trials must have a row in the participants table."""
    participant = _unescape(raw_trials["participant"]).str.strip()
    check = _Checker(name, pd.DataFrame({"participant": participant}))
    check.check(
        ~participant.isin(set(parts["participant"])),
        "participant",
        lambda v: f"participant {v!r} is not in the participants table",
    )
    check.raise_first()


def canonical_trials_csv(trials: pd.DataFrame) -> str:
    """The trials table as canonical CSV text, the input of `StudyData.data_sha256`.

    Contract columns only, rows sorted by participant, trial and measure, integers without a
    decimal point, other numbers as Python's shortest repr, empty cells for missing values, LF
    line ends. Reading trials.csv or passing the same table as a DataFrame gives the same text.
    """

    def text(column: pd.Series) -> pd.Series:
        if column.dtype.kind in "fiu":
            return column.map(
                lambda v: (
                    "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                )
            )
        return column.astype(str)

    table = trials.loc[:, list(TRIAL_COLUMNS)].sort_values(
        ["participant", "trial", "measure"], kind="mergesort"
    )
    canonical = pd.DataFrame({c: text(table[c]) for c in TRIAL_COLUMNS})
    return canonical.to_csv(index=False, lineterminator="\n")


def with_participant_columns(
    trials: pd.DataFrame, participants: pd.DataFrame | None, columns: list[str]
) -> pd.DataFrame:
    """Return the trials with participant-level columns joined on, for covariates/moderators.

    The researcher's questions are participants.csv columns named by each question's code (see
    the codebook). A column whose answered cells are all numbers (a Likert point, a number
    question) comes back numeric (float, NaN when unanswered); any other stays text, ``""``
    when unanswered. A checkbox answer is its values joined by ``"; "``.

    Raises
    ------
    ContractError
        No participants table, or a column it does not have.
    """
    if participants is None:
        raise ContractError(
            "needed for participant columns, but not given", file="participants.csv"
        )
    missing = [c for c in columns if c not in participants.columns]
    if missing:
        raise ContractError(
            f"no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(participants.columns)})",
            file="participants.csv",
        )
    picked = participants.loc[:, ["participant", *columns]].copy()
    for column in columns:
        text = picked[column].astype(str).where(picked[column].notna(), "")
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        answered = text != ""
        if answered.any() and numbers[answered].notna().all():
            picked[column] = numbers.astype("float64")
        else:
            picked[column] = text
    return trials.merge(picked, on="participant", how="left", validate="many_to_one")
