# Reference numbers for evalkit's primary estimate: ANCOVA with CR1 standard errors.
#
# Usage: Rscript tests/reference/ancova_cr1.R INPUT.csv OUTPUT.csv
#
# INPUT has one row per child with both waves: region, centre_id, y (endline
# elom_total), partnered (0/1), baseline (baseline elom_total), age_months, sex,
# setting. For each region it fits
#   lm(y ~ partnered + baseline + age_months + sex + setting)
# with sandwich::vcovCL(type = "HC1", cluster = ~centre_id) -- the Stata
# small-sample CR1 form, G/(G-1) * (N-1)/(N-K) -- and a t distribution on G-1
# degrees of freedom, as the evalkit data contract (section 2) specifies.
# Debian packages: r-base-core r-cran-sandwich.
suppressPackageStartupMessages(library(sandwich))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript ancova_cr1.R INPUT.csv OUTPUT.csv")
d <- read.csv(args[1], stringsAsFactors = FALSE, colClasses = c(centre_id = "character"))
d$sex <- factor(d$sex)
d$setting <- factor(d$setting)

rows <- lapply(sort(unique(d$region)), function(r) {
  s <- droplevels(d[d$region == r, ])
  # A factor with one level in this region carries no contrast (as in evalkit's design matrix).
  terms <- c("partnered", "baseline", "age_months")
  if (nlevels(s$sex) > 1) terms <- c(terms, "sex")
  if (nlevels(s$setting) > 1) terms <- c(terms, "setting")
  fit <- lm(reformulate(terms, response = "y"), data = s)
  V <- vcovCL(fit, cluster = ~centre_id, type = "HC1")
  G <- length(unique(s$centre_id))
  est <- unname(coef(fit)["partnered"])
  se <- sqrt(V["partnered", "partnered"])
  df <- G - 1
  q <- qt(0.975, df)
  data.frame(region = r, estimate = est, std_error = se, df = df,
             ci_low = est - q * se, ci_high = est + q * se,
             p_value = 2 * pt(abs(est / se), df, lower.tail = FALSE),
             n_children = nobs(fit), n_clusters = G)
})
out <- do.call(rbind, rows)
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("R %s, sandwich %s\n", getRversion(), packageVersion("sandwich")))
