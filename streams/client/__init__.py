"""The SDK agent fleets import: publish turns, get context-safe history, apply commands.

`BudgetClient` is async (`async with BudgetClient(...) as client`); `SyncBudgetClient` is the
same for agents that are not. `Context` is what `context()` returns.
"""

from streams.client.client import BudgetClient, UnknownSessionError
from streams.client.mirror import Context, Mirror
from streams.client.sync import SyncBudgetClient

__all__ = ["BudgetClient", "Context", "Mirror", "SyncBudgetClient", "UnknownSessionError"]
