"""One root exception for the whole product; `retriable` tells callers whether to try again.

Callers branch on the class and on `retriable`, never on message text. A non-retriable error on a
stream goes to the dead-letter topic with `str(error)` as the reason.
"""

from __future__ import annotations


class TokenBudgetError(Exception):
    """Root of every error this product raises on purpose."""

    retriable: bool = False


class InvalidMessageError(TokenBudgetError, ValueError):
    """A message is malformed: missing id, unknown role, tool result without its call id."""


class PolicyError(TokenBudgetError, ValueError):
    """A policy is impossible: negative shares, shares over 100%, unknown keys."""


class SystemPromptTooLargeError(PolicyError):
    """A fixed component (system prompt or tool schemas) exceeds its share at session start."""

    def __init__(self, component: str, used: int, budget: int, limit: int) -> None:
        self.component = component
        self.used = used
        self.budget = budget
        self.limit = limit
        what = "system prompt" if component == "system_prompt" else "tool schemas"
        super().__init__(
            f"{what} takes {used} tokens but the {component} share is {budget} tokens "
            f"(of an effective limit of {limit}); shorten it or raise the {component} share"
        )


class TokenizerUnavailableError(TokenBudgetError):
    """A configured tokenizer or encoding could not be loaded (missing file, bad hash)."""


class UnknownStrategyError(TokenBudgetError, ValueError):
    """A strategy name that the cascade does not know."""


class BrokerUnavailableError(TokenBudgetError):
    """The embedded broker cannot run: binary missing or not executable, or it never got ready."""


class SecuritySettingsError(TokenBudgetError, ValueError):
    """TLS/SASL settings that cannot work: a SASL protocol without a user, a missing file."""


class BrokerAuthenticationError(TokenBudgetError):
    """The broker refused the connection's TLS or SASL: wrong credentials, an untrusted CA.

    Not retriable: the same settings will be refused again.
    """

    def __init__(self, reason: str, *, address: str) -> None:
        self.address = address
        super().__init__(reason)


class DecodeError(TokenBudgetError, ValueError):
    """Bytes that cannot become a valid record; the record goes to the dead-letter topic.

    `kind` is a short, bounded label for metrics: `bad_header`, `unknown_schema`,
    `incompatible_schema`, `wrong_record`, `bad_body` (truncated or corrupt Avro) or `invalid`
    (decoded, but fails validation).
    """

    def __init__(self, reason: str, *, kind: str, record: str | None = None) -> None:
        self.kind = kind
        self.record = record
        super().__init__(f"cannot decode {record}: {reason}" if record else reason)


class EncodeError(TokenBudgetError, ValueError):
    """A value does not fit its Avro schema (a bug in the producer, not bad input)."""


class RejectedEventError(TokenBudgetError):
    """A well-formed event that the session's state refuses: a dead letter, never a crash."""


class SequenceGapError(RejectedEventError):
    """An event past the next seq of its session: one before it is missing.

    The session holds at its last seq, so that a producer that resends from `expected` (the
    client SDK does when the worker is not in step) brings it back without a hole in the ledger.
    """

    def __init__(self, session_id: str, expected: int, got: int) -> None:
        super().__init__(
            f"sequence gap in session {session_id!r}: expected seq {expected}, got {got}; "
            f"the session holds at seq {expected - 1} until seq {expected} arrives"
        )
        self.expected = expected
        self.got = got
