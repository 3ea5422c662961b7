"""A study's exports (trials, participants, stimuli, codebook, psych-DS ZIP), streamed from
the database in slices."""

from survey.exports.cells import safe_cell
from survey.exports.codebook import (
    codebook,
    codebook_csv,
    codebook_json,
    scale_ranges,
)
from survey.exports.psychds import (
    dataset_description,
    psychds_filename,
    psychds_zip,
)
from survey.exports.tables import (
    BLOCK_ORDER_COLUMNS,
    EXPIRY_COLUMNS,
    IDENTITY_COLUMNS,
    LANGUAGE_COLUMNS,
    PARTICIPANT_COLUMNS,
    SESSION_COLUMNS,
    SIMULATED_COLUMNS,
    STIMULI_COLUMNS,
    TIMING_COLUMNS,
    TRIAL_COLUMNS,
    attention_passed,
    identities_csv,
    identities_dataframe,
    participants_csv,
    participants_dataframe,
    stimuli_csv,
    trials_csv,
    trials_dataframe,
)

__all__ = [
    "BLOCK_ORDER_COLUMNS",
    "EXPIRY_COLUMNS",
    "LANGUAGE_COLUMNS",
    "IDENTITY_COLUMNS",
    "PARTICIPANT_COLUMNS",
    "SESSION_COLUMNS",
    "SIMULATED_COLUMNS",
    "STIMULI_COLUMNS",
    "TIMING_COLUMNS",
    "TRIAL_COLUMNS",
    "attention_passed",
    "codebook",
    "codebook_csv",
    "codebook_json",
    "dataset_description",
    "identities_csv",
    "identities_dataframe",
    "participants_csv",
    "participants_dataframe",
    "psychds_filename",
    "psychds_zip",
    "safe_cell",
    "scale_ranges",
    "stimuli_csv",
    "trials_csv",
    "trials_dataframe",
]
