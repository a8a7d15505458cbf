"""A live session: messages arrive one at a time, the ledger follows in O(1), the cascade runs
only when the session no longer fits.

This is what the stream processor keeps per session and what the client SDK uses as its local
fallback: adding a turn costs O(size of the turn); the O(session) cascade runs only under
pressure, and then removes enough that it does not run again on the next turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from streams.budget.actions import Action, ActionKind
from streams.budget.ledger import Ledger, Snapshot
from streams.budget.manager import BudgetManager, Prepared
from streams.budget.model import Component, Message
from streams.budget.summarization import plan_summary


class Session:
    """One session's counted messages in order, its ledger and its task."""

    def __init__(self, manager: BudgetManager, task: str = "") -> None:
        self.manager = manager
        self.task = task
        self.messages: dict[str, Message] = {}
        self.ledger = Ledger(manager.budgets, manager.counter.chat_format.reply_priming)
        self.ledger.charge(Component.TOOL_SCHEMAS, manager.tool_tokens)

    def __len__(self) -> int:
        return len(self.messages)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.messages

    def add(self, message: Message) -> bool:
        """Count and append a message; False (and nothing changes) if its id is already in."""
        if message.id in self.messages:
            return False
        self.manager.count(message)
        self.messages[message.id] = message
        self.ledger.add(message)
        return True

    def remove(self, message_ids: Iterable[str]) -> list[str]:
        """Remove messages by id; ids already gone are skipped. Returns the removed ids."""
        removed = []
        for message_id in message_ids:
            message = self.messages.pop(message_id, None)
            if message is not None:
                self.ledger.remove(message)
                removed.append(message_id)
        return removed

    def replace(self, message: Message) -> bool:
        """Swap a message for a new version with the same id (a truncation), in place."""
        old = self.messages.get(message.id)
        if old is None:
            return False
        self.manager.count(message)
        self.ledger.remove(old)
        self.messages[message.id] = message
        self.ledger.add(message)
        return True

    def fits(self) -> bool:
        """O(1): every prunable component within budget and the total within the limit."""
        return self.ledger.fits()

    def snapshot(self) -> Snapshot:
        """The current budget of the session."""
        return self.ledger.snapshot(estimated=self.manager.estimated)

    def prepare(self, strategy: str = "cascade", *, plan_summary: bool = True) -> Prepared:
        """Run the cascade over the session and apply its result to the session itself."""
        prepared = self.manager.prepare(
            list(self.messages.values()), self.task, strategy, plan_summary=plan_summary
        )
        self.apply(prepared.actions)
        return prepared

    def summary_due(self, strategy: str = "cascade") -> bool:
        """O(1): the strategy summarizes and the total or a prunable component reached the
        info threshold, so a summary asked for now is ready before anything must be pruned."""
        if strategy not in ("summarization", "cascade"):
            return False
        return self.ledger.pressure() >= self.manager.policy.info

    def plan_summary(self) -> Action | None:
        """A SUMMARIZE of the oldest segment, carrying the segment, for an asynchronous
        summarizer; None when there is nothing worth summarizing. Changes nothing here."""
        return plan_summary(self.manager.working(list(self.messages.values())))

    def apply(self, actions: Sequence[Action]) -> None:
        """Apply commands to this session (idempotent: applying twice changes nothing)."""
        for action in actions:
            if action.kind is ActionKind.DROP:
                self.remove(action.message_ids)
            elif action.kind is ActionKind.TRUNCATE and action.replacement is not None:
                self.replace(action.replacement)
            elif action.kind in (ActionKind.SUMMARIZE, ActionKind.RESET):
                if action.replacement is None:
                    continue  # a planned summary: nothing changes until it arrives
                self.apply_summary(action.replacement)

    def apply_summary(self, summary: Message) -> bool:
        """Replace what is still present of `summary.summary_of` with the summary, in place.

        A summary whose whole segment was pruned meanwhile is not applied (returns False): the
        session already fits without it. O(session), but only when a summary arrives.
        """
        if summary.id in self.messages:
            return False
        present = [i for i in summary.summary_of if i in self.messages]
        if not present:
            return False
        order = list(self.messages)
        at = order.index(present[0])
        self.remove(present)
        self.manager.count(summary)
        items = list(self.messages.items())
        items.insert(at, (summary.id, summary))
        self.messages = dict(items)
        self.ledger.add(summary)
        return True
