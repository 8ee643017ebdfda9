"""Shared helpers for tests that open real sockets on loopback."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Coroutine
from typing import Any

_counter = itertools.count()


def addresses(n: int) -> list[str]:
    """Loopback addresses no other test (or concurrent test run) uses."""
    second = 20 + os.getpid() % 200
    out = []
    for _ in range(n):
        i = next(_counter)
        out.append(f"127.{second}.{i // 250}.{i % 250 + 2}")
    return out


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run a coroutine; the timeout only guards against a hang."""

    async def guarded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(guarded())
