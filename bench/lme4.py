"""Mixed models against R's lme4: the same fits, their numbers and their time, side by side."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from analysis.mixed import fit_glmm, fit_lmm  # noqa: E402
from bench.report import best_of, machine, run_json  # noqa: E402
from bench.sim_small import sim_small_rows  # noqa: E402

# R prints one JSON object: each fit's numbers and its best elapsed time over `repeat` runs.
R_FITS = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
args <- commandArgs(trailingOnly = TRUE)
folder <- args[1]; repeat_n <- as.integer(args[2]); which <- args[3]
best <- function(f) { t <- Inf; for (i in seq_len(repeat_n)) {
  s <- system.time(r <- f())[["elapsed"]]; t <- min(t, s) }; list(fit = r, seconds = t) }
num <- function(x) format(x, digits = 12)
out <- list()
if (which == "insteval") {
  d <- lme4::InstEval
  rows <- data.frame(value = d$y, participant = paste0("s", d$s), identity = paste0("d", d$d),
                     condition = ifelse(d$service == "1", "ai", "real"))
  write.csv(rows, file.path(folder, "insteval.csv"), row.names = FALSE)
  lmm_rows <- rows
} else {
  lmm_rows <- read.csv(file.path(folder, "trust.csv"))
  glmm_rows <- read.csv(file.path(folder, "accuracy.csv"))
}
lmm_rows$condition <- factor(lmm_rows$condition, levels = c("real", "ai"))
r <- best(function() lmerTest::lmer(value ~ condition + (1|participant) + (1|identity),
                                    data = lmm_rows, REML = TRUE))
co <- summary(r$fit)$coefficients["conditionai", ]
out$lmm <- list(estimate = co[["Estimate"]], se = co[["Std. Error"]], df = co[["df"]],
                t = co[["t value"]], p = co[["Pr(>|t|)"]], seconds = r$seconds)
if (which != "insteval") {
  glmm_rows$condition <- factor(glmm_rows$condition, levels = c("real", "ai"))
  r <- best(function() glmer(correct ~ condition + (1|participant) + (1|identity),
                             data = glmm_rows, family = binomial))
  co <- summary(r$fit)$coefficients["conditionai", ]
  out$glmm <- list(estimate = co[["Estimate"]], se = co[["Std. Error"]],
                   z = co[["z value"]], p = co[["Pr(>|z|)"]], seconds = r$seconds)
}
obj <- sapply(names(out), function(k) { f <- out[[k]]
  paste0('"', k, '": {', paste0('"', names(f), '": ', sapply(f, num), collapse = ", "), "}") })
cat("{", paste(obj, collapse = ", "), "}\n", sep = "")
"""


def r_available() -> bool:
    """Tell whether Rscript with lme4 and lmerTest can run here."""
    if shutil.which("Rscript") is None:
        return False
    done = subprocess.run(
        ["Rscript", "-e", "library(lme4); library(lmerTest)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode == 0


def run_r(folder: Path, repeat: int, which: str) -> dict:
    """Fit the models in R on the rows in `folder`; return its numbers and times."""
    script = folder / "fits.R"
    script.write_text(R_FITS)
    return run_json(["Rscript", str(script), str(folder), str(repeat), which], "R", timeout=1800)


def relative(ours: float, theirs: float) -> str:
    """Return the relative difference of two numbers, as text."""
    return f"{abs(ours - theirs) / abs(theirs):.1e}" if theirs else "n/a"


def table(rows: list[tuple]) -> None:
    """Print quantity, ours, R's and their relative difference, one per line."""
    print(f"    {'quantity':22} {'Likeness':>16} {'R':>16} {'rel. diff':>9}")
    for name, ours, theirs in rows:
        print(f"    {name:22} {ours:16.10g} {theirs:16.10g} {relative(ours, theirs):>9}")


def main(argv: list[str] | None = None) -> int:
    """Fit, compare, time; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        choices=("sim-small", "insteval"),
        action="append",
        help="repeatable; default sim-small (insteval needs R with lme4)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best is shown)")
    args = parser.parse_args(argv)
    datasets = args.dataset or ["sim-small"]
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be 1-20")
    with_r = r_available()
    print("machine:", machine())
    print("R with lme4 and lmerTest:", "found" if with_r else "not found (R's times left out)")
    if "insteval" in datasets and not with_r:
        parser.error("--dataset insteval needs Rscript with lme4 and lmerTest")

    with tempfile.TemporaryDirectory(prefix="likeness-lme4-") as tmp:
        folder = Path(tmp)
        if "sim-small" in datasets:
            kept, _excluded, reference = sim_small_rows()
            trust = kept[kept["measure"] == "trust"].assign(
                value=lambda r: r["value"].astype(float)
            )
            accuracy = kept[kept["measure"] == "same"]
            seconds_lmm, lmm = best_of(
                args.repeat, lambda: fit_lmm(trust, slopes=False), quiet=True
            )
            seconds_glmm, glmm = best_of(
                args.repeat, lambda: fit_glmm(accuracy, dv="correct", slopes=False), quiet=True
            )
            r = reference["trust_lmm"]
            print(f"\nsim-small, trust LMM ({len(trust)} rows): {seconds_lmm:.3f} s here")
            table(
                [
                    ("estimate", lmm.estimate, r["estimate"]),
                    ("SE", lmm.se, r["se"]),
                    ("df (Satterthwaite)", lmm.df, r["df"]),
                    ("t", lmm.statistic, r["t"]),
                    ("p", lmm.p_value, r["p"]),
                ]
            )
            r = reference["accuracy_glmm"]
            print(f"sim-small, accuracy GLMM ({len(accuracy)} rows): {seconds_glmm:.3f} s here")
            table(
                [
                    ("estimate", glmm.estimate, r["estimate"]),
                    ("SE", glmm.se, r["se"]),
                    ("z", glmm.statistic, r["z"]),
                    ("p", glmm.p_value, r["p"]),
                ]
            )
            if with_r:
                trust.to_csv(folder / "trust.csv", index=False)
                accuracy.to_csv(folder / "accuracy.csv", index=False)
                timed = run_r(folder, args.repeat, "sim-small")
                print(
                    f"lme4 on the same rows: lmer {timed['lmm']['seconds']:.3f} s, "
                    f"glmer {timed['glmm']['seconds']:.3f} s"
                )
        if "insteval" in datasets:
            timed = run_r(folder, args.repeat, "insteval")
            rows = pd.read_csv(folder / "insteval.csv", dtype={"participant": str, "identity": str})
            seconds, fit = best_of(args.repeat, lambda: fit_lmm(rows, slopes=False), quiet=True)
            r = timed["lmm"]
            print(
                f"\nInstEval, y ~ service + (1|s) + (1|d) ({len(rows)} rows, "
                f"{rows['participant'].nunique()} students, {rows['identity'].nunique()} "
                f"lecturers): {seconds:.2f} s here, lme4 {r['seconds']:.2f} s"
            )
            table(
                [
                    ("estimate", fit.estimate, r["estimate"]),
                    ("SE", fit.se, r["se"]),
                    ("df (Satterthwaite)", fit.df, r["df"]),
                    ("t", fit.statistic, r["t"]),
                    ("p", fit.p_value, r["p"]),
                ]
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
