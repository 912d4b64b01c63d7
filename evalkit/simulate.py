"""Synthetic data folder in the evalkit data contract, with a known true effect.

:func:`simulate` writes the four input tables of the data contract
(``centres.csv``, ``partnerships.csv``, ``child_assessments.csv`` and
``parent_survey.csv``) together with ``truth.csv`` (the true effect per
province) and ``simulation.json`` (seed, scale, command, parameters, the mess
that was put in and file hashes). Every number that shapes the data lives in
:class:`SimulationParameters`; the spelling variants used for the mess live in
the module constants below and are all taken from ``evalkit/rules/*.yml``.

Data-generating process
-----------------------
Centres are spread over the nine provinces like the ECD Census 2021. Setting,
registration status and fee band are drawn per centre; partnership follows a
logit in setting, registration and fee band (selection on observables), so
naive comparisons are biased.

Baseline ELOM domains (0-20 each) are generated at the child level as::

    B_d = m_d + (x_c + u_c + slope * (age_b - 54) + gap * (female - f) + c_i) / 5 + e_id

where ``x_c`` is the centred sum of the province, setting, registration and
fee-band effects, ``u_c`` a random centre effect, ``c_i`` a child effect
common to the five domains and ``e_id`` a domain-specific error. Variances are
derived from two targets: the population standard deviation of baseline
``elom_total`` (:attr:`SimulationParameters.baseline_sd`, 13.0 points) and the
intra-centre correlation (:attr:`SimulationParameters.baseline_icc`, 0.20).

Endline domains are generated conditional on the observed (clipped and
rounded) baseline domains, a lagged-dependent-variable model::

    E_d = a_d + rho * B_d + (g * (age_e - age_ref) + s_e * (female - f)
          + set_e[setting] + tau_p * partnered + v_c + w_i) / 5 + f_id

with ``g = slope * (1 - rho)`` so that scores still rise by ``slope`` points
per month of age between children, a fresh centre shock ``v_c`` that is
independent of treatment, and child errors ``w_i`` and ``f_id``. Summed over
the domains this is exactly the contract's ANCOVA (endline ``elom_total`` on
partnered, baseline ``elom_total``, age in months at endline, sex and
setting), so the coefficient on ``partnered`` is ``tau_p``: the
``true_effect_points`` of the province in ``truth.csv``. Registration and fee
band drive selection and baseline levels only. The only departures from the
linear model are clipping at 0 and 20 (well under 1% of values) and rounding
to two decimals.

True effects are drawn per province, uniformly in
:attr:`SimulationParameters.true_effect_sd_range` (0.10-0.25 SD), and
converted to points with ``baseline_sd`` (13.0). The pipeline's
``effect_size_sd`` divides by the SD of baseline ``elom_total`` among the
comparison children of a region, which is somewhat smaller, so it will run
slightly above ``true_effect_sd``; ``true_effect_points`` is the estimand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.config import DAYS_PER_MONTH, ELOM_DOMAINS

__all__ = ["SimulationParameters", "SimulationResult", "simulate"]


# ----------------------------------------------------------------- domain data

#: Canonical province name, code and a few real district municipalities,
#: the first (usually the metro) most often drawn.
_PROVINCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Eastern Cape", "EC", ("Buffalo City", "Nelson Mandela Bay", "OR Tambo", "Amathole",
                            "Chris Hani", "Alfred Nzo", "Sarah Baartman", "Joe Gqabi")),
    ("Free State", "FS", ("Mangaung", "Thabo Mofutsanyana", "Lejweleputswa", "Fezile Dabi",
                          "Xhariep")),
    ("Gauteng", "GP", ("City of Johannesburg", "City of Tshwane", "Ekurhuleni", "Sedibeng",
                       "West Rand")),
    ("KwaZulu-Natal", "KZN", ("eThekwini", "uMgungundlovu", "King Cetshwayo", "Ugu", "Zululand",
                              "uMkhanyakude", "Amajuba", "iLembe", "Harry Gwala")),
    ("Limpopo", "LP", ("Capricorn", "Vhembe", "Mopani", "Sekhukhune", "Waterberg")),
    ("Mpumalanga", "MP", ("Ehlanzeni", "Nkangala", "Gert Sibande")),
    ("Northern Cape", "NC", ("Frances Baard", "ZF Mgcawu", "Pixley ka Seme", "Namakwa",
                             "John Taolo Gaetsewe")),
    ("North West", "NW", ("Bojanala Platinum", "Ngaka Modiri Molema", "Dr Kenneth Kaunda",
                          "Dr Ruth Segomotsi Mompati")),
    ("Western Cape", "WC", ("City of Cape Town", "Cape Winelands", "Garden Route", "West Coast",
                            "Overberg", "Central Karoo")),
)
_PROVINCE_NAMES = tuple(p[0] for p in _PROVINCES)

#: Messy spellings of each province, every one accepted by evalkit/rules/provinces.yml
#: (after folding case, spaces, dots, hyphens and a trailing "Province").
_PROVINCE_VARIANTS: dict[str, tuple[str, ...]] = {
    "Eastern Cape": ("EC", "ec", "E. Cape", "Eastern Cape Province", "EASTERN CAPE", " Eastern Cape",
                     "Oos-Kaap"),
    "Free State": ("FS", "Vrystaat", "Free State Province", "free state", "FREE STATE "),
    "Gauteng": ("GP", "GT", "gauteng", "Gauteng Province", "GAUTENG", "Gauteng  "),
    "KwaZulu-Natal": ("KZN", "NL", "Kwazulu Natal", "kwazulu-natal", "KwaZulu-Natal Province", "KZN "),
    "Limpopo": ("LP", "Northern Province", "limpopo", "Limpopo Province", "LIMPOPO"),
    "Mpumalanga": ("MP", "mpumalanga", "Mpumalanga Province", " MP"),
    "Northern Cape": ("NC", "N. Cape", "Northern Cape Province", "northern cape"),
    "North West": ("NW", "North-West", "Northwest", "North West Province", "north west"),
    "Western Cape": ("WC", "Wes-Kaap", "W. Cape", "Western Cape Province", "western cape "),
}

#: Messy spellings of categorical values, all listed in evalkit/rules/cleaning.yml
#: (matched there after folding case and spaces).
_CATEGORY_VARIANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "setting": {"urban": ("Urban ", "URBAN", "Urban", "town"),
                "peri-urban": ("Peri-Urban", "peri urban", "Peri urban", "periurban"),
                "rural": ("Rural", "RURAL", " rural", "village")},
    "registration_status": {"registered": ("Registered", "REGISTERED", "fully registered"),
                            "conditional": ("Conditional", "conditionally registered",
                                            "Conditional registration"),
                            "unregistered": ("Unregistered", "not registered", "Not Registered ")},
    "fee_band": {"none": ("None", "free", "no fee"), "low": ("Low", "LOW"),
                 "middle": ("Middle", "medium", "Mid"), "high": ("High", "HIGH")},
    "feedback_channel": {"yes": ("Yes", "Y", "YES", "ja"), "no": ("No", "N", "NO", "nee")},
    "partner_type": {"cbo": ("CBO", "NGO", "community-based organisation"),
                     "wellness": ("Wellness", "health", "nutrition"),
                     "municipality": ("Municipality", "municipal", "local government"),
                     "private": ("Private", "CSR", "private sector"),
                     "education": ("Education", "university", "TVET")},
    "status": {"active": ("Active", "ACTIVE", "current", "ongoing"),
               "ended": ("Ended", "expired", "terminated", "closed")},
    "sex": {"female": ("F", "Female", "female ", "FEMALE", "f", "girl"),
            "male": ("M", "Male", " male", "MALE", "m", "boy")},
    "wave": {"baseline": ("Baseline", "BASELINE", "base line", "BL", "baseline "),
             "endline": ("Endline", "ENDLINE", "end line", "EL", " endline")},
}

#: Missing-value codes of evalkit/rules/cleaning.yml ("" is a blank cell).
_MISSING_CODES = ("", "NA", "N/A", "-99", "-98", "-88")

#: Date formats written (all day-first or ISO, all in evalkit/rules/cleaning.yml).
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%S")

#: WHO growth standards, medians and coefficients of variation at 48 and 60
#: months (height: L = 1), interpolated linearly in age; beyond 60 months the
#: WHO 2007 reference continues on about the same slope.
_WHO_HEIGHT_M = {"female": (102.7, 109.4), "male": (103.3, 110.0)}
_WHO_HEIGHT_S = {"female": (0.0434, 0.0439), "male": (0.0407, 0.0420)}
_WHO_WEIGHT_M = {"female": (16.1, 18.2), "male": (16.3, 18.3)}

_FIRST_NAMES = {
    "female": ("Amahle", "Lerato", "Naledi", "Zanele", "Palesa", "Ayanda", "Minenhle", "Lethabo",
               "Refilwe", "Khanyisile", "Thandeka", "Lindiwe", "Nomvula", "Zinhle", "Bonolo",
               "Reabetswe", "Onthatile", "Rorisang", "Hlengiwe", "Precious", "Aaliyah", "Zoë",
               "Anél", "Liné", "Marné", "Chloé", "Mieke", "Ilse", "Fatima", "Kayla", "Siphesihle",
               "Mbali", "Kgomotso", "Ntombi", "Rethabile", "Tshegofatso"),
    "male": ("Thabo", "Sipho", "Kagiso", "Lwazi", "Karabo", "Bokang", "Anathi", "Tumelo", "Mpho",
             "Siyabonga", "Nkosinathi", "Ofentse", "Andile", "Kamogelo", "Sibusiso", "Musa",
             "Tshepiso", "Ntando", "Lubanzi", "Junior", "Blessing", "Yusuf", "Jaco", "Wian",
             "René", "Ruan", "Dewald", "Ethan", "Liam", "Keitumetse", "Lindokuhle", "Vusi",
             "Themba", "Kabelo", "Olwethu", "Mandla"),
}
_SURNAMES = ("Dlamini", "Nkosi", "Ndlovu", "Khumalo", "Mokoena", "Mahlangu", "Mthembu", "Zulu",
             "Sithole", "Molefe", "Naidoo", "van der Merwe", "Botha", "Pillay", "Mabaso", "Mkhize",
             "Ngcobo", "Shabalala", "Maluleke", "Baloyi", "Mathebula", "Nel", "Jacobs", "Adams",
             "Petersen", "Hendricks", "Williams", "le Roux", "du Plessis", "Mbatha", "Tshabalala",
             "Motaung", "Radebe", "Gumede", "Cele", "Ntuli", "Xaba", "Sibiya", "Khoza", "Mabuza",
             "Makhubela", "Kotzé", "Nöthling", "Mofokeng", "Masilela", "Phiri", "Govender", "Modise",
             "Sekgobela", "Nemutanzhela", "Mnisi", "Ramoroka", "Qwabe", "Mathe")

_CENTRE_WORDS = ("Siyakhula", "Masakhane", "Thembalethu", "Sinethemba", "Ikhwezi", "Zamokuhle",
                 "Lesedi", "Kgothatso", "Rethabile", "Vukuzenzele", "Nomzamo", "Ekukhanyeni",
                 "Khanyisa", "Siphiwe", "Thuthuka", "Bophelo", "Tshwaragano", "Itireleng",
                 "Little Stars", "Rainbow Kids", "Busy Bees", "Sunshine", "Little Angels",
                 "Tiny Tots", "Happy Feet", "Ubuntu", "Imbewu", "Lethokuhle")
_CENTRE_TEMPLATES = ("Crèche {}", "{} Crèche", "{} Educare Centre", "{} Day Care", "{} Pre-School",
                     "{} ECD Centre", "{} Early Learning Centre")
_AFRIKAANS_CENTRES = ("Kleuterskool Sonskyn", "Kleuterskool Môreson", "Klein Bekkies Kleuterskool",
                      "Kabouterland Crèche", "Blommetjie Dagsorg", "Kleuterskool Vergeet-my-nie")

_PARTNER_NAMES = {
    "cbo": ("Siyakhana Community Development Trust", "Masithethe Women's Collective",
            "Ubuntu Early Learning Forum", "Khanyisa Community Project", "Sinethemba NPO",
            "Ikhaya Lethu Youth Network", "Tswelopele Community Care"),
    "wellness": ("Sizakala Health Outreach", "Vuka Nutrition Initiative",
                 "Mother & Child Wellness Network", "Healthy Start Clinic Outreach",
                 "Phepha Eye & Ear Screening"),
    "private": ("Karoo Mining Community Trust", "Mzansi Telecom Foundation", "Greenfields Retail CSR",
                "Highveld Logistics Foundation", "Ubuntu Bank Social Investment"),
    "education": ("Tshwane North TVET College (ECD practicum)", "Cape Peninsula Teachers' Centre",
                  "Universiteit Stellenbosch – Fakulteit Opvoedkunde", "Limpopo ECD Training Institute",
                  "Durban Teachers' Resource Centre"),
}
_MUNICIPAL_UNITS = ("Community Services Department", "ECD Support Unit",
                    "Health and Social Development Directorate")
_PHONE_PREFIXES = ("060", "061", "062", "063", "064", "065", "066", "067", "068", "071", "072",
                   "073", "074", "076", "078", "079", "081", "082", "083", "084")

_COLUMNS: dict[str, tuple[str, ...]] = {
    "centres": ("centre_id", "centre_name", "province", "district", "setting", "registration_status",
                "enrolment", "practitioners", "practitioners_trained", "fee_band", "feedback_channel",
                "parent_events"),
    "partnerships": ("partnership_id", "centre_id", "partner_name", "partner_type", "mou_signed_date",
                     "status"),
    "child_assessments": ("child_id", "centre_id", "wave", "assessment_date", "date_of_birth", "sex",
                          "child_name", *ELOM_DOMAINS, "height_cm", "weight_kg", "days_attended",
                          "days_possible", "assessor_id"),
    "parent_survey": ("response_id", "centre_id", "submission_time", "respondent_phone",
                      "sat_communication", "sat_safety", "sat_learning", "sat_staff_respect",
                      "sat_responsiveness", "sat_overall", "recommend"),
}
_SAT_ITEMS = _COLUMNS["parent_survey"][4:10]
_SETTINGS = ("urban", "peri-urban", "rural")
_REGISTRATION = ("registered", "conditional", "unregistered")
_FEE_BANDS = ("none", "low", "middle", "high")
_PARTNER_TYPES = ("cbo", "wellness", "municipality", "private", "education")


# ----------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SimulationParameters:
    """Every number that shapes the synthetic data, with realistic defaults.

    Shares are proportions, scores are ELOM points on the total (0-100) scale
    unless the name says ``domain``, dates are ISO strings. Mappings are tuples
    of ``(key, value)`` pairs so the object stays immutable and hashable.
    Sources: ECD Census 2021, Thrive by Five 2021/2024, WHO growth standards
    (see ``/work/shared/spec/domain-facts.md``); values marked *assumed* there
    are defaults, not facts.
    """

    # --- size
    centres_at_scale_1: int = 250
    province_weights: tuple[tuple[str, float], ...] = (
        ("Eastern Cape", 0.13), ("Free State", 0.05), ("Gauteng", 0.25), ("KwaZulu-Natal", 0.19),
        ("Limpopo", 0.13), ("Mpumalanga", 0.07), ("Northern Cape", 0.03), ("North West", 0.06),
        ("Western Cape", 0.09))
    min_centres_per_province: int = 4
    children_per_centre: tuple[int, int] = (8, 15)

    # --- centres
    urban_share: tuple[tuple[str, float], ...] = (
        ("Eastern Cape", 0.48), ("Free State", 0.62), ("Gauteng", 0.80), ("KwaZulu-Natal", 0.55),
        ("Limpopo", 0.35), ("Mpumalanga", 0.45), ("Northern Cape", 0.60), ("North West", 0.45),
        ("Western Cape", 0.75))
    peri_urban_share: float = 0.15
    registration_probs: tuple[tuple[str, tuple[float, float, float]], ...] = (
        ("urban", (0.46, 0.18, 0.36)), ("peri-urban", (0.36, 0.18, 0.46)), ("rural", (0.30, 0.18, 0.52)))
    fee_band_probs: tuple[tuple[str, tuple[float, float, float, float]], ...] = (
        ("urban", (0.25, 0.35, 0.28, 0.12)), ("peri-urban", (0.40, 0.35, 0.20, 0.05)),
        ("rural", (0.60, 0.30, 0.09, 0.01)))
    district_rank_decay: float = 0.7
    enrolment_mean: float = 39.0
    enrolment_dispersion: float = 4.0
    enrolment_min: int = 8
    practitioners_mean: float = 4.5
    trained_share: tuple[float, float] = (0.35, 0.60)  # comparison, partnered
    feedback_channel_share: tuple[float, float] = (0.35, 0.65)
    parent_events_mean: tuple[float, float] = (1.0, 2.5)

    # --- selection into partnership: logit on observables
    partnered_share: float = 0.40
    logit_setting: tuple[tuple[str, float], ...] = (("urban", 0.6), ("peri-urban", 0.0), ("rural", -0.7))
    logit_registration: tuple[tuple[str, float], ...] = (
        ("registered", 0.8), ("conditional", 0.2), ("unregistered", -0.4))
    logit_fee_band: tuple[tuple[str, float], ...] = (
        ("none", -0.3), ("low", 0.0), ("middle", 0.2), ("high", 0.4))
    min_centres_per_arm: int = 3
    not_estimable_region: str = "Northern Cape"
    not_estimable_partnered: int = 2
    unknown_province_value: str = "Gondwana"
    unknown_province_home: str = "Gauteng"

    # --- partnerships
    partner_type_probs: tuple[float, ...] = (0.30, 0.25, 0.15, 0.15, 0.15)  # cbo ... education
    second_mou_share: float = 0.30
    second_mou_ended_share: float = 0.25
    comparison_mou_after_endline_share: float = 0.12
    comparison_ended_mou_share: float = 0.06
    first_mou_window: tuple[str, str] = ("2022-03-01", "2025-04-30")
    old_mou_window: tuple[str, str] = ("2021-01-15", "2024-06-30")
    mou_before_endline_min_days: int = 21
    mou_after_endline_days: tuple[int, int] = (30, 120)

    # --- calendar and children
    baseline_window: tuple[str, str] = ("2025-02-03", "2025-03-27")
    endline_window: tuple[str, str] = ("2025-10-06", "2025-11-20")
    days_spread_within_centre: int = 4
    baseline_age_months: tuple[float, float] = (48.0, 60.0)
    female_share: float = 0.5
    attrition_share: float = 0.10
    endline_joiner_share: float = 0.03
    assessor_centres: int = 10  # about one assessor per this many centres, at least 2 per province
    other_assessor_share: float = 0.15

    # --- ELOM at baseline (total scale unless *domain*)
    domain_means: tuple[float, ...] = (10.0, 9.5, 8.0, 9.0, 8.5)  # at the reference age; sum 45
    reference_age_months: float = 54.0
    baseline_sd: float = 13.0  # population SD of baseline elom_total (by construction)
    baseline_icc: float = 0.20
    age_slope: float = 0.7  # points per month of age
    sex_gap_baseline: float = 3.0  # girls minus boys
    setting_baseline: tuple[float, ...] = (1.5, 0.0, -2.5)  # urban, peri-urban, rural
    registration_baseline: tuple[float, ...] = (1.5, 0.0, -1.5)
    fee_band_baseline: tuple[float, ...] = (-2.5, -0.5, 1.5, 4.0)
    province_baseline: tuple[tuple[str, float], ...] = (
        ("Eastern Cape", -1.5), ("Free State", 0.0), ("Gauteng", 1.5), ("KwaZulu-Natal", -0.5),
        ("Limpopo", -1.0), ("Mpumalanga", 0.0), ("Northern Cape", -0.5), ("North West", 0.0),
        ("Western Cape", 2.0))
    domain_error_variance: float = 5.0  # per domain, on the domain scale

    # --- ELOM at endline given baseline
    rho: float = 0.6
    sex_gap_endline: float = 1.0
    setting_endline: tuple[float, ...] = (0.8, 0.0, -0.8)
    endline_centre_variance: float = 18.0
    endline_child_variance: float = 60.0
    endline_domain_error_variance: float = 5.0
    true_effect_sd_range: tuple[float, float] = (0.10, 0.25)

    # --- anthropometry (WHO z-scores)
    haz_mean: float = -0.55
    haz_sd: float = 0.95
    weight_cv: float = 0.13
    weight_on_haz: float = 0.6
    weight_z_shift: float = 0.35
    haz_drift_sd: float = 0.15
    weight_drift_sd: float = 0.2

    # --- attendance
    days_possible: tuple[int, int] = (55, 65)
    attendance_beta: tuple[float, float] = (8.0, 2.0)

    # --- parent survey
    responses_per_centre: tuple[int, int] = (5, 10)
    survey_days_around_endline: tuple[int, int] = (-7, 21)
    satisfaction_centre_sd: float = 0.5
    satisfaction_partnered: float = 0.35
    satisfaction_feedback_channel: float = 0.2
    satisfaction_respondent_sd: float = 0.8
    satisfaction_item_sd: float = 0.6
    satisfaction_mean: float = 0.5
    likert_cutpoints: tuple[float, ...] = (-1.6, -0.9, -0.2, 1.0)
    recommend_mean: float = 7.3
    recommend_slope: float = 1.6
    recommend_noise_sd: float = 1.2
    phone_format_shares: tuple[float, ...] = (0.55, 0.30, 0.12, 0.03)  # local, +27, compact, NBSP
    phone_blank_share: float = 0.03

    # --- mess (shares of rows or cells; counts scale with the data, at least 1)
    province_variant_share: float = 0.30
    category_variant_share: float = 0.15
    date_format_shares: tuple[float, ...] = (0.70, 0.20, 0.10)  # ISO, dd/mm/yyyy, yyyy/mm/dd
    missing_share_elom: float = 0.015
    missing_share_anthro: float = 0.02
    missing_share_days: float = 0.02
    missing_share_sat: float = 0.06
    missing_share_recommend: float = 0.02
    missing_code_shares: tuple[float, ...] = (0.30, 0.15, 0.10, 0.25, 0.10, 0.10)  # _MISSING_CODES
    missing_code_shares_sat: tuple[float, ...] = (0.15, 0.05, 0.05, 0.20, 0.00, 0.55)
    exact_duplicate_share_children: float = 0.01
    exact_duplicate_share_survey: float = 0.004
    conflicting_duplicate_share: float = 0.001
    height_mm_share: float = 0.001
    weight_grams_share: float = 0.0003
    dob_after_assessment_share: float = 0.0003
    unknown_centre_row_share: float = 0.0003

    def as_dict(self, name: str) -> dict[str, Any]:
        """Return one ``(key, value)`` tuple field as a dictionary."""
        return dict(getattr(self, name))


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What :func:`simulate` wrote.

    Attributes
    ----------
    out : Path
        The data folder.
    seed, scale
        The arguments of the run.
    truth : pandas.DataFrame
        One row per province, as in ``truth.csv``.
    files : dict of str to Path
        ``centres``, ``partnerships``, ``child_assessments``, ``parent_survey``,
        ``truth`` and ``simulation`` (the JSON record).
    """

    out: Path
    seed: int
    scale: float
    truth: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)


# ----------------------------------------------------------------- helpers


def _day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def _weekday(days: np.ndarray) -> np.ndarray:
    """Move Saturdays and Sundays to the next Monday (assessments are on school days)."""
    dow = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return days + np.where(dow == 5, 2, np.where(dow == 6, 1, 0))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _n_mess(share: float, n: int) -> int:
    """A mess count that scales with the data and is never zero."""
    return max(1, int(round(share * n))) if n > 0 else 0


def _fmt_fixed(values: np.ndarray, decimals: int) -> np.ndarray:
    """Format numbers with a fixed number of decimals, vectorised through unique values."""
    scaled = np.rint(np.asarray(values, dtype=float).ravel() * 10**decimals).astype(np.int64)
    uniq, inv = np.unique(scaled, return_inverse=True)
    if decimals == 0:
        table = [str(int(u)) for u in uniq]
    else:
        q = 10**decimals
        table = [f"{'-' if u < 0 else ''}{abs(int(u)) // q}.{abs(int(u)) % q:0{decimals}d}" for u in uniq]
    return np.array(table, dtype=object)[inv.ravel()]


def _fmt_dates(days: np.ndarray, fmt: np.ndarray, formats: tuple[str, ...] = _DATE_FORMATS) -> np.ndarray:
    """Format day numbers (days since 1970-01-01), row ``i`` in ``formats[fmt[i]]``."""
    uniq, inv = np.unique(np.asarray(days, dtype=np.int64), return_inverse=True)
    stamps = pd.to_datetime(uniq, unit="D")
    table = np.array([[t.strftime(f) for f in formats] for t in stamps], dtype=object)
    if table.size == 0:
        return np.array([], dtype=object)
    return table[inv.ravel(), fmt]


def _fmt_times(seconds: np.ndarray, fmt: np.ndarray) -> np.ndarray:
    """Format seconds of the day as ``HH:MM:SS`` (formats 0 and 2) or ``HH:MM`` (format 1)."""
    h, rem = np.divmod(np.asarray(seconds, dtype=np.int64), 3600)
    m, s = np.divmod(rem, 60)
    two = np.array([f"{i:02d}" for i in range(60)], dtype=object)
    hm = two[h] + ":" + two[m]
    return np.where(fmt == 1, hm, hm + ":" + two[s])


def _ids(prefix: str, n: int, width: int, start: int = 1) -> np.ndarray:
    width = max(width, len(str(start + n - 1)))
    numbers = np.strings.zfill(np.arange(start, start + n).astype(str), width)
    return np.strings.add(prefix, numbers).astype(object)


def _variants(rng: np.random.Generator, canonical: np.ndarray, pools: dict[str, tuple[str, ...]],
              share: float) -> tuple[np.ndarray, int]:
    """Replace a share of canonical values by a spelling variant; return values and count."""
    out = canonical.astype(object).copy()
    pick = rng.random(out.size) < share
    for value, pool in pools.items():  # a handful of categories, not rows
        rows = np.flatnonzero(pick & (canonical == value))
        out[rows] = np.array(pool, dtype=object)[rng.integers(0, len(pool), rows.size)]
    return out, int(np.sum(out != canonical))


def _missing(rng: np.random.Generator, text: np.ndarray, share: float, code_shares: tuple[float, ...],
             eligible: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Put missing-value codes into a share of the cells of a formatted column."""
    mask = rng.random(text.size) < share
    if eligible is not None:
        mask &= eligible
    p = np.asarray(code_shares, dtype=float)
    codes = rng.choice(len(_MISSING_CODES), size=int(mask.sum()), p=p / p.sum())
    text = text.copy()
    text[mask] = np.array(_MISSING_CODES, dtype=object)[codes]
    counts = {(_MISSING_CODES[k] or "blank"): int(np.sum(codes == k)) for k in range(len(_MISSING_CODES))}
    return text, counts


def _write_csv(path: Path, columns: dict[str, np.ndarray], sep: str = ",", encoding: str = "utf-8",
               newline: str = "\n", chunk_rows: int = 100_000) -> str:
    """Write string columns as CSV in chunks and return the SHA-256 of the bytes written.

    Values are built in this module and never hold ``sep``, quotes or
    newlines, so no quoting is needed.
    """
    names = list(columns)
    n = len(columns[names[0]])
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        def put(text: str) -> None:
            data = text.encode(encoding)
            digest.update(data)
            fh.write(data)

        put(sep.join(names) + newline)
        for start in range(0, n, chunk_rows):
            parts = [np.asarray(columns[c][start:start + chunk_rows], dtype=object).tolist() for c in names]
            put(newline.join(map(sep.join, zip(*parts))) + newline)
    return digest.hexdigest()


def _evalkit_version() -> str:
    try:
        from evalkit import __version__
    except ImportError:  # a broken editable install exposes evalkit as a namespace package
        from importlib.metadata import version

        return version("evalkit")
    return __version__


# ----------------------------------------------------------------- design pieces


def _centre_counts(p: SimulationParameters, scale: float) -> np.ndarray:
    weights = p.as_dict("province_weights")
    raw = np.array([weights[name] for name in _PROVINCE_NAMES]) * p.centres_at_scale_1 * scale
    return np.maximum(p.min_centres_per_province, np.floor(raw + 0.5).astype(np.int64))


def _baseline_variances(p: SimulationParameters) -> dict[str, float]:
    """Mean and variance of the centre-level baseline terms over the design, and the derived variances.

    Enumerates province x setting x registration x fee band with their design
    probabilities, so the population SD of baseline ``elom_total`` equals
    ``baseline_sd`` and its intra-centre correlation ``baseline_icc`` exactly
    (before clipping and rounding).
    """
    weights = p.as_dict("province_weights")
    urban = p.as_dict("urban_share")
    prov_eff = p.as_dict("province_baseline")
    reg_p = dict(p.registration_probs)
    fee_p = dict(p.fee_band_probs)
    probs, means = [], []
    for name in _PROVINCE_NAMES:
        set_p = (urban[name], p.peri_urban_share, 1.0 - urban[name] - p.peri_urban_share)
        for s, setting in enumerate(_SETTINGS):
            for r in range(3):
                for f in range(4):
                    probs.append(weights[name] * set_p[s] * reg_p[setting][r] * fee_p[setting][f])
                    means.append(prov_eff[name] + p.setting_baseline[s] + p.registration_baseline[r]
                                 + p.fee_band_baseline[f])
    probs_a = np.array(probs) / np.sum(probs)
    means_a = np.array(means)
    mean_obs = float(probs_a @ means_a)
    var_obs = float(probs_a @ (means_a - mean_obs) ** 2)
    total = p.baseline_sd**2
    lo, hi = p.baseline_age_months
    var_age = p.age_slope**2 * (hi - lo) ** 2 / 12.0
    var_sex = p.sex_gap_baseline**2 * p.female_share * (1 - p.female_share)
    var_centre = p.baseline_icc * total - var_obs
    var_child = (1 - p.baseline_icc) * total - var_age - var_sex - 5 * p.domain_error_variance
    if var_centre <= 0 or var_child <= 0:
        raise ValueError("baseline_sd and baseline_icc are too small for the fixed effects in the parameters")
    return {"mean_observed": mean_obs, "var_observed": var_obs, "var_centre": var_centre,
            "var_child_common": var_child, "var_age": var_age, "var_sex": var_sex}


def _select_partnered(rng: np.random.Generator, p: SimulationParameters, prov: np.ndarray,
                      setting: np.ndarray, reg: np.ndarray, fee: np.ndarray) -> np.ndarray:
    """Partnership by a logit on observables, then held to the per-province design."""
    x = (np.array([dict(p.logit_setting)[s] for s in _SETTINGS])[setting]
         + np.array([dict(p.logit_registration)[r] for r in _REGISTRATION])[reg]
         + np.array([dict(p.logit_fee_band)[f] for f in _FEE_BANDS])[fee])
    lo, hi = -10.0, 10.0
    for _ in range(60):  # bisection for the intercept that gives the target share
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _expit(mid + x).mean() < p.partnered_share else (lo, mid)
    logit = lo + x
    partnered = rng.random(prov.size) < _expit(logit)
    key = logit + rng.gumbel(size=prov.size)  # who is added or dropped when a province is repaired
    for k, name in enumerate(_PROVINCE_NAMES):
        idx = np.flatnonzero(prov == k)
        n, current = idx.size, int(partnered[idx].sum())
        if name == p.not_estimable_region:
            target = min(p.not_estimable_partnered, n)
        else:
            extra = 1 if name == p.unknown_province_home else 0  # one comparison centre goes missing
            low = min(p.min_centres_per_arm, n // 2)
            high = n - min(p.min_centres_per_arm + extra, n - low)
            target = int(np.clip(current, low, high))
        if target > current:
            cand = idx[~partnered[idx]]
            partnered[cand[np.argsort(-key[cand], kind="stable")[: target - current]]] = True
        elif target < current:
            cand = idx[partnered[idx]]
            partnered[cand[np.argsort(key[cand], kind="stable")[: current - target]]] = False
    return partnered


# ----------------------------------------------------------------- the tables


def _make_centres(rng: np.random.Generator, p: SimulationParameters, scale: float) -> dict[str, Any]:
    """Centres with their characteristics, treatment and assessment calendar (as arrays)."""
    counts = _centre_counts(p, scale)
    prov = rng.permutation(np.repeat(np.arange(len(_PROVINCES)), counts))
    n = prov.size
    urban = p.as_dict("urban_share")
    setting = np.empty(n, dtype=np.int64)
    district = np.empty(n, dtype=object)
    for k, (name, _code, districts) in enumerate(_PROVINCES):
        idx = np.flatnonzero(prov == k)
        probs = np.array([urban[name], p.peri_urban_share, 1 - urban[name] - p.peri_urban_share])
        setting[idx] = rng.choice(3, size=idx.size, p=probs)
        w = (np.arange(len(districts)) + 1.0) ** -p.district_rank_decay
        district[idx] = np.array(districts, dtype=object)[rng.choice(len(districts), idx.size, p=w / w.sum())]
    reg_p = np.array([dict(p.registration_probs)[s] for s in _SETTINGS])
    fee_p = np.array([dict(p.fee_band_probs)[s] for s in _SETTINGS])
    u = rng.random(n)
    reg = (u[:, None] > np.cumsum(reg_p[setting], axis=1)[:, :-1]).sum(axis=1)
    u = rng.random(n)
    fee = (u[:, None] > np.cumsum(fee_p[setting], axis=1)[:, :-1]).sum(axis=1)
    partnered = _select_partnered(rng, p, prov, setting, reg, fee)

    home = _PROVINCE_NAMES.index(p.unknown_province_home)
    candidates = np.flatnonzero((prov == home) & ~partnered)
    unknown = int(candidates[rng.integers(0, candidates.size)])

    enrolment = np.maximum(p.enrolment_min, rng.negative_binomial(
        p.enrolment_dispersion, p.enrolment_dispersion / (p.enrolment_dispersion + p.enrolment_mean), n))
    practitioners = 1 + rng.poisson((p.practitioners_mean - 1) * enrolment / p.enrolment_mean)
    trained = rng.binomial(practitioners, np.where(partnered, p.trained_share[1], p.trained_share[0]))
    feedback = rng.random(n) < np.where(partnered, p.feedback_channel_share[1], p.feedback_channel_share[0])
    events = rng.poisson(np.where(partnered, p.parent_events_mean[1], p.parent_events_mean[0]))

    names_table = np.array([t.format(w) for t in _CENTRE_TEMPLATES for w in _CENTRE_WORDS]
                           + list(_AFRIKAANS_CENTRES), dtype=object)
    centre_name = names_table[rng.integers(0, names_table.size, n)]
    base_start = _weekday(rng.integers(_day(p.baseline_window[0]), _day(p.baseline_window[1]) + 1, n))
    end_start = _weekday(rng.integers(_day(p.endline_window[0]), _day(p.endline_window[1]) + 1, n))
    return {"n": n, "prov": prov, "setting": setting, "reg": reg, "fee": fee, "district": district,
            "partnered": partnered, "unknown": unknown, "enrolment": enrolment,
            "practitioners": practitioners, "trained": trained, "feedback": feedback, "events": events,
            "centre_name": centre_name, "base_start": base_start, "end_start": end_start,
            "centre_id": _ids("C", n, 4)}


def _write_centres(rng: np.random.Generator, p: SimulationParameters, c: dict[str, Any],
                   mess: dict[str, Any]) -> dict[str, np.ndarray]:
    """Format the centres table, with province spellings, category variants and one unknown province."""
    canonical_prov = np.array(_PROVINCE_NAMES, dtype=object)[c["prov"]]
    province, _ = _variants(rng, canonical_prov, _PROVINCE_VARIANTS, p.province_variant_share)
    province[c["unknown"]] = p.unknown_province_value
    n_prov = int(np.sum(province != canonical_prov)) - 1  # the unknown value is counted on its own
    cols: dict[str, np.ndarray] = {"centre_id": c["centre_id"], "centre_name": c["centre_name"],
                                   "province": province, "district": c["district"]}
    counts = {}
    for col, codes, values in (("setting", c["setting"], _SETTINGS),
                               ("registration_status", c["reg"], _REGISTRATION)):
        cols[col], counts[col] = _variants(rng, np.array(values, dtype=object)[codes],
                                           _CATEGORY_VARIANTS[col], p.category_variant_share)
    cols["enrolment"] = _fmt_fixed(c["enrolment"], 0)
    cols["practitioners"] = _fmt_fixed(c["practitioners"], 0)
    cols["practitioners_trained"] = _fmt_fixed(c["trained"], 0)
    cols["fee_band"], counts["fee_band"] = _variants(rng, np.array(_FEE_BANDS, dtype=object)[c["fee"]],
                                                     _CATEGORY_VARIANTS["fee_band"], p.category_variant_share)
    yes_no = np.where(c["feedback"], "yes", "no").astype(object)
    cols["feedback_channel"], counts["feedback_channel"] = _variants(
        rng, yes_no, _CATEGORY_VARIANTS["feedback_channel"], p.category_variant_share)
    cols["parent_events"] = _fmt_fixed(c["events"], 0)
    mess["province_variants"] = {"table": "centres", "column": "province", "count": n_prov,
                                 "detail": "codes, case, stray spaces, 'Province' suffix, 'E. Cape', "
                                           "'Kwazulu Natal', 'North-West', 'Vrystaat', 'Wes-Kaap', "
                                           "'Northern Province'; all in rules/provinces.yml"}
    mess["unknown_province"] = {"table": "centres", "column": "province", "count": 1,
                                "value": p.unknown_province_value,
                                "centre_id": str(c["centre_id"][c["unknown"]]),
                                "designed_province": p.unknown_province_home,
                                "detail": "a comparison centre with no MOU; the cleaner flags and drops it "
                                          "(and its children); it is not counted in truth.csv"}
    mess["category_variants_centres"] = {"table": "centres", "count": int(sum(counts.values())),
                                         "by_column": counts}
    return cols


def _make_partnerships(rng: np.random.Generator, p: SimulationParameters, c: dict[str, Any],
                       mess: dict[str, Any], design: dict[str, Any]) -> dict[str, np.ndarray]:
    """MOUs: active ones before the endline for partnered centres, later or ended ones for some others."""
    partnered, end_start = c["partnered"], c["end_start"]
    not_est = np.asarray(c["prov"] == _PROVINCE_NAMES.index(p.not_estimable_region))
    comparison = ~partnered
    comparison[c["unknown"]] = False  # the unknown-province centre has no MOU at all
    late = comparison & (rng.random(c["n"]) < p.comparison_mou_after_endline_share)
    ended = comparison & (rng.random(c["n"]) < p.comparison_ended_mou_share)
    nc_comp = np.flatnonzero(comparison & not_est)
    if nc_comp.size >= 2:  # a naive count of MOUs would call the small province estimable
        late[nc_comp[0]] = True
        ended[nc_comp[1]] = True
    second = partnered & (rng.random(c["n"]) < p.second_mou_share)

    first_lo = _day(p.first_mou_window[0])
    first_hi = np.minimum(_day(p.first_mou_window[1]), end_start - p.mou_before_endline_min_days)
    old_lo, old_hi = _day(p.old_mou_window[0]), _day(p.old_mou_window[1])
    parts = []  # (centre index, date, status 0 active / 1 ended)
    idx = np.flatnonzero(partnered)
    parts.append((idx, first_lo + (rng.random(idx.size) * (first_hi[idx] - first_lo)).astype(np.int64),
                  np.zeros(idx.size, dtype=np.int64)))
    idx = np.flatnonzero(second)
    second_ended = rng.random(idx.size) < p.second_mou_ended_share
    parts.append((idx, old_lo + (rng.random(idx.size) * (first_hi[idx] - old_lo)).astype(np.int64),
                  second_ended.astype(np.int64)))
    idx = np.flatnonzero(late)
    parts.append((idx, end_start[idx] + rng.integers(*p.mou_after_endline_days, size=idx.size),
                  np.zeros(idx.size, dtype=np.int64)))
    idx = np.flatnonzero(ended)
    parts.append((idx, rng.integers(old_lo, old_hi + 1, idx.size), np.ones(idx.size, dtype=np.int64)))
    centre = np.concatenate([q[0] for q in parts])
    date = np.concatenate([q[1] for q in parts])
    status = np.concatenate([q[2] for q in parts])
    order = np.lexsort((date, centre))
    centre, date, status = centre[order], date[order], status[order]
    n = centre.size

    type_p = np.asarray(p.partner_type_probs)
    ptype = rng.choice(len(_PARTNER_TYPES), size=n, p=type_p / type_p.sum())
    name = np.empty(n, dtype=object)
    for t, kind in enumerate(_PARTNER_TYPES):
        rows = np.flatnonzero(ptype == t)
        if kind == "municipality":
            units = np.array(_MUNICIPAL_UNITS, dtype=object)[rng.integers(0, len(_MUNICIPAL_UNITS), rows.size)]
            name[rows] = c["district"][centre[rows]] + " " + units
        else:
            pool = np.array(_PARTNER_NAMES[kind], dtype=object)
            name[rows] = pool[rng.integers(0, pool.size, rows.size)]
    fmt = rng.choice(3, size=n, p=np.asarray(p.date_format_shares) / sum(p.date_format_shares))
    counts = {}
    ptype_text, counts["partner_type"] = _variants(rng, np.array(_PARTNER_TYPES, dtype=object)[ptype],
                                                   _CATEGORY_VARIANTS["partner_type"], p.category_variant_share)
    status_text, counts["status"] = _variants(rng, np.array(["active", "ended"], dtype=object)[status],
                                              _CATEGORY_VARIANTS["status"], p.category_variant_share)
    mess["category_variants_partnerships"] = {"table": "partnerships", "count": int(sum(counts.values())),
                                              "by_column": counts}
    mess["date_formats_partnerships"] = {"table": "partnerships", "column": "mou_signed_date",
                                         "count": int(np.sum(fmt != 0)),
                                         "by_format": {f: int(np.sum(fmt == j))
                                                       for j, f in enumerate(_DATE_FORMATS)}}
    design["partnerships"] = {
        "rows": int(n), "partnered_centres": int(partnered.sum()),
        "partnered_centres_with_two_mous": int(second.sum()),
        "second_mous_ended": int(second_ended.sum()),
        "comparison_centres_with_mou_after_endline": int(late.sum()),
        "comparison_centres_with_only_ended_mou": int((ended & ~late).sum()),
        "comparison_centres_with_ended_mou": int(ended.sum()),
        "not_estimable_region": {
            "region": p.not_estimable_region,
            "partnered_centres": int(np.sum(partnered & not_est)),
            "comparison_centres_with_mou_after_endline": int(np.sum(late & not_est)),
            "comparison_centres_with_ended_mou": int(np.sum(ended & not_est)),
            "detail": "counting every MOU would wrongly give 3 or more 'partnered' centres",
        },
    }
    return {"partnership_id": _ids("P", n, 5), "centre_id": c["centre_id"][centre], "partner_name": name,
            "partner_type": ptype_text, "mou_signed_date": _fmt_dates(date, fmt), "status": status_text}


def _make_children(rng: np.random.Generator, p: SimulationParameters, c: dict[str, Any],
                   effect_points: np.ndarray, var: dict[str, float]) -> dict[str, Any]:
    """Children, their dates, ELOM scores at both waves, anthropometry and attendance."""
    lo, hi = p.children_per_centre
    per_centre = np.minimum(rng.integers(lo, hi + 1, c["n"]), c["enrolment"])
    n_cohort = int(per_centre.sum())
    n_join = int(round(p.endline_joiner_share * n_cohort))
    joiner_centre = rng.choice(c["n"], size=n_join, p=per_centre / n_cohort)
    centre = np.concatenate([np.repeat(np.arange(c["n"]), per_centre), joiner_centre])
    joiner = np.concatenate([np.zeros(n_cohort, bool), np.ones(n_join, bool)])
    order = np.argsort(centre, kind="stable")
    centre, joiner = centre[order], joiner[order]
    n = centre.size
    leaver = ~joiner & (rng.random(n) < p.attrition_share)

    female = rng.random(n) < p.female_share
    spread = p.days_spread_within_centre + 1
    base_date = _weekday(c["base_start"][centre] + rng.integers(0, spread, n))
    end_date = _weekday(c["end_start"][centre] + rng.integers(0, spread, n))
    a_lo, a_hi = p.baseline_age_months
    age_days = np.rint(rng.uniform(a_lo * DAYS_PER_MONTH, a_hi * DAYS_PER_MONTH, n)).astype(np.int64)
    dob = base_date - age_days
    age_b = (base_date - dob) / DAYS_PER_MONTH
    age_e = (end_date - dob) / DAYS_PER_MONTH

    # baseline: centre-level observed terms, random centre effect, age, sex, child, domain errors
    prov_eff = p.as_dict("province_baseline")
    x_c = (np.array([prov_eff[name] for name in _PROVINCE_NAMES])[c["prov"]]
           + np.asarray(p.setting_baseline)[c["setting"]] + np.asarray(p.registration_baseline)[c["reg"]]
           + np.asarray(p.fee_band_baseline)[c["fee"]] - var["mean_observed"])
    u_c = rng.normal(0.0, np.sqrt(var["var_centre"]), c["n"])
    fem = female.astype(float) - p.female_share
    common_b = (x_c[centre] + u_c[centre] + p.age_slope * (age_b - p.reference_age_months)
                + p.sex_gap_baseline * fem + rng.normal(0.0, np.sqrt(var["var_child_common"]), n))
    means = np.asarray(p.domain_means)
    raw_b = means[None, :] + common_b[:, None] / 5 + rng.normal(0, np.sqrt(p.domain_error_variance), (n, 5))
    base = np.round(np.clip(raw_b, 0, 20), 2)

    # endline given the observed baseline (lagged dependent variable)
    interval = (np.mean([_day(d) for d in p.endline_window]) - np.mean([_day(d) for d in p.baseline_window])
                ) / DAYS_PER_MONTH
    age_ref = p.reference_age_months + interval
    growth = p.age_slope * (1 - p.rho)
    intercept = (1 - p.rho) * means + p.age_slope * interval / 5
    tau = effect_points[c["prov"]] * c["partnered"]
    v_c = rng.normal(0.0, np.sqrt(p.endline_centre_variance), c["n"])
    setting_e = np.asarray(p.setting_endline)[c["setting"]]
    common_e = (growth * (age_e - age_ref) + p.sex_gap_endline * fem + setting_e[centre]
                + tau[centre] + v_c[centre] + rng.normal(0.0, np.sqrt(p.endline_child_variance), n))
    raw_e = (intercept[None, :] + p.rho * base + common_e[:, None] / 5
             + rng.normal(0, np.sqrt(p.endline_domain_error_variance), (n, 5)))
    end = np.round(np.clip(raw_e, 0, 20), 2)
    clipped = int(np.sum((raw_b < 0) | (raw_b > 20)) + np.sum((raw_e < 0) | (raw_e > 20)))

    # anthropometry from WHO medians: height = M(1 + S z), weight log-normal around the median
    def who(age: np.ndarray, table: dict[str, tuple[float, float]]) -> np.ndarray:
        start = np.where(female, table["female"][0], table["male"][0])
        stop = np.where(female, table["female"][1], table["male"][1])
        return start + (stop - start) * (age - 48.0) / 12.0

    haz_b = rng.normal(p.haz_mean, p.haz_sd, n)
    haz_e = haz_b + rng.normal(0, p.haz_drift_sd, n)
    wz_b = p.weight_on_haz * haz_b + np.sqrt(1 - p.weight_on_haz**2) * rng.normal(0, 1, n) + p.weight_z_shift
    wz_e = wz_b + rng.normal(0, p.weight_drift_sd, n)
    height = [np.round(who(a, _WHO_HEIGHT_M) * (1 + who(a, _WHO_HEIGHT_S) * z), 1)
              for a, z in ((age_b, haz_b), (age_e, haz_e))]
    weight = [np.round(who(a, _WHO_WEIGHT_M) * np.exp(p.weight_cv * z), 1)
              for a, z in ((age_b, wz_b), (age_e, wz_e))]
    d_lo, d_hi = p.days_possible
    possible = [rng.integers(d_lo, d_hi + 1, n) for _ in range(2)]
    rate = rng.beta(*p.attendance_beta, n)
    attended = [rng.binomial(possible[w], rate) for w in range(2)]
    assessor_pool = [max(2, int(np.ceil(np.sum(c["prov"] == k) / p.assessor_centres)))
                     for k in range(len(_PROVINCES))]
    return {"n": n, "centre": centre, "joiner": joiner, "leaver": leaver, "female": female,
            "dob": dob, "date": (base_date, end_date), "age": (age_b, age_e), "elom": (base, end),
            "height": height, "weight": weight, "possible": possible, "attended": attended,
            "assessor_pool": np.array(assessor_pool), "clipped_values": clipped,
            "child_id": _ids("K", n, 6)}


def _write_children(rng: np.random.Generator, p: SimulationParameters, c: dict[str, Any], k: dict[str, Any],
                    mess: dict[str, Any], design: dict[str, Any]) -> dict[str, np.ndarray]:
    """Stack the two waves, format every column and add the mess of a real export."""
    rows_b = np.flatnonzero(~k["joiner"])
    rows_e = np.flatnonzero(~k["leaver"])
    child = np.concatenate([rows_b, rows_e])
    wave = np.concatenate([np.zeros(rows_b.size, np.int64), np.ones(rows_e.size, np.int64)])
    n = child.size

    def pick(pair: tuple | list) -> np.ndarray:
        return np.where(wave == 0, pair[0][child], pair[1][child])

    date = pick(k["date"])
    dob = k["dob"][child].copy()
    centre = k["centre"][child]
    elom = np.where((wave == 0)[:, None], k["elom"][0][child], k["elom"][1][child])

    # assessors: one per centre and wave, sometimes a colleague
    pool = k["assessor_pool"]
    prov = c["prov"][centre]
    offsets = np.concatenate([[0], np.cumsum(pool)[:-1]])
    main = rng.integers(0, 1 << 30, (c["n"], 2))
    slot = main[centre, wave] % pool[prov]
    other = rng.random(n) < p.other_assessor_share
    slot = np.where(other, rng.integers(0, 1 << 30, n) % pool[prov], slot)
    labels = np.concatenate([_ids(f"{code}-A", int(pool[j]), 2) for j, (_, code, _) in enumerate(_PROVINCES)])
    assessor = labels[offsets[prov] + slot]

    # child names: one per child, shared by both rows
    names = {}
    for sex in ("female", "male"):
        names[sex] = np.array([f"{f} {s}" for f in _FIRST_NAMES[sex] for s in _SURNAMES], dtype=object)
    name_idx = rng.integers(0, names["female"].size, k["n"])
    child_name = np.where(k["female"], names["female"][name_idx], names["male"][name_idx])

    fmt = rng.choice(3, size=n, p=np.asarray(p.date_format_shares) / sum(p.date_format_shares))
    counts: dict[str, Any] = {}
    cols: dict[str, np.ndarray] = {"child_id": k["child_id"][child], "centre_id": c["centre_id"][centre]}
    cols["wave"], counts["wave"] = _variants(rng, np.array(["baseline", "endline"], dtype=object)[wave],
                                             _CATEGORY_VARIANTS["wave"], p.category_variant_share)

    # unit slips and impossible birth dates, chosen before formatting
    height = pick(k["height"])
    weight = pick(k["weight"])
    n_mm = _n_mess(p.height_mm_share, n)
    n_g = _n_mess(p.weight_grams_share, n)
    n_dob = _n_mess(p.dob_after_assessment_share, n)
    slip_rows = rng.choice(n, size=n_mm + n_g + n_dob, replace=False)
    mm_rows, g_rows, dob_rows = np.split(slip_rows, [n_mm, n_mm + n_g])
    # the birth year typed five years late (2025 for 2020): a birth after the assessment
    typo = dob[dob_rows] + 5 * 365 + 1
    dob[dob_rows] = np.where(typo > date[dob_rows], typo, date[dob_rows] + 40)

    cols["assessment_date"] = _fmt_dates(date, fmt)
    cols["date_of_birth"] = _fmt_dates(dob, fmt)
    cols["sex"], counts["sex"] = _variants(rng, np.where(k["female"][child], "female", "male").astype(object),
                                           _CATEGORY_VARIANTS["sex"], p.category_variant_share)
    cols["child_name"] = child_name[child]
    missing: dict[str, dict[str, int]] = {}
    for j, col in enumerate(ELOM_DOMAINS):
        cols[col], missing[col] = _missing(rng, _fmt_fixed(elom[:, j], 2), p.missing_share_elom,
                                           p.missing_code_shares)
    slipped = np.zeros(n, bool)
    slipped[mm_rows] = True
    h_text = _fmt_fixed(height, 1)
    h_text[mm_rows] = _fmt_fixed(height[mm_rows] * 10, 0)
    cols["height_cm"], missing["height_cm"] = _missing(rng, h_text, p.missing_share_anthro,
                                                       p.missing_code_shares, eligible=~slipped)
    slipped[:] = False
    slipped[g_rows] = True
    w_text = _fmt_fixed(weight, 1)
    w_text[g_rows] = _fmt_fixed(weight[g_rows] * 1000, 0)
    cols["weight_kg"], missing["weight_kg"] = _missing(rng, w_text, p.missing_share_anthro,
                                                       p.missing_code_shares, eligible=~slipped)
    cols["days_attended"], missing["days_attended"] = _missing(
        rng, _fmt_fixed(pick(k["attended"]), 0), p.missing_share_days, p.missing_code_shares)
    cols["days_possible"], missing["days_possible"] = _missing(
        rng, _fmt_fixed(pick(k["possible"]), 0), p.missing_share_days, p.missing_code_shares)
    cols["assessor_id"] = assessor

    # rows whose centre is not in centres: new children at centre ids that do not exist
    n_orphan = _n_mess(p.unknown_centre_row_share, n)
    src = rng.choice(np.flatnonzero(wave == 0), size=n_orphan, replace=False)
    orphan = {col: v[src].copy() for col, v in cols.items()}
    orphan["child_id"] = _ids("K", n_orphan, 6, start=k["n"] + 1)
    orphan["centre_id"] = _ids("C", n_orphan, 4, start=c["n"] + 901)
    name_idx = rng.integers(0, names["female"].size, n_orphan)
    orphan["child_name"] = np.where(k["female"][child[src]], names["female"][name_idx], names["male"][name_idx])

    # conflicting duplicates: the same child and wave entered twice, one value changed
    n_conf = _n_mess(p.conflicting_duplicate_share, n)
    conf_src = rng.choice(n, size=n_conf, replace=False)
    conflict = {col: v[conf_src].copy() for col, v in cols.items()}
    changeable = (*ELOM_DOMAINS, "height_cm", "days_attended")
    which = rng.integers(0, len(changeable), n_conf)
    changed_cols = {}
    for j, col in enumerate(changeable):  # a handful of columns, not rows
        rows = np.flatnonzero(which == j)
        if col in ELOM_DOMAINS:
            old = elom[conf_src[rows], j]
            new = np.where(old < 10, old + rng.uniform(2, 6, rows.size), old - rng.uniform(2, 6, rows.size))
            conflict[col][rows] = _fmt_fixed(new, 2)
        elif col == "height_cm":
            conflict[col][rows] = _fmt_fixed(height[conf_src[rows]] + rng.choice([-1, 1], rows.size)
                                             * rng.uniform(1.5, 6.0, rows.size), 1)
        else:
            attended = np.where(wave[conf_src[rows]] == 0, k["attended"][0][child[conf_src[rows]]],
                                k["attended"][1][child[conf_src[rows]]])
            conflict[col][rows] = _fmt_fixed(np.maximum(0, attended - rng.integers(3, 12, rows.size)), 0)
        changed_cols[col] = int(rows.size)

    # exact duplicates: the same submission twice
    n_dup = _n_mess(p.exact_duplicate_share_children, n)
    dup_src = rng.choice(n, size=n_dup, replace=False)
    duplicate = {col: v[dup_src] for col, v in cols.items()}

    # export order: by assessment date, centre and child; a copy right after its source
    copy_rank = np.concatenate([np.zeros(n + n_orphan, np.int64), np.ones(n_conf, np.int64), np.full(n_dup, 2)])
    order = np.lexsort((
        copy_rank,
        np.concatenate([child, k["n"] + np.arange(n_orphan), child[conf_src], child[dup_src]]),
        np.concatenate([centre, np.full(n_orphan, c["n"]), centre[conf_src], centre[dup_src]]),
        np.concatenate([date, date[src], date[conf_src], date[dup_src]]),
    ))
    out = {}
    for col in list(cols):  # pop as we go: at scale 200 these columns are large
        out[col] = np.concatenate([cols.pop(col), orphan[col], conflict[col], duplicate[col]])[order]

    mess["category_variants_child_assessments"] = {"table": "child_assessments",
                                                   "count": int(sum(counts.values())), "by_column": counts}
    mess["date_formats_child_assessments"] = {
        "table": "child_assessments", "columns": ["assessment_date", "date_of_birth"],
        "count": int(np.sum(fmt != 0)),
        "by_format": {f: int(np.sum(fmt == j)) for j, f in enumerate(_DATE_FORMATS)},
        "detail": "rows (both date columns of a row share the format); duplicates repeat their source"}
    mess["missing_codes_child_assessments"] = {
        "table": "child_assessments", "count": int(sum(sum(v.values()) for v in missing.values())),
        "by_column": missing, "detail": "cells in the de-duplicated base rows; duplicates repeat their source"}
    mess["height_in_mm"] = {"table": "child_assessments", "column": "height_cm", "count": int(n_mm),
                            "detail": "height x 10 written as an integer, e.g. 1052 for 105.2 cm"}
    mess["weight_in_grams"] = {"table": "child_assessments", "column": "weight_kg", "count": int(n_g),
                               "detail": "weight x 1000, e.g. 17300 for 17.3 kg"}
    mess["date_of_birth_after_assessment"] = {"table": "child_assessments", "column": "date_of_birth",
                                              "count": int(n_dob),
                                              "detail": "birth year typed five years late; only that row"}
    mess["unknown_centre_rows"] = {"table": "child_assessments", "column": "centre_id", "count": int(n_orphan),
                                   "centre_ids": sorted(set(orphan["centre_id"].tolist())),
                                   "detail": "baseline rows of extra children at centre ids not in centres"}
    mess["conflicting_duplicates"] = {"table": "child_assessments", "count": int(n_conf),
                                      "by_column": changed_cols,
                                      "detail": "same child_id and wave twice, one value changed"}
    mess["exact_duplicates_child_assessments"] = {"table": "child_assessments", "count": int(n_dup),
                                                  "detail": "identical rows, written next to their source"}
    unknown_id = c["centre_id"][c["unknown"]]
    mess["unknown_province"]["child_assessment_rows"] = int(np.sum(out["centre_id"] == unknown_id))
    design["child_assessments"] = {
        "rows_written": int(out["child_id"].size), "children": int(k["n"]),
        "baseline_rows": int(rows_b.size), "endline_rows": int(rows_e.size),
        "children_with_both_waves": int(np.sum(~k["joiner"] & ~k["leaver"])),
        "baseline_only_children": int(k["leaver"].sum()), "endline_only_children": int(k["joiner"].sum()),
        "elom_values_clipped_at_0_or_20": k["clipped_values"],
    }
    return out


def _make_survey(rng: np.random.Generator, p: SimulationParameters, c: dict[str, Any],
                 mess: dict[str, Any], design: dict[str, Any]) -> dict[str, np.ndarray]:
    """Parent responses around the endline: Likert items, recommend, phones as typed."""
    lo, hi = p.responses_per_centre
    per_centre = rng.integers(lo, hi + 1, c["n"])
    centre = np.repeat(np.arange(c["n"]), per_centre)
    n = centre.size
    d_lo, d_hi = p.survey_days_around_endline
    day = c["end_start"][centre] + rng.integers(d_lo, d_hi + 1, n)
    second = rng.integers(6 * 3600, 22 * 3600, n)
    order = np.lexsort((centre, second, day))
    centre, day, second = centre[order], day[order], second[order]

    latent = (p.satisfaction_mean + rng.normal(0, p.satisfaction_centre_sd, c["n"])[centre]
              + p.satisfaction_partnered * c["partnered"][centre]
              + p.satisfaction_feedback_channel * c["feedback"][centre]
              + rng.normal(0, p.satisfaction_respondent_sd, n))
    cut = np.asarray(p.likert_cutpoints)
    cols: dict[str, np.ndarray] = {"response_id": _ids("R", n, 6), "centre_id": c["centre_id"][centre]}
    fmt = rng.choice(3, size=n, p=np.asarray(p.date_format_shares) / sum(p.date_format_shares))
    cols["submission_time"] = _fmt_dates(day, fmt) + " " + _fmt_times(second, fmt)

    # phones: 082 123 4567, +27 82 123 4567, 0821234567, or with non-breaking spaces (Excel)
    which = rng.integers(0, len(_PHONE_PREFIXES), n)
    prefix = np.array(_PHONE_PREFIXES, dtype=object)[which]
    prefix_intl = np.array([f"+27 {s[1:]}" for s in _PHONE_PREFIXES], dtype=object)[which]
    d3 = np.strings.zfill(rng.integers(0, 1000, n).astype(str), 3).astype(object)
    d4 = np.strings.zfill(rng.integers(0, 10000, n).astype(str), 4).astype(object)
    nbsp = "\u00a0"
    styles = np.stack([prefix + " " + d3 + " " + d4, prefix_intl + " " + d3 + " " + d4,
                       prefix + d3 + d4, prefix + nbsp + d3 + nbsp + d4])
    style = rng.choice(4, size=n, p=np.asarray(p.phone_format_shares) / sum(p.phone_format_shares))
    blank = rng.random(n) < p.phone_blank_share
    if not np.any((style == 3) & ~blank):  # at least one byte that is not ASCII: a real cp1252 file
        style[np.flatnonzero(~blank)[0]] = 3
    phone = styles[style, np.arange(n)]
    phone[blank] = ""
    cols["respondent_phone"] = phone

    missing = {}
    for j, item in enumerate(_SAT_ITEMS):
        y = latent + rng.normal(0, p.satisfaction_item_sd, n)
        likert = 1 + np.searchsorted(cut, y)
        cols[item], missing[item] = _missing(rng, _fmt_fixed(likert, 0), p.missing_share_sat,
                                             p.missing_code_shares_sat)
    z = (latent - p.satisfaction_mean) / np.sqrt(p.satisfaction_centre_sd**2 + p.satisfaction_respondent_sd**2)
    recommend = np.clip(np.rint(p.recommend_mean + p.recommend_slope * z
                                + rng.normal(0, p.recommend_noise_sd, n)), 0, 10)
    cols["recommend"], missing["recommend"] = _missing(rng, _fmt_fixed(recommend, 0), p.missing_share_recommend,
                                                       p.missing_code_shares)

    n_dup = _n_mess(p.exact_duplicate_share_survey, n)
    dup_src = rng.choice(n, size=n_dup, replace=False)
    order = np.argsort(np.concatenate([np.arange(n), dup_src]), kind="stable")
    out = {col: np.concatenate([v, v[dup_src]])[order] for col, v in cols.items()}
    mess["exact_duplicates_parent_survey"] = {"table": "parent_survey", "count": int(n_dup),
                                              "detail": "identical rows, written next to their source"}
    mess["missing_codes_parent_survey"] = {"table": "parent_survey",
                                           "count": int(sum(sum(v.values()) for v in missing.values())),
                                           "by_column": missing,
                                           "detail": "-88 (not applicable) is the commonest in sat_* items"}
    mess["date_formats_parent_survey"] = {"table": "parent_survey", "column": "submission_time",
                                          "count": int(np.sum(fmt != 0)),
                                          "by_format": {f: int(np.sum(fmt == j))
                                                        for j, f in enumerate(_DATETIME_FORMATS)}}
    mess["phone_non_breaking_spaces"] = {"table": "parent_survey", "column": "respondent_phone",
                                         "count": int(np.sum((style == 3) & ~blank)),
                                         "detail": "U+00A0 between digit groups (byte 0xA0 in Windows-1252)"}
    mess["phone_blank"] = {"table": "parent_survey", "column": "respondent_phone", "count": int(blank.sum())}
    unknown_id = c["centre_id"][c["unknown"]]
    mess["unknown_province"]["parent_survey_rows"] = int(np.sum(out["centre_id"] == unknown_id))
    design["parent_survey"] = {"rows_written": int(out["response_id"].size), "responses": int(n),
                               "encoding": "cp1252", "separator": ";", "line_ending": "CRLF"}
    return out


# ----------------------------------------------------------------- entry point


def simulate(out: str | Path, seed: int = 20251123, scale: float = 1.0,
             params: SimulationParameters | None = None) -> SimulationResult:
    """Write a realistic synthetic data folder in the evalkit data contract.

    Parameters
    ----------
    out : str or Path
        Folder to write into; created when missing. Only the six files below
        are written (existing files of the same name are replaced).
    seed : int, default 20251123
        Seed of :func:`numpy.random.default_rng`. The same seed and scale give
        byte-identical data files.
    scale : float, default 1.0
        Multiplies the number of centres (about 250 at scale 1, about 5,600
        child-assessment rows; scale 200 gives about 1.1 million rows).
        Province effects do not depend on the scale.
    params : SimulationParameters, optional
        Parameters of the simulation; the defaults are documented on the class.

    Returns
    -------
    SimulationResult
        The folder, seed, scale, the truth table and the paths written:
        ``centres.csv``, ``partnerships.csv``, ``child_assessments.csv`` (UTF-8,
        comma), ``parent_survey.csv`` (Windows-1252, semicolon, CRLF),
        ``truth.csv`` and ``simulation.json``.

    Raises
    ------
    ValueError
        When ``scale`` is not positive or the parameters are inconsistent.

    Notes
    -----
    ``truth.csv`` has one row per province: ``true_effect_sd``,
    ``true_effect_points`` (the coefficient on ``partnered`` in the contract's
    ANCOVA, in ELOM-total points; ``true_effect_sd`` times ``baseline_sd``),
    ``n_centres`` (centres the cleaner keeps: the unknown-province centre is
    not counted), ``n_partnered_designed`` (centres with an active MOU signed
    before their first endline assessment) and ``estimable_designed`` (at
    least 3 partnered and 3 comparison centres).

    Every province gets at least ``min_centres_per_province`` centres and, where
    it has room, at least 3 partnered and 3 comparison centres; Northern Cape
    has exactly ``not_estimable_partnered`` (2) partnered centres at every
    scale, so it is never estimable. ``simulation.json`` names the output
    folder in its ``command``, so it is the one file that differs between two
    folders written with the same seed and scale.
    """
    p = params or SimulationParameters()
    if not scale > 0:
        raise ValueError(f"scale must be greater than 0, got {scale!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    var = _baseline_variances(p)
    streams = np.random.default_rng(seed).spawn(6)
    effects_rng, centres_rng, partner_rng, children_rng, mess_rng, survey_rng = streams

    # one effect per province, independent of scale
    lo, hi = p.true_effect_sd_range
    effect_sd = np.round(effects_rng.uniform(lo, hi, len(_PROVINCES)), 3)
    effect_points = np.round(effect_sd * p.baseline_sd, 4)

    mess: dict[str, Any] = {}
    design: dict[str, Any] = {}
    files: dict[str, Path] = {}
    hashes: dict[str, str] = {}

    def write(name: str, cols: dict[str, np.ndarray]) -> None:
        assert tuple(cols) == _COLUMNS[name], name
        files[name] = out / f"{name}.csv"
        if name == "parent_survey":  # a South African Excel export
            hashes[name] = _write_csv(files[name], cols, sep=";", encoding="cp1252", newline="\r\n")
        else:
            hashes[name] = _write_csv(files[name], cols)

    # one table at a time, so that only one large table is held in memory
    c = _make_centres(centres_rng, p, scale)
    write("centres", _write_centres(mess_rng, p, c, mess))
    write("partnerships", _make_partnerships(partner_rng, p, c, mess, design))
    children = _make_children(children_rng, p, c, effect_points, var)
    write("child_assessments", _write_children(mess_rng, p, c, children, mess, design))
    del children
    write("parent_survey", _make_survey(survey_rng, p, c, mess, design))

    kept = np.ones(c["n"], bool)
    kept[c["unknown"]] = False
    n_centres = np.bincount(c["prov"][kept], minlength=len(_PROVINCES))
    n_part = np.bincount(c["prov"][kept & c["partnered"]], minlength=len(_PROVINCES))
    truth = pd.DataFrame({
        "region": list(_PROVINCE_NAMES), "true_effect_sd": effect_sd, "true_effect_points": effect_points,
        "n_centres": n_centres, "n_partnered_designed": n_part,
        "estimable_designed": (n_part >= p.min_centres_per_arm) & (n_centres - n_part >= p.min_centres_per_arm),
    })
    files["truth"] = out / "truth.csv"
    truth.to_csv(files["truth"], index=False, lineterminator="\n")
    hashes["truth"] = hashlib.sha256(files["truth"].read_bytes()).hexdigest()

    design["centres"] = {
        "rows": int(c["n"]), "partnered": int(c["partnered"].sum()),
        "partnered_share": round(float(c["partnered"].mean()), 4),
        "by_setting": {s: {"centres": int(np.sum(c["setting"] == j)),
                           "partnered": int(np.sum(c["partnered"] & (c["setting"] == j)))}
                       for j, s in enumerate(_SETTINGS)},
    }
    record = {
        "generator": "evalkit.simulate",
        "evalkit_version": _evalkit_version(),
        "command": f"evalkit simulate --out {out} --seed {seed} --scale {scale:g}",
        "seed": int(seed),
        "scale": float(scale),
        "synthetic": True,
        "population_sd_baseline_elom_total": p.baseline_sd,
        "baseline_variance_components": {key: round(v, 6) for key, v in var.items()},
        "estimand": "true_effect_points = coefficient on partnered in OLS of endline elom_total on partnered, "
                    "baseline elom_total, age in months at endline, sex and setting (contract section 2)",
        "design": design,
        "mess": mess,
        "files": {name: {"file": path.name, "sha256": hashes[name], "bytes": path.stat().st_size}
                  for name, path in files.items()},
        "parameters": asdict(p),
    }
    files["simulation"] = out / "simulation.json"
    files["simulation"].write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return SimulationResult(out=out, seed=int(seed), scale=float(scale), truth=truth, files=files)
