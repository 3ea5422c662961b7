"""Mixed models with crossed random effects of participants and identities, fitted as lme4 does;
any fixed effects as a formula, and ``moderation`` (condition x moderator)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse, special, stats
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from analysis import numderiv

REFERENCE_CONDITION = "real"
TREATMENT_CONDITION = "ai"
COEFFICIENT = "condition" + TREATMENT_CONDITION  # lme4's name for the ai-minus-real coefficient
SINGULAR_TOL = 1e-4  # lme4::isSingular(tol = 1e-4)
GRADIENT_TOL = 2e-3  # lme4's check.conv.grad = .makeCC("warning", tol = 2e-3)
HESSIAN_EIGEN_TOL = 1e-8  # lmerTest::as_lmerModLT(tol = 1e-8)
RANK_TOL = 1e-7  # lme4's lmerControl(check.rankX = "message+drop.cols"), qr tolerance
SPARSE_DENSITY = 0.5  # L21 is held sparse when at most this share of its cells hold rows
SPARSE_MIN_ENTRIES = 40_000  # ... and its dense form would have at least this many entries
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


class _Tests:
    """What tests of any contrast of the fixed effects need, kept from one fit.

    ``kind`` "t" (LMM: Satterthwaite df from the Jacobian of Var(beta) over (theta, sigma) and
    the covariance A of those parameters, as lmerTest) or "z" (GLMM: Wald).
    """

    def __init__(
        self,
        kind: str,
        beta: np.ndarray,
        vcov: np.ndarray,
        jac: list[np.ndarray] | None = None,
        A: np.ndarray | None = None,
    ):
        self.kind, self.beta, self.vcov, self.jac, self.A = kind, beta, vcov, jac, A

    def _df(self, L: np.ndarray, var: float) -> float:
        """Satterthwaite df of the contrast L'beta (lmerTest's contest1D)."""
        if self.jac is None or self.A is None:
            return math.inf
        grad = np.array([L @ J @ L for J in self.jac])
        denom = grad @ self.A @ grad
        return 2.0 * var**2 / denom if denom > 0 else math.inf

    def contrast(self, L: np.ndarray, level: float = 0.95) -> dict[str, Any]:
        """Estimate, SE, t (Satterthwaite df) or z, p and CI of one contrast L'beta."""
        L = np.asarray(L, dtype=float)
        estimate = float(L @ self.beta)
        var = float(L @ self.vcov @ L)
        se = math.sqrt(var) if var > 0 else math.nan
        df = self._df(L, var) if self.kind == "t" else math.inf
        statistic = estimate / se
        dist = stats.t(df) if math.isfinite(df) else stats.norm()
        half = float(dist.ppf(0.5 + level / 2)) * se
        return {
            "estimate": estimate,
            "se": se,
            "statistic": statistic,
            "statistic_name": self.kind,
            "df": float(df) if math.isfinite(df) else None,
            "p_value": float(2 * dist.sf(abs(statistic))),
            "ci_low": estimate - half,
            "ci_high": estimate + half,
        }

    def joint(self, L: np.ndarray) -> dict[str, Any]:
        """Test L beta = 0 for a q-row L: Satterthwaite F (LMM, lmerTest's contestMD) or Wald chi^2.

        F = sum_m (p_m' L beta)^2 / d_m / q over the eigenvectors p_m (eigenvalues d_m) of
        L V L'; each rotated contrast gets its Satterthwaite df nu_m, and the denominator df is
        2E / (E - q) with E = sum nu_m / (nu_m - 2) (Kuznetsova et al. 2017, eq. 5-6).
        """
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = L.shape[0]
        block = L @ self.vcov @ L.T
        if not np.all(np.isfinite(block)):
            # no usable covariance (e.g. a Hessian that is not positive definite)
            return {
                "statistic": None,
                "statistic_name": "chisq" if self.kind == "z" else "F",
                "df": q,
                "df_denominator": None,
                "p_value": None,
            }
        d, P = np.linalg.eigh(block)
        d, P = d[::-1], P[:, ::-1]  # R's eigen(): decreasing
        rotated = P.T @ L
        t2 = (rotated @ self.beta) ** 2
        statistic = float(np.sum(t2 / d))
        if self.kind == "z":
            return {
                "statistic": statistic,
                "statistic_name": "chisq",
                "df": q,
                "df_denominator": None,
                "p_value": float(stats.chi2.sf(statistic, q)),
            }
        nu = np.array([self._df(rotated[m], float(d[m])) for m in range(q)])
        if q == 1 or np.all(np.abs(nu - nu[0]) < 1e-8):
            ddf = float(nu[0])
        elif np.any(nu <= 2):
            ddf = 2.0
        else:
            E = float(np.sum(nu / (nu - 2)))
            ddf = 2 * E / (E - q)
        F = statistic / q
        p = stats.f.sf(F, q, ddf) if math.isfinite(ddf) else stats.chi2.sf(statistic, q)
        return {
            "statistic": F,
            "statistic_name": "F",
            "df": q,
            "df_denominator": ddf if math.isfinite(ddf) else None,
            "p_value": float(p),
        }


@dataclasses.dataclass
class MixedFit:
    """Result of one mixed model: the condition effect, its test, every coefficient, variances.

    ``estimate`` and its test are those of the condition coefficient (``coefficient``, e.g.
    ``conditionai``: treatment minus baseline, at the reference level of any moderator);
    ``coefficients`` tests every fixed effect; :meth:`contrast` and :meth:`joint` test any
    linear combination of them (simple effects, interaction terms).
    """

    method: str
    estimate: float
    se: float
    statistic: float
    df: float | None
    p_value: float
    ci_low: float
    ci_high: float
    n_obs: int
    n_participants: int
    n_identities: int
    random_effects: list[dict[str, Any]]
    residual_variance: float | None
    singular: bool
    converged: bool
    notes: list[str]
    formula: str
    deviance: float | None = None  # REML criterion (lmm) or Laplace deviance (glmm), as lme4
    coefficient: str = "conditionai"
    levels: list[str] = dataclasses.field(default_factory=lambda: ["real", "ai"])
    fixed: str = "condition"
    coefficients: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    vcov: list[list[float]] = dataclasses.field(default_factory=list)
    n_dropped: int = 0
    slopes: bool = False
    factor_levels: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    n_parameters: int = 0  # fixed effects + covariance parameters (+ sigma for the lmm)
    tests: _Tests | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the fit as plain JSON-ready Python values."""
        return _plain(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "tests"}
        )

    @property
    def names(self) -> list[str]:
        """Names of the fixed-effect coefficients, in model order (R's names(fixef(m)))."""
        return [c["term"] for c in self.coefficients]

    def weights(self, combination: dict[str, float]) -> np.ndarray:
        """Contrast vector from {coefficient name: weight}; raise naming an unknown name."""
        L = np.zeros(len(self.coefficients))
        for name, weight in combination.items():
            if name not in self.names:
                raise ValueError(
                    f"{name!r} is not a coefficient of this model ({', '.join(self.names)})"
                )
            L[self.names.index(name)] = weight
        return L

    def contrast(self, combination: dict[str, float], level: float = 0.95) -> dict[str, Any]:
        """Test a combination of coefficients, e.g. {"conditionai": 1, "conditionai:genderm": 1}.

        t with Satterthwaite df (LMM) or Wald z (GLMM), with its ``level`` CI.
        """
        if self.tests is None:
            raise ValueError("this fit keeps no covariance for tests")
        return self.tests.contrast(self.weights(combination), level)

    def joint(self, names: list[str]) -> dict[str, Any]:
        """Test that the named coefficients are all zero: Satterthwaite F (LMM) or Wald chi^2."""
        if self.tests is None:
            raise ValueError("this fit keeps no covariance for tests")
        if not names:
            raise ValueError("name at least one coefficient to test")
        return self.tests.joint(np.array([self.weights({n: 1.0}) for n in names]))


def _plain(value: Any) -> Any:
    """Convert numpy scalars (recursively) to Python values json.dump(allow_nan=False) accepts."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ----------------------------------------------------------------------------- input


@dataclasses.dataclass
class _Data:
    """Validated model data: response, fixed-effects matrix and integer codes of both groupings."""

    y: np.ndarray
    ai: np.ndarray
    participant: np.ndarray
    identity: np.ndarray
    n_participants: int
    n_identities: int
    names: dict[str, str]
    n_dropped: int
    X: np.ndarray
    columns: list[str]
    coefficient: str
    fixed: str
    levels: tuple[str, str]
    notes: list[str]
    factor_levels: dict[str, list[str]]


def _shown(value: Any) -> Any:
    """A value as Python shows it (2, not np.int64(2)) for error messages."""
    return value.item() if isinstance(value, np.generic) else value


def parse_fixed(fixed: str) -> list[tuple[str, ...]]:
    """Terms of a formula-like fixed-effects specification, in R's order.

    ``+`` separates terms, ``a:b`` is the interaction alone and ``a * b`` is ``a + b + a:b``
    (for any number of factors). Terms are ordered as R's ``terms()``: by degree (main effects
    first), then in order of appearance; repeats are dropped. ``1`` (the intercept, always
    included) may be written and is ignored.

    Raises
    ------
    ValueError
        An empty specification or term, or a character other than names, ``+``, ``*``, ``:``.
    """
    if not isinstance(fixed, str) or not fixed.strip():
        raise ValueError(f"fixed must be a non-empty formula such as 'condition', got {fixed!r}")
    text = fixed.split("~", 1)[1] if "~" in fixed else fixed
    terms: list[tuple[str, ...]] = []
    for part in text.split("+"):
        part = part.strip()
        if part == "1":
            continue
        if not part:
            raise ValueError(f"fixed {fixed!r}: an empty term (a '+' with nothing beside it)")
        groups = []
        for star in part.split("*"):
            names = tuple(n.strip() for n in star.split(":"))
            for name in names:
                if not _NAME.match(name):
                    raise ValueError(
                        f"fixed {fixed!r}: {name!r} is not a column name "
                        "(use names joined by +, * and :)"
                    )
            groups.append(names)
        # a * b * c: every non-empty subset of the starred groups, each an interaction
        for size in range(1, len(groups) + 1):
            for subset in itertools.combinations(groups, size):
                merged = tuple(dict.fromkeys(n for g in subset for n in g))
                if not any(set(merged) == set(t) for t in terms):
                    terms.append(merged)
    if not terms:
        raise ValueError(f"fixed {fixed!r} names no column")
    return sorted(terms, key=len)  # stable: order of appearance within a degree


def _missing(column: pd.Series) -> np.ndarray:
    """NaN/None/NA, or text that is empty once stripped (an unanswered cell in a CSV)."""
    blank = column.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    return column.isna().to_numpy() | blank


def _is_numeric(column: pd.Series) -> bool:
    """A numeric (not boolean) column: used as is; anything else is a factor."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _drop_missing(data: pd.DataFrame, used: list[str], notes: list[str]) -> pd.DataFrame:
    """Rows complete in every column used (R's na.omit), with a note of how many were dropped."""
    missing = {column: _missing(data[column]) for column in used}
    any_missing = np.logical_or.reduce(list(missing.values()))
    if not any_missing.any():
        return data
    counts = ", ".join(f"{c}: {int(m.sum())}" for c, m in missing.items() if m.any())
    notes.append(
        f"{int(any_missing.sum())} of {len(data)} rows dropped for missing values "
        f"({counts}), as R's na.omit"
    )
    return data.loc[~any_missing]


def _condition_levels(
    values: np.ndarray, index: pd.Index, column: str, baseline: str, treatment: str | None
) -> tuple[str, str]:
    """The baseline and the other condition level; raise unless there are exactly those two."""
    present = sorted(set(values))
    if treatment is None:
        if baseline not in present:
            raise ValueError(
                f"column {column!r} has no row with the baseline {baseline!r} "
                f"(values: {', '.join(map(repr, present))})"
            )
        others = [v for v in present if v != baseline]
        if len(others) > 1:
            raise ValueError(
                f"column {column!r} has {len(present)} values ({', '.join(map(repr, present))}); "
                f"the model compares two conditions: {baseline!r} (the baseline) and one other"
            )
        if not others:
            raise ValueError(
                f"column {column!r} has only the value {baseline!r}; "
                "the model needs the baseline and one other condition"
            )
        treatment = others[0]
    allowed = (baseline, treatment)
    unknown = ~np.isin(values, allowed)
    if unknown.any():
        i = np.flatnonzero(unknown)[0]
        raise ValueError(
            f"column {column!r} has value {values[i]!r} at row {_shown(index[i])!r}; "
            f"expected {allowed[0]!r} or {allowed[1]!r}"
        )
    if len(present) < 2:
        raise ValueError(
            f"column {column!r} has only the value {present[0]!r}; "
            f"the model needs both {allowed[0]!r} and {allowed[1]!r}"
        )
    return baseline, treatment


def _label(value: Any) -> str:
    """A factor level as R prints it: 2 for 2.0, text as it is."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factor_columns(
    values: pd.Series, name: str, reference: str | None
) -> tuple[list[str], np.ndarray, list[str]]:
    """Treatment-contrast columns of a factor: (levels, n x (levels - 1) matrix, column names).

    Levels are sorted (R's factor() in the C locale) with the reference, when named, first.
    """
    text = values.map(_label).to_numpy().astype(str)
    if _is_numeric(values):
        levels = [_label(v) for v in sorted(set(values))]  # R: factor(<numeric>) sorts by value
    else:
        levels = sorted(set(text))
    if reference is not None:
        if reference not in levels:
            raise ValueError(
                f"reference level {reference!r} of {name!r} is not in the data "
                f"(levels: {', '.join(map(repr, levels))})"
            )
        levels.remove(reference)
        levels.insert(0, reference)
    matrix = np.column_stack([(text == level).astype(float) for level in levels[1:]])
    if matrix.size == 0:
        matrix = np.zeros((len(text), 0))
    return levels, matrix, [f"{name}{level}" for level in levels[1:]]


def _fixed_matrix(
    data: pd.DataFrame,
    terms: list[tuple[str, ...]],
    condition: str,
    levels: tuple[str, str],
    reference: dict[str, str],
    notes: list[str],
    factors: tuple[str, ...] = (),
) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    """Model matrix of the fixed effects (intercept first), its column names and factor levels.

    Factors get treatment contrasts (R's contr.treatment); numeric columns enter as they are;
    an interaction's columns are the products of its factors' columns, the first varying
    fastest, named ``a:b`` as R names them.
    """
    blocks: dict[str, tuple[np.ndarray, list[str]]] = {}
    factor_levels: dict[str, list[str]] = {}
    for name in dict.fromkeys(n for t in terms for n in t):
        column = data[name]
        if name == condition:
            blocks[name] = (
                (column.astype(str).to_numpy() == levels[1]).astype(float)[:, None],
                [f"{condition}{levels[1]}"],
            )
            factor_levels[name] = list(levels)
        elif _is_numeric(column) and name not in reference and name not in factors:
            blocks[name] = (column.to_numpy(dtype=float)[:, None], [name])
        else:
            found, matrix, names = _factor_columns(column, name, reference.get(name))
            factor_levels[name] = found
            if len(found) < 2:
                notes.append(
                    f"{name} has one level ({found[0]!r}) in the rows fitted: "
                    "its terms are not estimable and were left out"
                )
            blocks[name] = (matrix, names)
    columns, names = [np.ones((len(data), 1))], ["(Intercept)"]
    for term in terms:
        for part in term:
            if len(term) > 1 and (part,) not in terms:
                raise ValueError(
                    f"the interaction {':'.join(term)} needs the main effect of {part} "
                    f"in the model too (write {'*'.join(term)})"
                )
        matrix, labels = blocks[term[0]]
        for part in term[1:]:
            other, other_labels = blocks[part]
            matrix = (matrix[:, :, None] * other[:, None, :]).reshape(len(data), -1, order="F")
            labels = [f"{a}:{b}" for b in other_labels for a in labels]
        if labels:
            columns.append(matrix)
            names.extend(labels)
    return np.column_stack(columns), names, factor_levels


def _full_rank(X: np.ndarray, names: list[str], notes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Drop columns that are linear combinations of earlier ones, as lme4 does (with a note)."""
    keep: list[int] = []
    scale = np.linalg.norm(X, axis=0)
    for j in range(X.shape[1]):
        if scale[j] == 0:
            continue
        if keep:
            Q, _ = np.linalg.qr(X[:, keep])
            residual = X[:, j] - Q @ (Q.T @ X[:, j])
            if np.linalg.norm(residual) <= RANK_TOL * scale[j]:
                continue
        keep.append(j)
    dropped = [names[j] for j in range(len(names)) if j not in keep]
    if dropped:
        notes.append(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column(s) / coefficient(s): {', '.join(dropped)} (no data to estimate them)"
        )
    return X[:, keep], [names[j] for j in keep]


def _prepare(
    data: pd.DataFrame,
    dv: str,
    condition: str,
    participant: str,
    identity: str,
    binary: bool,
    fixed: str | None = None,
    baseline: str = REFERENCE_CONDITION,
    treatment: str | None = None,
    reference: dict[str, str] | None = None,
    factors: tuple[str, ...] | list[str] = (),
) -> _Data:
    """Check the input and code it for the model; raise ValueError naming column and value.

    Rows with a missing response, condition, grouping or predictor are dropped (R's na.omit)
    and counted in the notes.
    """
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("data has no rows")
    names = {"dv": dv, "condition": condition, "participant": participant, "identity": identity}
    terms = parse_fixed(condition if fixed is None else fixed)
    if (condition,) not in terms:
        raise ValueError(
            f"fixed {fixed!r} must include the condition column {condition!r} as a main effect"
        )
    predictors = list(dict.fromkeys(n for t in terms for n in t))
    reference = dict(reference or {})
    for column in [*names.values(), *predictors, *reference]:
        if column not in data.columns:
            raise ValueError(f"column {column!r} is missing from data")
    notes: list[str] = []
    used = list(dict.fromkeys([dv, condition, participant, identity, *predictors]))
    n_given = len(data)
    data = _drop_missing(data, used, notes)
    if len(data) == 0:
        raise ValueError("no rows are left once rows with missing values are dropped")

    raw_dv = data[dv]
    y = pd.to_numeric(raw_dv, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise ValueError(
            f"column {dv!r} has a non-numeric value {_shown(raw_dv.iloc[i])!r} "
            f"at row {_shown(data.index[i])!r}"
        )
    if binary:
        bad = (y != 0) & (y != 1)
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise ValueError(
                f"column {dv!r} must be 0 or 1 for a logistic model, "
                f"got {_shown(raw_dv.iloc[i])!r} at row {_shown(data.index[i])!r}"
            )

    cond = data[condition].astype(str).to_numpy()
    levels = _condition_levels(cond, data.index, condition, str(baseline), treatment)

    codes = {}
    for key in ("participant", "identity"):
        column = names[key]
        code, found = pd.factorize(data[column], sort=True)
        if len(found) < 2:
            raise ValueError(
                f"column {column!r} has one level ({_shown(found[0])!r}); "
                "a random effect needs at least two"
            )
        if len(found) >= len(data):
            # lme4 refuses this too: a grouping factor needs fewer levels than observations
            raise ValueError(
                f"column {column!r} has {len(found)} levels for {len(data)} rows; "
                "a random effect needs fewer levels than observations"
            )
        codes[key] = (code.astype(np.intp), len(found))
    if binary and (y.min() == y.max()):
        raise ValueError(
            f"column {dv!r} has the single value {y[0]:g}; a logistic model needs both 0 and 1"
        )
    X, columns, factor_levels = _fixed_matrix(
        data, terms, condition, levels, reference, notes, tuple(factors)
    )
    X, columns = _full_rank(X, columns, notes)
    coefficient = f"{condition}{levels[1]}"
    if coefficient not in columns:
        raise ValueError(f"the condition coefficient {coefficient!r} is not estimable")
    return _Data(
        y=y,
        ai=(cond == levels[1]).astype(float),
        participant=codes["participant"][0],
        identity=codes["identity"][0],
        n_participants=codes["participant"][1],
        n_identities=codes["identity"][1],
        names=names,
        n_dropped=n_given - len(data),
        X=X,
        columns=columns,
        coefficient=coefficient,
        fixed=" + ".join(":".join(t) for t in terms),
        levels=levels,
        notes=notes,
        factor_levels=factor_levels,
    )


# ----------------------------------------------------------------------------- design


@dataclasses.dataclass(frozen=True)
class _Term:
    """One random-effects term, (1 | group) or (1 + condition | group), with its model matrix."""

    group: str
    codes: np.ndarray
    n_levels: int
    columns: np.ndarray
    names: tuple[str, ...]

    @property
    def k(self) -> int:
        """Number of random effects per level."""
        return self.columns.shape[1]

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters (lower triangle of the k x k factor)."""
        return self.k * (self.k + 1) // 2


def _tril_positions(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangle positions in lme4's column-major order (theta order)."""
    rows, cols = zip(*[(i, j) for j in range(k) for i in range(j, k)], strict=True)
    return np.array(rows), np.array(cols)


class _Design:
    """Crossed random-effects design: the terms, fixed effects X and response y.

    Terms are held in lme4's order (decreasing number of levels), so that the first one,
    whose block of Z'Z is block diagonal, can be eliminated cheaply (a Schur complement)
    and only the remaining terms form a dense block.
    """

    def __init__(self, terms: list[_Term], X: np.ndarray, y: np.ndarray):
        self.terms = sorted(terms, key=lambda t: -t.n_levels)
        self.X = X
        self.y = y
        self.n, self.p = X.shape
        self.sizes = [t.n_levels * t.k for t in self.terms]
        self.q = sum(self.sizes)
        self.n_theta = sum(t.n_theta for t in self.terms)
        self.diagonal = np.concatenate(
            [_tril_positions(t.k)[0] == _tril_positions(t.k)[1] for t in self.terms]
        )
        self.theta_start = np.where(self.diagonal, 1.0, 0.0)  # lme4's default start
        # Z' of each term as a sparse (levels * k) x n matrix, and the cross-classified cell
        # index of each pair of terms, computed once
        self._zt = [
            sparse.csr_matrix(
                (
                    t.columns.ravel(),
                    (
                        (t.codes[:, None] * t.k + np.arange(t.k)).ravel(),
                        np.repeat(np.arange(self.n), t.k),
                    ),
                ),
                shape=(t.n_levels * t.k, self.n),
            )
            for t in self.terms
        ]
        # Each pair of terms meets only in the cells of their cross-classification that hold
        # rows (a participant rates a few of many identities): the levels of each occupied
        # cell and every row's cell, found once
        self._cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for s in range(len(self.terms)):
            for t in range(s + 1, len(self.terms)):
                width = self.terms[t].n_levels
                cells, inverse = np.unique(
                    self.terms[s].codes * width + self.terms[t].codes, return_inverse=True
                )
                self._cells[(s, t)] = (cells // width, cells % width, inverse.ravel())
        # Sparse when the first term's cells with the others are mostly empty and the dense
        # L21 would be large; a study's fully crossed design keeps the dense blocks (the same
        # arithmetic as before, so its fits do not move by rounding).
        occupied = sum(len(self._cells[(0, t)][0]) for t in range(1, len(self.terms)))
        possible = sum(self.terms[0].n_levels * t.n_levels for t in self.terms[1:])
        self.sparse = bool(
            possible
            and occupied <= SPARSE_DENSITY * possible
            and self.sizes[0] * (self.q - self.sizes[0]) >= SPARSE_MIN_ENTRIES
        )
        self._pair_index = {
            (s, t): self.terms[s].codes * self.terms[t].n_levels + self.terms[t].codes
            for s in range(len(self.terms))
            for t in range(s + 1, len(self.terms))
        }
        self._pattern: dict[str, Any] | None = None

    def l21_pattern(self) -> dict[str, Any]:
        """Where the nonzeros of L21 (the later terms' rows, the first term's columns) lie.

        Entry (cell c, a, b) of the stacked per-cell blocks, c a cell of the first term with
        term t, sits in row ``offset_t + level_t * k_t + b`` and column ``level_0 * k_0 + a``.
        Returns the compressed-column structure (``indices``, ``indptr``), the order ``order``
        that takes the stacked entries to it (and ``position_of``, its inverse), and the
        first term's levels grouped by how many rows their columns hold, as (levels, the start
        of each of their k_0 columns, their rows), for selected inverses.
        """
        if self._pattern is not None:
            return self._pattern
        k0 = self.terms[0].k
        rows, cols = [], []
        offset = 0
        for t in range(1, len(self.terms)):
            level0, level_t, _ = self._cells[(0, t)]
            kt = self.terms[t].k
            shape = (len(level0), k0, kt)
            rows.append(
                np.broadcast_to(offset + level_t[:, None, None] * kt + np.arange(kt), shape).ravel()
            )
            cols.append(
                np.broadcast_to(level0[:, None, None] * k0 + np.arange(k0)[:, None], shape).ravel()
            )
            offset += self.sizes[t]
        row, col = np.concatenate(rows), np.concatenate(cols)
        order = np.lexsort((row, col))
        counts = np.bincount(col, minlength=self.sizes[0])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        # every column of one level of the first term holds the same rows
        per_level = counts[::k0]
        groups = []
        for m in np.unique(per_level[per_level > 0]):
            levels = np.flatnonzero(per_level == m)
            position = indptr[(levels * k0)[:, None] + np.arange(k0)]  # (g, k0) column starts
            groups.append((levels, position, row[order][position[:, :1] + np.arange(m)]))
        position_of = np.empty_like(order)
        position_of[order] = np.arange(len(order))
        self._pattern = {
            "order": order,
            "position_of": position_of,
            "indices": row[order].astype(np.int32),
            "indptr": indptr.astype(np.int32),
            "groups": groups,
        }
        return self._pattern

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Relative covariance factors T_t (lower triangular k x k) from theta."""
        out, start = [], 0
        for term in self.terms:
            T = np.zeros((term.k, term.k))
            T[_tril_positions(term.k)] = theta[start : start + term.n_theta]
            out.append(T)
            start += term.n_theta
        return out

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The same covariances with a non-negative diagonal in every T (lme4's bounds).

        T and T D, D = diag(+-1), give the same T T', so the deviance is optimised without
        bounds and the signs are fixed afterwards. With lme4's bound theta_jj >= 0 a
        gradient method can stall on the boundary: the deviance is even in theta_jj, so its
        derivative there is zero even when a positive variance fits much better.
        """
        out, start = theta.copy(), 0
        for term in self.terms:
            rows, cols = _tril_positions(term.k)
            block = out[start : start + term.n_theta]
            for j in range(term.k):
                if block[(rows == j) & (cols == j)][0] < 0:
                    block[cols == j] *= -1.0
            start += term.n_theta
        return out

    def crossprod(
        self, weights: np.ndarray | None, R: np.ndarray, weight_r: bool = True
    ) -> dict[str, Any]:
        """Weighted cross-products Z'WZ (by blocks), Z'WR and R'WR for an n x m matrix R.

        Z'WZ is held as ``diag`` (one k x k block per level of each term) and ``off``, for each
        pair of terms, dense (levels_s, k_s, levels_t, k_t) or, in a sparse design, one
        k_s x k_t block per occupied cell in ``_cells`` order.

        With ``weight_r=False`` the products with R are unweighted (Z'R, R'R).
        """
        w = np.ones(self.n) if weights is None else weights
        wr = w if weight_r else np.ones(self.n)
        diag, zr = [], []
        off: dict[tuple[int, int], np.ndarray] = {}
        for term, Zt in zip(self.terms, self._zt, strict=True):
            L, k = term.n_levels, term.k
            diag.append((Zt @ (term.columns * w[:, None])).reshape(L, k, k))
            zr.append((Zt @ (R * wr[:, None])).reshape(L, k, R.shape[1]))
        for (s, t), index in self._pair_index.items():
            ts, tt = self.terms[s], self.terms[t]
            if self.sparse:
                level_s, _, inverse = self._cells[(s, t)]
                cells = np.empty((len(level_s), ts.k, tt.k))
                for i in range(ts.k):
                    for j in range(tt.k):
                        cells[:, i, j] = np.bincount(
                            inverse,
                            w * ts.columns[:, i] * tt.columns[:, j],
                            minlength=len(level_s),
                        )
                off[(s, t)] = cells
                continue
            block = np.empty((ts.n_levels, ts.k, tt.n_levels, tt.k))
            for i in range(ts.k):
                for j in range(tt.k):
                    block[:, i, :, j] = np.bincount(
                        index,
                        w * ts.columns[:, i] * tt.columns[:, j],
                        minlength=ts.n_levels * tt.n_levels,
                    ).reshape(ts.n_levels, tt.n_levels)
            off[(s, t)] = block
        rr = (R * wr[:, None]).T @ R
        return {"diag": diag, "off": off, "zr": zr, "rr": rr}

    def scaled_zr(self, factors: list[np.ndarray], cp: dict[str, Any]) -> np.ndarray:
        """Lambda' Z' W R as a (q, m) array."""
        return np.concatenate(
            [
                np.matmul(T.T, zr).reshape(-1, zr.shape[-1])
                for T, zr in zip(factors, cp["zr"], strict=True)
            ]
        )

    def z_lambda_u(self, factors: list[np.ndarray], u: np.ndarray) -> np.ndarray:
        """Z Lambda u, the random part of the linear predictor of each row."""
        eta = np.zeros(self.n)
        start = 0
        for term, T, size in zip(self.terms, factors, self.sizes, strict=True):
            b = u[start : start + size].reshape(term.n_levels, term.k) @ T.T
            eta += np.einsum("ni,ni->n", term.columns, b[term.codes])
            start += size
        return eta


def _congruence(S: np.ndarray, A: np.ndarray, T: np.ndarray) -> np.ndarray:
    """S' A_ab T for every block of A, shaped (La, ks, kt) or (La, ks, Lb, kt)."""
    if S.shape == (1, 1) and T.shape == (1, 1):
        return A * (S[0, 0] * T[0, 0])
    left = np.matmul(S.T, A.reshape(A.shape[0], A.shape[1], -1))
    return np.matmul(left.reshape(A.shape[:-1] + (-1,)), T).reshape(A.shape)


class _Cholesky:
    """Cholesky factor L of Lambda' Z'WZ Lambda + I for crossed terms.

    The first term's block is block diagonal (k x k per level) and is factored level by
    level. L21, the later terms' rows of L under the first term's columns, is sparse: a
    participant's columns have entries only for the identities they rated. The Schur
    complement S = C + I - L21 L21' of the later terms (q2 x q2) is formed from that sparse
    product and factored dense, so the cost is O(L1 k^3 + nnz(L21 L21') + q2^3) instead of
    O(q^3) (docs/mixed-models.md).
    """

    def __init__(self, design: _Design, factors: list[np.ndarray], cp: dict[str, Any]):
        terms = design.terms
        T0, k0, L0 = factors[0], terms[0].k, terms[0].n_levels
        D = _congruence(T0, cp["diag"][0], T0) + np.eye(k0)
        self.L11 = np.linalg.cholesky(D)
        self.L11inv = np.linalg.inv(self.L11)
        self.shape0 = (L0, k0)
        logdet = 2.0 * np.log(np.einsum("aii->ai", self.L11)).sum()
        self.q2 = sum(design.sizes[1:])
        if self.q2:
            S = (
                self._sparse_schur(design, factors, cp)
                if design.sparse
                else self._schur(design, factors, cp)
            )
            self.L22 = linalg.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
            logdet += 2.0 * np.log(np.diag(self.L22)).sum()
        self.logdet = logdet  # log |L|^2 (lme4's ldL2)

    def _schur(self, design: _Design, factors: list[np.ndarray], cp: dict[str, Any]) -> np.ndarray:
        """The Schur complement from a dense L21 (a fully crossed design's few identities)."""
        terms = design.terms
        T0 = factors[0]
        L0, k0 = self.shape0
        rows = []
        for t in range(1, len(terms)):
            G = _congruence(T0, cp["off"][(0, t)], factors[t])
            rows.append(G.reshape(L0 * k0, -1).T)
        B = np.concatenate(rows).reshape(self.q2, L0, k0)
        # L21 = B L11^-T, one k0 x k0 block of L11 per level of the first term
        L21 = np.matmul(B.transpose(1, 0, 2), self.L11inv.transpose(0, 2, 1))
        self.L21 = L21.transpose(1, 0, 2).reshape(self.q2, L0 * k0)
        C = np.zeros((self.q2, self.q2))
        offsets = np.cumsum([0] + design.sizes[1:])
        for t in range(1, len(terms)):
            a, b = offsets[t - 1], offsets[t]
            blocks = _congruence(factors[t], cp["diag"][t], factors[t])
            L, k = blocks.shape[:2]
            index = a + np.arange(L)[:, None, None] * k
            C[index + np.arange(k)[:, None], index + np.arange(k)] = blocks
            for s in range(t + 1, len(terms)):
                c, d = offsets[s - 1], offsets[s]
                G = _congruence(factors[t], cp["off"][(t, s)], factors[s])
                C[a:b, c:d] = G.reshape(b - a, d - c)
                C[c:d, a:b] = C[a:b, c:d].T
        return C + np.eye(self.q2) - self.L21 @ self.L21.T

    def _sparse_schur(
        self, design: _Design, factors: list[np.ndarray], cp: dict[str, Any]
    ) -> np.ndarray:
        """The Schur complement from a sparse L21, one block per occupied cell."""
        terms = design.terms
        T0 = factors[0]
        L0, k0 = self.shape0
        pattern = design.l21_pattern()
        blocks = []
        for t in range(1, len(terms)):
            level0 = design._cells[(0, t)][0]
            G = _congruence(T0, cp["off"][(0, t)], factors[t])
            # the block of L21 in (term t's level, level0) is (L11_level0^-1 G_cell)'
            blocks.append(np.matmul(self.L11inv[level0], G).ravel())
        self.L21 = sparse.csc_matrix(
            (np.concatenate(blocks)[pattern["order"]], pattern["indices"], pattern["indptr"]),
            shape=(self.q2, L0 * k0),
        )
        S = (self.L21 @ self.L21.T).toarray()
        np.negative(S, out=S)
        S[np.diag_indices(self.q2)] += 1.0
        offsets = np.cumsum([0] + design.sizes[1:])
        for t in range(1, len(terms)):
            a, k = offsets[t - 1], terms[t].k
            diagonal = _congruence(factors[t], cp["diag"][t], factors[t])
            index = a + np.arange(terms[t].n_levels)[:, None, None] * k
            S[index + np.arange(k)[:, None], index + np.arange(k)] += diagonal
            for u in range(t + 1, len(terms)):
                level_t, level_u, _ = design._cells[(t, u)]
                G = _congruence(factors[t], cp["off"][(t, u)], factors[u])
                ku = terms[u].k
                r = a + level_t[:, None, None] * k + np.arange(k)[:, None]
                c = offsets[u - 1] + level_u[:, None, None] * ku + np.arange(ku)
                S[r, c] += G
                S[c, r] += G
        return S

    def forward(self, rhs: np.ndarray) -> np.ndarray:
        """Solve L v = rhs for a (q, m) right-hand side."""
        L0, k0 = self.shape0
        m = rhs.shape[1]
        v1 = np.matmul(self.L11inv, rhs[: L0 * k0].reshape(L0, k0, m))
        v1 = v1.reshape(L0 * k0, m)
        if not self.q2:
            return v1
        v2 = linalg.solve_triangular(
            self.L22, rhs[L0 * k0 :] - self.L21 @ v1, lower=True, check_finite=False
        )
        return np.concatenate([v1, v2])

    def backward(self, v: np.ndarray) -> np.ndarray:
        """Solve L' w = v for a (q, m) right-hand side."""
        L0, k0 = self.shape0
        m = v.shape[1]
        v1 = v[: L0 * k0]
        if self.q2:
            w2 = linalg.solve_triangular(
                self.L22, v[L0 * k0 :], lower=True, trans="T", check_finite=False
            )
            v1 = v1 - self.L21.T @ w2
        w1 = np.matmul(self.L11inv.transpose(0, 2, 1), v1.reshape(L0, k0, m))
        w1 = w1.reshape(L0 * k0, m)
        return np.concatenate([w1, w2]) if self.q2 else w1


def _minimize(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    maxiter: int = 2000,
    ftol: float = 1e-14,
    forward: bool = False,
    value_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
) -> optimize.OptimizeResult:
    """Minimise a smooth deviance (L-BFGS-B, finite-difference gradient, no bounds).

    Central differences by default; ``forward=True`` halves the cost per iteration where a
    gradient accurate to ~1e-4 suffices (the GLMM, whose evaluations each run PIRLS);
    ``value_and_gradient`` gives the value and an exact gradient in one call.
    """
    fun: Callable[[np.ndarray], Any]
    jac: bool | Callable[[np.ndarray], np.ndarray]
    if value_and_gradient is not None:
        fun, jac = value_and_gradient, True
    elif forward:
        fun, jac = (lambda x: numderiv.forward_value_and_gradient(f, x)), True
    else:
        fun, jac = f, (lambda x: numderiv.central_gradient(f, x))
    result = optimize.minimize(
        fun,
        x0,
        jac=jac,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "ftol": ftol, "gtol": 1e-7, "maxcor": 20},
    )
    # L-BFGS-B stops "abnormally" when the line search can no longer improve a deviance that
    # is already minimal to rounding; convergence is judged afterwards as lme4 judges it
    # (`_lme4_convergence`), so here only a finite deviance counts.
    result.gradient_max = float(np.abs(result.jac).max())
    result.success = bool(np.isfinite(result.fun))
    return result


def _lme4_convergence(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    H: np.ndarray | None = None,
    gradient: np.ndarray | None = None,
) -> tuple[bool, float, str | None]:
    """Converged or not by lme4's own test (checkConv, check.conv.grad), and why not.

    lme4 takes the derivatives at the optimum (deriv12, central differences with delta 1e-4),
    scales the gradient by the Hessian, ``scgrad <- solve(chol(Hessian), gradient)``, and warns
    only when ``max(pmin(abs(scgrad), abs(gradient)))`` exceeds tol = 0.002: a raw gradient
    that is large only because the deviance is large (a big study) is not a failure. When the
    Hessian has no Cholesky factor (e.g. on the boundary of a singular fit) the scaled gradient
    cannot be evaluated and the raw gradient decides. Returns (converged, the max|grad| that was
    compared with tol, a note or None).
    """
    delta = 1e-4
    if gradient is None:
        gradient = np.empty(len(x))
        for i in range(len(x)):
            e = np.zeros(len(x))
            e[i] = delta
            gradient[i] = (f(x + e) - f(x - e)) / (2 * delta)
    if H is None:
        H = numderiv.central_hessian(f, x, fx, delta)
    note = None
    try:
        # R's solve(chol(H), g): R y = g, R the upper-triangular factor with H = R'R
        scaled = linalg.solve_triangular(linalg.cholesky(H, lower=False), gradient, lower=False)
        mingrad = np.minimum(np.abs(scaled), np.abs(gradient))
    except (linalg.LinAlgError, ValueError):
        mingrad = np.abs(gradient)
        note = (
            "the scaled gradient could not be evaluated (the Hessian is not positive "
            "definite); the raw gradient was checked instead"
        )
    worst = float(mingrad.max()) if len(mingrad) else 0.0
    converged = bool(np.isfinite(worst) and worst <= GRADIENT_TOL)
    if not converged:
        note = (
            f"failed to converge by lme4's criterion: max|grad| = {worst:.3g} "
            f"(tol = {GRADIENT_TOL:g}, component {int(np.argmax(mingrad)) + 1})"
        )
    return converged, worst, note


def _selected_inverse(
    d: _Design, chol: _Cholesky, factors: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, a_i = Lambda' z_i on the u-positions it touches and P_i a_i, P = H^-1.

    Returns (P a, a), both n x K with K the sum of the terms' sizes k. P's blocks come from
    the block Cholesky factor: P22 = L22^-T L22^-1, P12 = -L11^-T L21' P22 and the k0 x k0
    diagonal blocks of P11 = L11^-T (I + L21' P22 L21) L11^-1.
    """
    terms = d.terms
    k0 = chol.shape0[1]
    local = np.concatenate(
        [t.columns @ T for t, T in zip(terms, factors, strict=True)], axis=1
    )  # a_i: T_t' x_i per term (row vector x_i T_t)
    c0 = terms[0].codes
    inv0 = chol.L11inv  # (L0, k0, k0)
    if not chol.q2:
        P00 = np.matmul(inv0.transpose(0, 2, 1), inv0)
        return np.einsum("nij,nj->ni", P00[c0], local), local
    # positions of each row in the q2 space of the later terms
    index = []
    start = 0
    for term, size in zip(terms[1:], d.sizes[1:], strict=True):
        index.append(start + term.codes[:, None] * term.k + np.arange(term.k))
        start += size
    idx2 = np.concatenate(index, axis=1)  # (n, K2)
    if d.sparse:
        P22, P00, P01_rows = _sparse_blocks(d, chol)
    else:
        P22, P00, P01_rows = _dense_blocks(d, chol, idx2)
    a0, a2 = local[:, :k0], local[:, k0:]
    P22_rows = P22[idx2[:, :, None], idx2[:, None, :]]  # (n, K2, K2)
    Pa0 = np.einsum("nij,nj->ni", P00[c0], a0) + np.einsum("nij,nj->ni", P01_rows, a2)
    Pa2 = np.einsum("nji,nj->ni", P01_rows, a0) + np.einsum("nij,nj->ni", P22_rows, a2)
    return np.concatenate([Pa0, Pa2], axis=1), local


def _dense_blocks(
    d: _Design, chol: _Cholesky, idx2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P22, P00's diagonal blocks and each row's k0 x K2 block of P01, from a dense L21."""
    L0, k0 = chol.shape0
    inv0 = chol.L11inv
    L22inv = linalg.solve_triangular(chol.L22, np.eye(chol.q2), lower=True, check_finite=False)
    P22 = L22inv.T @ L22inv
    L21 = chol.L21.reshape(chol.q2, L0, k0)
    Q = np.einsum("ab,blk->alk", P22, L21)  # P22 L21, per level
    inner = np.einsum("alk,alj->lkj", L21, Q) + np.eye(k0)
    P00 = np.matmul(np.matmul(inv0.transpose(0, 2, 1), inner), inv0)
    P01 = -np.matmul(inv0.transpose(0, 2, 1), Q.transpose(1, 2, 0))  # (L0, k0, q2)
    P01_flat = P01.reshape(L0 * k0, chol.q2)
    rows0 = d.terms[0].codes[:, None] * k0 + np.arange(k0)  # (n, k0)
    return P22, P00, P01_flat[rows0[:, :, None], idx2[:, None, :]]


def _sparse_blocks(d: _Design, chol: _Cholesky) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same blocks from a sparse L21, touching P22 L21 only where L21 has entries.

    Per level l of the first term, (P22 L21)_l = P22[R_l, R_l] M_l with R_l the rows of
    its columns and M_l = L21[R_l, l]: level by level, in groups of equal |R_l|.
    """
    terms = d.terms
    L0, k0 = chol.shape0
    inv0 = chol.L11inv
    inverse, info = lapack.dpotri(chol.L22, lower=1)
    if info:
        raise np.linalg.LinAlgError("the random-effects Hessian could not be inverted")
    # dpotri fills the lower triangle; the upper one still holds L22's zeros
    diagonal = np.diag(inverse).copy()
    P22 = inverse + inverse.T
    P22[np.diag_indices(chol.q2)] = diagonal
    pattern = d.l21_pattern()
    data = chol.L21.data
    Q = np.empty_like(data)  # P22 L21 on L21's pattern, in its compressed-column order
    inner = np.broadcast_to(np.eye(k0), (L0, k0, k0)).copy()
    for levels, starts, rows in pattern["groups"]:
        where = starts[:, None, :] + np.arange(rows.shape[1])[:, None]  # (g, m, k0)
        M = data[where]
        Ql = np.matmul(P22[rows[:, :, None], rows[:, None, :]], M)
        Q[where] = Ql
        inner[levels] += np.matmul(M.transpose(0, 2, 1), Ql)
    P00 = np.matmul(np.matmul(inv0.transpose(0, 2, 1), inner), inv0)
    # each row's entries of Q (its identities' rows, its participant's columns)
    entries = []
    base = 0
    for t in range(1, len(terms)):
        kt = terms[t].k
        level0, _, cell = d._cells[(0, t)]
        cell_entry = cell[:, None, None] * k0 + np.arange(k0)[:, None]
        stacked = base + cell_entry * kt + np.arange(kt)
        entries.append(Q[pattern["position_of"][stacked]])  # (n, k0, kt)
        base += len(level0) * k0 * kt
    c0 = terms[0].codes
    P01_rows = -np.matmul(inv0[c0].transpose(0, 2, 1), np.concatenate(entries, axis=2))
    return P22, P00, P01_rows


# ----------------------------------------------------------------------------- LMM


class _LMM:
    """Profiled REML deviance of a linear mixed model (Bates et al. 2015, section 3)."""

    def __init__(self, design: _Design):
        self.design = design
        X, y = design.X, design.y
        self.cp = design.crossprod(None, np.column_stack([y, X]))
        rr = self.cp["rr"]
        self.yty, self.Xty, self.XtX = rr[0, 0], rr[1:, 0], rr[1:, 1:]
        self.n, self.p = design.n, design.p

    def pls(self, theta: np.ndarray) -> dict[str, Any]:
        """Solve the penalised least squares problem for one theta."""
        factors = self.design.factors(theta)
        chol = _Cholesky(self.design, factors, self.cp)
        c = chol.forward(self.design.scaled_zr(factors, self.cp))
        cu, RZX = c[:, 0], c[:, 1:]
        RX = linalg.cholesky(self.XtX - RZX.T @ RZX, lower=False, check_finite=False)
        cbeta = linalg.solve_triangular(RX, self.Xty - RZX.T @ cu, trans="T", check_finite=False)
        beta = linalg.solve_triangular(RX, cbeta, check_finite=False)
        pwrss = self.yty - cu @ cu - cbeta @ cbeta
        return {
            "ldL2": chol.logdet,
            "ldRX2": 2.0 * np.log(np.abs(np.diag(RX))).sum(),
            "pwrss": pwrss,
            "beta": beta,
            "RX": RX,
            "cu": cu,
            "RZX": RZX,
            "chol": chol,
        }

    def reml(self, theta: np.ndarray) -> float:
        """REML criterion: log|L|^2 + log|RX|^2 + (n-p)(1 + log(2 pi pwrss / (n-p)))."""
        s = self.pls(theta)
        dof = self.n - self.p
        if not s["pwrss"] > 0:
            return np.inf
        return s["ldL2"] + s["ldRX2"] + dof * (1.0 + math.log(2 * math.pi * s["pwrss"] / dof))

    def ml(self, theta: np.ndarray) -> float:
        """ML deviance: log|L|^2 + n (1 + log(2 pi pwrss / n)) (lme4, REML = FALSE)."""
        s = self.pls(theta)
        if not s["pwrss"] > 0:
            return np.inf
        return s["ldL2"] + self.n * (1.0 + math.log(2 * math.pi * s["pwrss"] / self.n))

    def derivatives(self, theta: np.ndarray, s: dict[str, Any] | None = None) -> dict[str, Any]:
        """Exact first derivatives in theta of the pieces of the deviances.

        With V = I + Z Lambda Lambda' Z' (the covariance of y over sigma^2), V_k its derivative
        in theta_k, P the REML projection and r = V^-1 (y - X beta) the penalised residual:
        ``trace`` tr(P V_k) (the derivative of log|L|^2 + log|RX|^2), ``quadratic`` r' V_k r
        (minus that of the penalised residual sum of squares) and ``cross``
        X'V^-1 V_k V^-1 X (minus that of RX'RX); ``trace_v`` tr(V^-1 V_k), the derivative of
        log|L|^2 alone (ML). Only the blocks of (Lambda'Z'Z Lambda + I)^-1
        that rows touch are needed (``_selected_inverse``); docs/mixed-models.md.
        """
        d = self.design
        s = self.pls(theta) if s is None else s
        factors = d.factors(theta)
        chol = s["chol"]
        beta = s["beta"]
        u = chol.backward((s["cu"] - s["RZX"] @ beta)[:, None])[:, 0]
        resid = d.y - d.X @ beta - d.z_lambda_u(factors, u)
        spread = chol.backward(s["RZX"])  # (Lambda'Z'Z Lambda + I)^-1 Lambda' Z' X
        Xv = d.X - np.column_stack([d.z_lambda_u(factors, col) for col in spread.T])
        RXinv = linalg.solve_triangular(s["RX"], np.eye(self.p), check_finite=False)
        Pa, _ = _selected_inverse(d, chol, factors)
        trace, trace_v, quadratic, cross = [], [], [], []
        slot = 0
        for term, Zt, T in zip(d.terms, d._zt, factors, strict=True):
            k, L = term.k, term.n_levels
            # sum over levels of (Z'V^-1 Z Lambda)_jj, (Z'r)(Z'r)' and (Z'V^-1 X RX^-1)(...)'
            S = term.columns.T @ Pa[:, slot : slot + k]
            z = (Zt @ resid).reshape(L, k)
            RT = (z.T @ z) @ T
            W = (Zt @ Xv).reshape(L, k, self.p)
            Wr = np.matmul(W, RXinv)
            GT = np.einsum("jap,jbp->ab", Wr, Wr) @ T
            F = np.matmul(T.T, W)
            for a, b in zip(*_tril_positions(k), strict=True):
                trace.append(2.0 * (S[a, b] - GT[a, b]))
                trace_v.append(2.0 * S[a, b])
                quadratic.append(2.0 * RT[a, b])
                K = W[:, a, :].T @ F[:, b, :]
                cross.append(K + K.T)
            slot += k
        return {
            "state": s,
            "trace": np.array(trace),
            "trace_v": np.array(trace_v),
            "quadratic": np.array(quadratic),
            "cross": cross,
            "RXinv": RXinv,
        }

    def reml_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """REML criterion and its exact gradient: tr(P V_k) - (n - p) r'V_k r / pwrss."""
        s = self.pls(theta)
        dof = self.n - self.p
        if not s["pwrss"] > 0:
            return np.inf, np.zeros(len(theta))
        value = s["ldL2"] + s["ldRX2"] + dof * (1.0 + math.log(2 * math.pi * s["pwrss"] / dof))
        der = self.derivatives(theta, s)
        return value, der["trace"] - dof * der["quadratic"] / s["pwrss"]

    def ml_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """ML deviance and its exact gradient: tr(V^-1 V_k) - n r'V_k r / pwrss."""
        s = self.pls(theta)
        if not s["pwrss"] > 0:
            return np.inf, np.zeros(len(theta))
        value = s["ldL2"] + self.n * (1.0 + math.log(2 * math.pi * s["pwrss"] / self.n))
        der = self.derivatives(theta, s)
        return value, der["trace_v"] - self.n * der["quadratic"] / s["pwrss"]

    def varpar_derivatives(
        self, theta: np.ndarray, sigma: float
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
        """Hessian of deviance_varpar, Jacobian of covbeta, and the profiled REML derivatives.

        The Hessian's theta columns are central differences (step 1e-4) of the exact gradient
        tr(P V_k) - r'V_k r / sigma^2, (2 (n - p) / sigma - 2 pwrss / sigma^3 in sigma); its
        sigma-sigma entry is exact. The Jacobian is exact: dC/dtheta_k = sigma^2 C0
        (X'V^-1 V_k V^-1 X) C0, dC/dsigma = 2 sigma C0, C0 = (RX'RX)^-1. Also returns the
        gradient and Hessian of the REML criterion with sigma profiled out (lme4's checkConv
        takes them): at sigma^2 = pwrss / (n - p) the sigma derivative is zero and the profiled
        Hessian is H_tt - H_ts H_ss^-1 H_st.
        """
        dof = self.n - self.p
        s2 = sigma**2

        def gradient(der: dict[str, Any]) -> np.ndarray:
            pwrss = der["state"]["pwrss"]
            return np.append(
                der["trace"] - der["quadratic"] / s2, 2 * dof / sigma - 2 * pwrss / sigma**3
            )

        k = len(theta)
        here = self.derivatives(theta)
        H = np.empty((k + 1, k + 1))
        for j in range(k):
            h = 1e-4 * max(1.0, abs(theta[j]))
            step = np.zeros(k)
            step[j] = h
            up = gradient(self.derivatives(theta + step))
            down = gradient(self.derivatives(theta - step))
            H[:, j] = (up - down) / (2 * h)
        H[:k, k] = H[k, :k]
        H[k, k] = 6 * here["state"]["pwrss"] / sigma**4 - 2 * dof / s2
        H = (H + H.T) / 2
        C0 = here["RXinv"] @ here["RXinv"].T
        jacobians = [s2 * C0 @ cross @ C0 for cross in here["cross"]] + [2 * sigma * C0]
        pwrss = here["state"]["pwrss"]
        profiled_gradient = here["trace"] - dof * here["quadratic"] / pwrss
        profiled = H[:k, :k] - np.outer(H[:k, k], H[k, :k]) / H[k, k]
        return H, jacobians, profiled_gradient, profiled

    def deviance_varpar(self, varpar: np.ndarray) -> float:
        """REML deviance as a function of (theta, sigma), lmerTest's devfun_vp."""
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        s = self.pls(theta)
        return (
            s["ldL2"]
            + s["ldRX2"]
            + s["pwrss"] / sigma2
            + (self.n - self.p) * math.log(2 * math.pi * sigma2)
        )

    def covbeta(self, varpar: np.ndarray) -> np.ndarray:
        """sigma^2 (RX' RX)^-1 as a function of (theta, sigma), lmerTest's get_covbeta."""
        RXi = linalg.solve_triangular(
            self.pls(varpar[:-1])["RX"], np.eye(self.p), check_finite=False
        )
        return varpar[-1] ** 2 * RXi @ RXi.T


def _satterthwaite(
    model: _LMM,
    theta: np.ndarray,
    sigma: float,
    notes: list[str],
    exact: tuple[np.ndarray, list[np.ndarray]] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """What lmerTest's contest1D needs: Var(beta), its Jacobian and A, as lmerTest computes them.

    Var(L'beta) = L' C(psi) L with psi = (theta, sigma) and C = sigma^2 (RX'RX)^-1;
    df = 2 Var^2 / (g' A g), where g_i = L' (dC / dpsi_i) L (Richardson Jacobian) and
    A = 2 H^+ is the Moore-Penrose inverse of the numerical Hessian H of the REML deviance
    in psi (numDeriv::hessian). ``exact`` gives H and the Jacobian from exact gradients
    instead (``_LMM.varpar_derivatives``, for large sparse designs). Returns (C, [dC/dpsi_i], A).
    """
    varpar = np.append(theta, sigma)
    H = numderiv.hessian(model.deviance_varpar, varpar) if exact is None else exact[0]
    values, vectors = np.linalg.eigh(H)
    if (values < -HESSIAN_EIGEN_TOL).any():
        notes.append(
            "the Hessian of the REML deviance has negative eigenvalues "
            f"({', '.join(f'{v:.1e}' for v in values[values < -HESSIAN_EIGEN_TOL])}): "
            "the model may not have converged"
        )
    zero = np.abs(values) < HESSIAN_EIGEN_TOL
    if zero.any():
        notes.append(
            "the Hessian of the REML deviance has eigenvalues close to zero "
            f"({', '.join(f'{v:.1e}' for v in values[zero])}): the Satterthwaite df "
            "use its generalised inverse"
        )
    pos = values > HESSIAN_EIGEN_TOL
    vcov_varpar = 2.0 * (vectors[:, pos] / values[pos]) @ vectors[:, pos].T
    if exact is not None:
        return model.covbeta(varpar), exact[1], vcov_varpar
    jac = numderiv.jacobian(model.covbeta, varpar)
    p = model.p
    jacobians = [jac[:, i].reshape(p, p) for i in range(len(varpar))]
    return model.covbeta(varpar), jacobians, vcov_varpar


# ----------------------------------------------------------------------------- GLMM


_LOGIT_BOUND = 30.0  # R's binomial()$linkinv clamps eta at +-30 (THRESH in family.c)


def _inverse_logit(eta: np.ndarray) -> np.ndarray:
    """Mean of a 0/1 response, clamped as R's logit link so weights never vanish."""
    return special.expit(np.clip(eta, -_LOGIT_BOUND, _LOGIT_BOUND))


def _bernoulli_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Sum of binomial deviance residuals for 0/1 data (= the binomial aic() lme4 adds)."""
    return -2.0 * float(np.sum(np.where(y > 0, np.log(mu), np.log1p(-mu))))


class _GLMM:
    """Laplace deviance of a logistic mixed model, evaluated exactly as lme4::glmer does.

    Every evaluation starts the penalised IRLS at the same linear predictor ``lp0`` and stops
    when the penalised deviance changes by less than ``tolPwrss`` = 1e-7 relative; the
    log-determinant is that of the last factorisation (weights of the previous iterate).
    This is lme4's pwrssUpdate/glmerLaplace, so the finite-difference Hessian, and with it
    the standard error, agree with glmer's to about 1e-6.
    """

    tol = 1e-7  # glmerControl(tolPwrss = 1e-7)
    max_iterations = 100  # glmerControl default maxit for PIRLS
    max_halvings = 20  # lme4's maxstephalfit

    def __init__(self, design: _Design):
        self.design = design
        mustart = (design.y + 0.5) / 2.0  # binomial()$initialize for 0/1 data
        self.lp0 = np.log(mustart / (1.0 - mustart))

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None) -> dict[str, Any]:
        """One PIRLS run from lp0: over u for given beta, or over (u, beta) when beta is None."""
        d = self.design
        factors = d.factors(theta)
        offset = np.zeros(d.n) if beta is None else d.X @ beta
        eta = self.lp0.copy()  # resp$updateMu(lp0): eta = lp0, before the new offset applies
        mu = _inverse_logit(eta)
        old = np.inf  # lme4 starts from DBL_MAX: the first iteration never converges
        u_old, b_old = np.zeros(d.q), np.zeros(d.p)
        for _ in range(self.max_iterations):
            w = mu * (1.0 - mu)
            z = (eta - offset) + (d.y - mu) / w  # working response
            cp = d.crossprod(w, np.column_stack([z, d.X]))
            chol = _Cholesky(d, factors, cp)
            c = chol.forward(d.scaled_zr(factors, cp))
            if beta is None:
                cu, RZX = c[:, 0], c[:, 1:]
                rr = cp["rr"]
                RX = linalg.cholesky(rr[1:, 1:] - RZX.T @ RZX, lower=False, check_finite=False)
                b = linalg.solve_triangular(
                    RX,
                    linalg.solve_triangular(
                        RX, rr[1:, 0] - RZX.T @ cu, trans="T", check_finite=False
                    ),
                    check_finite=False,
                )
                u = chol.backward((cu - RZX @ b)[:, None])[:, 0]
            else:
                b = np.zeros(d.p)
                u = chol.backward(c[:, :1])[:, 0]

            def update(u_: np.ndarray, b_: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
                lin_ = d.X @ b_ + d.z_lambda_u(factors, u_)
                mu_ = _inverse_logit(offset + lin_)
                return _bernoulli_deviance(d.y, mu_) + u_ @ u_, lin_, mu_

            pdev, lin, mu = update(u, b)
            if abs(old - pdev) < self.tol * abs(pdev):
                break
            halvings = 0
            while not pdev <= old:  # also catches NaN
                halvings += 1
                if halvings > self.max_halvings:
                    raise ArithmeticError("PIRLS step halvings failed to reduce the deviance")
                u, b = (u_old + u) / 2.0, (b_old + b) / 2.0
                pdev, lin, mu = update(u, b)
            old, u_old, b_old = pdev, u, b
            eta = offset + lin
        else:
            raise ArithmeticError("PIRLS did not converge")
        return {
            "deviance": chol.logdet + pdev,
            "lin": lin,
            "u": u,
            "beta": b,
            "mu": mu,
            "chol": chol,
            "factors": factors,
        }

    def laplace0(self, theta: np.ndarray) -> float:
        """glmer's first stage (nAGQ = 0): beta found with u inside PIRLS."""
        try:
            return self.pirls(theta, None)["deviance"]
        except (ArithmeticError, np.linalg.LinAlgError):
            return np.inf

    def laplace(self, pars: np.ndarray) -> float:
        """Laplace deviance at pars = (theta, beta): sum(dev.resid) + |u|^2 + log|L|^2."""
        k = self.design.n_theta
        try:
            return self.pirls(pars[:k], pars[k:])["deviance"]
        except (ArithmeticError, np.linalg.LinAlgError):
            return np.inf

    def vcov_rx(self, state: dict[str, Any]) -> np.ndarray:
        """(RX' RX)^-1 at the conditional modes: the fixed-effects covariance for known theta."""
        d = self.design
        w = state["mu"] * (1.0 - state["mu"])
        cp = d.crossprod(w, d.X)
        chol = _Cholesky(d, state["factors"], cp)
        RZX = chol.forward(d.scaled_zr(state["factors"], cp))
        return np.linalg.inv(cp["rr"] - RZX.T @ RZX)


# ----------------------------------------------------------------------------- public API


def _terms(d: _Data, slopes: bool) -> list[_Term]:
    """Random-effects terms for participants and identities, with or without slopes."""
    intercept = np.ones((len(d.y), 1))
    columns = np.column_stack([intercept, d.ai]) if slopes else intercept
    names = ("(Intercept)", d.coefficient) if slopes else ("(Intercept)",)
    return [
        _Term(d.names["participant"], d.participant, d.n_participants, columns, names),
        _Term(d.names["identity"], d.identity, d.n_identities, columns, names),
    ]


def _formula(d: _Data, slopes: bool) -> str:
    """lme4 formula text of the model fitted."""
    n = d.names
    inner = f"1 + {n['condition']}" if slopes else "1"
    return f"{n['dv']} ~ {d.fixed} + ({inner} | {n['participant']}) + ({inner} | {n['identity']})"


def _random_effects(
    design: _Design, theta: np.ndarray, scale: float, order: list[str]
) -> list[dict[str, Any]]:
    """Variance (and slope-intercept correlation) of each random effect, in formula order."""
    by_group = {}
    for term, T in zip(design.terms, design.factors(theta), strict=True):
        cov = scale * T @ T.T
        entries = []
        for i, name in enumerate(term.names):
            row = {"group": term.group, "term": name, "variance": float(cov[i, i])}
            if i > 0:
                denom = math.sqrt(cov[0, 0] * cov[i, i])
                row["correlation"] = float(cov[0, i] / denom) if denom > 0 else None
            entries.append(row)
        by_group[term.group] = entries
    return [row for group in order for row in by_group[group]]


def _singular_notes(design: _Design, theta: np.ndarray) -> list[str]:
    """Name every degenerate direction of the random-effects covariance.

    lme4::isSingular (tol = 1e-4) flags a diagonal theta below 1e-4. A slope whose diagonal
    is tiny relative to its row of T is also degenerate: its correlation with the intercept
    is +-1 to eight digits (lme4's documentation names such fits singular too).
    """
    notes = []
    for term, T in zip(design.terms, design.factors(theta), strict=True):
        for j in range(term.k):
            row = float(np.linalg.norm(T[j, : j + 1]))
            if abs(T[j, j]) < SINGULAR_TOL:
                notes.append(
                    f"singular fit: the {term.names[j]} variance for {term.group} "
                    f"is estimated at (or near) zero (theta = {abs(T[j, j]):.2g})"
                )
            elif abs(T[j, j]) < SINGULAR_TOL * row:
                notes.append(
                    f"singular fit: the {term.names[j]} effect for {term.group} is "
                    "perfectly correlated with the intercept (correlation +-1)"
                )
    return notes


def _both_conditions(d: _Data) -> str | None:
    """Return why random slopes cannot be estimated, or None when every group saw both."""
    for key, codes, count in (
        ("participant", d.participant, d.n_participants),
        ("identity", d.identity, d.n_identities),
    ):
        seen_ai = np.bincount(codes, d.ai, minlength=count)
        seen = np.bincount(codes, minlength=count)
        one = np.flatnonzero((seen_ai == 0) | (seen_ai == seen))
        if one.size:
            return f"some {d.names[key]} levels have data in one condition only"
    if len(d.y) <= 2 * max(d.n_participants, d.n_identities):
        return "there are fewer observations than random effects"
    return None


def _one_blas_thread() -> threadpool_limits:
    """Context in which BLAS runs single-threaded."""
    # The fits make thousands of small dense calls; OpenBLAS's thread hand-offs cost up to
    # ten times their arithmetic on a busy 2-core machine.
    return threadpool_limits(limits=1, user_api="blas")


class _SlopesRejected(Exception):
    """A random-slopes fit that slopes="auto" does not keep (singular or not converged)."""


def _check_tentative(tentative: bool, singular: bool, converged: bool, notes: list[str]) -> None:
    """Stop a tentative slopes fit before its (costly) tests when 'auto' would discard it."""
    if tentative and (singular or not converged):
        what = "was singular" if singular else "did not converge"
        raise _SlopesRejected(f"the random-slopes model {what} ({'; '.join(notes)})")


def _fit_with_slopes(fit_one: Callable[..., MixedFit], d: _Data, slopes: bool | str) -> MixedFit:
    """Fit with random slopes, intercepts only, or slopes falling back to intercepts ('auto')."""
    if not (slopes is True or slopes is False or slopes == "auto"):
        raise ValueError(f"slopes must be True, False or 'auto', got {slopes!r}")
    if slopes is False:
        return fit_one(d, False)
    if slopes is True:
        if len(d.y) <= 2 * max(d.n_participants, d.n_identities):
            raise ValueError(
                f"random slopes need more rows than random effects: {len(d.y)} rows "
                f"for {2 * max(d.n_participants, d.n_identities)} effects"
            )
        return fit_one(d, True)
    reason = _both_conditions(d)
    if reason is None:
        try:
            return fit_one(d, True, tentative=True)
        except _SlopesRejected as exc:
            reason = str(exc)
        except (ArithmeticError, np.linalg.LinAlgError, ValueError) as exc:
            reason = f"the random-slopes model failed ({exc})"
    fit = fit_one(d, False)
    fit.notes.insert(0, f"random intercepts only: {reason}")
    return fit


def _coefficients(tests: _Tests, names: list[str]) -> list[dict[str, Any]]:
    """The test of every fixed effect (R's coef(summary(m)))."""
    return [{"term": name, **tests.contrast(np.eye(len(names))[i])} for i, name in enumerate(names)]


def _fit_lmm(d: _Data, slopes: bool, tentative: bool = False) -> MixedFit:
    """Fit one LMM (fixed random-effects structure) and test the condition coefficient."""
    design = _Design(_terms(d, slopes), d.X, d.y)
    model = _LMM(design)
    # a large sparse design uses exact gradients (a few factorisations each instead of 2k + 1);
    # a study's fully crossed design keeps the finite differences its figures were checked with
    exact = model.reml_and_gradient if design.sparse else None
    result = _minimize(model.reml, design.theta_start, value_and_gradient=exact)
    theta = design.canonical(result.x)
    state = model.pls(theta)
    dof = model.n - model.p
    sigma = math.sqrt(state["pwrss"] / dof)
    notes = list(d.notes) + _singular_notes(design, theta)
    singular = len(notes) > len(d.notes)
    _check_tentative(tentative, singular, True, notes)
    derivatives = None
    if design.sparse:
        H, jacobians, gradient, profiled = model.varpar_derivatives(theta, sigma)
        derivatives = (H, jacobians)
        converged, _gradient, why = _lme4_convergence(
            model.reml, theta, float(result.fun), profiled, gradient
        )
    else:
        converged, _gradient, why = _lme4_convergence(model.reml, result.x, float(result.fun))
    converged = converged and bool(result.success)
    if why:
        notes.append(why)
    _check_tentative(tentative, singular, converged, notes)
    vcov, jacobians, A = _satterthwaite(model, theta, sigma, notes, derivatives)
    tests = _Tests("t", state["beta"], vcov, jacobians, A)
    coefficients = _coefficients(tests, d.columns)
    main = coefficients[d.columns.index(d.coefficient)]
    if main["df"] is None:
        # lmerTest's 2 V^2 / 0: a t with infinite df is the normal distribution
        notes.append(
            "the Satterthwaite df are unbounded (no variance parameter moves the "
            "standard error): p and CI use the normal distribution"
        )
    return MixedFit(
        method="lmm",
        random_effects=_random_effects(
            design, theta, sigma**2, [d.names["participant"], d.names["identity"]]
        ),
        residual_variance=sigma**2,
        singular=singular,
        converged=converged,
        notes=notes,
        formula=_formula(d, slopes),
        deviance=float(result.fun),
        **_shared(d, slopes, coefficients, vcov, design.p + design.n_theta + 1),
        tests=tests,
    )


def _shared(
    d: _Data,
    slopes: bool,
    coefficients: list[dict[str, Any]],
    vcov: np.ndarray,
    n_parameters: int,
) -> dict[str, Any]:
    """MixedFit fields common to every family: the condition coefficient's test (t with its
    Satterthwaite df, or z with none), the counts and the fixed-effects table."""
    main = next(c for c in coefficients if c["term"] == d.coefficient)
    return {
        **{key: main[key] for key in ("estimate", "se", "statistic", "df", "p_value")},
        "ci_low": main["ci_low"],
        "ci_high": main["ci_high"],
        "n_obs": len(d.y),
        "n_participants": d.n_participants,
        "n_identities": d.n_identities,
        "n_parameters": n_parameters,
        "coefficient": d.coefficient,
        "levels": list(d.levels),
        "fixed": d.fixed,
        "coefficients": coefficients,
        "vcov": vcov.tolist(),
        "n_dropped": d.n_dropped,
        "slopes": slopes,
        "factor_levels": d.factor_levels,
    }


def _ml_deviance(d: _Data, slopes: bool) -> tuple[float, int, bool]:
    """ML deviance (-2 log L) of an LMM, its number of parameters and lme4's convergence check.

    As lme4's refitML, used by anova(): d(theta) = log|L|^2 + n [1 + log(2 pi r^2 / n)].
    """
    design = _Design(_terms(d, slopes), d.X, d.y)
    model = _LMM(design)
    exact = model.ml_and_gradient if design.sparse else None
    result = _minimize(model.ml, design.theta_start, value_and_gradient=exact)
    gradient = exact(result.x)[1] if exact is not None else None
    converged, _gradient, _why = _lme4_convergence(
        model.ml, result.x, float(result.fun), gradient=gradient
    )
    return float(result.fun), design.n_theta + design.p + 1, converged and bool(result.success)


def _glmm_optimum(
    d: _Data, slopes: bool
) -> tuple[_Design, _GLMM, np.ndarray, np.ndarray, optimize.OptimizeResult]:
    """glmer's two optimisation stages: the design, model, theta, (theta, beta) and result."""
    design = _Design(_terms(d, slopes), d.X, d.y)
    model = _GLMM(design)
    k = design.n_theta
    # glmer's two stages: (1) theta with beta inside PIRLS (nAGQ = 0), from which every
    # later PIRLS starts; (2) Laplace deviance over (theta, beta) jointly.
    first = model.pirls(design.theta_start, None)
    model.lp0 = first["lin"]
    # Stage 1 only supplies the start and lp0, to which the result is insensitive
    # (second order), so it stops earlier than stage 2.
    stage1 = _minimize(model.laplace0, design.theta_start, ftol=1e-10, forward=True)
    start = model.pirls(stage1.x, None)
    model.lp0 = start["lin"]
    result = _minimize(model.laplace, np.concatenate([stage1.x, start["beta"]]), forward=True)
    theta = design.canonical(result.x[:k])
    return design, model, theta, np.concatenate([theta, result.x[k:]]), result


def _glmm_deviance(d: _Data, slopes: bool) -> tuple[float, int, bool]:
    """Laplace deviance of a GLMM, its number of parameters and whether it was finite."""
    design, model, _theta, pars, result = _glmm_optimum(d, slopes)
    deviance = float(model.laplace(pars))
    return deviance, design.n_theta + design.p, bool(result.success)


def _fit_glmm(d: _Data, slopes: bool, tentative: bool = False) -> MixedFit:
    """Fit one logistic GLMM by Laplace and test the condition coefficient (Wald z)."""
    design, model, theta, pars, result = _glmm_optimum(d, slopes)
    k = design.n_theta
    notes = list(d.notes) + _singular_notes(design, theta)
    singular = len(notes) > len(d.notes)
    _check_tentative(tentative, singular, True, notes)
    fx = model.laplace(pars)
    # lme4 >= 1.1 (vcov.merMod, use.hessian = TRUE): the beta block of 2 H^-1, H the
    # finite-difference Hessian over (theta, beta); RX-based covariance if H is not usable.
    H = numderiv.central_hessian(model.laplace, pars, fx)
    converged, _gradient, why = _lme4_convergence(model.laplace, pars, fx, H)
    converged = converged and bool(result.success)
    if why:
        notes.append(why)
    _check_tentative(tentative, singular, converged, notes)
    try:
        V = 2.0 * np.linalg.inv(H)[k:, k:]
        usable = bool(np.all(np.isfinite(V)) and np.linalg.eigvalsh(V).min() > 0)
    except np.linalg.LinAlgError:
        usable = False
    if not usable:
        notes.append(
            "the finite-difference Hessian is not positive definite: standard errors "
            "use the conditional (RX) covariance instead"
        )
        V = model.vcov_rx(model.pirls(theta, pars[k:]))
    tests = _Tests("z", pars[k:], V)
    coefficients = _coefficients(tests, d.columns)
    return MixedFit(
        method="glmm",
        random_effects=_random_effects(
            design, theta, 1.0, [d.names["participant"], d.names["identity"]]
        ),
        residual_variance=None,
        singular=singular,
        converged=converged,
        notes=notes,
        formula=_formula(d, slopes),
        deviance=float(fx),
        **_shared(d, slopes, coefficients, V, design.p + design.n_theta),
        tests=tests,
    )


def fit_lmm(
    data: pd.DataFrame,
    dv: str = "value",
    condition: str = "condition",
    participant: str = "participant",
    identity: str = "identity",
    slopes: bool | str = "auto",
    *,
    fixed: str | None = None,
    baseline: str = REFERENCE_CONDITION,
    treatment: str | None = None,
    reference: dict[str, str] | None = None,
    factors: tuple[str, ...] | list[str] = (),
) -> MixedFit:
    """Fit a linear mixed model with crossed random effects by REML, as lme4::lmer.

    The model is ``dv ~ condition + (1 | participant) + (1 | identity)`` (Judd, Westfall &
    Kenny 2012), with ``real`` as the baseline so the coefficient is ai minus real::

        y = X beta + Z b + e,   b = Lambda(theta) u,   u ~ N(0, sigma^2 I),   e ~ N(0, sigma^2 I)

    theta is found by minimising the profiled REML criterion (Bates et al. 2015, eq. 42)

        d_R(theta) = log|L|^2 + log|R_X|^2 + (n - p) [1 + log(2 pi r^2 / (n - p))],

    where L L' = Lambda' Z'Z Lambda + I, R_X' R_X = X'X - R_ZX' R_ZX and r^2 is the penalised
    residual sum of squares. The t test of the coefficient uses Satterthwaite's (1946)
    degrees of freedom computed as lmerTest does (Kuznetsova et al. 2017): the gradient of
    Var(beta) with respect to (theta, sigma) and the inverse Hessian of the REML deviance,
    both by Richardson-extrapolated finite differences.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial (long format).
    dv : str
        Numeric response column.
    condition : str
        Column with the values ``real`` and ``ai``.
    participant, identity : str
        Grouping columns of the crossed random effects.
    slopes : {"auto", True, False}
        True fits ``(1 + condition | participant) + (1 + condition | identity)`` with a
        general 2 x 2 covariance per grouping (lme4's lower-triangular theta); False
        fits intercepts only; "auto" tries slopes when every participant and every identity
        has data in both conditions and falls back to intercepts (with a note) when the
        slope fit is singular or fails.
    fixed : str, optional
        Fixed effects as a formula-like text over column names (``+``, ``*``, ``:``; see
        :func:`parse_fixed`), e.g. ``"condition * gender"``; default the condition alone.
        Text columns are factors with treatment contrasts, numeric columns enter as numbers.
    baseline, treatment : str
        The condition's baseline level (default ``real``) and the other level (default: the
        one other value in the data); the coefficient is ``<condition><treatment>``.
    reference : dict, optional
        Baseline level of other factors, e.g. ``{"gender": "m"}`` (default: the first sorted).
    factors : sequence of str
        Numeric columns to treat as factors.

    Returns
    -------
    MixedFit
        ``estimate`` (ai minus real), ``se``, ``statistic`` (t), ``df`` (Satterthwaite),
        ``p_value``, ``ci_low``/``ci_high`` (95 %, t with Satterthwaite df),
        ``random_effects`` (variances), ``residual_variance``, ``singular`` (a theta on its
        boundary), ``converged``, ``notes`` and the lme4 ``formula`` fitted.

    Rows with a missing value in any column used are dropped (R's na.omit), counted in the
    first note and ``n_dropped``.

    Raises
    ------
    ValueError
        No rows (or none left), a non-numeric response, a condition value other than the
        two or without the baseline, a grouping column with a single level, a bad ``fixed``.

    References
    ----------
    Bates, D., Maechler, M., Bolker, B. & Walker, S. (2015). Fitting linear mixed-effects
    models using lme4. Journal of Statistical Software, 67(1).
    Kuznetsova, A., Brockhoff, P. B. & Christensen, R. H. B. (2017). lmerTest package: tests
    in linear mixed effects models. Journal of Statistical Software, 82(13).
    Judd, C. M., Westfall, J. & Kenny, D. A. (2012). Treating stimuli as a random factor in
    social psychology. Journal of Personality and Social Psychology, 103(1), 54-69.
    Satterthwaite, F. E. (1946). An approximate distribution of estimates of variance
    components. Biometrics Bulletin, 2(6), 110-114.
    """
    d = _prepare(
        data,
        dv,
        condition,
        participant,
        identity,
        False,
        fixed,
        baseline,
        treatment,
        reference,
        factors,
    )
    with _one_blas_thread():
        return _fit_with_slopes(_fit_lmm, d, slopes)


def fit_glmm(
    data: pd.DataFrame,
    dv: str = "correct",
    condition: str = "condition",
    participant: str = "participant",
    identity: str = "identity",
    slopes: bool | str = "auto",
    *,
    fixed: str | None = None,
    baseline: str = REFERENCE_CONDITION,
    treatment: str | None = None,
    reference: dict[str, str] | None = None,
    factors: tuple[str, ...] | list[str] = (),
) -> MixedFit:
    """Fit a logistic mixed model with crossed random effects by Laplace, as lme4::glmer.

    The model is ``logit P(dv = 1) = beta0 + beta1 [condition = ai] + b_participant +
    b_identity`` with b = Lambda(theta) u, u ~ N(0, I). For each (theta, beta) the conditional
    modes u are found by penalised iteratively reweighted least squares, and the Laplace
    deviance (Bates et al. 2015; lme4's glmerLaplace)

        d(theta, beta) = sum(deviance residuals) + |u|^2 + log|L|^2,
        L L' = Lambda' Z' W Z Lambda + I,  W = diag(mu (1 - mu)),

    is minimised jointly over (theta, beta) (glmer's second stage, nAGQ = 1). As in lme4 >= 1.1,
    the covariance of beta is the beta block of 2 H^-1, H the finite-difference Hessian
    (deriv12, step 1e-4) of d over (theta, beta); the test is a Wald z.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial (long format).
    dv : str
        0/1 response column (e.g. ``correct``).
    condition, participant, identity, slopes, fixed, baseline, treatment, reference, factors
        As in :func:`fit_lmm`.

    Returns
    -------
    MixedFit
        ``estimate`` (log odds ratio, ai minus real), ``se``, ``statistic`` (z), ``df`` None,
        ``p_value``, ``ci_low``/``ci_high`` (95 % Wald), ``random_effects`` (variances on the
        logit scale), ``residual_variance`` None, ``singular``, ``converged``, ``notes``,
        ``formula``.

    Raises
    ------
    ValueError
        As :func:`fit_lmm`, and a response other than 0/1.

    References
    ----------
    Bates, D., Maechler, M., Bolker, B. & Walker, S. (2015). Fitting linear mixed-effects
    models using lme4. Journal of Statistical Software, 67(1).
    Judd, C. M., Westfall, J. & Kenny, D. A. (2012). Treating stimuli as a random factor in
    social psychology. Journal of Personality and Social Psychology, 103(1), 54-69.
    """
    d = _prepare(
        data,
        dv,
        condition,
        participant,
        identity,
        True,
        fixed,
        baseline,
        treatment,
        reference,
        factors,
    )
    with _one_blas_thread():
        return _fit_with_slopes(_fit_glmm, d, slopes)


# ----------------------------------------------------------------------------- moderators


@dataclasses.dataclass
class Family:
    """How to fit one model family for :func:`moderation`.

    ``fit(data, dv=, condition=, participant=, identity=, slopes=, fixed=, baseline=,
    treatment=, reference=, factors=)`` returns a fit with ``contrast``, ``joint``,
    ``names``, ``slopes`` and ``deviance``; ``ml_deviance(data, fixed, slopes, **same)``
    returns (-2 log L, number of parameters) of the maximum-likelihood fit that a
    likelihood-ratio test compares.
    """

    fit: Callable[..., Any]
    ml_deviance: Callable[..., tuple[float, int]]
    # True when fit().deviance is already -2 log L at the ML estimate (GLMM, Laplace), so the
    # full model of a likelihood-ratio test needs no second fit (uses fit().n_parameters)
    fit_is_ml: bool = False


def prepare_named(data: pd.DataFrame, fixed: str, binary: bool, names: dict[str, Any]) -> _Data:
    """`_prepare` with the column and level arguments of a fit given by name (as
    :func:`moderation` passes them to a family's ``ml_deviance``)."""
    return _prepare(
        data,
        names["dv"],
        names["condition"],
        names["participant"],
        names["identity"],
        binary,
        fixed,
        names.get("baseline", REFERENCE_CONDITION),
        names.get("treatment"),
        names.get("reference"),
        names.get("factors", ()),
    )


def _ml_of(kind: str) -> Callable[..., tuple[float, int]]:
    """ML deviance and parameter count of an LMM or GLMM with the given fixed effects."""

    def deviance(data: pd.DataFrame, fixed: str, slopes: bool, **names: Any) -> tuple[float, int]:
        d = prepare_named(data, fixed, kind == "glmm", names)
        with _one_blas_thread():
            value, n_par, _ok = (_glmm_deviance if kind == "glmm" else _ml_deviance)(d, slopes)
        return value, n_par

    return deviance


def _clmm_fit(*args: Any, **kw: Any) -> Any:
    """analysis.clmm.fit_clmm, imported when first used (that module imports this one)."""
    from analysis.clmm import fit_clmm

    return fit_clmm(*args, **kw)


def _clmm_ml(*args: Any, **kw: Any) -> tuple[float, int]:
    """analysis.clmm.ml_deviance, imported when first used."""
    from analysis.clmm import ml_deviance

    return ml_deviance(*args, **kw)


# The fits are looked up when called, so that fit_lmm / fit_glmm can be replaced (tests).
FAMILIES: dict[str, Family] = {
    "lmm": Family(lambda *args, **kw: fit_lmm(*args, **kw), _ml_of("lmm")),
    "glmm": Family(lambda *args, **kw: fit_glmm(*args, **kw), _ml_of("glmm"), fit_is_ml=True),
    "clmm": Family(_clmm_fit, _clmm_ml, fit_is_ml=True),
}


@dataclasses.dataclass
class Moderation:
    """Does the condition effect differ between the levels of a moderator?

    ``levels``: one row per moderator level with the simple effect of condition there
    (treatment minus baseline), its SE, test and CI, and the numbers of trials, participants
    and identities; ``lrt``: the likelihood-ratio test of the model with the interaction
    against the model without (R's ``anova(m0, m1)``, ML or Laplace fits); ``interaction``:
    the Satterthwaite F (LMM) or Wald chi-square (GLMM, CLMM) of the interaction
    coefficients in the full model; ``coefficients``: the full model's fixed effects.
    """

    outcome: str
    moderator: str
    method: str
    tested: bool
    formula: str | None
    reference: str | None
    levels: list[dict[str, Any]]
    lrt: dict[str, Any] | None
    interaction: dict[str, Any] | None
    coefficients: list[dict[str, Any]]
    n_obs: int
    n_dropped: int
    slopes: bool | None
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return _plain(dataclasses.asdict(self))

    def table(self) -> pd.DataFrame:
        """Tidy table: one row per level, with the interaction tests repeated on each row."""
        rows = []
        for level in self.levels:
            rows.append(
                {
                    "outcome": self.outcome,
                    "moderator": self.moderator,
                    "method": self.method,
                    **level,
                    "lrt_chisq": (self.lrt or {}).get("statistic"),
                    "lrt_df": (self.lrt or {}).get("df"),
                    "lrt_p_value": (self.lrt or {}).get("p_value"),
                }
            )
        return pd.DataFrame(rows)


def _complete_levels(
    data: pd.DataFrame, moderator: str, condition: str, levels: list[str]
) -> dict[str, dict[str, int]]:
    """Trials of each condition at each moderator level."""
    counts: dict[str, dict[str, int]] = {}
    labels = data[moderator].map(_label).astype(str)
    for value in sorted(set(labels)):
        at = data[condition][labels == value].astype(str)
        counts[value] = {c: int((at == c).sum()) for c in levels}
    return counts


def _separated_levels(
    data: pd.DataFrame, outcome: str, moderator: str, condition: str, levels: list[str]
) -> dict[str, str]:
    """Moderator levels at which the outcome separates the two conditions, with the side.

    Every treatment value at or above every baseline value (or the reverse) leaves a logistic
    or ordinal model no finite effect there: the estimate runs off towards infinity.
    """
    labels = data[moderator].map(_label).astype(str)
    y = pd.to_numeric(data[outcome], errors="coerce")
    cond = data[condition].astype(str)
    baseline, treated = levels
    out = {}
    for value in sorted(set(labels)):
        a, b = y[(labels == value) & (cond == treated)], y[(labels == value) & (cond == baseline)]
        if a.empty or b.empty:
            continue
        if a.min() >= b.max():
            out[value] = f"every {treated} value is at or above every {baseline} value"
        elif b.min() >= a.max():
            out[value] = f"every {baseline} value is at or above every {treated} value"
    return out


def _groups_per_level(data: pd.DataFrame, moderator: str, column: str) -> dict[str, int]:
    """Distinct participants (or identities) at each moderator level."""
    labels = data[moderator].map(_label).astype(str)
    return {str(k): int(v) for k, v in data[column].groupby(labels).nunique().items()}


def moderation(
    data: pd.DataFrame,
    outcome: str,
    moderator: str,
    family: str = "lmm",
    *,
    condition: str = "condition",
    participant: str = "participant",
    identity: str = "identity",
    slopes: bool | str = "auto",
    baseline: str = REFERENCE_CONDITION,
    treatment: str | None = None,
    reference: str | None = None,
    level: float = 0.95,
) -> Moderation:
    """Test whether a moderator changes the condition effect, and estimate it at each level.

    Fits ``outcome ~ condition * moderator`` with crossed random effects of participants and
    identities (the moderator is a factor with treatment contrasts), as R's
    ``lmer(y ~ condition * moderator + (1 | participant) + (1 | identity))``, ``glmer`` or
    ``ordinal::clmm(ordered(y) ~ condition * moderator + ...)``;

    * the interaction test is the likelihood-ratio test of that model against
      ``condition + moderator`` (R's ``anova(m0, m1)``: both refitted by ML for an LMM; the
      Laplace likelihoods of a GLMM or CLMM), with the Satterthwaite F (LMM, lmerTest's
      ``anova(m1)``) or the Wald chi-square (GLMM, CLMM) of the interaction coefficients
      beside it;
    * the simple effect at each level is ``conditionX + conditionX:moderatorL`` (the condition
      coefficient after re-levelling the moderator at L), with its Satterthwaite t (LMM) or
      Wald z (GLMM, CLMM) and ``level`` CI.

    Problems become notes, not errors: rows with a missing outcome or moderator are dropped
    and counted; a moderator with one level is not tested; a level with trials in one
    condition only has no estimable effect (its row says so), and the reference level is
    the first level with both conditions unless one is named. For a GLMM or CLMM, a level at
    which the outcome separates the conditions (every AI value at or above every real one,
    or the reverse) has no finite effect: its row says so instead of printing the runaway
    estimate. A level whose trials come from one identity (or one participant) is
    estimated, with a note that its effect rests on that one person. The random-effects
    structure chosen for the full model (``slopes="auto"``) is used for both models of the
    test.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial, with the moderator as a column (e.g. merged from identities.csv or
        participants.csv).
    outcome : str
        Response column (numeric for ``lmm``, 0/1 for ``glmm``).
    moderator : str
        Column whose levels are compared (numbers are treated as levels too).
    family : str
        A key of :data:`FAMILIES`: ``lmm``, ``glmm`` (0/1 outcome) or ``clmm`` (ordinal
        ratings, :func:`analysis.clmm.fit_clmm`).
    reference : str, optional
        Moderator level used as the baseline of the treatment contrasts.

    Returns
    -------
    Moderation
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if moderator in (condition, participant, identity, outcome):
        raise ValueError(f"the moderator {moderator!r} is already a column of the model")
    for column in (outcome, condition, participant, identity, moderator):
        if column not in data.columns:
            raise ValueError(f"column {column!r} is missing from data")
    notes: list[str] = []
    used = [outcome, condition, participant, identity, moderator]
    rows = _drop_missing(data, used, notes)
    n_dropped = len(data) - len(rows)
    cond = rows[condition].astype(str)
    present = sorted(set(cond))
    treated = treatment or next((c for c in present if c != baseline), None)
    counts = _complete_levels(rows, moderator, condition, [baseline, str(treated)])
    empty = Moderation(
        outcome, moderator, family, False, None, None, [], None, None, [], len(rows),
        n_dropped, None, notes,
    )  # fmt: skip
    if len(counts) < 2:
        only = next(iter(counts), None)
        notes.append(
            f"{moderator} has "
            + (f"one level ({only!r})" if only is not None else "no values")
            + " in the data: there is nothing to compare, so it was not tested"
        )
        return empty
    complete = [lv for lv, c in counts.items() if min(c.values()) > 0]
    for lv, c in counts.items():
        if lv not in complete:
            lacking = [k for k, v in c.items() if v == 0]
            notes.append(
                f"{moderator} = {lv!r} has no {' or '.join(lacking)} trials: "
                "the condition effect cannot be estimated there"
            )
    if len(complete) < 2:
        notes.append(
            f"fewer than two levels of {moderator} have trials in both conditions: "
            "the interaction cannot be tested"
        )
        return empty
    if reference is not None and reference not in complete:
        notes.append(
            f"the named reference {reference!r} of {moderator} is not a level with trials "
            f"in both conditions; {complete[0]!r} is used instead"
        )
        reference = None
    if reference is None:
        # the fit sorts levels as R's factor() does; the first complete level is the baseline
        ordered, _m, _n = _factor_columns(rows[moderator], moderator, None)
        reference = next(lv for lv in ordered if lv in complete)
    names = {
        "dv": outcome,
        "condition": condition,
        "participant": participant,
        "identity": identity,
        "baseline": baseline,
        "treatment": treatment,
        "reference": {moderator: reference},
        "factors": (moderator,),
    }
    fit_names = {k: v for k, v in names.items() if k != "dv"}
    separated = (
        _separated_levels(rows, outcome, moderator, condition, [baseline, str(treated)])
        if family != "lmm"
        else {}
    )
    for lv, side in separated.items():
        notes.append(
            f"{moderator} = {lv!r}: {side} (perfect separation): the condition effect there "
            "has no finite estimate, and the interaction test leans on that level"
        )
    identities = _groups_per_level(rows, moderator, identity)
    people = _groups_per_level(rows, moderator, participant)
    for lv in counts:
        for n_groups, what in ((identities, "identity"), (people, "participant")):
            if n_groups.get(lv) == 1:
                notes.append(
                    f"{moderator} = {lv!r} has trials of one {what} only: its estimate rests "
                    f"on that one {what} and cannot be told apart from its own effect"
                )
    fitter = FAMILIES[family]
    full = fitter.fit(
        rows, dv=outcome, slopes=slopes, fixed=f"{condition} * {moderator}", **fit_names
    )
    chosen = bool(full.slopes)
    notes.extend(n for n in full.notes if n not in notes)
    coefficient = full.coefficient
    interaction = [n for n in full.names if n.startswith(f"{coefficient}:{moderator}")]
    table = []
    for lv in _factor_columns(rows[moderator], moderator, reference)[0]:
        entry: dict[str, Any] = {
            "level": lv,
            "n_trials": sum(counts[lv].values()),
            f"n_{baseline}": counts[lv][baseline],
            f"n_{treated}": counts[lv][str(treated)],
            "n_participants": people.get(lv, 0),
            "n_identities": identities.get(lv, 0),
        }
        term = f"{coefficient}:{moderator}{lv}"
        if lv in separated:
            entry.update(
                estimate=None, se=None, statistic=None, statistic_name=None, df=None,
                p_value=None, ci_low=None, ci_high=None,
                note=f"no finite estimate: perfect separation ({separated[lv]})",
            )  # fmt: skip
        elif lv == reference:
            entry.update(full.contrast({coefficient: 1.0}, level), note=None)
        elif term in full.names:
            entry.update(full.contrast({coefficient: 1.0, term: 1.0}, level), note=None)
        else:
            entry.update(
                estimate=None, se=None, statistic=None, statistic_name=None, df=None,
                p_value=None, ci_low=None, ci_high=None,
                note="not estimable: trials in one condition only",
            )  # fmt: skip
        table.append(entry)
    lrt = None
    joint = full.joint(interaction) if interaction else None
    if interaction:
        if fitter.fit_is_ml:
            dev1, k1 = float(full.deviance), int(full.n_parameters)
        else:
            dev1, k1 = fitter.ml_deviance(rows, f"{condition} * {moderator}", chosen, **names)
        dev0, k0 = fitter.ml_deviance(rows, f"{condition} + {moderator}", chosen, **names)
        chisq = max(dev0 - dev1, 0.0)
        lrt = {
            "statistic": chisq,
            "statistic_name": "chisq",
            "df": k1 - k0,
            "p_value": float(stats.chi2.sf(chisq, k1 - k0)),
            "deviance_without": dev0,
            "deviance_with": dev1,
        }
    return Moderation(
        outcome=outcome,
        moderator=moderator,
        method=family,
        tested=lrt is not None,
        formula=full.formula,
        reference=reference,
        levels=table,
        lrt=lrt,
        interaction=joint,
        coefficients=full.coefficients,
        n_obs=full.n_obs,
        n_dropped=n_dropped,
        slopes=chosen,
        notes=notes,
    )
