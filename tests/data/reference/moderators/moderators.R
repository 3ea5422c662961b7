# Moderator reference values: condition x moderator mixed models with lme4 1.1-31 / lmerTest 3.1-3.
# usage: Rscript moderators.R   (run in this folder; reads ../sim-small and writes moderators.json)
suppressMessages({library(lmerTest); library(jsonlite)})
t <- read.csv("../sim-small/trials.csv", colClasses = "character")
p <- read.csv("../sim-small/participants.csv", colClasses = "character")
ids <- read.csv("identities.csv", colClasses = "character")
ans <- read.csv("answers.csv", colClasses = "character")
t$rt_ms <- suppressWarnings(as.numeric(t$rt_ms))
med_rt <- tapply(t$rt_ms, t$participant, median, na.rm = TRUE)
keep <- p$participant[p$status == "completed" & p$attention_passed == p$attention_total]
keep <- keep[med_rt[keep] >= 250]
d <- t[t$participant %in% keep & t$attention_check == "0", ]
d <- merge(d, ids, by = "identity", sort = FALSE)
d <- merge(d, ans, by = "participant", sort = FALSE)
d$condition <- factor(d$condition, levels = c("real", "ai"))
d[d == ""] <- NA  # blank answers and descriptors are missing values
d$value <- suppressWarnings(as.numeric(d$value))
d$correct <- suppressWarnings(as.numeric(d$correct))
trust <- d[d$measure == "trust", ]
same <- d[d$measure == "same", ]

coefs <- function(m) {
  s <- coef(summary(m))
  lapply(seq_len(nrow(s)), function(i) {
    r <- as.list(s[i, ]); r$term <- rownames(s)[i]; r
  })
}
# the simple effect of condition at level `lv`: the conditionai row after re-levelling
simple <- function(fitfun, data, mod, lv) {
  data[[mod]] <- relevel(factor(data[[mod]]), ref = lv)
  m <- fitfun(data)
  s <- coef(summary(m))["conditionai", ]
  r <- as.list(s); r$level <- lv
  if (inherits(m, "lmerModLmerTest")) {
    ci <- contest(m, as.numeric(names(fixef(m)) == "conditionai"), joint = FALSE)
    r$ci_low <- ci$lower; r$ci_high <- ci$upper
  } else {
    r$ci_low <- s[["Estimate"]] - qnorm(0.975) * s[["Std. Error"]]
    r$ci_high <- s[["Estimate"]] + qnorm(0.975) * s[["Std. Error"]]
  }
  r
}
case <- function(data, mod, family, re = "(1 | participant) + (1 | identity)", drop_levels = c()) {
  y <- if (family == "lmm") "value" else "correct"
  data <- data[!is.na(data[[mod]]) & !is.na(data[[y]]), ]
  data[[mod]] <- factor(data[[mod]])
  f1 <- as.formula(paste(y, "~ condition *", mod, "+", re))
  f0 <- as.formula(paste(y, "~ condition +", mod, "+", re))
  # optimised to convergence (the default nloptwrap stops at ftol_abs 1e-8 on the deviance,
  # which leaves slope and GLMM estimates uncertain in their 4th-5th digit)
  tight <- list(ftol_abs = 1e-12, xtol_abs = 1e-12, ftol_rel = 1e-15, xtol_rel = 1e-12,
                maxeval = 1e5)
  fit <- if (family == "lmm") function(x, f = f1)
           lmer(f, data = x, REML = TRUE, control = lmerControl(optCtrl = tight))
         else function(x, f = f1)
           glmer(f, data = x, family = binomial, control = glmerControl(optimizer = "nloptwrap", optCtrl = tight))
  m1 <- fit(data); m0 <- fit(data, f0)
  a <- anova(m0, m1)  # refits both by ML for an LMM
  out <- list(n = nrow(data), coefficients = coefs(m1),
              lrt = list(chisq = a$Chisq[2], df = a$Df[2], p = a[["Pr(>Chisq)"]][2],
                         deviance0 = a$deviance[1], deviance1 = a$deviance[2]),
              vcov = unname(as.matrix(vcov(m1))))
  inter <- grep("^conditionai:", names(fixef(m1)), value = TRUE)
  if (family == "lmm") {
    tab <- anova(m1)  # type III, Satterthwaite
    row <- paste0("condition:", mod)
    out$interaction <- list(F = tab[row, "F value"], df1 = tab[row, "NumDF"],
                            df2 = tab[row, "DenDF"], p = tab[row, "Pr(>F)"])
  } else {
    b <- fixef(m1)[inter]; V <- as.matrix(vcov(m1))[inter, inter]
    chisq <- drop(t(b) %*% solve(V) %*% b)
    out$interaction <- list(chisq = chisq, df = length(inter),
                            p = pchisq(chisq, length(inter), lower.tail = FALSE))
  }
  levels_ok <- setdiff(levels(data[[mod]]), drop_levels)
  out$simple <- lapply(levels_ok, function(lv) simple(fit, data, mod, lv))
  out
}
# binary.csv: simulated 0/1 answers (60 participants x 20 identities, the AI effect -0.6 log
# odds for gender f and -0.1 for m), blank familiarity = missing
binary <- read.csv("binary.csv", colClasses = "character")
binary[binary == ""] <- NA
binary$condition <- factor(binary$condition, levels = c("real", "ai"))
binary$correct <- as.numeric(binary$correct)
no_old_ai <- trust[!(trust$age_band == "50+" & trust$condition == "ai"), ]
out <- list(
  trust_gender = case(trust, "gender", "lmm"),
  trust_age_band = case(trust, "age_band", "lmm"),
  trust_gender_slopes = case(trust, "gender", "lmm",
                             "(1 + condition | participant) + (1 + condition | identity)"),
  trust_familiarity = case(trust, "ai_familiarity", "lmm"),
  trust_ethnicity = case(trust, "ethnicity", "lmm"),
  trust_age_band_no_old_ai = case(no_old_ai, "age_band", "lmm", drop_levels = "50+"),
  binary_gender = case(binary, "gender", "glmm"),
  binary_familiarity = case(binary, "familiarity", "glmm")
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "moderators.json")
