"""Drift seen in the inputs, before any answer is lost and at no upload cost.

When night falls or fog rolls in, the observations the policy computes anyway (how far the surrogate's
answer moves at the cheap rungs, each rung's size ratio) shift together. `InputDrift` keeps a slow
baseline of their mean and spread and a fast mean of the latest requests; the drift score is the mean
over features of the squared standardized gap between the two. Under stationary traffic the fast mean's
noise keeps the score near `ln 2 / (2 * fast_halflife)` per feature; a shift of half a standard
deviation in a third of the features lifts it about tenfold above that. After an alarm the baseline
follows the recent mean for a few fast halflives (the new regime settling in) before alarms re-arm, so
one change raises one alarm, not one per request until the slow mean catches up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from adacompress.errors import AdaCompressError


class DriftSettingsError(AdaCompressError, ValueError):
    code = "bad_drift_settings"


@dataclass(frozen=True)
class InputDriftSettings:
    """How fast the baseline and the recent mean move, and when their gap is drift."""

    fast_halflife_requests: float = 50.0
    """Requests after which a past observation weighs half in the recent mean."""
    slow_halflife_requests: float = 1000.0
    """The same for the baseline's mean and variance."""
    threshold: float = 0.1
    """Drift score (mean squared standardized gap, per feature) that raises an alarm."""
    warmup_requests: int = 200
    """Requests observed before the baseline is trusted (no alarm before)."""

    def __post_init__(self) -> None:
        if not 1 <= self.fast_halflife_requests < self.slow_halflife_requests:
            raise DriftSettingsError(f"halflives {self.fast_halflife_requests} (fast) and "
                                     f"{self.slow_halflife_requests} (slow) must satisfy 1 <= fast < slow")
        if self.threshold <= 0 or self.warmup_requests < 1:
            raise DriftSettingsError(f"threshold {self.threshold} must be > 0 and warmup {self.warmup_requests} >= 1")


def _weight(halflife: float) -> float:
    """EWMA weight of the newest value for a given halflife."""
    return 1.0 - 2.0 ** (-1.0 / halflife)


@dataclass
class InputDrift:
    """Running baseline and recent mean of the observations; `update` says when they part."""

    settings: InputDriftSettings = field(default_factory=InputDriftSettings)
    seen: int = 0
    alarms: int = 0
    score: float = 0.0
    _mean: np.ndarray | None = None
    _variance: np.ndarray | None = None
    _recent: np.ndarray | None = None
    _settling: int = 0
    """Requests left during which the baseline follows the recent mean after an alarm."""

    def update(self, observation: np.ndarray) -> bool:
        """Take one observation; True when it completes a drift (an alarm)."""
        x = np.asarray(observation, dtype=np.float64).ravel()
        if self._mean is None or self._mean.shape != x.shape:  # first observation, or a policy of another shape
            self._mean, self._variance, self._recent, self.seen = x.copy(), np.zeros_like(x), x.copy(), 0
        assert self._variance is not None and self._recent is not None
        self.seen += 1
        slow, fast = _weight(self.settings.slow_halflife_requests), _weight(self.settings.fast_halflife_requests)
        # The baseline's effective weight starts at 1/n, so the first requests set it instead of the first one alone.
        slow = max(slow, 1.0 / self.seen)
        gap = x - self._mean
        self._mean += slow * gap
        self._variance = (1.0 - slow) * (self._variance + slow * gap * gap)
        self._recent += fast * (x - self._recent)
        spread = self._variance + 1e-6 + 1e-3 * float(np.mean(self._variance))
        self.score = float(np.mean((self._recent - self._mean) ** 2 / spread))
        if self._settling > 0:
            self._settling -= 1
            self._mean = self._recent.copy()
            return False
        if self.seen <= self.settings.warmup_requests or not math.isfinite(self.score) \
                or self.score < self.settings.threshold:
            return False
        self.alarms += 1
        self._mean = self._recent.copy()  # the new regime is the baseline now
        self._settling = round(3 * self.settings.fast_halflife_requests)
        return True
