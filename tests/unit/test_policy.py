"""Policy: fractions or absolute tokens, clear errors naming the numbers, the ledger's levels."""

from __future__ import annotations

import pytest

from streams.budget import AlertLevel, BudgetManager, Component, Message, Policy
from streams.errors import PolicyError, SystemPromptTooLargeError


def test_shares_are_fractions_of_the_effective_limit_or_absolute_tokens() -> None:
    budgets = Policy(history=2048).budgets(128_000)
    assert budgets.reserved == 6400  # 5% output reservation
    assert budgets.effective_limit == 121_600
    assert budgets[Component.HISTORY] == 2048
    assert budgets[Component.TOOL_RESULTS] == int(0.25 * 121_600)
    assert budgets[Component.SYSTEM_PROMPT] == int(0.10 * 121_600)


def test_default_shares_fill_the_effective_limit_exactly() -> None:
    budgets = Policy().budgets(100_000)
    assert sum(budgets.per_component.values()) <= budgets.effective_limit
    assert sum(budgets.per_component.values()) >= budgets.effective_limit - len(Component)


def test_absolute_output_reservation() -> None:
    assert Policy(output_reserve=4096).budgets(32_000).effective_limit == 32_000 - 4096


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"history": -1}, "must not be negative"),
        ({"history": 1.5}, "over 100%"),
        ({"history": 0.6}, "add up to 125%"),
        ({"history": "lots"}, "float fraction or int tokens"),
        ({"history": True}, "float fraction or int tokens"),
        ({"info": 0.9, "warn": 0.8}, "thresholds must rise"),
    ],
)
def test_invalid_policies_name_the_numbers(kwargs: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy(**kwargs)


def test_absolute_shares_over_the_limit_name_both_numbers() -> None:
    with pytest.raises(
        PolicyError, match=r"add up to 11280 tokens, over the effective limit of 7600"
    ):
        Policy(history=9000, tool_results=0.0, scratchpad=0.0).budgets(8000)


def test_unknown_policy_keys_are_rejected() -> None:
    with pytest.raises(PolicyError, match="unknown policy keys: histroy"):
        Policy.from_mapping({"histroy": 0.3})
    assert Policy.from_mapping({"history": 512}).history == 512


def test_overrides_round_trip_through_from_mapping() -> None:
    policy = Policy(history=2048, tool_results=0.2, critical=0.9)
    assert Policy.from_mapping(policy.overrides()) == policy
    assert Policy().overrides() == {}


def test_a_system_prompt_larger_than_its_share_is_rejected_with_both_numbers() -> None:
    manager = BudgetManager("gpt-4o", 1000, Policy(system_prompt=50))
    prompt = "You are a very thorough agent. " * 30
    with pytest.raises(SystemPromptTooLargeError) as error:
        manager.check_system_prompt(prompt)
    assert error.value.budget == 50 and error.value.used > 50
    assert f"takes {error.value.used} tokens" in str(error.value)
    assert "share is 50 tokens" in str(error.value)
    with pytest.raises(SystemPromptTooLargeError):
        manager.prepare([Message(id="s", role="system", content=prompt)])


@pytest.mark.parametrize(
    ("fill", "level"),
    [
        (0.5, AlertLevel.OK),
        (0.72, AlertLevel.INFO),
        (0.9, AlertLevel.WARN),
        (0.97, AlertLevel.CRITICAL),
    ],
)
def test_alert_levels_follow_the_thresholds(fill: float, level: AlertLevel) -> None:
    manager = BudgetManager(
        "gpt-4o",
        10_000,
        Policy(
            history=1.0,
            system_prompt=0.0,
            tool_schemas=0.0,
            pinned=0.0,
            tool_results=0.0,
            rag_context=0.0,
            scratchpad=0.0,
        ),
    )
    target = int(manager.budgets.effective_limit * fill)
    text = "word " * target
    message = Message(id="m", role="user", content=text)
    while manager.snapshot([message]).used > target:
        text = text[: -5 * max(1, (manager.snapshot([message]).used - target))]
        message = Message(id="m", role="user", content=text)
    assert manager.snapshot([message]).level is level


def test_snapshot_reports_used_budget_and_headroom_per_component() -> None:
    manager = BudgetManager("gpt-4o", 10_000, Policy(tool_results=1000))
    messages = [
        Message(id="s", role="system", content="Be brief."),
        Message(id="u", role="user", content="hi"),
    ]
    snapshot = manager.snapshot(messages)
    usage = snapshot.components[Component.TOOL_RESULTS]
    assert (usage.used, usage.budget, usage.remaining) == (0, 1000, 1000)
    assert snapshot.headroom("tool_results") == 1000
    assert snapshot.used == sum(u.used for u in snapshot.components.values()) + 3
    assert snapshot.message_count == 2
