"""Polling for what another process or thread does (pub/sub delivery, a replica catching up)."""
from __future__ import annotations

import time
from typing import Callable


def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """``condition()`` once it holds, polling every 10 ms for up to ``seconds``; its last value otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """:func:`eventually`, failing the test when ``condition`` does not come to hold within ``timeout``."""
    assert eventually(condition, timeout), "timed out"
