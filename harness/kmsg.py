"""Kernel log records as /dev/kmsg gives them: "PRI,SEQ,TS_USEC,FLAGS;MESSAGE".

Sequence numbers let a step ask for "what was logged since I began" without ever clearing
the log (``dmesg -C`` would destroy the evidence of a failure).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List

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
