"""Token budget management for fleets of long-running LLM agents.

The in-process library lives in `streams.budget`; importing this package has no side effects.
"""

from streams.budget import BudgetManager, Component, Message, Policy, Prepared

__all__ = ["BudgetManager", "Component", "Message", "Policy", "Prepared"]
__version__ = "0.1.0"
