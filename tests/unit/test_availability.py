"""Waiting for a broker: backoff, and one log line per state change (no broker needed)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.availability import (
    BrokerWait,
    OutageLog,
    create_topics_when_reachable,
    install_outage_log,
    retriable,
)
from streams.broker import free_port
from streams.errors import BrokerAuthenticationError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "test.broker"]


def test_broker_wait_backs_off_and_logs_each_state_change_once(caplog) -> None:
    logger = logging.getLogger("test.broker")
    wait = BrokerWait("k:9092", logger, first=0.5, maximum=4.0)
    with caplog.at_level(logging.INFO, logger="test.broker"):
        delays = [wait.unreachable(KafkaConnectionError("Unable to bootstrap")) for _ in range(6)]
        wait.reachable()
        wait.reachable()  # still reachable: nothing to say
        wait.unreachable(ConnectionRefusedError(111, "refused"))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    logged = records(caplog)
    assert [level for level, _ in logged] == ["WARNING", "INFO", "WARNING"]
    assert "k:9092 unreachable (KafkaConnectionError: Unable to bootstrap)" in logged[0][1]
    assert "reachable again" in logged[1][1] and "(6 attempts)" in logged[1][1]
    assert wait.delay == 1.0  # the backoff started over after the broker was back


def test_only_errors_that_waiting_can_fix_are_retried() -> None:
    assert retriable(KafkaConnectionError("down"))
    assert retriable(ConnectionRefusedError(111, "refused"))
    assert not retriable(BrokerAuthenticationError("refused the SASL login", address="k:9092"))
    assert not retriable(ValueError("bad topic"))


def connection_error(logger: logging.Logger, text: str) -> bool:
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, text, (), None)
    return logger.filter(record)  # what the filter lets through


def test_outage_log_collapses_connection_errors_into_two_lines(caplog) -> None:
    clock = Clock()
    outage = OutageLog("k:9092", logging.getLogger("test.broker"), quiet=2.0, clock=clock)
    source = logging.getLogger("test.aiokafka")
    source.addFilter(outage)
    try:
        with caplog.at_level(logging.INFO, logger="test.broker"):
            passed = [connection_error(source, "Unable connect to node with id 1: refused")]
            for _ in range(500):
                clock.now += 0.01
                passed.append(connection_error(source, "Failed fetch messages from 1: x"))
            passed.append(connection_error(source, "Heartbeat failed: unrelated"))
            outage.check()  # errors 0 s ago: still down
            clock.now += 2.5
            outage.check()
            outage.check()  # said once
    finally:
        source.removeFilter(outage)
    assert passed[:-1] == [False] * 501 and passed[-1] is True  # others still logged
    logged = records(caplog)
    assert [level for level, _ in logged] == ["WARNING", "INFO"]
    assert "k:9092 unreachable (Unable connect to node with id 1: refused)" in logged[0][1]
    assert "reachable again" in logged[1][1] and "501 lines left out" in logged[1][1]
    assert outage.outages == 1


async def test_waiting_for_topics_ends_when_asked_to_stop(caplog) -> None:
    stop = asyncio.Event()
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    wait = BrokerWait(bootstrap, logging.getLogger("test.broker"), first=0.05, maximum=0.05)
    asyncio.get_running_loop().call_later(0.3, stop.set)
    with caplog.at_level(logging.INFO, logger="test.broker"):
        created = await create_topics_when_reachable(bootstrap, ["t"], 1, stop=stop, wait=wait)
    assert created is False
    assert wait.attempts >= 2
    assert [level for level, _ in records(caplog)] == ["WARNING"]  # one line, many attempts
    aiokafka_lines = [r for r in caplog.records if r.getMessage().startswith("Unable connect")]
    assert aiokafka_lines == []  # its per-attempt lines are left out while waiting


def test_the_outage_log_is_installed_once_per_process() -> None:
    """Every client of an agent process installs it; aiokafka's loggers get one filter."""
    first = install_outage_log("127.0.0.1:1")
    again = install_outage_log("127.0.0.1:2")
    assert again is first and "127.0.0.1:2" in first.bootstrap.split(" or ")
    assert install_outage_log("127.0.0.1:2").bootstrap == first.bootstrap
    assert logging.getLogger("aiokafka").filters.count(first) == 1
