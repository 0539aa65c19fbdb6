"""Test helpers shared by the client test modules (not a test module)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from koodrive_fast._client import Client

__all__ = ["SyncAdapter", "Scenario"]

Scenario = Callable[[Any], Awaitable[None]]


class SyncAdapter:
    """Awaitable facade over a sync :class:`Client`, so one scenario tests both clients."""

    def __init__(self, client: Client) -> None:
        self.sync = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.sync, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return attr(*args, **kwargs)

        return call
