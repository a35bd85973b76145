"""Kernel log records as /dev/kmsg gives them: "PRI,SEQ,TS_USEC,FLAGS;MESSAGE".

Sequence numbers let a step ask for "what was logged since I began" without ever clearing
the log (``dmesg -C`` would destroy the evidence of a failure).
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Iterable, List

from .errors import HarnessError, WaitTimeout

LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class Record:
    seq: int
    level: int          # 0 (emerg) .. 7 (debug)
    facility: int
    usec: int           # microseconds since boot
    message: str

    def __str__(self) -> str:
        return f"[{self.usec / 1e6:12.6f}] {self.message}"


def parse(text: str) -> List[Record]:
    records = []
    for line in text.splitlines():
        # Continuation lines (" SUBSYSTEM=..." dictionary entries) start with a space.
        if not line or line[0] == " " or ";" not in line:
            continue
        header, _, message = line.partition(";")
        fields = header.split(",")
        try:
            pri, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
        except (ValueError, IndexError):
            continue
        message = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), message)
        records.append(Record(seq, pri & 7, pri >> 3, usec, message))
    return records


def text(records: Iterable[Record]) -> str:
    return "\n".join(r.message for r in records)


class Stream:
    """The kernel log as it is written: a guest ``dd`` blocked on /dev/kmsg, read by a thread.

    Reading the whole buffer for every "what was logged since" question costs a process
    and 15-100 KB each time; the stream costs nothing between questions. ``sync`` writes
    a marker record and waits for it, so everything logged before the call has arrived.
    """

    MARK = "klp-harness-sync "

    def __init__(self, channel):
        self.channel = channel
        self._records: List[Record] = []
        self._cond = threading.Condition()
        self._count = 0
        self._closed = False
        # A record is one read(); dd passes it on at once. The reader ends with the channel.
        # coreutils' dd, by its path: the login shell would take busybox's applet.
        channel.exec_command("exec /bin/dd if=/dev/kmsg bs=65536 status=none")
        self._thread = threading.Thread(target=self._read, name="kmsg-stream", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return not self._closed

    def _read(self) -> None:
        pending = b""
        seen = -1
        while True:
            try:
                data = self.channel.recv(65536)
            except (OSError, EOFError):
                data = b""
            if not data:
                break
            pending += data
            complete, _, pending = pending.rpartition(b"\n")
            if not complete:
                pending = complete + pending
                continue
            new = [r for r in parse(complete.decode(errors="replace")) if r.seq > seen]
            if new:
                seen = new[-1].seq
                with self._cond:
                    self._records.extend(new)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def sync(self, guest, timeout: float = 30.0) -> int:
        """Sequence number of the newest record once everything logged so far has arrived."""
        self._count += 1
        mark = f"{self.MARK}{id(self):x}-{self._count}"
        # Level 7 (debug): kept in the log, not printed on the (slow, emulated) console.
        guest.run(f"echo '<7>{mark}' > /dev/kmsg")
        limit = timeout * guest.scale
        deadline = time.monotonic() + limit
        with self._cond:
            while True:
                for r in reversed(self._records):
                    if r.message == mark:
                        return r.seq
                if self._closed:
                    raise HarnessError("the guest's /dev/kmsg reader ended")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout("the kernel log marker to arrive", limit, mark)
                self._cond.wait(min(remaining, 1.0))

    def records(self, after: int = -1) -> List[Record]:
        """Records after sequence number ``after``, without the markers."""
        with self._cond:
            return [r for r in self._records
                    if r.seq > after and not r.message.startswith(self.MARK)]

    def close(self) -> None:
        try:
            self.channel.close()
        except (OSError, EOFError):
            pass
