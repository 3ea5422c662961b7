"""Time the whole report of a 200-participant, 40-identity study with every model."""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.io import TRIAL_COLUMNS  # noqa: E402
from analysis.power import VarianceComponents, simulate_trials  # noqa: E402
from analysis.report import analyse  # noqa: E402

SEED = 20261204
N_PARTICIPANTS, N_IDENTITIES = 200, 40
GOAL_SECONDS = 10.0
RATING = VarianceComponents(
    participant=0.30, identity=0.13, residual=0.90, participant_slope=0.03, identity_slope=0.02
)
ACCURACY = VarianceComponents(participant=0.25, identity=0.30, residual=1.0)


def machine() -> str:
    """CPU count and current load (timings depend on both)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs (nproc), load average {load}"


def study(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Trials (a rate block of trust 1-7 and a match block per participant), participants and
    identities (gender, age band) of one simulated study, in the data contract's format."""
    rng = np.random.default_rng(seed)
    ratings = simulate_trials(N_PARTICIPANTS, N_IDENTITIES, -0.3, RATING, rng=rng)
    accuracy = simulate_trials(
        N_PARTICIPANTS, N_IDENTITIES, -0.5, ACCURACY, intercept=1.4, binary=True, rng=rng
    )
    base = {c: "" for c in TRIAL_COLUMNS}
    rows = []
    for r in ratings.itertuples():
        value = int(np.clip(np.rint(r.value), 1, 7))
        rows.append(
            {**base, "participant": r.participant, "list": r.list, "block": "rate",
             "task": "rate", "identity": r.identity, "condition": r.condition,
             "measure": "trust", "value": str(value)}
        )  # fmt: skip
    for r in accuracy.itertuples():
        same = int(r.correct)  # every trial a true match: correct means answering "same"
        rows.append(
            {**base, "participant": r.participant, "list": r.list, "block": "match",
             "task": "match", "identity": r.identity, "condition": r.condition,
             "probe": r.identity, "is_match": "1", "measure": "same", "value": str(same),
             "correct": str(int(r.correct))}
        )  # fmt: skip
    trials = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    trials["study"] = "bench"
    trials["rt_ms"] = "900"
    trials["attention_check"] = "0"
    trials["trial"] = (trials.groupby("participant").cumcount() + 1).astype(str)
    ids = list(dict.fromkeys(trials["participant"]))
    participants = pd.DataFrame(
        {"participant": ids, "list": "A", "status": "completed", "attention_passed": 0,
         "attention_total": 0}
    )  # fmt: skip
    codes = sorted(trials["identity"].unique())
    identities = pd.DataFrame(
        {
            "identity": codes,
            "gender": ["f" if k % 2 else "m" for k in range(len(codes))],
            "age_band": [("18-29", "30-49", "50+")[k % 3] for k in range(len(codes))],
        }
    )
    return trials, participants, identities


def run_once(data, profile: bool) -> tuple[float, float, dict, str]:
    """One report: wall and CPU seconds, results and (with profile) the top functions."""
    trials, participants, identities = data
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    report = analyse(trials, participants, identities=identities)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    text = ""
    if profiler:
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(40)
        text = buffer.getvalue()
    return wall, cpu, report.results, text


def main(argv: list[str] | None = None) -> int:
    """Simulate the study, time the report and print what it fitted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs (the fastest is shown)")
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args(argv)
    data = study()
    print(f"machine: {machine()}")
    print(
        f"data: {len(data[0])} trials ({N_PARTICIPANTS} participants x {N_IDENTITIES} "
        f"identities: trust ratings and match trials), seed {SEED}"
    )
    best = None
    for k in range(args.repeat):
        wall, cpu, results, profile = run_once(data, args.profile and k == 0)
        print(f"run {k + 1}: wall {wall:.2f} s, CPU {cpu:.2f} s, load {os.getloadavg()[0]:.1f}")
        best = (wall, cpu) if best is None or cpu < best[1] else best
        if profile:
            print(profile)
    methods = sorted({t["method"] for t in results["tests"]})
    fitted = [
        f"{m['outcome']}:{m['method']}:{m['moderator']}"
        for m in results["moderation"]
        if m["tested"]
    ]
    bayes = sum(t.get("log_bf10") is not None for t in results["tests"])
    print(f"tests: {', '.join(methods)}; {bayes} Bayes factors; moderations: {', '.join(fitted)}")
    assert best is not None
    print(
        f"best: wall {best[0]:.2f} s, CPU {best[1]:.2f} s (goal {GOAL_SECONDS:g} s): "
        + ("met" if best[1] < GOAL_SECONDS else "NOT met")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
