"""The I/O shell of `tokenbudget top`: read the two topics with aiokafka, paint with curses.

Everything it shows comes from `TopModel` and `render`; this module only connects, reads, paints
about three times a second and restores the terminal on the way out (q, Ctrl-C, SIGTERM, a lost
SSH session), whatever happened in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import locale
import logging
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streams.top.layout import ASCII, UNICODE, Glyphs, Line, render
from streams.top.model import TopModel
from streams.topics import TopicNames

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

REDRAW_SECONDS = 0.3  # about 3 frames a second: live, and light over SSH
POLL_MS = 100  # the longest wait for records before keys and signals are looked at again
CONNECT_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0
METADATA_MAX_AGE_MS = 5_000  # topics and partitions created later show up within seconds
NOTICE_SECONDS = 10.0  # how long a warning of the Kafka client stays on screen
QUIT_KEYS = frozenset({ord("q"), ord("Q")})
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LastLog(logging.Handler):
    """Keeps the Kafka client's latest warning for the screen: on stderr it would tear it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message = ""
        self.at = float("-inf")

    def emit(self, record: logging.LogRecord) -> None:
        """Remember the message and when it came."""
        self.note(record.getMessage())

    def note(self, message: str) -> None:
        """Show `message` as the latest warning."""
        self.message = message
        self.at = time.monotonic()


@contextlib.contextmanager
def kafka_logs() -> Iterator[LastLog]:
    """Route aiokafka's warnings to a `LastLog` instead of stderr, for the duration."""
    handler = LastLog()
    logger = logging.getLogger("aiokafka")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class Screen:
    """curses, set up on entry and restored on exit."""

    def __init__(self) -> None:
        import curses

        self._curses = curses
        self._window: Any = None
        self._attrs: dict[str, int] = {}

    def __enter__(self) -> Screen:
        curses = self._curses
        self._window = curses.initscr()
        try:
            curses.noecho()
            curses.cbreak()
            self._window.keypad(True)
            self._window.nodelay(True)
            with contextlib.suppress(curses.error):  # terminals without an invisible cursor
                curses.curs_set(0)
            self._attrs = self._styles()
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def size(self) -> tuple[int, int]:
        """(width, height) of the terminal now."""
        height, width = self._window.getmaxyx()
        return width, height

    def keys(self) -> list[int]:
        """The keys pressed since the last call (KEY_RESIZE after a resize)."""
        pressed: list[int] = []
        while (key := self._window.getch()) != -1:
            pressed.append(key)
        return pressed

    def paint(self, lines: Sequence[Line]) -> None:
        """Replace the screen with `lines` (curses sends only what changed)."""
        window, error = self._window, self._curses.error
        window.erase()
        for y, line in enumerate(lines):
            x = 0
            for text, style in line:
                # Writing the bottom-right cell raises once the text is on screen (the cursor
                # cannot move past it); nothing else can fail here, lines fit by construction.
                with contextlib.suppress(error):
                    window.addstr(y, x, text, self._attrs.get(style, 0))
                x += len(text)
        window.refresh()

    def _styles(self) -> dict[str, int]:
        c = self._curses
        attrs = {
            "title": c.A_BOLD,
            "head": c.A_REVERSE,
            "dim": c.A_DIM,
            "plain": c.A_NORMAL,
            "ok": c.A_NORMAL,
            "info": c.A_NORMAL,
            "warn": c.A_BOLD,
            "critical": c.A_BOLD | c.A_REVERSE,
        }
        if not c.has_colors():
            return attrs
        c.start_color()
        background = c.COLOR_BLACK
        with contextlib.suppress(c.error):
            c.use_default_colors()
            background = -1
        colours = (
            ("ok", c.COLOR_GREEN),
            ("info", c.COLOR_CYAN),
            ("warn", c.COLOR_YELLOW),
            ("critical", c.COLOR_RED),
        )
        for pair, (style, colour) in enumerate(colours, start=1):
            c.init_pair(pair, colour, background)
            attrs[style] = c.color_pair(pair) | (c.A_BOLD if style == "critical" else 0)
        return attrs

    def _restore(self) -> None:
        curses = self._curses
        with contextlib.suppress(curses.error):
            curses.curs_set(1)
        self._window.keypad(False)
        curses.nocbreak()
        curses.echo()
        curses.endwin()


def terminal_glyphs() -> Glyphs:
    """Unicode bars when the terminal's locale is UTF-8, ASCII ones otherwise."""
    locale.setlocale(locale.LC_ALL, "")
    encoding = locale.getpreferredencoding(False).lower().replace("-", "")
    return UNICODE if encoding == "utf8" else ASCII


async def follow(
    consumer: AIOKafkaConsumer,
    topics: TopicNames,
    screen: Screen,
    source: str,
    logs: LastLog,
    stop: asyncio.Event,
    glyphs: Glyphs,
) -> None:
    """Read, fold and paint until `stop` is set or q is pressed."""
    from aiokafka.errors import KafkaError

    model = TopModel(time.monotonic())
    known: set[Any] = set()
    next_paint = 0.0
    while not stop.is_set():
        try:
            batch = await consumer.getmany(timeout_ms=POLL_MS)
        except KafkaError as error:  # shown, then tried again: the broker may come back
            logs.note(f"{type(error).__name__}: {error}")
            batch = {}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_MS / 1000)
        now = time.monotonic()
        for partition, records in batch.items():
            for record in records:
                model.take(topics, partition.topic, record.value, now)
        assigned = consumer.assignment()
        if assigned != known:
            known = await positioned(consumer, assigned, known)
            model.partitions = len(known)
        keys = screen.keys()
        if QUIT_KEYS.intersection(keys):
            return
        if keys or now >= next_paint:  # a resize arrives as a key: repaint at once
            width, height = screen.size()
            notice = logs.message if now - logs.at < NOTICE_SECONDS else ""
            screen.paint(render(model, width, height, now, source, glyphs, notice))
            next_paint = now + REDRAW_SECONDS


async def positioned(consumer: AIOKafkaConsumer, assigned: set[Any], known: set[Any]) -> set[Any]:
    """The assigned partitions whose start offset is fixed (the end, or the beginning).

    Asking for the position fixes it now, so what is published after the screen counts these
    partitions shows up. A broker that does not answer within a poll interval is asked again
    on the next round, so keys and signals are never kept waiting.
    """
    new = list(assigned - known)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(consumer.position(p) for p in new)), POLL_MS / 1000 * 5
        )
    except TimeoutError:
        return known & assigned
    return set(assigned)


async def close(consumer: AIOKafkaConsumer) -> None:
    """Stop the consumer, also after the broker went away.

    aiokafka 0.14 then re-raises the cancellation of its own fetch task from `stop()`; only a
    cancellation of this task is passed on.
    """
    try:
        await asyncio.wait_for(consumer.stop(), STOP_TIMEOUT_SECONDS)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except TimeoutError:
        pass  # the process is about to exit: its sockets close with it


async def top(
    bootstrap: str,
    topics: TopicNames,
    from_beginning: bool,
    options: Mapping[str, Any] | None = None,
) -> int:
    """Connect, then show the view until q or a stop signal; 1 if no broker answers."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    with kafka_logs() as logs:
        consumer = AIOKafkaConsumer(
            topics.events,
            topics.commands,
            bootstrap_servers=bootstrap,
            group_id=None,  # reads without a group: commits nothing, disturbs no one
            auto_offset_reset="earliest" if from_beginning else "latest",
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
            fetch_max_wait_ms=POLL_MS,
            **(options or {}),  # TLS / SASL: streams.security.client_options()
        )
        try:
            await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_SECONDS)
        except (KafkaError, OSError, ValueError, TimeoutError) as error:
            await close(consumer)
            # aiokafka's own error only says it could not bootstrap; its log line says why
            reason = logs.message.rpartition('": ')[2] or str(error) or type(error).__name__
            print(f"tokenbudget top: no Kafka broker at {bootstrap} ({reason})", file=sys.stderr)
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        source = bootstrap + (f" prefix {topics.prefix}" if topics.prefix else "")
        glyphs = terminal_glyphs()  # sets the locale, which curses needs before it starts
        try:
            with Screen() as screen:
                await follow(consumer, topics, screen, source, logs, stop, glyphs)
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
            await close(consumer)
    return 0


def run_top(
    bootstrap: str,
    topic_prefix: str = "",
    from_beginning: bool = False,
    options: Mapping[str, Any] | None = None,
) -> int:
    """Run `tokenbudget top`: 0 after q, Ctrl-C or SIGTERM; 1 with a one-line error."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("tokenbudget top: needs an interactive terminal", file=sys.stderr)
        return 1
    try:
        return asyncio.run(top(bootstrap, TopicNames(topic_prefix), from_beginning, options))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 0
