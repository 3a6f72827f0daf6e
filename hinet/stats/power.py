"""Power of the paired t test under an estimand's variance components.

Minimum detectable effect (two-sided alpha, 80% power by default) from the noncentral t distribution with the
df implied by the components (:func:`minimum_detectable_effect`), and the number of seeds needed to detect
``delta`` with the scenes fixed (:func:`seeds_needed`; ``inf`` where the scene term alone is too large). In the
one-level case these equal statsmodels ``TTestPower`` (checked in the tests).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from .anova import VarianceComponents


def power_two_sided(effect_over_se: float | np.ndarray, dof: float | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Power of the two-sided level-``alpha`` t test when the true mean is ``effect_over_se`` standard errors
    (noncentral t, both tails, as statsmodels ``TTestPower``)."""
    crit = stats.t.ppf(1 - alpha / 2, dof)
    nc = np.asarray(effect_over_se, dtype=float)
    lower = np.nan_to_num(stats.nct.sf(crit, dof, -nc), nan=0.0)  # = cdf(-crit, dof, nc); scipy may give NaN
    return stats.nct.sf(crit, dof, nc) + lower  # for a negligible tail far out, hence the guard


def _nc_for_power(dof: float, alpha: float, power: float) -> float:
    """Noncentrality (effect / SE) at which the two-sided t test has ``power``."""
    def gap(nc: float) -> float:
        return float(power_two_sided(nc, dof, alpha)) - power

    hi = 8.0
    while gap(hi) < 0:  # power rises with nc; scipy's nct is unreliable far out, so widen the bracket gradually
        hi *= 2
        if hi > 1e4:
            return math.inf
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10))


def minimum_detectable_effect(components: VarianceComponents, n_seeds: int | None = None,
                              n_scenes: int | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |difference| (value units) detected with probability ``power`` by the two-sided level-``alpha``
    test, with ``n_seeds`` x ``n_scenes`` (default: the observed numbers); NaN if the components are unknown."""
    s = components.n_seeds if n_seeds is None else n_seeds
    var = components.var_mean(s, n_scenes)
    if s < 2 or not np.isfinite(var):
        return math.nan
    dof = components.dof(s, n_scenes)
    return _nc_for_power(dof, alpha, power) * math.sqrt(var)


def seeds_needed(components: VarianceComponents, delta: float, alpha: float = 0.05, power: float = 0.8,
                 max_seeds: int = 1000) -> float:
    """Smallest number of seeds (>= 2; images fixed at the observed number) whose two-sided level-``alpha`` test
    detects a difference of ``delta`` with probability ``power``. ``inf`` if no number up to ``max_seeds`` does
    (the image term var_image / I alone is too large), NaN if the components are unknown."""
    if not np.isfinite(components.seed):
        return math.nan
    if minimum_detectable_effect(components, max_seeds, alpha=alpha, power=power) > delta:
        return math.inf
    if minimum_detectable_effect(components, 2, alpha=alpha, power=power) <= delta:
        return 2.0
    lo, hi = 2, 4  # MDE decreases with the number of seeds: double until delta is reached, then bisect
    while hi < max_seeds and minimum_detectable_effect(components, hi, alpha=alpha, power=power) > delta:
        lo, hi = hi, min(2 * hi, max_seeds)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if minimum_detectable_effect(components, mid, alpha=alpha, power=power) <= delta:
            hi = mid
        else:
            lo = mid
    return float(hi)
