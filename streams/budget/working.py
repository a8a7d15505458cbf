"""The cascade's working state: which messages are still in, the ledger, the actions so far."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from streams.budget.actions import Action, ActionKind, Rule
from streams.budget.counting import MessageCounter
from streams.budget.ledger import Ledger
from streams.budget.model import Component, Message
from streams.budget.policy import Budgets
from streams.budget.units import Unit, group_units, unit_index


class Working:
    """Mutable state of one `prepare` run; strategies drop, replace and record through it."""

    def __init__(
        self,
        messages: Sequence[Message],
        counter: MessageCounter,
        budgets: Budgets,
        overhead: int,
    ) -> None:
        self.messages: list[Message] = list(messages)
        for message in self.messages:
            counter.count(message)
        self.counter = counter
        self.budgets = budgets
        self.alive = [True] * len(self.messages)
        self.ledger = Ledger.of(budgets, self.messages, overhead)
        self.actions: list[Action] = []
        self.units: list[Unit] = group_units(self.messages)
        self.unit_of: list[Unit] = unit_index(self.units, len(self.messages))
        self.appended: list[Message] = []

    # -- queries ---------------------------------------------------------------------------
    def live_units(self) -> list[Unit]:
        """Units still in, oldest first."""
        return [u for u in self.units if self.alive[u.first]]

    def unit_components(self, unit: Unit) -> set[Component]:
        """Components a unit holds tokens in."""
        return {self.messages[i].component for i in unit.indices}

    def pressure(self) -> set[Component]:
        """Prunable components over budget right now."""
        return {c for c in Component if c.prunable and self.ledger.excess(c)}

    def helps(self, unit: Unit, pressured: set[Component], total_target: int | None) -> bool:
        """Whether dropping `unit` moves the session towards its targets."""
        if total_target is not None and self.ledger.total > total_target:
            return True
        return any(
            c in pressured and self.ledger.used[c] > self.budgets.target(c)
            for c in self.unit_components(unit)
        )

    def targets(self) -> tuple[set[Component], int | None]:
        """Components to bring down to their targets, and the total target when over limit."""
        pressured = self.pressure()
        limit = self.budgets.effective_limit
        total_target = (
            int(limit * self.budgets.policy.prune_to) if self.ledger.over_limit() else None
        )
        return pressured, total_target

    def done(self, pressured: set[Component], total_target: int | None) -> bool:
        """True when every pressured component reached its target and the total its target."""
        if total_target is not None and self.ledger.total > total_target:
            return False
        return all(self.ledger.used[c] <= self.budgets.target(c) for c in pressured)

    # -- changes ---------------------------------------------------------------------------
    def remove(self, units: Iterable[Unit]) -> list[str]:
        """Take whole units out of the view without recording; returns the removed ids."""
        ids: list[str] = []
        for unit in units:
            for i in unit.indices:
                if self.alive[i]:
                    self.alive[i] = False
                    self.ledger.remove(self.messages[i])
                    ids.append(self.messages[i].id)
        return ids

    def drop(self, units: Iterable[Unit], rule: Rule, reason: str) -> Action | None:
        """Remove whole units and record one DROP action."""
        before = self.ledger.total
        ids = self.remove(units)
        return self.record_drop(ids, before, rule, reason)

    def record_drop(self, ids: list[str], before: int, rule: Rule, reason: str) -> Action | None:
        """Record a DROP of `ids` that took the total from `before` to now."""
        if not ids:
            return None
        action = Action(ActionKind.DROP, rule, tuple(ids), before, self.ledger.total, reason)
        self.actions.append(action)
        return action

    def undrop(self, unit: Unit) -> None:
        """Put a dropped unit back (the importance fill pass); the caller fixes the action."""
        for i in unit.indices:
            if not self.alive[i]:
                self.alive[i] = True
                self.ledger.add(self.messages[i])

    def replace(self, index: int, new: Message, action: Action) -> None:
        """Swap one message for a counted replacement (a truncation)."""
        self.ledger.remove(self.messages[index])
        self.messages[index] = new
        self.ledger.add(new)
        self.actions.append(action)
        unit = self.unit_of[index]
        unit.tokens = sum(self.messages[i].token_count or 0 for i in unit.indices)

    def append(self, message: Message) -> None:
        """Add a new counted message (a summary) at the end of the kept view."""
        self.counter.count(message)
        self.ledger.add(message)
        self.appended.append(message)

    def kept(self) -> list[Message]:
        """Kept messages in conversation order; summaries stand where their segment began."""
        out: list[Message] = []
        pending = list(self.appended)
        for i, message in enumerate(self.messages):
            while pending and pending[0].summary_of and pending[0].summary_of[0] == message.id:
                out.append(pending.pop(0))
            if self.alive[i]:
                out.append(message)
        out.extend(pending)
        return out

    def dropped_ids(self) -> list[str]:
        """Ids of the original messages no longer in the view."""
        return [m.id for m, alive in zip(self.messages, self.alive, strict=True) if not alive]
