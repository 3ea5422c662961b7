"""Fixtures for the analysis tests: the R reference export and the report on it."""

import json
from pathlib import Path

import pytest

from analysis.io import load
from bench.sim_small import SIM_SMALL

# The R reference data live in the repository, in tests/data/reference (its README says how to
# regenerate them).


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
