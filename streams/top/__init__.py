"""`tokenbudget top`: a live terminal view of a fleet's budgets.

`model` folds `budget.events` and `budget.commands` into per-session state and `layout` turns it
into lines for a terminal size (both pure, unit-tested without a terminal); `terminal` is the
thin I/O shell: an aiokafka consumer and curses. Importing this package loads neither.
"""

from streams.top.layout import ASCII, UNICODE, Glyphs, Line, render, screen_text
from streams.top.model import ActionRow, Rate, SessionRow, TopModel
from streams.top.terminal import run_top

__all__ = [
    "ASCII",
    "UNICODE",
    "ActionRow",
    "Glyphs",
    "Line",
    "Rate",
    "SessionRow",
    "TopModel",
    "render",
    "run_top",
    "screen_text",
]
