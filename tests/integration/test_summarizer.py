"""The summarizer process and the budget worker on the real embedded broker: sessions driven past
the info threshold get summaries applied, ledgers stay exact, and redelivery changes nothing."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.broker import end_offsets
from streams.budget import ActionKind, BudgetManager, Message, Session
from streams.budget.summarization import summary_id
from streams.codecs import BUDGET_COMMAND, COMPRESSED_HISTORY, BudgetCommand, SummaryStatus
from streams.summarizer.service import command_line
from streams.topics import TopicNames
from tests.integration.fleet import CODEC, FleetClient, fleet_events, fresh, worker_command

PARTITIONS = 4


def start_stack(
    broker, faust_worker, prefix: str, backend: str = "extractive", env: dict | None = None
) -> tuple[TopicNames, str, object]:
    """A budget worker and a summarizer on fresh topics: (topics, the worker's group, the
    summarizer process)."""
    topics = TopicNames(prefix)
    app_id = prefix + "worker"

    def summarizer_command(_worker: object) -> list[str]:
        return command_line(
            broker.bootstrap,
            topic_prefix=prefix,
            group=prefix + "summarizer",
            partitions=PARTITIONS,
            backend=backend,
            loglevel="debug",
        )

    summarizer = faust_worker(
        "streams", name="summarizer", command=summarizer_command, env=env, ready=False
    )
    faust_worker(
        "streams",
        name="budget",
        command=worker_command(broker.bootstrap, topics, app_id, PARTITIONS),
        ready_timeout=90,
    )
    summarizer.wait_for_log("summarizer ready", timeout=90)
    return topics, app_id, summarizer


def planned(commands: list[BudgetCommand]) -> list[BudgetCommand]:
    return [
        c
        for c in commands
        if c.action.kind is ActionKind.SUMMARIZE and c.action.replacement is None
    ]


def applied(commands: list[BudgetCommand]) -> list[BudgetCommand]:
    return [
        c
        for c in commands
        if c.action.kind is ActionKind.SUMMARIZE and c.action.replacement is not None
    ]


async def drive_in_lockstep(client: FleetClient, fleet: dict, timeout: float) -> None:
    """Like agents that wait for their context: publish a round of turns, then wait for its
    snapshots and for every summary asked for so far to be applied."""
    rounds = max(len(events) for events in fleet.values())
    for r in range(rounds):
        await client.publish([events[r] for events in fleet.values() if r < len(events)])

        def caught_up(c, r=r) -> bool:
            for sid in fleet:
                if not any(s.seq == r for s in c.snapshots.get(sid, ())):
                    return False
                wanted = {summary_id([p.command_id]) for p in planned(c.commands.get(sid, []))}
                have = {a.action.replacement.id for a in applied(c.commands.get(sid, []))}
                if not wanted <= have:
                    return False
            return True

        await client.collect_until(caught_up, timeout=timeout)


def agent_history(events: list, commands: list[BudgetCommand]) -> Session:
    """The history an agent keeps by adding its turns and applying the commands in order."""
    start = events[0].session_start
    agent = Session(BudgetManager(start.model, start.context_limit, start.policy))
    agent.add(
        Message(id=f"{events[0].session_id}/system", role="system", content=start.system_prompt)
    )
    by_seq: dict[int, list[BudgetCommand]] = {}
    for command in commands:
        by_seq.setdefault(command.seq, []).append(command)
    for event in events[1:]:
        agent.add(fresh([event.message])[0])
        agent.apply([c.action for c in by_seq.get(event.seq, [])])
    return agent


async def read_all(bootstrap: str, topic: str, until: int, timeout: float) -> list[bytes]:
    """Every record of `topic` from the beginning, once there are at least `until`."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < until:
            assert time.monotonic() < deadline, f"{len(values)} of {until} records on {topic}"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values += [r.value for r in records]
    finally:
        await consumer.stop()
    return values


async def consumed(bootstrap: str, group: str, topic: str) -> bool:
    """Whether `group` has committed every partition of `topic` up to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await end_offsets(bootstrap, tps)
        return all([(await consumer.committed(tp) or 0) >= ends[tp] for tp in tps])
    finally:
        await consumer.stop()


async def send_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def test_sessions_past_the_info_threshold_get_summaries_applied_exactly_once(
    broker, faust_worker, unique_name, wait_for_async
) -> None:
    topics, app_id, _ = start_stack(broker, faust_worker, unique_name("sum") + ".")
    fleet = fleet_events(4, 30, seed=6)

    async def scenario() -> None:
        async with FleetClient(broker.bootstrap, topics) as client:
            await drive_in_lockstep(client, fleet, timeout=60)
            got = client.collected
            answers = sum(len(planned(got.commands[sid])) for sid in fleet)
            assert all(applied(got.commands[sid]) for sid in fleet)  # every session summarized
            for sid, events in fleet.items():
                commands = got.commands[sid]
                assert len(applied(commands)) == len(planned(commands))  # each answer once
                latest = got.latest(sid)
                assert latest.components["pinned"].used > 0
                agent = agent_history(events, commands)
                assert agent.manager.snapshot(fresh(list(agent.messages.values()))) == latest
                for command in applied(commands):
                    summary = command.action.replacement
                    assert summary.pinned and summary.text.startswith("[Summary")
                    assert summary.id in agent.messages or any(
                        summary.id in c.action.message_ids for c in commands
                    )  # still there, or dropped later by the cascade

            # Redelivery: the summarizer gets its commands again and the worker their answers.
            values = await read_all(broker.bootstrap, topics.compressed, answers, 30)
            decoded = [CODEC.loads(COMPRESSED_HISTORY, v) for v in values]
            assert all(d.status is SummaryStatus.OK and d.backend == "extractive" for d in decoded)
            again = [(d.session_id.encode(), v) for d, v in zip(decoded, values, strict=True)]
            await send_all(broker.bootstrap, topics.compressed, again)
            requests = [c for sid in fleet for c in planned(got.commands[sid])]
            resend = [(c.session_id.encode(), CODEC.dumps(BUDGET_COMMAND, c)) for c in requests]
            await send_all(broker.bootstrap, topics.commands, resend)
            second = await read_all(broker.bootstrap, topics.compressed, 3 * answers, 60)
            # Per answer: the original, the copy sent back above, and the summarizer's new
            # answer, in whatever order the partitions are read: the same summary three times,
            # never a second, different one.
            seen = Counter(
                (d.summary_id, d.summary)
                for d in (CODEC.loads(COMPRESSED_HISTORY, v) for v in second)
            )
            assert seen == {(d.summary_id, d.summary): 3 for d in decoded}
            await wait_for_async(
                lambda: consumed(broker.bootstrap, app_id, topics.compressed),
                60,
                interval=0.1,
                what="the worker to consume the redelivered summaries",
            )
            before = {sid: len(got.commands[sid]) for sid in fleet}
            snapshots = {sid: len(got.snapshots[sid]) for sid in fleet}
            await client.catch_up(timeout=30)
            for sid in fleet:
                fresh_commands = got.commands[sid][before[sid] :]
                assert applied(fresh_commands) == []  # nothing applied twice
                assert len(got.snapshots[sid]) == snapshots[sid]

    asyncio.run(scenario())


def test_a_failing_summarizer_backend_leaves_the_worker_pruning_and_exact(
    broker, faust_worker, unique_name
) -> None:
    """An LLM endpoint that only answers 500: the summarizer writes FAILED after its retries,
    the worker pauses its requests and prunes; nothing is lost, the API key is never logged."""
    from streams.testing import ChatCompletionsServer

    key = "sk-test-DO-NOT-LOG-4711"
    with ChatCompletionsServer() as llm:
        llm.script(*[500] * 500)
        env = {
            "TOKENBUDGET_OPENAI_BASE_URL": llm.base_url,
            "TOKENBUDGET_OPENAI_API_KEY": key,
            "TOKENBUDGET_OPENAI_RETRIES": "1",
            "TOKENBUDGET_OPENAI_TIMEOUT": "5",
        }

        topics, _, summarizer = start_stack(
            broker, faust_worker, unique_name("fail") + ".", backend="openai", env=env
        )
        fleet = fleet_events(2, 40, seed=8)

        async def scenario() -> list:
            async with FleetClient(broker.bootstrap, topics) as client:
                await drive_until_answered(client, fleet, broker.bootstrap, topics)
                return [client.collected, await answers_so_far(broker.bootstrap, topics)]

        collected, answers = asyncio.run(scenario())
        assert answers and all(a.status is SummaryStatus.FAILED for a in answers)
        assert all("500" in (a.error or "") and a.backend.startswith("openai") for a in answers)
        assert len(llm.requests) >= 2 * len(answers)  # one retry each
        assert all(r["headers"].get("authorization") == f"Bearer {key}" for r in llm.requests)
        for sid, events in fleet.items():
            commands = collected.commands[sid]
            assert applied(commands) == []
            asked = [c.seq for c in planned(commands)]
            assert all(b - a >= 20 for a, b in itertools.pairwise(asked))  # paused
            assert any(c.action.kind is ActionKind.DROP for c in commands)  # pruned instead
            agent = agent_history(events, commands)
            recount = agent.manager.snapshot(fresh(list(agent.messages.values())))
            assert recount == collected.latest(sid)
        assert key not in summarizer.log_tail(1_000_000)


async def answers_so_far(bootstrap: str, topics: TopicNames) -> list:
    consumer = AIOKafkaConsumer(
        topics.compressed, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        await consumer.seek_to_beginning()
        ends = await end_offsets(bootstrap, list(consumer.assignment()))
        found = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [CODEC.loads(COMPRESSED_HISTORY, r.value) for r in records]
        return found
    finally:
        await consumer.stop()


async def drive_until_answered(client, fleet, bootstrap: str, topics: TopicNames) -> None:
    """Publish round by round; after a round that asked for summaries, wait for the answers."""
    rounds = max(len(events) for events in fleet.values())
    for r in range(rounds):
        await client.publish([events[r] for events in fleet.values() if r < len(events)])

        def seen(c, r=r) -> bool:
            return all(any(s.seq == r for s in c.snapshots.get(sid, ())) for sid in fleet)

        await client.collect_until(seen, timeout=60)
        asked = sum(len(planned(client.collected.commands[sid])) for sid in fleet)
        deadline = time.monotonic() + 60
        while len(await answers_so_far(bootstrap, topics)) < asked:
            assert time.monotonic() < deadline, "the summarizer did not answer"
    await client.catch_up(timeout=30)
