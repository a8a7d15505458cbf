"""`BudgetManager`: the in-process library API over the pure core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.budget.actions import Action
from streams.budget.counting import (
    ChatFormat,
    EstimatingTokenizer,
    MessageCounter,
    Tokenizer,
    resolve_model,
)
from streams.budget.importance import Scorer
from streams.budget.ledger import Ledger, Snapshot
from streams.budget.model import Component, Message
from streams.budget.planner import STRATEGIES, CascadeInput, run_cascade
from streams.budget.policy import Budgets, Policy
from streams.budget.summarization import Summarize
from streams.budget.working import Working
from streams.errors import SystemPromptTooLargeError, UnknownStrategyError


@dataclass(frozen=True, slots=True)
class Prepared:
    """The result of `BudgetManager.prepare`: the context-safe view and how it was reached."""

    messages: list[Message]
    dropped_ids: list[str]
    actions: list[Action]
    snapshot: Snapshot
    before: Snapshot

    @property
    def tokens(self) -> int:
        """Tokens the prepared request will take (messages, schemas, reply priming)."""
        return self.snapshot.used


class BudgetManager:
    """Counts, budgets and prunes one model's conversations in-process.

    The tokenizer is resolved from the model name (tiktoken, offline, for OpenAI models; a local
    Hugging Face `tokenizer.json` when `tokenizer_path` is given; an estimate otherwise). The
    importance scorer loads the local embedding model the first time a strategy needs it.
    """

    def __init__(
        self,
        model: str,
        context_limit: int,
        policy: Policy | Mapping[str, Any] | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        tokenizer_path: str | None = None,
        chat_format: ChatFormat | None = None,
        scorer: Scorer | None = None,
        summarizer: Summarize | None = None,
        tools: Sequence[Mapping[str, Any]] = (),
        count_factor: float = 1.0,
    ) -> None:
        """`count_factor` scales estimated counts (see `calibration`); exact ones ignore it."""
        self.model = model
        self.spec = resolve_model(model)
        self.policy = policy if isinstance(policy, Policy) else Policy.from_mapping(policy)
        if tokenizer is None:
            from streams.adapters.tokenizers import tokenizer_for

            tokenizer = tokenizer_for(self.spec, tokenizer_path)
        if count_factor != 1.0 and isinstance(tokenizer, EstimatingTokenizer):
            tokenizer = EstimatingTokenizer(count_factor)  # calibrated from billed usage
        self.count_factor = count_factor if isinstance(tokenizer, EstimatingTokenizer) else 1.0
        self.counter = MessageCounter(tokenizer, chat_format or self.spec.chat_format)
        self.budgets: Budgets = self.policy.budgets(context_limit, estimated=not tokenizer.exact)
        self._scorer = scorer
        self.summarizer = summarizer
        self.tools = list(tools)
        self.tool_tokens = self.counter.count_tools(self.tools)
        self._check_fixed(Component.TOOL_SCHEMAS, self.tool_tokens)

    @property
    def context_limit(self) -> int:
        """The model's context window in tokens."""
        return self.budgets.context_limit

    @property
    def estimated(self) -> bool:
        """True when counts are estimates (no exact tokenizer for this model)."""
        return not self.counter.exact

    @property
    def scorer(self) -> Scorer:
        """The importance scorer; the default loads the local embedding model on first use."""
        if self._scorer is None:
            from streams.adapters.embedding import default_scorer

            self._scorer = default_scorer()
        return self._scorer

    def count(self, message: Message) -> int:
        """Tokens of one message (cached on it)."""
        return self.counter.count(message)

    def check_system_prompt(self, system_prompt: str | Message) -> int:
        """Count a system prompt and raise `SystemPromptTooLargeError` if it exceeds its share."""
        message = (
            system_prompt
            if isinstance(system_prompt, Message)
            else Message(id="system", role="system", content=system_prompt)
        )
        tokens = self.counter.count(message)
        self._check_fixed(Component.SYSTEM_PROMPT, tokens)
        return tokens

    def _check_fixed(self, component: Component, tokens: int) -> None:
        budget = self.budgets[component]
        if tokens > budget:
            raise SystemPromptTooLargeError(
                component.value, tokens, budget, self.budgets.effective_limit
            )

    def ledger(self, messages: Sequence[Message]) -> Ledger:
        """A ledger of `messages` (counted once, cached), tool schemas and reply priming."""
        for message in messages:
            self.counter.count(message)
        ledger = Ledger.of(self.budgets, messages, self.counter.chat_format.reply_priming)
        ledger.charge(Component.TOOL_SCHEMAS, self.tool_tokens)
        return ledger

    def snapshot(self, messages: Sequence[Message]) -> Snapshot:
        """Per-component usage of `messages` without pruning anything."""
        return self.ledger(messages).snapshot(estimated=self.estimated)

    def working(self, messages: Sequence[Message]) -> Working:
        """The cascade's working state over `messages`, tool schemas and reply priming charged."""
        work = Working(messages, self.counter, self.budgets, self.counter.chat_format.reply_priming)
        work.ledger.charge(Component.TOOL_SCHEMAS, self.tool_tokens)
        return work

    def prepare(
        self,
        messages: Sequence[Message],
        task: str = "",
        strategy: str = "cascade",
        *,
        plan_summary: bool = True,
    ) -> Prepared:
        """Return the context-safe view of `messages` for the next LLM call.

        Without a summarizer callable, a session under pressure (the total or a prunable
        component at the info threshold) gets a planned SUMMARIZE action for an asynchronous
        summarizer; `plan_summary=False` (one is already outstanding) skips it.

        Raises `SystemPromptTooLargeError` when the system prompt alone exceeds its share; every
        other overflow is handled by the cascade, down to a RESET, never by an exception.
        """
        if strategy not in STRATEGIES:
            raise UnknownStrategyError(
                f"unknown strategy {strategy!r} (expected one of {', '.join(STRATEGIES)})"
            )
        ledger = self.ledger(messages)
        self._check_fixed(Component.SYSTEM_PROMPT, ledger.used[Component.SYSTEM_PROMPT])
        before = ledger.snapshot(estimated=self.estimated)
        plans_summary = (
            plan_summary
            and strategy in ("summarization", "cascade")
            and ledger.pressure() >= self.policy.info
        )
        if ledger.fits() and not plans_summary:  # the common case: nothing to decide
            return Prepared(list(messages), [], [], before, before)
        work = self.working(messages)
        spec = CascadeInput(
            strategy=strategy,
            task=task,
            scorer=_Lazy(self),
            summarize=self.summarizer,
            plan_summary=plan_summary,
        )
        run_cascade(work, spec)
        return Prepared(
            messages=work.kept(),
            dropped_ids=work.dropped_ids(),
            actions=work.actions,
            snapshot=work.ledger.snapshot(estimated=self.estimated),
            before=before,
        )


class _Lazy:
    """Defers loading the default scorer until the cascade actually ranks by importance."""

    def __init__(self, manager: BudgetManager) -> None:
        self.manager = manager

    def score(self, task: str, messages: Sequence[Message]) -> list[float]:
        """Delegate to the manager's scorer."""
        return self.manager.scorer.score(task, messages)
