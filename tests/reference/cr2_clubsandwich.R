# Reference numbers for evalkit's estimators under CR1 (sandwich) and CR2 (clubSandwich).
#
# Usage: Rscript tests/reference/cr2_clubsandwich.R INPUT.csv OUTPUT.csv
#
# INPUT stacks model frames (one row per child, or per centre for the centre-level model)
# with a `model` column; see tests/reference/make_cr2_data.py. For each model and region:
#   ancova                        lm(y ~ partnered + baseline + age_months + sex + setting)
#   did                           lm(y ~ endline + partnered_x_endline + age_months + sex + factor(centre_id))
#   regression_adjustment         lm(y ~ partnered + age_months + sex + setting + registration_status + fee_band)
#   ipw                           lm(y ~ partnered, weights = weight)
#   centre_regression_adjustment  lm(y ~ partnered + setting + registration_status + fee_band), one row per centre
#   national_ancova               the ANCOVA + factor(stratum) (region fixed effects)
#   aipw, centre_aipw             lm(y ~ partnered + Z, weights = weight), Z = (1 - partnered) * (x - mean of x
#                                 over partnered rows) for the outcome-model terms x (baseline, age_months, sex,
#                                 setting, registration_status, fee_band; the centre model: the last three)
# Factors with a single level in a region are left out (as evalkit's design has no dummy for them).
# Numeric covariates (baseline, age_months) are centred within each model frame: that changes no
# coefficient of interest, no hat matrix and hence no CR2 quantity, but keeps the eigen-based inverse
# clubSandwich uses accurate. Without it, a centre that is alone in its category (so that I - H_gg is
# exactly singular) can get a Satterthwaite df that moves in the third decimal when age is merely
# shifted, because an eigenvalue of 1e-11 (rounding noise) is then inverted instead of dropped.
# CR1: sandwich::vcovCL(type = "HC1", cluster = centre_id), t on G-1 df; for the centre-level
# model HC1: sandwich::vcovHC(type = "HC1"), t on N-K df. CR2: clubSandwich::coef_test and
# conf_int with vcov = "CR2", cluster = centre_id, test = "Satterthwaite".
# Debian packages: r-base-core r-cran-sandwich r-cran-clubsandwich.
suppressPackageStartupMessages({
  library(sandwich)
  library(clubSandwich)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript cr2_clubsandwich.R INPUT.csv OUTPUT.csv")
d <- read.csv(args[1], stringsAsFactors = FALSE,
              colClasses = c(centre_id = "character", child_id = "character"))

terms_of <- list(
  ancova = c("partnered", "baseline", "age_months", "sex", "setting"),
  did = c("endline", "partnered_x_endline", "age_months", "sex", "factor(centre_id)"),
  regression_adjustment = c("partnered", "age_months", "sex", "setting", "registration_status", "fee_band"),
  ipw = c("partnered"),
  centre_regression_adjustment = c("partnered", "setting", "registration_status", "fee_band"),
  national_ancova = c("partnered", "baseline", "age_months", "sex", "setting", "factor(stratum)"),
  aipw = c("baseline", "age_months", "sex", "setting", "registration_status", "fee_band"),
  centre_aipw = c("setting", "registration_status", "fee_band")
)
categorical <- c("sex", "setting", "registration_status", "fee_band")

fit_one <- function(s, model) {
  for (v in c("baseline", "age_months")) if (!all(is.na(s[[v]]))) s[[v]] <- s[[v]] - mean(s[[v]])
  terms <- terms_of[[model]]
  keep <- vapply(terms, function(t) !(t %in% categorical) || length(unique(s[[t]])) > 1, logical(1))
  # every term of centre_aipw is a factor: in a region where each has one level, none is left
  f <- if (any(keep)) reformulate(terms[keep], response = "y") else y ~ 1
  coef <- if (model == "did") "partnered_x_endline" else "partnered"
  if (model %in% c("aipw", "centre_aipw") && !any(keep)) {
    fit <- lm(y ~ partnered, data = data.frame(y = s$y, partnered = s$partnered), weights = s$weight)
  } else if (model %in% c("aipw", "centre_aipw")) {
    Z <- model.matrix(reformulate(terms[keep]), s)[, -1, drop = FALSE]
    Z <- sweep(Z, 2, colMeans(Z[s$partnered == 1, , drop = FALSE])) * (1 - s$partnered)
    fit <- lm(y ~ ., data = data.frame(y = s$y, partnered = s$partnered, Z), weights = s$weight)
  } else if (model == "ipw") {
    fit <- lm(f, data = s, weights = weight)
  } else {
    fit <- lm(f, data = s)
  }
  est <- unname(coef(fit)[coef])
  G <- length(unique(s$centre_id))
  if (model %in% c("centre_regression_adjustment", "centre_aipw")) {
    V1 <- vcovHC(fit, type = "HC1")
    df1 <- fit$df.residual
    first <- "HC1"
  } else {
    V1 <- vcovCL(fit, cluster = s$centre_id, type = "HC1")
    df1 <- G - 1
    first <- "CR1"
  }
  se1 <- sqrt(V1[coef, coef])
  q1 <- qt(0.975, df1)
  V2 <- vcovCR(fit, cluster = s$centre_id, type = "CR2")
  ct <- coef_test(fit, vcov = V2, test = "Satterthwaite", coefs = coef)
  ci <- conf_int(fit, vcov = V2, test = "Satterthwaite", coefs = coef, level = 0.95)
  rbind(
    data.frame(model = model, region = s$region[1], inference = first, estimate = est, std_error = se1, df = df1,
               ci_low = est - q1 * se1, ci_high = est + q1 * se1,
               p_value = 2 * pt(abs(est / se1), df1, lower.tail = FALSE), n_obs = nobs(fit), n_clusters = G),
    data.frame(model = model, region = s$region[1], inference = "CR2", estimate = ct$beta, std_error = ct$SE,
               df = ct$df_Satt, ci_low = ci$CI_L, ci_high = ci$CI_U, p_value = ct$p_Satt, n_obs = nobs(fit),
               n_clusters = G)
  )
}

groups <- split(d, list(d$model, d$region), drop = TRUE)
out <- do.call(rbind, lapply(groups, function(s) fit_one(s, s$model[1])))
out <- out[order(out$model, out$region, out$inference), ]
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("R %s, sandwich %s, clubSandwich %s\n", getRversion(), packageVersion("sandwich"),
            packageVersion("clubSandwich")))
