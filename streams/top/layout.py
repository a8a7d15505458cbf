"""The screen of `tokenbudget top` as lines of styled text, for a given terminal size.

Pure: `render` never returns more lines than the height nor a line wider than the width, so the
view fits an 80×24 SSH session as well as a wide terminal; curses only paints what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from streams.budget import ActionKind, AlertLevel, Component
from streams.top.model import ActionRow, SessionRow, TopModel

Span = tuple[str, str]  # (text, style); styles: title head dim plain ok info warn critical
Line = list[Span]


@dataclass(frozen=True, slots=True)
class Glyphs:
    """Characters of bars and marks; ASCII ones for terminals that are not UTF-8."""

    full: str
    empty: str
    partials: str  # 1/8 … 7/8 of a cell, or "" for whole cells only
    ellipsis: str
    arrow: str
    sep: str


UNICODE = Glyphs("█", "·", "▏▎▍▌▋▊▉", "…", "→", " · ")
ASCII = Glyphs("#", ".", "", "~", ">", " | ")

LEVEL_LABELS = {
    AlertLevel.OK: "ok",
    AlertLevel.INFO: "info",
    AlertLevel.WARN: "warn",
    AlertLevel.CRITICAL: "crit",
}
# Column titles per component, longest first: the longest that fits the column is shown.
COMPONENT_TITLES = {
    Component.SYSTEM_PROMPT: ("system_prompt", "system", "sys"),
    Component.TOOL_SCHEMAS: ("tool_schemas", "schemas", "schem", "sch"),
    Component.PINNED: ("pinned", "pin"),
    Component.HISTORY: ("history", "hist"),
    Component.TOOL_RESULTS: ("tool_results", "results", "tres"),
    Component.RAG_CONTEXT: ("rag_context", "rag"),
    Component.SCRATCHPAD: ("scratchpad", "scratch", "scr"),
}
ACTION_STYLES = {
    ActionKind.DROP: "warn",
    ActionKind.TRUNCATE: "warn",
    ActionKind.SUMMARIZE: "info",
    ActionKind.RESET: "critical",
    ActionKind.REJECTED: "critical",
}


def meter(fraction: float, width: int, glyphs: Glyphs = UNICODE) -> str:
    """A bar `width` cells wide for a fraction (capped at full), with eighth-cell steps."""
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    text = glyphs.full * full
    eighths = int((cells - full) * 8)
    if full < width and glyphs.partials and eighths:
        text += glyphs.partials[eighths - 1]
    return text + glyphs.empty * (width - len(text))


def shorten(text: str, width: int, glyphs: Glyphs = UNICODE) -> str:
    """`text` cut to `width`, marked with an ellipsis (ids tend to differ early: agent-07-…)."""
    if len(text) <= width:
        return text
    if width <= len(glyphs.ellipsis):
        return text[:width]
    return text[: width - len(glyphs.ellipsis)] + glyphs.ellipsis


def clip(line: Line, width: int) -> Line:
    """The line cut to `width` characters."""
    out: Line = []
    room = width
    for text, style in line:
        if room <= 0:
            break
        out.append((text[:room], style))
        room -= len(text[:room])
    return out


def line_text(line: Line) -> str:
    """The plain text of a line."""
    return "".join(text for text, _ in line)


def share_style(fraction: float) -> str:
    """The style of a component bar: over its share is critical, near it warn or info."""
    if fraction >= 1.0:
        return "critical"
    if fraction >= 0.85:
        return "warn"
    return "info" if fraction >= 0.7 else "plain"


def tokens(n: int) -> str:
    """A token count in few characters: 2,950 or 128k."""
    return f"{n:,}" if n < 10_000 else f"{n / 1000:.0f}k"


@dataclass(slots=True)
class Columns:
    """Widths of the session table for one terminal width (0 = column hidden)."""

    ident: int = 10
    bar: int = 6
    share: int = 3
    used: int = 0

    @classmethod
    def fit(cls, width: int) -> Columns:
        """Grow the columns in order of usefulness while the row still fits `width`."""
        cols = cls()
        if cols.total() > width:
            cols.share = 0
        if cols.total() > width:
            cols.bar = 0
        steps = (("share", 5), ("ident", 16), ("bar", 10), ("used", 13), ("share", 8))
        steps += (("ident", 24), ("bar", 20), ("share", 12), ("ident", 40))
        for name, limit in steps:
            if name == "used":  # all or nothing
                cols.used = limit if cols.total() + limit + 1 <= width else 0
                continue
            while 0 < getattr(cols, name) < limit:  # a hidden column (0) stays hidden
                setattr(cols, name, getattr(cols, name) + 1)
                if cols.total() > width:
                    setattr(cols, name, getattr(cols, name) - 1)
                    break
        return cols

    def total(self) -> int:
        """Characters of one row: id, level, utilization, bar, tokens, one bar per component."""
        width = self.ident + 1 + 4 + 1 + 4
        width += self.bar + 1 if self.bar else 0
        width += self.used + 1 if self.used else 0
        return width + (len(COMPONENT_TITLES) * (self.share + 1) if self.share else 0)


def session_header(cols: Columns, width: int) -> Line:
    """The title row of the session table."""
    text = f"{'session':<{cols.ident}} {'lvl':<4} {'util':>4}"
    if cols.bar:
        text += f" {'total':<{cols.bar}}"
    if cols.used:
        text += f" {'used/limit':>{cols.used}}"
    if cols.share:
        for titles in COMPONENT_TITLES.values():
            title = next((t for t in titles if len(t) <= cols.share), titles[-1])
            text += " " + f"{title[: cols.share]:<{cols.share}}"
    return [(f"{text:<{width}}"[:width], "head")]


def session_line(row: SessionRow, cols: Columns, glyphs: Glyphs) -> Line:
    """One session: id, level, utilization, total bar, tokens, a bar per component share."""
    s = row.snapshot
    level = s.level.value
    line: Line = [
        (f"{shorten(row.session_id, cols.ident, glyphs):<{cols.ident}} ", "plain"),
        (f"{LEVEL_LABELS[s.level]:<4}", level),
        (f" {min(s.utilization, 9.99):>4.0%}", level),
    ]
    if cols.bar:
        line.append((" " + meter(s.utilization, cols.bar, glyphs), level))
    if cols.used:
        line.append((f" {f'{tokens(s.used)}/{tokens(s.effective_limit)}':>{cols.used}}", "dim"))
    if cols.share:
        for component in COMPONENT_TITLES:
            usage = s.components.get(component)
            if usage is None or (usage.budget == 0 and usage.used == 0):
                line.append((" " + glyphs.empty * cols.share, "dim"))
                continue
            line.append((" ", "plain"))
            line.append(
                (meter(usage.utilization, cols.share, glyphs), share_style(usage.utilization))
            )
    return line


def action_line(row: ActionRow, width: int, glyphs: Glyphs) -> Line:
    """One command: time, kind, rule, session tokens before → after, session id.

    The rule column gets what is left once the session id has a dozen characters; on narrow
    terminals the time goes first, then the rule.
    """
    when = time.strftime("%H:%M:%S", time.localtime(row.created_at))
    change = f"{row.tokens_before:,}{glyphs.arrow}{row.tokens_after:,}"
    rule = row.rule + (" (asked)" if row.planned else "")
    line: Line = [(f"{when} ", "dim")] if width >= 60 else []
    line.append((f"{row.kind.value:<9} ", "dim" if row.planned else ACTION_STYLES[row.kind]))
    change = f"{change:>{15 if width >= 70 else 0}}"  # aligned while the width allows
    room = width - len(line_text(line)) - len(change) - 1
    rule_width = min(24, room - 13)
    if rule_width >= 8:
        line.append((f"{shorten(rule, rule_width, glyphs):<{rule_width}} ", "plain"))
        room -= rule_width + 1
    line.append((change + " ", "plain"))
    line.append((shorten(row.session_id, max(1, room), glyphs), "plain"))
    return line


def status_lines(model: TopModel, now: float, source: str, glyphs: Glyphs) -> list[Line]:
    """The two lines on top: what is read from where, then throughput and levels."""
    title: Line = [
        ("tokenbudget top", "title"),
        (f"{glyphs.sep}q quits{glyphs.sep}{model.partitions} partitions{glyphs.sep}", "dim"),
        (source, "dim"),
    ]
    levels = model.levels()
    stats: Line = [
        (f"{model.snapshot_rate.per_second(now):.1f} snapshots/s{glyphs.sep}", "plain"),
        (f"{model.command_rate.per_second(now):.1f} commands/s{glyphs.sep}", "plain"),
        (f"{len(model.sessions)} sessions:", "plain"),
    ]
    for level in reversed(AlertLevel):
        stats.append((f" {levels.get(level, 0)} {LEVEL_LABELS[level]}", level.value))
    if model.undecodable:
        stats.append((f"{glyphs.sep}{model.undecodable} undecodable", "warn"))
    return [title, stats]


def render(
    model: TopModel,
    width: int,
    height: int,
    now: float,
    source: str = "",
    glyphs: Glyphs = UNICODE,
    notice: str = "",
) -> list[Line]:
    """The whole screen: at most `height` lines of at most `width` characters."""
    if width <= 0 or height <= 0:
        return []
    lines = status_lines(model, now, source, glyphs)
    cols = Columns.fit(width)
    lines.append(session_header(cols, width))
    rows = height - len(lines) - 1 - (1 if notice else 0)  # one line titles the actions
    ranked = model.ranked()
    actions = model.latest_actions(max(0, rows))
    action_rows = min(max(1, len(actions)), max(1, rows // 3))
    action_rows = max(action_rows, rows - max(1, len(ranked)))  # room sessions leave unused
    session_rows = max(0, rows - action_rows)
    if not ranked and session_rows:
        lines.append([("waiting for snapshots on budget.events …", "dim")])
    shown = ranked if len(ranked) <= session_rows else ranked[: max(0, session_rows - 1)]
    lines += [session_line(row, cols, glyphs) for row in shown]
    if len(shown) < len(ranked) and session_rows:
        lines.append([(f"  … {len(ranked) - len(shown)} more, lower utilization", "dim")])
    lines.append([(f"{'latest actions':<{width}}", "head")])
    if not actions:
        lines.append([("no commands yet on budget.commands", "dim")])
    lines += [action_line(row, width, glyphs) for row in actions[:action_rows]]
    if notice:
        lines = [*lines[: height - 1], [(notice, "warn")]]
    return [clip(line, width) for line in lines[:height]]


def screen_text(lines: Sequence[Line]) -> str:
    """The screen as plain text, one line per row (for tests and logs)."""
    return "\n".join(line_text(line) for line in lines)
