"""Generate an R script that recomputes a study's results with lme4 and R's own tests."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from analysis.vocabulary import DEFAULT_RULES, FIXED_OUTCOMES

P_ADJUST = {"holm": "holm", "bh": "BH"}
# A moderator goes into a formula as it is: only names R reads as one variable, and none that
# the script's own trial rows already use.
SYNTACTIC = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
FORMULA = re.compile(r"[A-Za-z0-9_.~+*:|() ]+")
TRIAL_FRAME = {"participant", "identity", "condition", "value", "correct", "signal", "yes"}
# Where each outcome's trial rows and trial score come from (see analysis.outcomes).
TRIAL_ROWS = {
    "recognition_accuracy": ('d$task == "match" & d$measure == "same"', "num(rows$correct)"),
    "detection_accuracy": ('d$task == "detect" & d$measure == "source"', "num(rows$correct)"),
    "choice_real": (
        'd$task == "choose" & d$measure == "choice"',
        'as.numeric(rows$value == "real")',
    ),
    # Memory hits: said "met before" (old = 1) to the people studied, by encoding condition.
    "memory_hit_rate": (
        'd$task == "recognise" & d$measure == "old" & d$condition %in% c("real", "ai")',
        "num(rows$value)",
    ),
}
MEMORY_SDT = ("memory_d_prime", "memory_criterion")

PRELUDE = r"""# Needs R >= 4.0 with lme4 and lmerTest: install.packages(c("lme4", "lmerTest"))
# and, for the ordinal mixed models (CLMM) of ratings, ordinal: install.packages("ordinal")
# (and BayesFactor for the Bayes factors, which are skipped without it)
suppressMessages({library(lme4); library(lmerTest)})
has_ordinal <- requireNamespace("ordinal", quietly = TRUE)
if (!has_ordinal) cat("Package ordinal is not installed: the CLMMs of the ratings are skipped\n")
options(width = 140)

# Exports write a text cell that a spreadsheet would evaluate with a leading apostrophe.
unguard <- function(x) sub("^'(?=[-=+@\t\r])", "", x, perl = TRUE)
read_table <- function(file) {
  d <- read.csv(file, colClasses = "character", na.strings = "", check.names = FALSE)
  d[] <- lapply(d, unguard)
  d
}
num <- function(x) suppressWarnings(as.numeric(x))

t <- read_table("trials.csv")
p <- read_table("participants.csv")
t$rt_ms <- num(t$rt_ms)
t$attention_check <- num(t$attention_check)
"""

EXCLUSIONS = r"""
# --- exclusions -------------------------------------------------------------------------------
ids <- sort(union(unique(t$participant), p$participant), method = "radix")
status <- setNames(p$status, p$participant)[ids]
status[is.na(status)] <- "unknown"
checks <- t[t$attention_check == 1, ]
failed <- tapply(num(checks$correct) == 0, factor(checks$participant, levels = ids), sum)
failed[is.na(failed)] <- 0
missed <- setNames(num(p$attention_total) - num(p$attention_passed), p$participant)[ids]
missed[is.na(missed)] <- 0
failed <- pmax(failed, missed)
# median(rt_ms, na.rm = TRUE) over every row of the participant
med_rt <- tapply(t$rt_ms, factor(t$participant, levels = ids), median, na.rm = TRUE)
ratings <- t[t$task == "rate" & t$attention_check == 0 & !is.na(num(t$value)), ]
straight <- setNames(rep(FALSE, length(ids)), ids)
for (s in split(ratings, ratings$participant)) {
  constant <- all(tapply(num(s$value), s$measure, function(v) length(unique(v)) == 1))
  straight[s$participant[1]] <- constant && length(unique(s$trial)) >= 2
}
limit <- if (is.null(rules$min_median_rt_ms)) -Inf else rules$min_median_rt_ms
out <- (rules$incomplete & status == "partial") | (rules$attention & failed > 0) |
  (!is.na(med_rt) & med_rt < limit) | (rules$straightlining & straight)
excluded <- ids[out]
keep <- ids[!out]
cat("Participants:", length(ids), " excluded:", length(excluded), " included:", length(keep), "\n")
cat("Same exclusions as results.json:", setequal(excluded, expected_excluded), "\n")

d <- t[t$participant %in% keep & t$attention_check == 0, ]
d$condition[is.na(d$condition)] <- ""
"""

HELPERS = r"""
# --- scores and tests -------------------------------------------------------------------------
rows_of <- function(sel, value) {
  rows <- d[sel, ]
  data.frame(participant = rows$participant, identity = rows$identity,
             condition = factor(rows$condition, levels = c("real", "ai")), value = value)
}
# Each unit's mean in each condition; units without both conditions are left out.
paired_means <- function(rows, unit) {
  m <- tapply(rows$value, list(rows[[unit]], rows$condition), mean)
  m <- m[complete.cases(m[, c("real", "ai"), drop = FALSE]), , drop = FALSE]
  data.frame(unit = rownames(m), real = m[, "real"], ai = m[, "ai"])
}
unit_means <- function(rows, unit) {
  m <- tapply(rows$value, rows[[unit]], mean)
  data.frame(unit = names(m), value = as.numeric(m))
}
# d' and c with the log-linear correction: H = (hits + 0.5) / (signal trials + 1).
sdt <- function(rows, unit, within) {
  keys <- if (is.null(within)) list(rows[[unit]]) else list(rows[[unit]], rows[[within]])
  cells <- split(rows, keys, drop = TRUE)
  out <- do.call(rbind, lapply(cells, function(s) {
    ns <- sum(s$signal == 1); nn <- sum(s$signal == 0)
    h <- (sum(s$yes == 1 & s$signal == 1) + 0.5) / (ns + 1)
    f <- (sum(s$yes == 1 & s$signal == 0) + 0.5) / (nn + 1)
    ok <- ns > 0 && nn > 0
    data.frame(unit = as.character(s[[unit]][1]),
               condition = if (is.null(within)) "" else as.character(s[[within]][1]),
               d_prime = if (ok) qnorm(h) - qnorm(f) else NA,
               criterion = if (ok) -0.5 * (qnorm(h) + qnorm(f)) else NA)
  }))
  out
}
# Memory: a target's condition is the one it was studied in; foils (never studied, empty
# condition) give each condition of a unit its one false-alarm rate.
memory_cells <- function(cells) {
  foils <- cells[cells$signal == 0, ]
  rbind(cells[cells$signal == 1, ], transform(foils, condition = "real"),
        transform(foils, condition = "ai"))
}
sdt_paired <- function(cells, measure) {
  cells <- cells[!is.na(cells[[measure]]), ]
  w <- reshape(cells[, c("unit", "condition", measure)], idvar = "unit", timevar = "condition",
               direction = "wide")
  names(w) <- sub(paste0("^", measure, "\\."), "", names(w))
  w[complete.cases(w[, c("real", "ai")]), c("unit", "real", "ai")]
}
sdt_single <- function(cells, measure) {
  cells <- cells[!is.na(cells[[measure]]), ]
  data.frame(unit = cells$unit, value = cells[[measure]])
}

r <- data.frame()
add <- function(outcome, method, level, family, estimate, ci_low, ci_high, statistic, df, p) {
  r <<- rbind(r, data.frame(outcome = outcome, method = method, level = level, family = family,
                            estimate = unname(estimate), ci_low = unname(ci_low),
                            ci_high = unname(ci_high), statistic = unname(statistic),
                            df = ifelse(is.null(df), NA, unname(df)), p_value = unname(p)))
}
run_paired_t <- function(outcome, level, family, w) {
  x <- t.test(w$ai, w$real, paired = TRUE)
  add(outcome, "paired_t", level, family, x$estimate, x$conf.int[1], x$conf.int[2],
      x$statistic, x$parameter, x$p.value)
}
run_one_sample_t <- function(outcome, level, family, x, mu) {
  y <- t.test(x$value, mu = mu)
  add(outcome, "one_sample_t", level, family, mean(x$value) - mu, y$conf.int[1] - mu,
      y$conf.int[2] - mu, y$statistic, y$parameter, y$p.value)
}
run_wilcoxon_paired <- function(outcome, level, family, w, correct = FALSE) {
  x <- wilcox.test(w$ai, w$real, paired = TRUE, exact = FALSE, correct = correct)
  add(outcome, "wilcoxon", level, family, NA, NA, NA, x$statistic, NULL, x$p.value)
}
run_wilcoxon_one <- function(outcome, level, family, x, mu, correct = FALSE) {
  y <- wilcox.test(x$value, mu = mu, exact = FALSE, correct = correct)
  add(outcome, "wilcoxon", level, family, NA, NA, NA, y$statistic, NULL, y$p.value)
}
# TOST: the larger p of two one-sided t-tests against the equivalence bounds.
run_tost_paired <- function(outcome, level, w, low, high) {
  lower <- t.test(w$ai, w$real, paired = TRUE, mu = low, alternative = "greater")
  upper <- t.test(w$ai, w$real, paired = TRUE, mu = high, alternative = "less")
  worst <- if (lower$p.value >= upper$p.value) lower else upper
  add(outcome, "tost", level, "equivalence", mean(w$ai - w$real), NA, NA, worst$statistic,
      worst$parameter, max(lower$p.value, upper$p.value))
}
run_tost_one <- function(outcome, level, x, mu, low, high) {
  lower <- t.test(x$value, mu = mu + low, alternative = "greater")
  upper <- t.test(x$value, mu = mu + high, alternative = "less")
  worst <- if (lower$p.value >= upper$p.value) lower else upper
  add(outcome, "tost", level, "equivalence", mean(x$value) - mu, NA, NA, worst$statistic,
      worst$parameter, max(lower$p.value, upper$p.value))
}
# JZS Bayes factors beside the participant-level t-tests, when BayesFactor is installed.
has_bf <- requireNamespace("BayesFactor", quietly = TRUE)
if (!has_bf) cat("BayesFactor is not installed: the Bayes factors are not recomputed\n")
bfs <- data.frame()
add_bf <- function(outcome, b, rscale, python) {
  # ttestBF's log BF10; above |t| = 15 it approximates (its message says so).
  bfs <<- rbind(bfs, data.frame(outcome = outcome, rscale = rscale,
                                log_bf10 = BayesFactor::extractBF(b, logbf = TRUE)$bf,
                                log_bf10_python = python))
}
run_bf_paired <- function(outcome, w, rscale, python) {
  if (has_bf) add_bf(outcome, BayesFactor::ttestBF(x = w$ai, y = w$real, paired = TRUE,
                                                   rscale = rscale), rscale, python)
}
run_bf_one <- function(outcome, x, mu, rscale, python) {
  if (has_bf) add_bf(outcome, BayesFactor::ttestBF(x = x$value, mu = mu, rscale = rscale),
                     rscale, python)
}
run_binomial <- function(outcome, family, value, chance) {
  x <- binom.test(sum(value), length(value), p = chance)
  add(outcome, "binomial", "trial", family, mean(value) - chance, x$conf.int[1] - chance,
      x$conf.int[2] - chance, sum(value), NULL, x$p.value)
}
report_lmm <- function(outcome, family, fit) {
  co <- summary(fit)$coefficients["conditionai", ]
  half <- qt(0.975, co[["df"]]) * co[["Std. Error"]]
  add(outcome, "lmm", "trial", family, co[["Estimate"]], co[["Estimate"]] - half,
      co[["Estimate"]] + half, co[["t value"]], co[["df"]], co[["Pr(>|t|)"]])
  if (isSingular(fit)) cat(outcome, ": the lmer fit is singular\n")
}
report_glmm <- function(outcome, family, fit) {
  co <- summary(fit)$coefficients["conditionai", ]
  add(outcome, "glmm", "trial", family, co[["Estimate"]], co[["Estimate"]] - qnorm(0.975) * co[["Std. Error"]],
      co[["Estimate"]] + qnorm(0.975) * co[["Std. Error"]], co[["z value"]], NULL, co[["Pr(>|z|)"]])
  if (isSingular(fit)) cat(outcome, ": the glmer fit is singular\n")
}
# Moderation: the trial rows with the moderator merged in from identities.csv or
# participants.csv, rows without a value dropped, its reference level first.
with_moderator <- function(rows, column, source, reference) {
  table <- if (source == "identity") read_table("identities.csv") else p
  key <- if (source == "identity") "identity" else "participant"
  rows[[column]] <- setNames(table[[column]], table[[key]])[as.character(rows[[key]])]
  keep <- !is.na(rows$condition) & !is.na(rows[[column]]) & trimws(rows[[column]]) != ""
  rows <- rows[keep, ]
  rows[[column]] <- relevel(factor(rows[[column]]), ref = reference)
  rows
}
# The likelihood-ratio test of condition x moderator: anova() of the models fitted by ML
# without and with the interaction (the GLMM's Laplace likelihoods). For the CLMMs (their own
# family) the same test from their Laplace logLik: ordinal's anova() cannot find models that
# are passed into a function.
report_moderation <- function(outcome, moderator, without, with, family = "moderation") {
  if (inherits(with, "clmm")) {
    l1 <- logLik(with); l0 <- logLik(without)
    chisq <- 2 * (as.numeric(l1) - as.numeric(l0)); df <- attr(l1, "df") - attr(l0, "df")
    p <- pchisq(chisq, df, lower.tail = FALSE)
  } else {
    x <- anova(without, with)
    chisq <- x$Chisq[2]; df <- x$Df[2]; p <- x[["Pr(>Chisq)"]][2]
  }
  add(outcome, family, moderator, family, NA, NA, NA, chisq, df, p)
}
report_clmm <- function(outcome, family, formula, rows) {
  if (!has_ordinal) return(invisible(NULL))
  fit <- ordinal::clmm(formula, data = rows)  # logit link, flexible thresholds, Laplace
  co <- summary(fit)$coefficients["conditionai", ]
  add(outcome, "clmm", "trial", family, co[["Estimate"]], co[["Estimate"]] - qnorm(0.975) * co[["Std. Error"]],
      co[["Estimate"]] + qnorm(0.975) * co[["Std. Error"]], co[["z value"]], NULL, co[["Pr(>|z|)"]])
}
"""  # noqa: E501 (R code, kept as lme4's users write it)

COMPARE = r"""
# --- corrections and comparison with results.json ---------------------------------------------
# Mixed models are fitted by other optimisers than lme4's and ordinal's: their statistics agree
# to about 1e-4 (relative), the closed-form tests to rounding.
tolerance <- 1e-3
r$p_adjusted <- NA
for (f in unique(r$family)) {
  i <- r$family == f
  r$p_adjusted[i] <- p.adjust(r$p_value[i], method = correction)
}
both <- merge(r, expected, by = c("outcome", "method", "level"), suffixes = c("", "_python"),
              all = TRUE, sort = FALSE)
columns <- c("outcome", "method", "level", "estimate", "estimate_python", "statistic",
             "statistic_python", "p_adjusted", "p_adjusted_python")
print(both[, columns], digits = 6, row.names = FALSE)
# Relative differences, with a floor so that statistics near 0 and tiny p-values compare sanely.
rel <- function(a, b, floor) ifelse(is.na(a) & is.na(b), 0, abs(a - b) / pmax(abs(b), floor))
worst <- max(c(rel(both$statistic, both$statistic_python, 1),
               rel(both$p_value, both$p_value_python, 1e-6)), na.rm = TRUE)
cat(sprintf("\nLargest relative difference from results.json (statistics and p-values): %.2g\n", worst))
# A test that only one side has (R skipped it, or results.json lacks it) is no agreement.
lone <- is.na(both$p_value) != is.na(both$p_value_python) |
  is.na(both$statistic) != is.na(both$statistic_python)
if (any(lone)) {
  cat("Tests with a value on one side only:\n")
  print(both[lone, c("outcome", "method", "level", "p_value", "p_value_python")], row.names = FALSE)
}
agree <- !any(lone) && is.finite(worst) && worst < tolerance
cat(sprintf("Agreement with results.json (%d tests, tolerance %.0e): %s\n", nrow(both), tolerance,
            if (agree) "yes" else "NO"))
write.csv(both, "analysis_R_results.csv", row.names = FALSE)
cat("Wrote analysis_R_results.csv\n")
if (nrow(bfs) > 0) {
  cat("\nBayes factors (log BF10, BayesFactor::ttestBF beside results.json):\n")
  print(bfs, digits = 8, row.names = FALSE)
}
"""  # noqa: E501 (R code)


def _one_line(text: str) -> str:
    """Text for an R comment: control characters and line breaks become spaces."""
    return re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]+", " ", str(text)).strip()


def _r_string(text: str) -> str:
    """An R string literal (JSON escapes are valid R escapes)."""
    return json.dumps(str(text), ensure_ascii=True)


def _r_number(value: Any) -> str:
    """An R numeric literal; NA for missing or non-finite values."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "NA"
    if not math.isfinite(value):
        return "NA"
    return repr(float(value))


def _r_vector(values: list, literal) -> str:
    """c(...) of literals, wrapped at about 96 characters so the script stays readable."""
    items = [literal(v) for v in values]
    if not items:
        return "character(0)"
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) > 90:
            lines.append(line.rstrip())
            line = ""
        line += item + ", "
    lines.append(line[:-2])
    return "c(" + "\n    ".join(lines) + ")"


def _rules_block(results: dict) -> str:
    """The exclusion rules of the plan (or the defaults) as an R list."""
    plan = results.get("plan") or {}
    rules = {**DEFAULT_RULES, **(plan.get("exclusions") or {})}
    limit = rules["min_median_rt_ms"]
    source = "the preregistered plan" if results.get("plan") else "the defaults (no plan)"
    excluded = [e["participant"] for e in results.get("exclusions", [])]
    return (
        f"# Exclusion rules: {source}\n"
        f"rules <- list(incomplete = {str(bool(rules['incomplete'])).upper()}, "
        f"attention = {str(bool(rules['attention'])).upper()}, "
        f"min_median_rt_ms = {'NULL' if limit is None else _r_number(limit)}, "
        f"straightlining = {str(bool(rules['straightlining'])).upper()})\n"
        f"expected_excluded <- {_r_vector(excluded, _r_string)}\n"
    )


def _expected_block(tests: list[dict]) -> str:
    """results.json's tests as an R data frame, to compare with."""

    def column(key, literal):
        return _r_vector([t.get(key) for t in tests], literal)

    return (
        "expected <- data.frame(\n"
        f"  outcome = {column('outcome', _r_string)},\n"
        f"  method = {column('method', _r_string)},\n"
        f"  level = {column('level', _r_string)},\n"
        f"  estimate = {column('estimate', _r_number)},\n"
        f"  statistic = {column('statistic', _r_number)},\n"
        f"  p_value = {column('p_value', _r_number)},\n"
        f"  p_adjusted = {column('p_adjusted', _r_number)},\n"
        "  stringsAsFactors = FALSE)\n"
    )


def _outcome_rows(name: str, tests: list[dict]) -> str:
    """R lines that build `rows` (participant, identity, condition, value) of one outcome."""
    if name in TRIAL_ROWS:
        selection, value = TRIAL_ROWS[name]
        # The GLMM in results.json names the 0/1 score as trials.csv does: `correct` (the
        # memory test's hits: `said_old`).
        response = "said_old" if name == "memory_hit_rate" else "correct"
        text = f"sel <- {selection}\nrows <- d[sel, ]\nrows <- rows_of(sel, {value})\n"
        return text + f"rows${response} <- rows$value\n"
    if name in MEMORY_SDT:
        return (
            'rows <- d[d$task == "recognise" & d$measure == "old", ]\n'
            "rows <- memory_cells(data.frame(participant = rows$participant, identity = "
            "rows$identity, condition = rows$condition, signal = as.numeric(rows$condition %in% "
            'c("real", "ai")), yes = num(rows$value)))\n'
        )
    if name in ("d_prime", "criterion", "detection_d_prime"):
        task, measure = ("match", "same") if name != "detection_d_prime" else ("detect", "source")
        if name == "detection_d_prime":
            # Signal = an AI headshot; "yes" = answered AI.
            signal, yes = 'as.numeric(rows$condition == "ai")', 'as.numeric(rows$value == "ai")'
        else:
            signal, yes = "num(rows$is_match)", "num(rows$value)"
        return (
            f'rows <- d[d$task == "{task}" & d$measure == "{measure}", ]\n'
            f"rows <- data.frame(participant = rows$participant, identity = rows$identity, "
            f"condition = rows$condition, signal = {signal}, yes = {yes})\n"
        )
    # A rating scale.
    return (
        f'sel <- d$task == "rate" & d$measure == {_r_string(name)}\n'
        f"rows <- d[sel, ]\nrows <- rows_of(sel, num(rows$value))\n"
    )


def _scores(name: str, level: str, paired: bool) -> str:
    """R expression of the unit scores of an outcome at a level."""
    if name in ("d_prime", "criterion"):
        return f'sdt_paired(sdt(rows, "{level}", "condition"), "{name}")'
    if name in MEMORY_SDT:
        column = "d_prime" if name == "memory_d_prime" else "criterion"
        return f'sdt_paired(sdt(rows, "{level}", "condition"), "{column}")'
    if name == "detection_d_prime":
        return f'sdt_single(sdt(rows, "{level}", NULL), "d_prime")'
    return f'{"paired_means" if paired else "unit_means"}(rows, "{level}")'


def _test_lines(name: str, test: dict, bounds: dict) -> list[str]:
    """The R call that runs one test of results.json."""
    outcome = FIXED_OUTCOMES.get(name)
    paired = outcome.paired if outcome else True
    mu = test.get("reference_value", outcome.reference_value if outcome else 0.0)
    method, level, family = test["method"], test["level"], test.get("family", "")
    args = f"{_r_string(name)}, {_r_string(level)}, {_r_string(family)}"
    if method in ("lmm", "glmm"):
        formula = test.get("formula") or "value ~ condition + (1 | participant) + (1 | identity)"
        if method == "lmm":
            fit = f"fit <- lmer({formula}, data = rows, REML = TRUE)"
            report = f"report_lmm({_r_string(name)}, {_r_string(family)}, fit)"
        else:
            fit = f"fit <- glmer({formula}, data = rows, family = binomial)"
            report = f"report_glmm({_r_string(name)}, {_r_string(family)}, fit)"
        return [fit, report]
    if method == "clmm":
        formula = (
            test.get("formula") or "ordered(value) ~ condition + (1 | participant) + (1 | identity)"
        )
        return [f"report_clmm({_r_string(name)}, {_r_string(family)}, {formula}, rows)"]
    if method == "binomial":
        return [
            (f"run_binomial({_r_string(name)}, {_r_string(family)}, rows$value, {_r_number(mu)})")
        ]
    scores = f"scores <- {_scores(name, level, paired)}"
    bf = (
        (_r_string(name), _r_number(test.get("bf_rscale")), _r_number(test["log_bf10"]))
        if test.get("log_bf10") is not None and test.get("bf_rscale") is not None
        else None
    )
    if method == "paired_t":
        bf_line = [f"run_bf_paired({bf[0]}, scores, {bf[1]}, {bf[2]})"] if bf else []
        return [scores, f"run_paired_t({args}, scores)", *bf_line]
    if method == "one_sample_t":
        bf_line = [f"run_bf_one({bf[0]}, scores, {_r_number(mu)}, {bf[1]}, {bf[2]})"] if bf else []
        return [scores, f"run_one_sample_t({args}, scores, {_r_number(mu)})", *bf_line]
    if method == "wilcoxon":
        # The same continuity correction as the test in results.json.
        correct = ", correct = TRUE" if test.get("continuity_correction") else ""
        call = (
            f"run_wilcoxon_paired({args}, scores{correct})"
            if paired
            else f"run_wilcoxon_one({args}, scores, {_r_number(mu)}{correct})"
        )
        return [scores, call]
    if method == "tost":
        low, high = bounds.get(name, (test.get("bound_low"), test.get("bound_high")))
        call = (
            f"run_tost_paired({_r_string(name)}, {_r_string(level)}, scores, "
            f"{_r_number(low)}, {_r_number(high)})"
            if paired
            else f"run_tost_one({_r_string(name)}, {_r_string(level)}, scores, {_r_number(mu)}, "
            f"{_r_number(low)}, {_r_number(high)})"
        )
        return [scores, call]
    return [f"# {method} ({level}) has no R counterpart here"]


def _moderations(results: dict) -> list[dict]:
    """The tested moderation records of results.json that the script refits."""
    out = []
    for record in results.get("moderation") or []:
        column, formula = record.get("moderator"), record.get("formula")
        if not (
            record.get("tested")
            and record.get("method") in ("lmm", "glmm", "clmm")
            and isinstance(column, str)
            and isinstance(formula, str)
            and record.get("reference") is not None
            and record.get("source") in ("identity", "participant")
        ):
            continue
        out.append(record)
    return out


# The memory test's old/new GLMM by status (analysis.oldnew), foils the reference.
OLD_NEW_LINES = r"""
# --- memory_old_new: "met before?" by status ---------------------------------------------------
rows <- d[d$task == "recognise" & d$measure == "old", ]
rows$said_old <- num(rows$value)
rows$status <- factor(ifelse(rows$condition == "real", "studied_real",
                      ifelse(rows$condition == "ai", "studied_ai", "foil")),
                      levels = c("foil", "studied_real", "studied_ai"))
fit <- glmer(said_old ~ status + (1 | participant) + (1 | identity), data = rows,
             family = binomial)
co <- summary(fit)$coefficients
z95 <- qnorm(0.975)
for (term in c("statusstudied_real", "statusstudied_ai")) {
  add("memory_old_new", "glmm", term, "memory_old_new", co[term, "Estimate"],
      co[term, "Estimate"] - z95 * co[term, "Std. Error"],
      co[term, "Estimate"] + z95 * co[term, "Std. Error"], co[term, "z value"], NULL,
      co[term, "Pr(>|z|)"])
}
L <- c(0, -1, 1)  # studied as AI minus studied as real
est <- sum(L * fixef(fit))
se <- sqrt(drop(t(L) %*% as.matrix(vcov(fit)) %*% L))
add("memory_old_new", "glmm", "ai_vs_real", "memory_old_new", est, est - z95 * se,
    est + z95 * se, est / se, NULL, 2 * pnorm(-abs(est / se)))
if (isSingular(fit)) cat("memory_old_new : the glmer fit is singular\n")
"""


def _old_new_expected(results: dict) -> list[dict]:
    """The old/new GLMM's rows of the `expected` table (none without the fit)."""
    fit = (results.get("memory") or {}).get("old_new_glmm")
    if not fit:
        return []
    rows = [
        {**c, "level": c["term"], "statistic": c["z"]}
        for c in fit["coefficients"]
        if c["term"] != "(Intercept)"
    ]
    rows.append({**fit["ai_vs_real"], "level": "ai_vs_real", "statistic": fit["ai_vs_real"]["z"]})
    return [
        {
            "outcome": "memory_old_new",
            "method": "glmm",
            "level": row["level"],
            "estimate": row["estimate"],
            "statistic": row["statistic"],
            "p_value": row["p_value"],
            "p_adjusted": None,
        }
        for row in rows
    ]


def _moderation_family(record: dict) -> str:
    """The family (and method, in the script's table) of a moderation record's test."""
    return "moderation_ordinal" if record.get("method") == "clmm" else "moderation"


def _moderation_expected(record: dict) -> dict:
    """A moderation record as a row of the `expected` table: its likelihood-ratio test."""
    lrt = record.get("lrt") or {}
    return {
        "outcome": record["outcome"],
        "method": _moderation_family(record),
        "level": record["moderator"],
        "statistic": lrt.get("statistic"),
        "p_value": lrt.get("p_value"),
        "p_adjusted": record.get("p_adjusted"),
    }


def _moderation_lines(record: dict) -> list[str]:
    """R lines that refit one moderation model with and without condition x moderator."""
    name, column, source = record["outcome"], record["moderator"], record["source"]
    # A column name comes from the study's data: in a comment, a line break would start code.
    shown = _one_line(column)
    label = f"# moderation: condition x {shown} ({source}), likelihood-ratio test"
    if (
        not SYNTACTIC.fullmatch(column)
        or column in TRIAL_FRAME
        or not FORMULA.fullmatch(record["formula"])
        or f"condition:{column}" not in record["formula"]
    ):
        return [label, f"# {shown} is not a name R can use in a formula: not refitted here"]
    fit = {
        "lmm": f"full <- lmer({record['formula']}, data = m, REML = FALSE)",
        "glmm": f"full <- glmer({record['formula']}, data = m, family = binomial)",
        "clmm": f"full <- ordinal::clmm({record['formula']}, data = m)",
    }[record["method"]]
    family = _moderation_family(record)
    lines = [
        f"m <- with_moderator(rows, {_r_string(column)}, {_r_string(source)}, "
        f"{_r_string(str(record['reference']))})",
        fit,
        f"reduced <- update(full, . ~ . - condition:{column})",
        f"report_moderation({_r_string(name)}, {_r_string(column)}, reduced, full, "
        f"{_r_string(family)})",
    ]
    if record["method"] == "clmm":
        label = label.replace("# moderation:", "# moderation (ordinal mixed model):")
        return [label, "if (has_ordinal) {", *[f"  {line}" for line in lines], "}"]
    return [label, *lines]


def r_script(results: dict, *, title: str = "") -> str:
    """An R script that recomputes every test of results.json from trials.csv and participants.csv.

    Parameters
    ----------
    results : dict
        results.json of `analysis.report.analyse`.
    title : str
        Study title for the header comment.

    Returns
    -------
    str
        The script. It applies the exclusion rules of ``results["plan"]`` (or the defaults),
        checks that they exclude the participants listed in results.json, runs for each test of
        ``results["tests"]`` the matching R call — ``t.test(..., paired = TRUE)``, ``t.test(x,
        mu = chance)``, ``wilcox.test(..., exact = FALSE, correct = FALSE)``, ``binom.test``,
        the two one-sided ``t.test`` calls of a TOST, ``BayesFactor::ttestBF(..., rscale = r)``
        beside each t-test with a Bayes factor (when ``requireNamespace("BayesFactor")``),
        ``lmer(<formula>, REML = TRUE)`` and
        ``glmer(<formula>, family = binomial)`` with each mixed model's formula as named in
        results.json — refits each tested moderation with and without ``condition:moderator``
        (``anova`` of the two ML fits; ``ordinal::clmm`` for the ordinal model's), corrects
        p-values per family with ``p.adjust``, prints
        R's numbers beside results.json's and says whether they agree within a tolerance.

    Raises
    ------
    ValueError
        When results has no ``tests`` list or names an unknown correction.
    """
    tests = results.get("tests")
    if not isinstance(tests, list):
        raise ValueError(f"results: 'tests' must be a list, got {type(tests).__name__}")
    correction = results.get("correction", "holm")
    if correction not in P_ADJUST:
        raise ValueError(f"results: correction {correction!r} is not one of {', '.join(P_ADJUST)}")
    bounds = (results.get("plan") or {}).get("equivalence_bounds") or {}
    study = results.get("study", "")
    # The title goes into a comment: a line break in it would start a line of R code.
    title = _one_line(title)
    header = [
        f"# analysis.R: recomputes the results of the Likeness study {study!r}"
        + (f" ({title})" if title else ""),
        (
            f"# with R (stats, lme4, lmerTest). Generated from results.json (analysis "
            f"{results.get('analysis_version', '?')}, data SHA-256 "
            f"{results.get('data_sha256', '?')})."
        ),
        "# Run it in the folder holding trials.csv, participants.csv, identities.csv and",
        "# results.json (the reproduction bundle):",
        "#   Rscript analysis.R",
        "# It prints each R value beside results.json's and writes analysis_R_results.csv.",
        "",
    ]
    moderations = _moderations(results)
    parts = [
        "\n".join(header),
        PRELUDE,
        _rules_block(results),
        f'correction <- "{P_ADJUST[correction]}"\n',
        _expected_block(
            tests + [_moderation_expected(m) for m in moderations] + _old_new_expected(results)
        ),
        EXCLUSIONS,
        HELPERS,
    ]
    outcomes = [t["outcome"] for t in tests] + [m["outcome"] for m in moderations]
    for name in dict.fromkeys(outcomes):
        own = [t for t in tests if t["outcome"] == name]
        lines = [f"\n# --- {name} " + "-" * max(3, 90 - len(name)), _outcome_rows(name, own)]
        for test in own:
            lines.append(
                f"# {test['method']} at the {test['level']} level ({test.get('family', '')})"
            )
            lines.extend(_test_lines(name, test, bounds))
        for record in moderations:
            if record["outcome"] == name:
                lines.extend(_moderation_lines(record))
        parts.append("\n".join(lines) + "\n")
    if _old_new_expected(results):
        parts.append(OLD_NEW_LINES)
    parts.append(COMPARE)
    return "\n".join(parts)
