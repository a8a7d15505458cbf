"""The per-component token ledger and the snapshot it reports.

The ledger is incremental: adding or removing a message costs O(1), so the streaming worker can
keep one per session and check pressure on every turn without walking the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from streams.budget.model import Component, Message
from streams.budget.policy import Budgets


class AlertLevel(StrEnum):
    """How close a session is to its effective limit."""

    OK = "ok"
    INFO = "info"
    WARN = "warn"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for ok up to 3 for critical, for comparisons."""
        return _RANKS[self]


_RANKS = {AlertLevel.OK: 0, AlertLevel.INFO: 1, AlertLevel.WARN: 2, AlertLevel.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class ComponentUsage:
    """Used and budgeted tokens of one component."""

    component: Component
    used: int
    budget: int

    @property
    def remaining(self) -> int:
        """Tokens still free in this component's share (negative when over)."""
        return self.budget - self.used

    @property
    def utilization(self) -> float:
        """Used over budget; 0 for an empty zero budget."""
        return self.used / self.budget if self.budget else float(self.used > 0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The budget of a session at one point: what dashboards and agents read."""

    context_limit: int
    effective_limit: int
    reserved: int
    used: int
    overhead: int
    level: AlertLevel
    estimated: bool
    message_count: int
    components: dict[Component, ComponentUsage]

    @property
    def utilization(self) -> float:
        """Total used tokens over the effective limit."""
        return self.used / self.effective_limit

    @property
    def remaining(self) -> int:
        """Tokens left before the effective limit."""
        return self.effective_limit - self.used

    @property
    def pressure(self) -> float:
        """The highest utilization of the total and of each prunable component's share."""
        shares = (u.utilization for c, u in self.components.items() if c.prunable and u.budget)
        return max(self.utilization, *shares)

    def headroom(self, component: Component | str) -> int:
        """Tokens a component may still take: its own room, capped by the total room."""
        usage = self.components[Component(component)]
        return max(0, min(usage.remaining, self.remaining))


def alert_level(utilization: float, budgets: Budgets) -> AlertLevel:
    """The alert level for a utilization under a policy's thresholds."""
    policy = budgets.policy
    if utilization >= policy.critical:
        return AlertLevel.CRITICAL
    if utilization >= policy.warn:
        return AlertLevel.WARN
    if utilization >= policy.info:
        return AlertLevel.INFO
    return AlertLevel.OK


class Ledger:
    """Running token totals per component for one session, against its budgets."""

    __slots__ = ("budgets", "count", "overhead", "used")

    def __init__(self, budgets: Budgets, overhead: int = 0) -> None:
        self.budgets = budgets
        self.overhead = overhead
        self.used: dict[Component, int] = dict.fromkeys(Component, 0)
        self.count = 0

    @classmethod
    def of(cls, budgets: Budgets, messages: Iterable[Message], overhead: int = 0) -> Ledger:
        """A ledger holding already-counted messages."""
        ledger = cls(budgets, overhead)
        for message in messages:
            ledger.add(message)
        return ledger

    def add(self, message: Message) -> None:
        """Account for a counted message."""
        assert message.token_count is not None, "count a message before adding it"
        self.used[message.component] += message.token_count
        self.count += 1

    def charge(self, component: Component, tokens: int) -> None:
        """Account for tokens that are not a message (tool schemas)."""
        self.used[component] += tokens

    def remove(self, message: Message) -> None:
        """Take a message out of the ledger."""
        assert message.token_count is not None
        self.used[message.component] -= message.token_count
        self.count -= 1

    @property
    def total(self) -> int:
        """All used tokens, including the reply priming and other per-request overhead."""
        return sum(self.used.values()) + self.overhead

    def excess(self, component: Component) -> int:
        """Tokens a prunable component is over its budget (0 when it fits)."""
        return max(0, self.used[component] - self.budgets[component])

    def over_limit(self) -> int:
        """Tokens the whole session is over the effective limit (0 when it fits)."""
        return max(0, self.total - self.budgets.effective_limit)

    def pressure(self) -> float:
        """The highest utilization of the total and of each prunable component's share: what
        decides that a summary is due before any component has to be pruned."""
        peak = self.total / self.budgets.effective_limit
        for component in Component:
            budget = self.budgets[component]
            if component.prunable and budget:
                peak = max(peak, self.used[component] / budget)
        return peak

    def fits(self) -> bool:
        """True when every prunable component is within budget and the total within the limit."""
        if self.over_limit():
            return False
        return not any(self.excess(c) for c in Component if c.prunable)

    def snapshot(self, *, estimated: bool) -> Snapshot:
        """Freeze the current state into a snapshot."""
        b = self.budgets
        used = self.total
        return Snapshot(
            context_limit=b.context_limit,
            effective_limit=b.effective_limit,
            reserved=b.reserved,
            used=used,
            overhead=self.overhead,
            level=alert_level(used / b.effective_limit, b),
            estimated=estimated,
            message_count=self.count,
            components={c: ComponentUsage(c, self.used[c], b[c]) for c in Component},
        )
