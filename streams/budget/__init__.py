"""The pure budget core: counting, ledger, policy, strategies and the cascade planner.

No Kafka, no asyncio, no I/O: everything here is deterministic and runs in-process. Heavy
libraries (tiktoken, sentence-transformers) are reached only through the ports `Tokenizer`,
`Embedder` and `Scorer`; their real implementations live in `streams.adapters`.
"""

from streams.budget.actions import Action, ActionKind, Rule
from streams.budget.convert import (
    from_anthropic,
    from_openai,
    message_from_json,
    message_to_json,
    to_anthropic,
    to_openai,
)
from streams.budget.counting import (
    ChatFormat,
    EstimatingTokenizer,
    MessageCounter,
    ModelSpec,
    Tokenizer,
    resolve_model,
)
from streams.budget.importance import (
    CosineRecencyScorer,
    Embedder,
    EvidenceScorer,
    LexicalScorer,
    Scorer,
)
from streams.budget.ledger import AlertLevel, ComponentUsage, Ledger, Snapshot
from streams.budget.manager import BudgetManager, Prepared
from streams.budget.model import Component, Message, TextPart, ToolCallPart, ToolResultPart
from streams.budget.planner import STRATEGIES
from streams.budget.policy import Budgets, Policy
from streams.budget.session import Session
from streams.budget.summarization import Summarize

__all__ = [
    "STRATEGIES",
    "Action",
    "ActionKind",
    "AlertLevel",
    "BudgetManager",
    "Budgets",
    "ChatFormat",
    "Component",
    "ComponentUsage",
    "CosineRecencyScorer",
    "Embedder",
    "EstimatingTokenizer",
    "EvidenceScorer",
    "Ledger",
    "LexicalScorer",
    "Message",
    "MessageCounter",
    "ModelSpec",
    "Policy",
    "Prepared",
    "Rule",
    "Scorer",
    "Session",
    "Snapshot",
    "Summarize",
    "TextPart",
    "Tokenizer",
    "ToolCallPart",
    "ToolResultPart",
    "from_anthropic",
    "from_openai",
    "message_from_json",
    "message_to_json",
    "resolve_model",
    "to_anthropic",
    "to_openai",
]
