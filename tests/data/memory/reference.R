# Reference values of the memory (learn-then-recognise) analysis, computed by R from the fixed
# export beside this script; writes reference.json. The tests never run R.
#
#   Rscript tests/data/memory/reference.R tests/data/memory
#
# R 4.2.2, lme4 1.1-31, jsonlite. Exclusions as the report's defaults: status not completed
# (s-0032 stops early), failed attention checks (none), median rt_ms under 250 (none).
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
dir <- if (length(args)) args[1] else "."
trials <- read.csv(file.path(dir, "trials.csv"), colClasses = "character")
parts <- read.csv(file.path(dir, "participants.csv"), colClasses = "character")
keep <- parts$participant[parts$status == "completed"]
test <- trials[trials$task == "recognise" & trials$measure == "old" &
               trials$participant %in% keep, ]
test$said_old <- as.integer(test$value)
test$studied <- as.integer(test$condition %in% c("real", "ai"))

# d' and c per participant and encoding condition, log-linear correction (Hautus 1995):
# H = (hits + 0.5) / (targets + 1) over the targets studied in that condition, F likewise over
# all the participant's foils (one false-alarm rate shared by both conditions).
cells <- do.call(rbind, lapply(split(test, test$participant), function(d) {
  foils <- d[d$studied == 0, ]
  fa <- (sum(foils$said_old) + 0.5) / (nrow(foils) + 1)
  do.call(rbind, lapply(c("real", "ai"), function(cond) {
    t <- d[d$condition == cond, ]
    h <- (sum(t$said_old) + 0.5) / (nrow(t) + 1)
    data.frame(participant = d$participant[1], condition = cond,
               hits = sum(t$said_old), n_signal = nrow(t),
               false_alarms = sum(foils$said_old), n_noise = nrow(foils),
               hit_rate = mean(t$said_old), fa_rate = mean(foils$said_old),
               d_prime = qnorm(h) - qnorm(fa), criterion = -0.5 * (qnorm(h) + qnorm(fa)))
  }))
}))
real <- cells[cells$condition == "real", ]
ai <- cells[cells$condition == "ai", ]
stopifnot(identical(real$participant, ai$participant))
dp <- t.test(ai$d_prime, real$d_prime, paired = TRUE)

# Hits, real vs AI among the targets: glmer with crossed random intercepts (Laplace).
targets <- test[test$studied == 1, ]
targets$condition <- factor(targets$condition, levels = c("real", "ai"))
fit <- glmer(said_old ~ condition + (1 | participant) + (1 | identity),
             data = targets, family = binomial)
co <- summary(fit)$coefficients["conditionai", ]
vc <- as.data.frame(VarCorr(fit))

# Old/new answers by status (foil the reference, studied in the real photograph, studied in
# the AI headshot): glmer with crossed random intercepts (Laplace); the AI-minus-real contrast
# and the joint Wald chi-square of status.
test$status <- factor(ifelse(test$condition == "real", "studied_real",
                      ifelse(test$condition == "ai", "studied_ai", "foil")),
                      levels = c("foil", "studied_real", "studied_ai"))
fit3 <- glmer(said_old ~ status + (1 | participant) + (1 | identity),
              data = test, family = binomial)
co3 <- summary(fit3)$coefficients
L <- c(0, -1, 1)
ai_real <- sum(L * fixef(fit3))
ai_real_se <- sqrt(drop(t(L) %*% as.matrix(vcov(fit3)) %*% L))
b3 <- fixef(fit3)[2:3]
chi3 <- drop(t(b3) %*% solve(as.matrix(vcov(fit3))[2:3, 2:3]) %*% b3)
vc3 <- as.data.frame(VarCorr(fit3))

out <- list(
  n_participants = length(unique(test$participant)),
  cells = cells,
  mean_d_prime = list(real = mean(real$d_prime), ai = mean(ai$d_prime)),
  mean_criterion = list(real = mean(real$criterion), ai = mean(ai$criterion)),
  mean_hit_rate = list(real = mean(real$hit_rate), ai = mean(ai$hit_rate)),
  mean_fa_rate = mean(real$fa_rate),
  d_prime_paired = list(estimate = unname(dp$estimate), t = unname(dp$statistic),
                        df = unname(dp$parameter), p = dp$p.value),
  hits_glmm = list(estimate = unname(co["Estimate"]), se = unname(co["Std. Error"]),
                   z = unname(co["z value"]), p = unname(co["Pr(>|z|)"]),
                   var_participant = vc$vcov[vc$grp == "participant"],
                   var_identity = vc$vcov[vc$grp == "identity"]),
  old_new_glmm = list(estimate = unname(co3[, "Estimate"]), se = unname(co3[, "Std. Error"]),
                      z = unname(co3[, "z value"]), p = unname(co3[, "Pr(>|z|)"]),
                      terms = rownames(co3),
                      ai_vs_real = list(estimate = ai_real, se = ai_real_se,
                                        z = ai_real / ai_real_se,
                                        p = 2 * pnorm(-abs(ai_real / ai_real_se))),
                      status_chisq = chi3, status_p = pchisq(chi3, 2, lower.tail = FALSE),
                      var_participant = vc3$vcov[vc3$grp == "participant"],
                      var_identity = vc3$vcov[vc3$grp == "identity"])
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(dir, "reference.json"))
