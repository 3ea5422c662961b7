"""Loading exports in every accepted form, and the contract errors for bad input."""

import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from analysis.io import TRIAL_DETAIL_COLUMNS, ContractError, load
from tests.analysis.helpers import make_participants, make_trials


def write_export(folder, trials: pd.DataFrame, participants: pd.DataFrame | None = None):
    """Write trials.csv (and participants.csv) as an export would."""
    folder.mkdir(parents=True, exist_ok=True)
    trials.to_csv(folder / "trials.csv", index=False)
    if participants is not None:
        participants.to_csv(folder / "participants.csv", index=False)
    return folder / "trials.csv"


def test_sim_small_loads_typed(sim):
    t = sim.trials
    assert len(t) == 14459
    assert sim.study == "sim"
    assert t["trial"].dtype == np.int64 and t["attention_check"].dtype == np.int64
    assert t["correct"].dtype == float and t["rt_ms"].dtype == float
    assert t.loc[t["measure"] == "trust", "value_number"].between(1, 7).all()
    assert t.loc[t["measure"] == "confidence", "rt_ms"].isna().all()
    assert set(sim.participants["status"]) == {"completed", "partial"}
    assert sim.participants["attention_total"].dtype == np.int64


@pytest.mark.slow
def test_every_form_gives_the_same_table(sim_dir, sim, tmp_path):
    """trials.csv, its folder, a psych-DS folder and ZIP, and DataFrames hash alike."""
    by_file = load(sim_dir / "trials.csv")
    assert by_file.participants is not None  # found beside the file

    psychds = tmp_path / "psychds"
    (psychds / "data").mkdir(parents=True)
    (psychds / "dataset_description.json").write_text('{"@type": "Dataset"}')
    shutil.copy(sim_dir / "trials.csv", psychds / "data" / "study-sim_data.csv")
    shutil.copy(
        sim_dir / "participants.csv", psychds / "data" / "study-sim_table-participants_data.csv"
    )
    by_folder = load(psychds)

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in psychds.rglob("*"):
            if path.is_file():
                z.write(path, "study-sim/" + str(path.relative_to(psychds)))
    by_zip = load(archive)

    frames = load(pd.read_csv(sim_dir / "trials.csv"), pd.read_csv(sim_dir / "participants.csv"))
    hashes = {d.data_sha256 for d in (sim, by_file, by_folder, by_zip, frames)}
    assert len(hashes) == 1
    for d in (by_folder, by_zip, frames):
        assert d.participants is not None and len(d.participants) == 120
        pd.testing.assert_frame_equal(d.trials, sim.trials)


@pytest.mark.slow
def test_hash_changes_with_one_value(sim_dir):
    raw = pd.read_csv(sim_dir / "trials.csv", dtype=str, keep_default_na=False)
    before = load(raw).data_sha256
    row = raw.index[raw["measure"] == "trust"][0]
    raw.loc[row, "value"] = "1" if raw.loc[row, "value"] != "1" else "2"
    assert load(raw).data_sha256 != before


def test_trials_without_participants_file(tmp_path):
    path = write_export(tmp_path, make_trials())
    data = load(path)
    assert data.participants is None
    assert len(data.trials) == 3 * (4 * 2 + 1)


def test_spreadsheet_escape_is_undone(tmp_path):
    trials = make_trials(participants=("'=p1", "p2"))
    data = load(write_export(tmp_path, trials))
    assert set(data.trials["participant"]) == {"=p1", "p2"}


def test_custom_scale_range(tmp_path):
    trials = make_trials(rating=lambda p, i, c: 9 if c == "real" else 2)
    path = write_export(tmp_path, trials)
    with pytest.raises(ContractError, match="trust must be an integer from 1 to 7, got '9'"):
        load(path)
    data = load(path, scale_ranges={"trust": (1, 10)})
    assert data.trials["value_number"].max() == 9


def test_bad_scale_range_argument():
    with pytest.raises(ValueError, match=r"scale_ranges\['trust'\]"):
        load(make_trials(), scale_ranges={"trust": (7, 1)})


def break_cell(row: int, column: str, value: str):
    """A change that sets one cell of the first data rows."""

    def change(t: pd.DataFrame) -> pd.DataFrame:
        t.loc[row, column] = value
        return t

    return change


# (change to a valid table, row in the message or None, column, message fragment)
BAD_TRIALS = [
    (lambda t: t.drop(columns="condition"), 1, "condition", "required column is missing"),
    (break_cell(2, "task", "survey"), 4, "task", "unknown task 'survey'"),
    (break_cell(2, "measure", "same"), 4, "measure", "unknown measure 'same'"),
    (break_cell(2, "value", "8"), 4, "value", "trust must be an integer from 1 to 7, got '8'"),
    (break_cell(2, "value", "4.5"), 4, "value", "trust must be an integer"),
    (
        break_cell(3, "condition", "human"),
        5,
        "condition",
        "condition 'human' is not 'real' or 'ai'",
    ),
    (break_cell(0, "condition", ""), 2, "condition", "is not 'real' or 'ai'"),
    (break_cell(1, "trial", "x"), 3, "trial", "'x' is not a positive integer"),
    (break_cell(1, "rt_ms", "-5"), 3, "rt_ms", "non-negative number"),
    (break_cell(1, "attention_check", "yes"), 3, "attention_check", "'yes' is not 0 or 1"),
    (break_cell(0, "participant", ""), 2, "participant", "participant is empty"),
    (break_cell(0, "identity", ""), 2, "identity", "identity is empty"),
    (break_cell(4, "study", "other"), 6, "study", "a second study 'other'"),
    (break_cell(1, "trial", "1"), 3, "measure", "a second row for the same participant"),
]


@pytest.mark.parametrize("change, row, column, message", BAD_TRIALS)
def test_contract_errors_name_file_row_and_column(tmp_path, change, row, column, message):
    path = write_export(tmp_path, change(make_trials()))
    with pytest.raises(ContractError) as info:
        load(path)
    error = info.value
    assert (error.file, error.row, error.column) == (str(path), row, column)
    assert message in str(error)
    assert str(path) in str(error) and f"column '{column}'" in str(error)
    assert f"row {row} (the header is row 1)" in str(error)


def match_trials():
    """A table with match trials for the match-specific rules."""
    return make_trials(same=lambda p, i, c, m: m)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("is_match", "2", "'2' is not 0 or 1 on a match row"),
        ("value", "yes", r"same must be 1 \(same person\) or 0"),
        ("correct", "", "correct must be 0 or 1 on this row"),
        ("probe", "", "probe is empty on a match row"),
    ],
)
def test_match_rules(tmp_path, column, value, message):
    trials = match_trials()
    first = trials.index[trials["task"] == "match"][0]
    trials.loc[first, column] = value
    with pytest.raises(ContractError, match=message) as info:
        load(write_export(tmp_path, trials))
    assert info.value.row == first + 2 and info.value.column == column


def test_correct_must_agree_with_the_answer(tmp_path):
    trials = match_trials()
    first = trials.index[trials["task"] == "match"][0]
    trials.loc[first, "correct"] = "0" if trials.loc[first, "correct"] == "1" else "1"
    with pytest.raises(ContractError, match="disagrees with same == is_match"):
        load(write_export(tmp_path, trials))


def test_detect_correct_must_agree_with_condition(tmp_path):
    trials = make_trials(detect=lambda p, i, c: "ai")
    first = trials.index[trials["task"] == "detect"][0]
    trials.loc[first, "correct"] = "0" if trials.loc[first, "correct"] == "1" else "1"
    with pytest.raises(ContractError, match="disagrees with source == condition"):
        load(write_export(tmp_path, trials))


def test_choose_rows_have_no_condition(tmp_path):
    trials = make_trials(choice=lambda p, i: "real")
    first = trials.index[trials["task"] == "choose"][0]
    trials.loc[first, "condition"] = "real"
    with pytest.raises(ContractError, match="choose rows have an empty condition"):
        load(write_export(tmp_path, trials))


def test_choice_value_must_be_real_or_ai(tmp_path):
    trials = make_trials(choice=lambda p, i: "left")
    with pytest.raises(ContractError, match="must be 'real' or 'ai', got 'left'"):
        load(write_export(tmp_path, trials))


def test_first_problem_in_file_order_is_reported(tmp_path):
    trials = make_trials()
    trials.loc[5, "condition"] = "human"
    trials.loc[2, "value"] = "99"
    with pytest.raises(ContractError) as info:
        load(write_export(tmp_path, trials))
    assert info.value.row == 4 and info.value.column == "value"


def test_count_of_rows_breaking_a_rule(tmp_path):
    trials = make_trials()
    trials.loc[trials["measure"] == "trust", "condition"] = "human"
    with pytest.raises(ContractError, match=r"\(24 rows break this rule\)"):
        load(write_export(tmp_path, trials))


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "trials.csv"
    empty.write_text("")
    with pytest.raises(ContractError, match="the file is empty"):
        load(empty)
    header_only = tmp_path / "header" / "trials.csv"
    header_only.parent.mkdir()
    make_trials().iloc[:0].to_csv(header_only, index=False)
    with pytest.raises(ContractError, match="header but no data rows"):
        load(header_only)


def test_missing_path_and_folder_without_data(tmp_path):
    with pytest.raises(ContractError, match="no such file or folder"):
        load(tmp_path / "nothing")
    with pytest.raises(ContractError, match="no trials.csv and no psych-DS data file"):
        load(tmp_path)


def test_dataframe_errors_count_rows_from_one():
    trials = make_trials()
    trials.loc[3, "task"] = "quiz"
    with pytest.raises(ContractError) as info:
        load(trials)
    assert info.value.row == 4 and info.value.file == "trials (DataFrame)"
    assert "row 4 (from 1)" in str(info.value)


@pytest.mark.parametrize(
    "change, column, message",
    [
        (lambda p: p.drop(columns="status"), "status", "required column is missing"),
        (
            lambda p: p.assign(status=["completed", "withdrawn", "completed"]),
            "status",
            "status 'withdrawn' is not one of completed, partial",
        ),
        (
            lambda p: p.assign(attention_passed=[1, 2, 1]),
            "attention_passed",
            "exceeds attention_total",
        ),
        (lambda p: p.assign(participant=["p1", "p1", "p3"]), "participant", "appears twice"),
    ],
)
def test_participants_errors(tmp_path, change, column, message):
    trials = make_trials()
    path = write_export(tmp_path, trials, change(make_participants(trials)))
    with pytest.raises(ContractError, match=message) as info:
        load(path)
    assert info.value.column == column
    assert info.value.file.endswith("participants.csv")


def test_participant_missing_from_participants_table(tmp_path):
    trials = make_trials()
    parts = make_participants(trials).iloc[:2]
    with pytest.raises(ContractError, match="'p3' is not in the participants table") as info:
        load(write_export(tmp_path, trials, parts))
    assert info.value.file.endswith("trials.csv") and info.value.column == "participant"


def test_zip_of_a_plain_export(tmp_path):
    trials = make_trials()
    archive = tmp_path / "plain.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("export/trials.csv", trials.to_csv(index=False))
        z.writestr(
            "export/participants.csv",
            make_participants(trials, {"p1": "partial"}).to_csv(index=False),
        )
    data = load(archive)
    assert data.trials_source == f"{archive}:export/trials.csv"
    assert data.participants.set_index("participant").loc["p1", "status"] == "partial"


def test_zip_with_two_data_files_is_refused(tmp_path):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for slug in ("a", "b"):
            z.writestr(f"data/study-{slug}_data.csv", make_trials().to_csv(index=False))
    with pytest.raises(ContractError, match="2 candidate trials files"):
        load(archive)


def test_rt_flag_is_read_when_present_and_derived_when_absent(tmp_path):
    """Exports before rt_flag still load; a present rt_flag must say what rt_ms says."""
    trials = make_trials()
    trials.loc[[0, 1, 2, 3, 4], "rt_ms"] = ["12", "49.9", "50", "600000", "600000.5"]
    trials.loc[5, "rt_ms"] = ""
    without = load(write_export(tmp_path / "old", trials))
    flags = without.trials["rt_flag"].tolist()
    assert flags[:6] == ["fast", "fast", "", "", "slow", ""]
    assert set(flags[6:]) == {""}

    trials["rt_flag"] = flags
    with_flag = load(write_export(tmp_path / "new", trials))
    pd.testing.assert_frame_equal(with_flag.trials, without.trials)
    # The flag is derived from rt_ms, so it does not change the data's hash.
    assert with_flag.data_sha256 == without.data_sha256
    assert load(trials).data_sha256 == without.data_sha256


@pytest.mark.parametrize(
    "row, flag, message",
    [
        (0, "quick", "rt_flag must be empty, 'fast' or 'slow', got 'quick'"),
        (6, "slow", "rt_flag='slow' disagrees with rt_ms"),
        (0, "", "rt_flag='' disagrees with rt_ms"),
    ],
)
def test_a_wrong_rt_flag_is_a_contract_error(tmp_path, row, flag, message):
    trials = make_trials()
    trials.loc[0, "rt_ms"] = "20"
    trials["rt_flag"] = ["fast"] + [""] * (len(trials) - 1)
    trials.loc[row, "rt_flag"] = flag
    with pytest.raises(ContractError, match=message) as info:
        load(write_export(tmp_path, trials))
    assert (info.value.row, info.value.column) == (row + 2, "rt_flag")


# --- per-trial details: real_side, image ids, shown_at and answered_at -------------------------


def _with_details(trials: pd.DataFrame) -> pd.DataFrame:
    """Add the detail columns as a current export writes them."""
    trials = trials.copy()
    choose = trials["task"] == "choose"
    trials["real_side"] = np.where(choose, "left", "")
    trials["image"] = [f"img{i}" for i in range(len(trials))]
    trials["image_right"] = np.where(choose, "imgR", "")
    trials["probe_image"] = ""
    trials["shown_at"] = "2025-03-01T09:30:20.123Z"
    trials["answered_at"] = "2025-03-01T09:30:22.624Z"
    return trials


def test_details_are_read_when_present_and_empty_when_absent(tmp_path):
    """Exports before the detail columns still load (with them empty); the hash ignores them."""
    trials = make_trials(choice=lambda p, i: "real")
    old = load(write_export(tmp_path / "old", trials))
    for column in TRIAL_DETAIL_COLUMNS:
        assert set(old.trials[column]) == {""}
    new = load(write_export(tmp_path / "new", _with_details(trials)))
    choose = new.trials["task"] == "choose"
    assert set(new.trials.loc[choose, "real_side"]) == {"left"}
    assert set(new.trials["shown_at"]) == {"2025-03-01T09:30:20.123Z"}
    assert new.data_sha256 == old.data_sha256
    assert load(_with_details(trials)).data_sha256 == old.data_sha256


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("real_side", "middle", "real_side must be empty, 'left' or 'right', got 'middle'"),
        ("shown_at", "2025-03-01 09:30:20", "shown_at must be empty or an ISO 8601 UTC time"),
        ("shown_at", "2025-03-01T09:30:20+01:00", "shown_at must be empty or an ISO 8601"),
        ("answered_at", "2025-13-01T09:30:20Z", "answered_at must be empty or an ISO 8601"),
        ("answered_at", "2025-03-01T09:30:20.122Z", "answered_at .* is before the trial's"),
    ],
)
def test_a_wrong_detail_is_a_contract_error(tmp_path, column, value, message):
    trials = _with_details(make_trials(choice=lambda p, i: "real"))
    trials.loc[3, column] = value
    with pytest.raises(ContractError, match=message) as info:
        load(write_export(tmp_path, trials))
    assert (info.value.row, info.value.column) == (5, column)


def test_a_real_side_outside_choose_is_a_contract_error(tmp_path):
    trials = _with_details(make_trials(choice=lambda p, i: "real"))
    assert trials.loc[0, "task"] == "rate"
    trials.loc[0, "real_side"] = "right"
    with pytest.raises(ContractError, match="not a choose trial") as info:
        load(write_export(tmp_path, trials))
    assert (info.value.row, info.value.column) == (2, "real_side")
