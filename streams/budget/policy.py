"""The allocation policy: how a session's effective limit is shared between components.

Every share is either a fraction of the effective limit (a float, `0.35`) or absolute tokens (an
int, `2048`). The effective limit is the context limit minus the output reservation, and minus an
extra margin when the tokenizer only estimates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from streams.budget.model import Component
from streams.errors import PolicyError

Share = int | float

_COMPONENT_FIELDS: tuple[str, ...] = tuple(c.value for c in Component)


@dataclass(frozen=True, slots=True)
class Policy:
    """Shares per component, the output reservation and the alert thresholds of one session."""

    system_prompt: Share = 0.10
    tool_schemas: Share = 0.05
    pinned: Share = 0.10
    history: Share = 0.35
    tool_results: Share = 0.25
    rag_context: Share = 0.05
    scratchpad: Share = 0.10
    output_reserve: Share = 0.05
    estimate_margin: float = 0.10
    info: float = 0.70
    warn: float = 0.85
    critical: float = 0.95
    prune_to: float = 1.0
    near_duplicate: float = 0.9
    summary_ratio: float = 0.25

    def __post_init__(self) -> None:
        for name in (*_COMPONENT_FIELDS, "output_reserve"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(f"share {name}={value!r} must be a float fraction or int tokens")
            if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
                raise PolicyError(f"share {name}={value!r} must not be negative")
            if isinstance(value, float) and value > 1.0:
                raise PolicyError(f"share {name}={value!r} is over 100% of the effective limit")
        for name in ("estimate_margin", "info", "warn", "critical", "prune_to", "summary_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise PolicyError(f"{name}={value!r} must be a fraction between 0 and 1")
        if not 0.0 < self.near_duplicate <= 1.0:
            raise PolicyError(f"near_duplicate={self.near_duplicate!r} must be in (0, 1]")
        if not self.info <= self.warn <= self.critical:
            raise PolicyError(
                f"thresholds must rise: info {self.info} <= warn {self.warn} <= "
                f"critical {self.critical}"
            )
        fractions = sum(
            getattr(self, n) for n in _COMPONENT_FIELDS if isinstance(getattr(self, n), float)
        )
        if fractions > 1.0 + 1e-9:
            raise PolicyError(f"component shares add up to {fractions:.0%}, over 100%")

    @classmethod
    def from_mapping(
        cls, overrides: Mapping[str, Any] | None, base: Policy | None = None
    ) -> Policy:
        """Build a policy from a mapping of overrides; unknown keys raise a `PolicyError`."""
        base = base or cls()
        if not overrides:
            return base
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise PolicyError(
                f"unknown policy keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return replace(base, **dict(overrides))

    def overrides(self) -> dict[str, Share]:
        """The fields that differ from the defaults (what a session start carries on the wire)."""
        default = Policy()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
            or type(getattr(self, f.name)) is not type(getattr(default, f.name))
        }

    def budgets(self, context_limit: int, *, estimated: bool = False) -> Budgets:
        """Resolve every share to tokens for one model's context limit."""
        if context_limit <= 0:
            raise PolicyError(f"context limit must be positive, got {context_limit}")
        reserve = _tokens(self.output_reserve, context_limit)
        if estimated:
            reserve += math.ceil(self.estimate_margin * context_limit)
        effective = context_limit - reserve
        if effective <= 0:
            raise PolicyError(
                f"output reservation of {reserve} tokens leaves nothing of a context limit of "
                f"{context_limit}"
            )
        per = {c: _tokens(getattr(self, c.value), effective) for c in Component}
        total = sum(per.values())
        if total > effective:
            raise PolicyError(
                f"component shares add up to {total} tokens, over the effective limit of "
                f"{effective} (context limit {context_limit} minus {reserve} reserved)"
            )
        return Budgets(context_limit, reserve, effective, per, self)


def _tokens(share: Share, of: int) -> int:
    if isinstance(share, float):
        return math.floor(share * of)
    return share


@dataclass(frozen=True, slots=True)
class Budgets:
    """A policy resolved to tokens for one context limit."""

    context_limit: int
    reserved: int
    effective_limit: int
    per_component: dict[Component, int]
    policy: Policy

    def __getitem__(self, component: Component) -> int:
        return self.per_component[component]

    def target(self, component: Component) -> int:
        """Tokens a pruned component is brought down to (its budget times `prune_to`)."""
        return math.floor(self.per_component[component] * self.policy.prune_to)
