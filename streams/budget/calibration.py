"""Calibration of estimated counts against what the provider billed.

Models without an exact tokenizer (Claude, Gemini, open models) are counted by estimate. Agents
report the provider's billed prompt tokens for each call; comparing them with our own count of
the context that call was made with gives the estimate's error. `Calibration` keeps one
correction factor per model, smoothed over reports, and new sessions of that model count with
it, so their estimates converge on the billed truth. A session keeps the factor it started with:
counts are cached once per message, and an agent's local copy of the ledger must count the same.
Exact (tiktoken) models are not calibrated; their drift is only measured.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

SMOOTHING = 0.3
"""Weight of a new report in the running factor (exponential moving average)."""
BOUNDS = (0.5, 2.0)
"""A factor outside these is a broken report (or a wrong model name), not a tokenizer."""
MIN_TOKENS = 32
"""Reports of contexts smaller than this say more about fixed overheads than about the text."""


@dataclass(frozen=True, slots=True)
class UsageSample:
    """One billed call compared with our count of its context."""

    model: str
    family: str
    estimated: bool
    counted: int
    billed: int
    completion: int = 0

    @property
    def error(self) -> float:
        """Relative error of our count against the bill: (counted - billed) / billed."""
        return (self.counted - self.billed) / self.billed if self.billed else 0.0


class Calibration:
    """Per-model correction factors for estimated counts."""

    def __init__(self, smoothing: float = SMOOTHING, bounds: tuple[float, float] = BOUNDS) -> None:
        self.smoothing = smoothing
        self.bounds = bounds
        self._factors: dict[str, float] = {}

    def factor(self, model: str) -> float:
        """The factor new sessions of `model` count with (1.0 until a report arrives)."""
        return self._factors.get(model, 1.0)

    def observe(self, model: str, counted: int, billed: int, factor_used: float) -> float | None:
        """Fold one report in; the new factor, or None when the report is not usable.

        `counted` was computed with `factor_used`; the unscaled estimate is `counted /
        factor_used`, and the factor that would have matched the bill is `billed` over that.
        """
        if counted < MIN_TOKENS or billed < MIN_TOKENS or factor_used <= 0:
            return None
        target = billed / (counted / factor_used)
        low, high = self.bounds
        if not low <= target <= high:
            return None
        current = self._factors.get(model)
        new = target if current is None else current + self.smoothing * (target - current)
        new = round(new, 4)  # a stable value: it names the tokenizer and crosses the wire
        self._factors[model] = new
        return new

    def load(self, model: str, factor: float) -> None:
        """Restore a factor learnt earlier (from a table row)."""
        self._factors[model] = factor

    def items(self) -> Iterator[tuple[str, float]]:
        """Every model's factor."""
        return iter(self._factors.items())

    def as_dict(self) -> Mapping[str, float]:
        """The factors as a plain mapping (for reports)."""
        return dict(self._factors)
