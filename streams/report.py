"""Human-readable budget reports for the terminal (CLI, demo)."""

from __future__ import annotations

from collections.abc import Sequence

from streams.budget import Action, Component, Snapshot

BAR = 24


def bar(fraction: float, width: int = BAR) -> str:
    """A text bar for a fraction, capped at full."""
    filled = min(width, max(0, round(fraction * width)))
    return "█" * filled + "·" * (width - filled)


def snapshot_table(snapshot: Snapshot, title: str = "") -> str:
    """Per component: used / budget / % with a bar, then the total against the limit."""
    lines = [title] if title else []
    lines.append(f"  {'component':<14}{'used':>9}{'budget':>9}{'%':>7}  ")
    for component in Component:
        usage = snapshot.components[component]
        pct = usage.used / usage.budget if usage.budget else 0.0
        lines.append(
            f"  {component.value:<14}{usage.used:>9,}{usage.budget:>9,}{pct:>7.0%}  {bar(pct)}"
        )
    lines.append(
        f"  {'total':<14}{snapshot.used:>9,}{snapshot.effective_limit:>9,}"
        f"{snapshot.utilization:>7.0%}  {bar(snapshot.utilization)}  level={snapshot.level.value}"
        + ("  (estimated counts)" if snapshot.estimated else "")
    )
    lines.append(
        f"  context limit {snapshot.context_limit:,} = effective {snapshot.effective_limit:,}"
        f" + {snapshot.reserved:,} reserved for the reply"
    )
    return "\n".join(lines)


def actions_table(actions: Sequence[Action]) -> str:
    """One line per action: kind, rule, messages touched, tokens before → after, why."""
    if not actions:
        return "  no action needed: the session fits its budget"
    lines = []
    for a in actions:
        lines.append(
            f"  {a.kind.value:<9} {a.rule.value:<27} {len(a.message_ids):>4} msg  "
            f"{a.tokens_before:>8,} → {a.tokens_after:<8,} {a.reason}"
        )
    return "\n".join(lines)
