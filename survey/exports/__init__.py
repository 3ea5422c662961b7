"""A study's exports (trials, participants, stimuli, codebook, psych-DS ZIP), streamed from
the database: cells.py writes safe CSV cells, tables.py the three tables, codebook.py the
codebook and psychds.py the psych-DS ZIP.

Every export is a generator of text (or bytes) chunks that reads the database in slices of
`CHUNK_ROWS` rows through a server-side cursor, so memory stays the same for a thousand rows or a
million. Names, order and meaning of the columns follow docs/DATA_CONTRACT.md. Preview and
withdrawn participants are never exported; practice trials are left out of trials.csv (the
contract has no column to mark them, and they are never analysed). Simulated participants
(`flask simulate-participants`) are exported with `simulated` = 1 in both tables; the report
reads the tables without them (`include_simulated=False`) unless asked to include them.
"""

from survey.exports.cells import format_number, iso_utc, safe_cell
from survey.exports.codebook import (
    CODEBOOK_COLUMNS,
    CONFIDENCE,
    SIMULATED_MEANING,
    codebook,
    codebook_csv,
    codebook_json,
    measures,
    scale_ranges,
)
from survey.exports.psychds import (
    dataset_description,
    psychds_filename,
    psychds_label,
    psychds_names,
    psychds_zip,
)
from survey.exports.tables import (
    EXPIRY_COLUMNS,
    PARTICIPANT_COLUMNS,
    RECRUITMENT_COLUMNS,
    SIMULATED_COLUMNS,
    STIMULI_COLUMNS,
    TIMING_COLUMNS,
    TRIAL_COLUMNS,
    attention_passed,
    correct,
    demographic_keys,
    participant_columns,
    participants_csv,
    participants_dataframe,
    stimuli_csv,
    trials_csv,
    trials_dataframe,
)

__all__ = [
    "CODEBOOK_COLUMNS",
    "CONFIDENCE",
    "EXPIRY_COLUMNS",
    "PARTICIPANT_COLUMNS",
    "RECRUITMENT_COLUMNS",
    "SIMULATED_COLUMNS",
    "SIMULATED_MEANING",
    "STIMULI_COLUMNS",
    "TIMING_COLUMNS",
    "TRIAL_COLUMNS",
    "attention_passed",
    "codebook",
    "codebook_csv",
    "codebook_json",
    "correct",
    "dataset_description",
    "demographic_keys",
    "format_number",
    "iso_utc",
    "measures",
    "participant_columns",
    "participants_csv",
    "participants_dataframe",
    "psychds_filename",
    "psychds_label",
    "psychds_names",
    "psychds_zip",
    "safe_cell",
    "scale_ranges",
    "stimuli_csv",
    "trials_csv",
    "trials_dataframe",
]
