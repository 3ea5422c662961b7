# Expected values for tests/analysis/test_clmm.py, computed with R's ordinal::clmm (Laplace).
# usage (from the repository root): Rscript tests/data/clmm/clmm_reference.R
# Writes tests/data/clmm/wine.csv and prints every number the tests use, as JSON.
suppressMessages(library(ordinal))
data(wine, package = "ordinal")
write.csv(wine[, c("response", "rating", "temp", "contact", "bottle", "judge")],
          "tests/data/clmm/wine.csv", row.names = FALSE)

# sim-small, default exclusions (as tests/data/reference/reference.R)
dir <- "tests/data/reference/sim-small"
t <- read.csv(file.path(dir, "trials.csv"), colClasses = "character")
p <- read.csv(file.path(dir, "participants.csv"), colClasses = "character")
t$rt_ms <- suppressWarnings(as.numeric(t$rt_ms))
med_rt <- tapply(t$rt_ms, t$participant, median, na.rm = TRUE)
keep <- p$participant[p$status == "completed" & p$attention_passed == p$attention_total]
keep <- keep[med_rt[keep] >= 250]
d <- t[t$participant %in% keep & t$attention_check == "0", ]
d$condition <- factor(d$condition, levels = c("real", "ai"))
d$participant <- factor(d$participant); d$identity <- factor(d$identity)
tr <- d[d$measure == "trust", ]
pr <- d[d$measure == "professional", ]

summ <- function(fit) {
  co <- summary(fit)$coefficients
  vc <- VarCorr(fit)
  list(coef = setNames(as.list(co[, 1]), rownames(co)),
       se = setNames(as.list(co[, 2]), rownames(co)),
       z = setNames(as.list(co[, 3]), rownames(co)),
       p = setNames(as.list(co[, 4]), rownames(co)),
       var = lapply(vc, function(v) as.vector(v)),
       logLik = as.numeric(logLik(fit)),
       max_grad = max(abs(fit$gradient)))
}
out <- list()
out$wine_judge <- summ(clmm(rating ~ temp + contact + (1 | judge), data = wine))
out$wine_crossed <- summ(clmm(rating ~ temp + contact + (1 | judge) + (1 | bottle), data = wine))
out$wine_slopes <- summ(clmm(rating ~ temp + contact + (1 + temp | judge), data = wine))
out$trust <- summ(clmm(ordered(value) ~ condition + (1 | participant) + (1 | identity), data = tr))
out$trust_slopes <- summ(clmm(ordered(value) ~ condition + (1 + condition | participant) + (1 + condition | identity), data = tr))
out$professional <- summ(clmm(ordered(value) ~ condition + (1 | participant) + (1 | identity), data = pr))
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = 12, pretty = TRUE))
