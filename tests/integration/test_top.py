"""`tokenbudget top` in a real terminal: an 80×24 tmux pane on a private tmux server, the embedded
broker, a real budget worker and a published fleet. The screen is read with `capture-pane`."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.broker import create_topics, free_port
from streams.budget import Action, ActionKind, BudgetManager, Message, Rule
from streams.codecs import BUDGET_COMMAND, BUDGET_SNAPSHOT, BudgetCommand, BudgetSnapshot
from streams.topics import TopicNames
from tests.integration.conftest import REPO_ROOT
from tests.integration.fleet import CODEC, FleetClient, fleet_events, interleave, worker_command

PARTITIONS = 2
SCREEN_TIMEOUT = 30.0


class Tmux:
    """A private tmux server (its own socket) with one 80×24 pane, kept after its shell exits."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("tmux")
        assert self.binary, "tmux is needed to test `tokenbudget top` (apt-get install tmux)"
        self.socket = f"tbtop-{uuid.uuid4().hex[:10]}"
        self.config = workdir / "tmux.conf"
        # no status line: the pane gets all 24 rows; a dead pane keeps its last screen
        self.config.write_text("set -g status off\nset -g remain-on-exit on\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        self.env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="screen")

    def __call__(self, *args: str) -> str:
        """Run a tmux command against this server; its stdout."""
        done = subprocess.run(
            [self.binary, "-u", "-L", self.socket, "-f", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def start(self, *top_args: str) -> None:
        """Run `python -m streams top ARGS` from a shell in a fresh 80×24 pane.

        Once top exits, the shell prints the terminal's line settings (`tty: icanon echo` when
        curses restored them) and top's exit status (`exit status N`). The status is read from
        the screen: tmux 3.3 may mark a pane dead without its status when it exits fast.
        """
        top = shlex.join([sys.executable, "-m", "streams", "top", *top_args])
        tty = "stty -a | tr ' ;' '\\n\\n' | grep -xE -e '-?icanon' -e '-?echo' | tr '\\n' ' '"
        command = f"trap : INT; {top}; s=$?; echo; echo tty: $({tty}); echo exit status $s"
        self("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", "-c", str(REPO_ROOT),
             command)  # fmt: skip

    def screen(self, *, history: bool = False) -> str:
        """The pane's text now; `history`: from the start, wrapped lines joined back."""
        return self("capture-pane", "-p", *(["-J", "-S", "-"] if history else []), "-t", "top")

    def exit_status(self) -> int | None:
        """Top's exit status as the shell printed it, None while top runs."""
        found = re.search(r"^exit status (\d+)$", self.screen(history=True), re.M)
        return int(found.group(1)) if found else None

    def kill(self) -> None:
        """Stop the server and everything in it."""
        subprocess.run(
            [self.binary, "-L", self.socket, "kill-server"], env=self.env, capture_output=True
        )


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(tmp_path)
    yield server
    server.kill()


def session_rows(screen: str) -> list[str]:
    """The session ids of the table, top to bottom."""
    lines = screen.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("session ")), None)
    if start is None:
        return []
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith(("latest actions", "  …", "waiting")):
            break
        rows.append(line.split()[0])
    return rows


def assert_terminal_restored(tmux: Tmux) -> None:
    """The view is gone (curses left the alternate screen), echo and line editing are back."""
    screen = tmux.screen(history=True)
    assert "tokenbudget top" not in screen and "Traceback" not in screen, screen
    assert "tty: icanon echo" in screen, screen


def wait_exit(tmux: Tmux, wait_for, what: str) -> int:
    """Wait until top has exited; its exit status."""
    wait_for(
        lambda: tmux.exit_status() is not None,
        timeout=15,
        what=lambda: f"{what}; the screen:\n{tmux.screen()}",
    )
    status = tmux.exit_status()
    assert status is not None
    return status


def test_top_shows_the_fleet_hottest_first_with_levels_and_actions_and_quits_on_q(
    broker, faust_worker, unique_name, wait_for, tmux: Tmux
) -> None:
    prefix = unique_name("top") + "."
    topics = TopicNames(prefix)
    command = worker_command(broker.bootstrap, topics, prefix + "worker", PARTITIONS)
    faust_worker("streams", command=command, name="budget", ready_timeout=90)
    fleet = fleet_events(6, 24, seed=5)

    async def exchange() -> dict:
        async with FleetClient(broker.bootstrap, topics) as client:
            await client.publish(interleave(fleet))
            await client.collect_until(
                lambda c: all(len(c.snapshots.get(sid, ())) == 25 for sid in fleet), timeout=60
            )
            return {sid: client.collected.latest(sid) for sid in fleet}

    latest = asyncio.run(exchange())
    ranked = sorted(latest, key=lambda sid: (-latest[sid].utilization, sid))
    assert latest[ranked[0]].utilization > latest[ranked[-1]].utilization

    tmux.start("--bootstrap", broker.bootstrap, "--topic-prefix", prefix, "--from-beginning")

    def whole_fleet_shown() -> str:
        screen = tmux.screen()
        return screen if session_rows(screen) == ranked and "→" in screen else ""

    screen = wait_for(
        whole_fleet_shown,
        timeout=SCREEN_TIMEOUT,
        what=lambda: f"the fleet ranked {ranked} on screen:\n{tmux.screen()}",
    )
    print(f"\n{screen}")
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("tokenbudget top") and f"{2 * PARTITIONS} partitions" in lines[0]
    assert "snapshots/s" in lines[1] and "commands/s" in lines[1]
    assert "6 sessions:" in lines[1]
    hottest = next(line for line in lines if line.startswith(ranked[0]))
    level = latest[ranked[0]].level.value
    assert hottest.split()[1] == {"critical": "crit"}.get(level, level)
    assert f"{latest[ranked[0]].utilization:.0%}" in hottest and "█" in hottest
    actions = lines[next(i for i, x in enumerate(lines) if x.startswith("latest actions")) + 1 :]
    assert any(
        kind in actions[0] and "→" in actions[0] for kind in ("DROP", "TRUNCATE", "SUMMARIZE")
    )
    assert any(sid in " ".join(actions) for sid in fleet)

    tmux("send-keys", "-t", "top", "q")
    assert wait_exit(tmux, wait_for, "top to quit on q") == 0
    assert_terminal_restored(tmux)


def test_top_reads_from_the_end_by_default_and_exits_cleanly_on_ctrl_c(
    broker, unique_name, wait_for, tmux: Tmux
) -> None:
    topics = TopicNames(unique_name("top") + ".")
    create_topics(broker.bootstrap, (topics.events, topics.commands), PARTITIONS)
    asyncio.run(produce(broker.bootstrap, topics, "old-session", 0.9))

    tmux.start("--bootstrap", broker.bootstrap, "--topic-prefix", topics.prefix)
    wait_for(  # every partition assigned and its start fixed: from here on, records show up
        lambda: f"{2 * PARTITIONS} partitions" in tmux.screen(),
        timeout=SCREEN_TIMEOUT,
        what=lambda: f"the partitions on screen:\n{tmux.screen()}",
    )
    assert "waiting for snapshots" in tmux.screen()

    asyncio.run(produce(broker.bootstrap, topics, "new-session", 0.5))
    screen = wait_for(
        lambda: next((s for s in [tmux.screen()] if "new-session" in s and "importance" in s), ""),
        timeout=SCREEN_TIMEOUT,
        what=lambda: f"new-session on screen:\n{tmux.screen()}",
    )
    assert "old-session" not in screen
    assert session_rows(screen) == ["new-session"]

    tmux("resize-window", "-t", "top", "-x", "60", "-y", "12")

    def reflowed() -> str:  # the 80-column table cut at 60 would lose its last columns
        screen = tmux.screen()
        header = next((x for x in screen.splitlines() if x.startswith("session ")), "")
        return screen if header.rstrip().endswith("scr") and len(header) <= 60 else ""

    screen = wait_for(reflowed, timeout=10, what=lambda: f"a 60×12 layout:\n{tmux.screen()}")
    assert len(screen.splitlines()) <= 12 and session_rows(screen) == ["new-session"]

    tmux("send-keys", "-t", "top", "C-c")
    assert wait_exit(tmux, wait_for, "top to stop on Ctrl-C") == 0
    assert_terminal_restored(tmux)


def test_an_unreachable_broker_is_one_line_and_exit_status_1(wait_for, tmux: Tmux) -> None:
    address = f"127.0.0.1:{free_port()}"
    tmux.start("--bootstrap", address)
    assert wait_exit(tmux, wait_for, "top to give up") == 1
    lines = [line for line in tmux.screen(history=True).splitlines() if line.strip()]
    assert lines[0].startswith(f"tokenbudget top: no Kafka broker at {address} (")
    assert lines[0].endswith(")") and lines[1].startswith("tty: "), lines  # one line only


def test_without_a_terminal_top_says_so() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams", "top", "--bootstrap", "127.0.0.1:1"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == "tokenbudget top: needs an interactive terminal\n"


async def produce(bootstrap: str, topics: TopicNames, session_id: str, utilization: float) -> None:
    """One snapshot of `session_id` and one command for it, straight onto the output topics."""
    limit = 4000
    manager = BudgetManager("gpt-4o", limit)
    words = int(utilization * manager.snapshot([]).effective_limit * 0.7)
    snapshot = manager.snapshot([Message(id="m", role="user", content="word " * words)])
    action = Action(ActionKind.DROP, Rule.IMPORTANCE, ("m0",), 3100, 2900, "least relevant")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, value in (
            (
                topics.events,
                CODEC.dumps(
                    BUDGET_SNAPSHOT, BudgetSnapshot.of(session_id, 1, "gpt-4o", snapshot, 0.0)
                ),
            ),
            (
                topics.commands,
                CODEC.dumps(
                    BUDGET_COMMAND,
                    BudgetCommand(f"{session_id}/1/0", session_id, 1, action, 1.7e9, "gpt-4o"),
                ),
            ),
        ):
            await producer.send_and_wait(topic, value, key=session_id.encode())
    finally:
        await producer.stop()
