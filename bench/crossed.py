"""A large crossed, unbalanced study fitted by Likeness and by R side by side: time and memory.

Usage: ``.venv/bin/python bench/crossed.py [--participants 3000] [--identities 1100]
[--per-participant 25] [--skip-clmm] [--skip-r]``. Needs Rscript with lme4, lmerTest and ordinal
for R's figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.analysis import machine  # noqa: E402
from bench.report import run_json  # noqa: E402

SEED = 20261204
# Variances of the trust ratings in sim-small's slopes model, rounded (docs/mixed-models.md)
SD = {
    "participant": 0.30**0.5,
    "identity": 0.13**0.5,
    "participant_slope": 0.03**0.5,
    "identity_slope": 0.02**0.5,
    "residual": 0.90**0.5,
}

R_FITS = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(ordinal)})
args <- commandArgs(trailingOnly = TRUE)
rows <- read.csv(args[1]); with_clmm <- args[2] == "1"
rows$condition <- factor(rows$condition, levels = c("real", "ai"))
num <- function(x) format(x, digits = 12)
f <- value ~ condition + (1 + condition | participant) + (1 + condition | identity)
t1 <- system.time(m1 <- lme4::lmer(f, data = rows, REML = TRUE))[["elapsed"]]
t2 <- system.time({m2 <- lmerTest::lmer(f, data = rows, REML = TRUE);
                   co <- summary(m2)$coefficients["conditionai", ]})[["elapsed"]]
out <- c(lmer_seconds = t1, lmertest_seconds = t2, estimate = co[["Estimate"]],
         se = co[["Std. Error"]], df = co[["df"]], deviance = unname(REMLcrit(m1)))
if (with_clmm) {
  rows$rating <- factor(rows$rating, ordered = TRUE)
  t3 <- system.time(m3 <- clmm(rating ~ condition + (1 + condition | participant)
                               + (1 + condition | identity), data = rows))[["elapsed"]]
  cc <- summary(m3)$coefficients["conditionai", ]
  out <- c(out, clmm_seconds = t3, clmm_estimate = cc[["Estimate"]],
           clmm_se = cc[["Std. Error"]], clmm_loglik = as.numeric(logLik(m3)))
}
cat("{", paste0('"', names(out), '": ', sapply(out, num), collapse = ", "), "}\n", sep = "")
"""


def simulate(
    n_participants: int, n_identities: int, per_participant: int, seed: int = SEED
) -> pd.DataFrame:
    """Rows of a crossed study in which each participant rates a random subset of identities.

    A participant rates between half and one and a half times ``per_participant`` identities
    (uniformly), drawn without replacement from all of them; lists A and B alternate, list A
    seeing the first half of the identities as AI and the rest as real, list B the reverse::

        y = 4 - 0.3 [ai] + a_p + b_i + (s_p + t_i) [ai] + e

    with the SDs in ``SD``. ``rating`` is y rounded to the 1-7 scale.
    """
    rng = np.random.default_rng(seed)
    low, high = per_participant - per_participant // 2, per_participant + per_participant // 2
    counts = rng.integers(low, high + 1, size=n_participants)
    participant = np.repeat(np.arange(n_participants), counts)
    identity = np.concatenate([rng.choice(n_identities, size=c, replace=False) for c in counts])
    ai = ((identity < n_identities // 2) ^ (participant % 2 == 1)).astype(float)
    a = rng.normal(0, SD["participant"], n_participants)
    s = rng.normal(0, SD["participant_slope"], n_participants)
    b = rng.normal(0, SD["identity"], n_identities)
    t = rng.normal(0, SD["identity_slope"], n_identities)
    y = (
        4.0
        + (-0.3 + s[participant] + t[identity]) * ai
        + a[participant]
        + b[identity]
        + rng.normal(0, SD["residual"], len(participant))
    )
    return pd.DataFrame(
        {
            "participant": [f"p{i:05d}" for i in participant],
            "identity": [f"i{i:05d}" for i in identity],
            "condition": np.where(ai == 1, "ai", "real"),
            "value": np.round(y, 6),
            "rating": np.clip(np.rint(y), 1, 7).astype(int),
        }
    )


def child(path: str, which: str) -> None:
    """Fit one model on the rows in ``path`` and print its time, estimate and peak memory."""
    from analysis.clmm import fit_clmm
    from analysis.mixed import fit_lmm

    rows = pd.read_csv(path)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if which == "lmm":
            fit = fit_lmm(rows, slopes=True)
        else:
            fit = fit_clmm(rows, dv="rating", slopes=True)
    seconds = time.perf_counter() - start
    peak = None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024  # kB -> MiB
    print(
        json.dumps(
            {
                "seconds": seconds,
                "estimate": fit.estimate,
                "se": fit.se,
                "df": fit.df,
                "deviance": fit.deviance,
                "peak_mib": peak,
                "converged": fit.converged,
                "notes": fit.notes,
            }
        )
    )


def run_child(path: Path, which: str) -> dict:
    """Run one Python fit in a fresh process (so its peak memory is its own)."""
    return run_json([sys.executable, __file__, "--child", which, str(path)], f"the {which} fit")


def run_r(path: Path, with_clmm: bool) -> dict:
    """Fit lme4::lmer, lmerTest::lmer (with its summary) and ordinal::clmm in R."""
    script = path.parent / "fits.R"
    script.write_text(R_FITS)
    return run_json(["Rscript", str(script), str(path), "1" if with_clmm else "0"], "R")


def main(argv: list[str] | None = None) -> int:
    """Simulate, fit in R and here, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=3000)
    parser.add_argument("--identities", type=int, default=1100)
    parser.add_argument("--per-participant", type=int, default=25)
    parser.add_argument("--skip-clmm", action="store_true", help="LMM only")
    parser.add_argument("--skip-r", action="store_true", help="Likeness only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[1], args.child[0])
        return 0
    if not (2 <= args.per_participant <= args.identities and args.participants >= 2):
        parser.error("need at least 2 participants and 2 <= --per-participant <= --identities")
    rows = simulate(args.participants, args.identities, args.per_participant)
    print("machine:", machine())
    print(
        f"data: {len(rows)} rows, {rows['participant'].nunique()} participants x "
        f"{rows['identity'].nunique()} identities, {args.per_participant} a participant on "
        f"average, seed {SEED}; value ~ condition + (1 + condition | participant) + "
        "(1 + condition | identity)"
    )
    with tempfile.TemporaryDirectory(prefix="likeness-crossed-") as tmp:
        path = Path(tmp) / "rows.csv"
        rows.to_csv(path, index=False)
        r = {} if args.skip_r else run_r(path, not args.skip_clmm)
        lmm = run_child(path, "lmm")
        clmm = None if args.skip_clmm else run_child(path, "clmm")
    print(f"machine after the fits: {machine()}")
    print(f"{'what':34} {'seconds':>9} {'estimate':>12} {'se':>10} {'peak MiB':>9}")

    def line(name: str, seconds: float, estimate: float, se: float, peak: float | None) -> None:
        shown = f"{peak:9.0f}" if peak is not None else f"{'':9}"
        print(f"{name:34} {seconds:9.2f} {estimate:12.8f} {se:10.7f} {shown}")

    line("Likeness fit_lmm", lmm["seconds"], lmm["estimate"], lmm["se"], lmm["peak_mib"])
    if r:
        line("lme4::lmer", r["lmer_seconds"], r["estimate"], r["se"], None)
        line("lmerTest::lmer + summary", r["lmertest_seconds"], r["estimate"], r["se"], None)
        print(
            f"  df here {lmm['df']:.6g}, lmerTest {r['df']:.6g}; REML criterion here "
            f"{lmm['deviance']:.10g}, lme4 {r['deviance']:.10g}"
        )
    if clmm:
        line("Likeness fit_clmm", clmm["seconds"], clmm["estimate"], clmm["se"], clmm["peak_mib"])
        if "clmm_seconds" in r:
            line("ordinal::clmm", r["clmm_seconds"], r["clmm_estimate"], r["clmm_se"], None)
    for name, fit in (("fit_lmm", lmm), ("fit_clmm", clmm)):
        if fit and fit["notes"]:
            print(f"{name} notes: {'; '.join(fit['notes'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
