"""The client SDK end to end on the real embedded broker, a real worker and a real summarizer:
agents that use only the public SDK get contexts that fit, in step with the worker's ledger; a
dead worker means a local fallback, and the client resyncs when the worker is back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.budget import Action, ActionKind, Message, Rule, to_anthropic, to_openai
from streams.client import BudgetClient, Context, Mirror, SyncBudgetClient
from streams.client.mirror import ledger_matches
from streams.codecs import BUDGET_COMMAND, DEAD_LETTER, TURN_EVENT, BudgetCommand, DeadLetter
from streams.corpus import generate_fleet
from streams.errors import RejectedEventError
from streams.topics import TopicNames
from tests.integration.fleet import CODEC, worker_command
from tests.integration.test_shutdown import read_topic
from tests.integration.test_summarizer import PARTITIONS, start_stack

LIMITS = (5_000, 7_000)


def turns_of(conversation_messages: list[Message], n: int) -> list[Message]:
    """The first `n` non-system messages."""
    return [m for m in conversation_messages if m.role != "system"][:n]


def as_provider(message: Message, i: int) -> Message | dict:
    """Every third turn as an OpenAI dict, every third as an Anthropic one, the rest ours.

    Tool messages stay ours (their results must pair with the ids of calls the client kept).
    """
    if message.role in ("tool", "system") or message.pinned or not isinstance(message.content, str):
        return message
    if i % 3 == 1:
        return to_openai([message])[0]
    if i % 3 == 2:
        return to_anthropic([message])["messages"][0]
    return message


async def drive(client: BudgetClient, sid: str, messages: list[Message], limit: int) -> Counter:
    """One agent in lockstep: publish a turn, get the context before each assistant turn."""
    tally: Counter[str] = Counter()
    mirror: Mirror = client.sessions[sid]
    for i, message in enumerate(messages):
        if message.role == "assistant":
            context = await client.context(sid, timeout=30)
            check(context, mirror, limit)
            tally["contexts"] += 1
            await client.report_usage(sid, prompt_tokens=context.tokens, completion_tokens=40)
        await client.publish_turn(sid, as_provider(message, i))
    check(await client.context(sid, timeout=30), mirror, limit)
    return tally


def check(context: Context, mirror: Mirror, limit: int) -> None:
    """In step: not a fallback, fits the limit, the client's ledger equals the worker's."""
    assert not context.fallback, f"{context.session_id}: the worker did not answer in time"
    assert context.tokens <= limit
    assert context.snapshot.used <= context.snapshot.effective_limit
    assert mirror.worker is not None and ledger_matches(mirror, mirror.worker.snapshot), (
        f"{context.session_id}: client {mirror.session.snapshot().used} tokens, "
        f"worker {mirror.worker.snapshot.used if mirror.worker else None}"
    )


def one_worker(faust_worker: Any, bootstrap: str, topics: TopicNames) -> Any:
    """One budget worker on these topics, ready."""
    command = worker_command(bootstrap, topics, topics.prefix + "worker", PARTITIONS)
    return faust_worker("streams", name="budget", command=command, ready_timeout=90)


async def ten_turns_in_step(
    client: BudgetClient, sid: str, messages: list[Message], limit: int
) -> Mirror:
    """Start the session, publish its first ten turns and check the context is in step."""
    await client.start_session(sid, model="gpt-4o", context_limit=limit)
    mirror = client.sessions[sid]
    for message in messages[:10]:
        await client.publish_turn(sid, message)
    check(await client.context(sid, timeout=30), mirror, limit)
    return mirror


def test_a_fleet_through_the_sdk_stays_in_step_with_the_worker(
    broker, faust_worker, unique_name
) -> None:
    prefix = unique_name("sdk") + "."
    topics, _, _ = start_stack(broker, faust_worker, prefix)
    fleet = generate_fleet(4, turns=36, seed=5)

    async def run() -> tuple[list[Counter], Counter]:
        async with BudgetClient(
            broker.bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS
        ) as client:
            seen: Counter[str] = Counter()

            async def watch() -> None:
                async for command in client.commands():
                    seen[command.action.kind.value] += 1

            watcher = asyncio.create_task(watch())
            jobs = []
            for n, conversation in enumerate(fleet):
                sid = f"{prefix}agent-{n}"
                limit = LIMITS[n % 2]
                system = conversation.messages[0].text
                await client.start_session(
                    sid, model="gpt-4o", context_limit=limit, system_prompt=system,
                    task=conversation.task,
                )  # fmt: skip
                jobs.append(drive(client, sid, turns_of(conversation.messages, 36), limit))
            tallies = await asyncio.gather(*jobs)
            watcher.cancel()
            return list(tallies), seen

    tallies, seen = asyncio.run(run())
    assert all(t["contexts"] > 5 for t in tallies)
    assert seen[ActionKind.DROP.value] > 0, seen  # the worker pruned, the client applied it


def test_a_worker_that_does_not_answer_means_a_local_fallback_then_a_resync(
    broker, faust_worker, unique_name
) -> None:
    """The worker stalls (SIGSTOP) while the agent goes on: the context falls back to the local
    cascade; once the worker answers again (SIGCONT), the next context is in step.

    Stalled, not killed, so that what is tested is the fallback alone: a killed worker's restart
    rebalances, and Faust 0.15.3 can skip an event then (docs/FAUST_ON_TANSU.md), which the
    next test covers on purpose. The stall stays under the group's session timeout.
    """
    prefix = unique_name("fallback") + "."
    topics = TopicNames(prefix)
    worker = one_worker(faust_worker, broker.bootstrap, topics)
    conversation = generate_fleet(1, turns=40, seed=9)[0]
    messages = turns_of(conversation.messages, 40)
    sid = prefix + "agent"
    limit = 4_000

    async def run() -> None:
        async with BudgetClient(
            broker.bootstrap, topic_prefix=prefix, partitions=PARTITIONS
        ) as client:
            mirror = await ten_turns_in_step(client, sid, messages, limit)

            worker.freeze()
            try:
                for message in messages[10:]:
                    await client.publish_turn(sid, message)
                local = await client.context(sid, timeout=1.0)
            finally:
                worker.thaw()
            assert local.fallback
            assert local.tokens <= local.snapshot.effective_limit < limit
            assert not mirror.session.fits()  # unpruned, the history would be over budget

            check(await client.context(sid, timeout=60), mirror, limit)

    asyncio.run(run())


def test_an_event_the_worker_never_saw_is_sent_again_and_the_session_heals(
    broker, faust_worker, unique_name
) -> None:
    """The broker has every event, but the worker's consumer skipped one (Faust 0.15.3 can,
    while it rebalances). Here the client's first send of seq 11 is lost on purpose; seq 12
    arrives. The worker holds the session at seq 10 (seq 12 is a `sequence_gap` dead letter)
    instead of keeping a ledger one message short; the client's context times out, it resends
    what no snapshot acknowledged, and the session is whole again."""
    prefix = unique_name("gap") + "."
    topics = TopicNames(prefix)
    one_worker(faust_worker, broker.bootstrap, topics)
    messages = turns_of(generate_fleet(1, turns=30, seed=4)[0].messages, 30)
    sid = prefix + "agent"
    limit = 4_000

    async def run() -> list[DeadLetter]:
        async with BudgetClient(
            broker.bootstrap, topic_prefix=prefix, partitions=PARTITIONS
        ) as client:
            mirror = await ten_turns_in_step(client, sid, messages, limit)

            producer = client._producer
            assert producer is not None
            send = producer.send_and_wait
            lost: list[int] = []

            async def lose_seq_11(topic: str, value: bytes, **kw: object) -> object:
                event = CODEC.loads(TURN_EVENT, value)
                if event.seq == 11 and not lost:
                    lost.append(event.seq)
                    return None  # "sent": the worker will never see it
                return await send(topic, value, **kw)

            producer.send_and_wait = lose_seq_11  # type: ignore[method-assign]
            await client.publish_turn(sid, messages[10])
            await client.publish_turn(sid, messages[11])
            held = await client.context(sid, timeout=3.0)
            assert held.fallback and lost == [11]
            assert mirror.worker is not None and mirror.worker.seq == 10
            for message in messages[12:]:
                await client.publish_turn(sid, message)
            check(await client.context(sid, timeout=60), mirror, limit)
            assert mirror.worker.seq == len(messages)
        letters = await read_topic(broker.bootstrap, topics.dead_letters)
        return [CODEC.loads(DEAD_LETTER, value) for _, _, value in letters]

    letters = asyncio.run(run())
    gaps = [letter for letter in letters if "sequence gap" in letter.reason]
    assert gaps and all(letter.source_topic == topics.turns for letter in gaps)
    assert "expected seq 11, got 12" in gaps[0].reason


def test_the_sync_client_for_agents_that_are_not_async(broker, faust_worker, unique_name) -> None:
    prefix = unique_name("sync") + "."
    topics = TopicNames(prefix)
    one_worker(faust_worker, broker.bootstrap, topics)
    conversation = generate_fleet(1, turns=30, seed=2)[0]
    sid = prefix + "agent"
    with SyncBudgetClient(broker.bootstrap, topic_prefix=prefix, partitions=PARTITIONS) as client:
        client.start_session(sid, model="gpt-4o", context_limit=3_000, task=conversation.task)
        for message in turns_of(conversation.messages, 30):
            client.publish_turn(sid, message)
        context = client.context(sid, timeout=30)
        assert not context.fallback and context.tokens <= 3_000
        assert 0 <= client.headroom(sid, "tool_results") <= context.snapshot.effective_limit
        client.report_usage(sid, prompt_tokens=context.tokens)
        client.end_session(sid)


def test_a_rejected_session_raises_at_once_instead_of_falling_back(broker, unique_name) -> None:
    prefix = unique_name("rejected") + "."
    sid = prefix + "agent"

    async def run() -> None:
        async with BudgetClient(
            broker.bootstrap, topic_prefix=prefix, partitions=PARTITIONS
        ) as client:
            await client.start_session(sid, model="gpt-4o", context_limit=4_000)
            await client.publish_turn(sid, Message(id="m1", role="user", content="hello"))
            # What the worker sends when it evicts an idle session (no worker runs here).
            evicted = Action(
                ActionKind.REJECTED, Rule.IDLE_TIMEOUT, (), 0, 0, "idle for 86400 s: evicted"
            )
            (command,) = BudgetCommand.plan(sid, 1, [evicted], 0.0, "gpt-4o")
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            try:
                value = CODEC.dumps(BUDGET_COMMAND, command)
                await producer.send_and_wait(TopicNames(prefix).commands, value, key=sid.encode())
            finally:
                await producer.stop()
            started = time.monotonic()
            with pytest.raises(RejectedEventError, match="evicted"):
                await client.context(sid, timeout=60)
            assert time.monotonic() - started < 30  # not after the fallback timeout

    asyncio.run(run())
