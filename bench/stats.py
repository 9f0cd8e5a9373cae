"""Robust statistics for noisy timings: median and IQR, never the mean of a handful of samples.

On a 2-core virtual machine single samples swing several-fold (page faults, other processes), so
every figure is a median, its dispersion the interquartile range, and repeatability the largest
distance of any run from the median of all runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Median, quartiles and extremes of a list of samples (all None when there is none)."""

    n: int
    median: float | None
    q1: float | None
    q3: float | None
    low: float | None
    high: float | None

    @property
    def iqr(self) -> float | None:
        return None if self.q1 is None or self.q3 is None else self.q3 - self.q1


def summarize(samples: Sequence[float]) -> Summary:
    values = sorted(float(v) for v in samples if v is not None)
    if not values:
        return Summary(0, None, None, None, None, None)
    q1, q3 = quartiles(values)
    return Summary(len(values), statistics.median(values), q1, q3, values[0], values[-1])


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartile; with one or two samples both are the extremes."""
    if len(values) < 3:
        return min(values), max(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def median(samples: Sequence[float]) -> float | None:
    return summarize(samples).median


def spread(samples: Sequence[float]) -> float | None:
    """Largest relative distance of a sample from the median (0.15 = every run within 15%)."""
    mid = median(samples)
    if mid is None:  # no samples
        return None
    if mid == 0:
        return 0.0 if all(v == 0 for v in samples) else float("inf")
    return max(abs(v - mid) for v in samples) / mid


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def identical(values: Sequence[object]) -> bool:
    return len({repr(v) for v in values}) <= 1
