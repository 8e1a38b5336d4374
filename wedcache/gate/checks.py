"""Named checks and their thresholds: ``hit_rate >= t``, ``end_to_end.p95 <= t`` ...

A check is a name, an operator, a target and the measured value. :data:`CHECKS` fixes the
operator of every check name; thresholds are a plain ``{name: target}`` mapping that starts
from the policy's ``[sla]`` (:func:`policy_thresholds`) or a profile, and is overridden by a
TOML file whose keys are check names (:func:`read_thresholds`; ``"end_to_end.p95" = 250`` or
a nested ``[end_to_end]`` table). Per-tier latencies are estimated from the server's
Prometheus histogram buckets (:func:`histogram_quantile`, as PromQL's ``histogram_quantile``).
"""
from __future__ import annotations

import math
import operator
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import GateInputError

TIERS = ("memory", "redis", "postgres")
OPERATORS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, "<": operator.lt,
                                                         "==": operator.eq}
CHECKS: dict[str, str] = {"hit_rate": ">=", "end_to_end.p95": "<=", "end_to_end.p99": "<=",
                          **{f"response_time.{tier}.p95": "<=" for tier in TIERS}, "error_rate": "<",
                          "throughput": ">="}
"""Every check name and its operator (latencies in ms, rates as fractions, throughput in requests/s)."""


@dataclass(frozen=True)
class Check:
    """One check (the gate's, the fault drill's): ``actual OP target``."""

    name: str
    op: str
    target: float
    actual: float | None
    """``None`` (or NaN): not measured, which fails."""

    @property
    def passed(self) -> bool:
        actual = self.actual
        return actual is not None and not math.isnan(actual) and OPERATORS[self.op](actual, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def describe(self) -> str:
        actual = "not measured" if self.actual is None else f"{self.actual:.4g}"
        return f"{self.name}: actual {actual}, target {self.op} {self.target:.4g}"


class Checked:
    """``passed`` and ``failed()`` of a result that holds its ``checks`` (a gate run, a fault drill)."""

    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def policy_thresholds(policy: Any = None) -> dict[str, float]:
    """The ``[sla]`` targets of ``policy`` (default: the shipped one) as check thresholds."""
    from ..policy import load_policy

    sla = (policy or load_policy()).sla
    tiers = {f"response_time.{tier}.p95": float(sla.response_time[tier].ms) for tier in TIERS}
    return {"hit_rate": sla.hit_rate, "end_to_end.p95": float(sla.response_time["end_to_end"].ms),
            "end_to_end.p99": float(sla.dashboard.p99ResponseTime), **tiers, "error_rate": sla.error_rate}


def validated(thresholds: Mapping[str, Any], source: str = "thresholds") -> dict[str, float]:
    """``thresholds`` with known names and finite numbers only; else :class:`GateInputError` naming the key."""
    result = {}
    for name, value in thresholds.items():
        if name not in CHECKS:
            raise GateInputError(f"{source}: unknown check {name!r}; known: {', '.join(CHECKS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise GateInputError(f"{source}: {name} must be a number, got {value!r}")
        result[name] = float(value)
    return result


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        flat.update(_flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def read_thresholds(path: Path) -> dict[str, float]:
    """The thresholds of a TOML file (keys are check names; tables nest with dots)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise GateInputError(f"--thresholds {path}: {error}") from None
    return validated(_flatten(data), f"--thresholds {path}")


def parse_assignment(text: str) -> dict[str, float]:
    """``NAME=VALUE`` of the ``--check`` option."""
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or number is None:
        raise GateInputError(f"--check {text!r}: expected NAME=NUMBER, e.g. end_to_end.p95=250")
    return validated({name.strip(): number}, "--check")


def evaluate(thresholds: Mapping[str, float], actuals: Mapping[str, float | None]) -> list[Check]:
    """One :class:`Check` per threshold whose value was measured (a tier nobody hit has none)."""
    return [Check(name, CHECKS[name], target, float(actuals[name])) for name, target in thresholds.items()
            if actuals.get(name) is not None]


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative ``(upper bound, count)`` buckets, interpolated linearly
    inside the bucket that holds it; ``None`` without observations. A quantile in the ``+Inf``
    bucket is the highest finite bound (nothing better is known)."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower
