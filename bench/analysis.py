"""Time the mixed models (LMM, GLMM, CLMM) and the whole report on a 200 x 40 study.

Usage: ``.venv/bin/python bench/analysis.py [--skip-statsmodels] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from analysis.clmm import fit_clmm  # noqa: E402
from analysis.mixed import fit_glmm, fit_lmm  # noqa: E402
from analysis.power import VarianceComponents, simulate_trials  # noqa: E402
from bench.report import best_of  # noqa: E402
from bench.sim_small import SIM_SMALL  # noqa: E402

SEED = 20261128
N_PARTICIPANTS, N_IDENTITIES, REPLICATES = 200, 40, 2
RATING = VarianceComponents(
    participant=0.30, identity=0.13, residual=0.90, participant_slope=0.03, identity_slope=0.02
)
ACCURACY = VarianceComponents(participant=0.25, identity=0.30, residual=1.0)


def machine() -> str:
    """CPU count, memory and current load of this machine (timings depend on all three)."""
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs (nproc), {pages * size / 2**30:.1f} GiB memory, load average {load}"
    )


def statsmodels_lmm(data):
    """The same REML LMM with statsmodels: crossed effects as variance components of one group."""
    import statsmodels.formula.api as smf

    frame = data.assign(whole=1)
    model = smf.mixedlm(
        "value ~ C(condition, Treatment('real'))",
        frame,
        groups="whole",
        re_formula="0",
        vc_formula={"participant": "0 + C(participant)", "identity": "0 + C(identity)"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its convergence chatter is not what is measured
        return model.fit(reml=True)


def main(argv: list[str] | None = None) -> int:
    """Simulate, time every fit and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best is shown)")
    parser.add_argument(
        "--skip-statsmodels", action="store_true", help="skip statsmodels MixedLM (about 15 s)"
    )
    args = parser.parse_args(argv)

    rng = np.random.default_rng(SEED)
    ratings = simulate_trials(
        N_PARTICIPANTS, N_IDENTITIES, -0.3, RATING, replicates=REPLICATES, rng=rng
    )
    accuracy = simulate_trials(
        N_PARTICIPANTS,
        N_IDENTITIES,
        -0.5,
        ACCURACY,
        intercept=1.4,
        replicates=REPLICATES,
        binary=True,
        rng=rng,
    )
    rows = []

    def record(name, seconds, estimate, note=""):
        rows.append(
            (name, f"{seconds:.3f}", f"{estimate:+.5f}" if estimate is not None else "", note)
        )

    for slopes in (False, "auto"):
        seconds, fit = best_of(args.repeat, partial(fit_lmm, ratings, slopes=slopes))
        record(
            f"fit_lmm slopes={slopes}",
            seconds,
            fit.estimate,
            f"df {fit.df:.1f}; {fit.formula.split(' ~ ')[1]}",
        )
    for slopes in (False, "auto"):
        seconds, fit = best_of(args.repeat, partial(fit_glmm, accuracy, slopes=slopes))
        record(
            f"fit_glmm slopes={slopes}",
            seconds,
            fit.estimate,
            f"se {fit.se:.4f}; {fit.formula.split(' ~ ')[1]}",
        )
    # The same ratings rounded to a 1-7 scale, for the ordinal mixed model.
    ordinal = ratings.assign(value=np.clip(np.rint(ratings["value"]), 1, 7))
    for slopes in (False, "auto"):
        seconds, fit = best_of(args.repeat, partial(fit_clmm, ordinal, slopes=slopes))
        record(
            f"fit_clmm slopes={slopes}",
            seconds,
            fit.estimate,
            f"se {fit.se:.4f}; {fit.formula.split(' ~ ')[1]}",
        )
    if not args.skip_statsmodels:
        seconds, result = best_of(1, lambda: statsmodels_lmm(ratings))
        record(
            "statsmodels MixedLM (REML)",
            seconds,
            float(result.fe_params.iloc[1]),
            "crossed via vc_formula, one group",
        )
    if (ROOT / "analysis" / "report.py").exists() and SIM_SMALL.is_dir():
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "analysis", "report", str(SIM_SMALL), "--out", out],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            seconds = time.perf_counter() - start
        last = (done.stderr.strip().splitlines() or [""])[-1]
        record(
            "python -m analysis report sim-small",
            seconds,
            None,
            "ok" if done.returncode == 0 else f"exit {done.returncode}: {last}",
        )

    print(f"machine: {machine()}")
    print(
        f"data: {len(ratings)} rating rows and {len(accuracy)} 0/1 rows "
        f"({N_PARTICIPANTS} participants x {N_IDENTITIES} identities x {REPLICATES} "
        f"replicates, two lists), seed {SEED}; best of {args.repeat}"
    )
    header = ("what", "seconds", "estimate", "note")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
