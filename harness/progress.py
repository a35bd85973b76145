"""The progress of a long build (a kernel's make, klp-build) on the harness's log: lines
``<what>: <text>``, said as the build's output tells of a step, and every EVERY seconds
from a thread of their own while the caller reads that output (a compile can be silent
for minutes; the ticker is what says it is still going)."""
from __future__ import annotations

import threading
import time
from typing import Optional

from . import log

EVERY = 20.0   # seconds between the ticker's lines


class Ticker:
    """Says what ``tick()`` returns every EVERY seconds between start() and stop() (nothing
    when it returns None). Subclasses count the build's output lines and say what they
    mean; ``started`` is when the ticker was made."""

    def __init__(self, what: str):
        self.what, self.started = what, time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def say(self, text: str) -> None:
        log.progress(f"{self.what}: {text}")

    def tick(self) -> Optional[str]:
        return None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(EVERY):
            text = self.tick()
            if text:
                self.say(text)


def time_left(done: int, total: int, elapsed: float) -> str:
    """", about Ns left" at the pace so far, while 0 < done < total; else nothing."""
    if not 0 < done < total:
        return ""
    return f", about {elapsed * (total - done) / done:.0f}s left"
