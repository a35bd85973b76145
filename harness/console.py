"""The guest's serial console, read with pexpect into a log file.

During boot the caller waits for markers with ``expect()``. After boot a watcher thread keeps
draining the console (a full socket buffer would stall the guest's console writes) and
notices a kernel panic, so a test in progress learns of it at once.
"""
from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Optional

import pexpect
import pexpect.fdpexpect

from .errors import GuestPanic, WaitTimeout

PANIC = re.compile(r"Kernel panic - not syncing[^\r\n]*")
# After a panic the kernel prints its trace; keep reading until QEMU exits or this long.
PANIC_TAIL_SECONDS = 5.0


class Console:
    def __init__(self, sock: socket.socket, log_path: Path):
        self.log_path = Path(log_path)
        self._sock = sock
        self._log = open(self.log_path, "a", encoding="utf-8", errors="replace")
        self._child = pexpect.fdpexpect.fdspawn(
            sock.fileno(), encoding="utf-8", codec_errors="replace", logfile=None)
        self._child.logfile_read = self._log
        self._watcher: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.panic: Optional[str] = None   # console excerpt once a panic was seen
        self.closed = threading.Event()      # QEMU closed the console (it exited)

    # -- boot-time waiting (caller's thread) --------------------------------------------

    def expect(self, pattern: str, timeout: float, awaited: str) -> str:
        """Wait for ``pattern`` (a regex); a panic or QEMU exiting ends the wait at once."""
        idx = self._child.expect([PANIC, pexpect.EOF, pexpect.TIMEOUT, pattern], timeout=timeout)
        if idx == 0:
            self._collect_panic()
            raise GuestPanic(f"kernel panic while waiting for {awaited}", self.panic or "",
                             self.log_path)
        if idx == 1:
            self.closed.set()
            raise WaitTimeout(awaited, timeout, "QEMU closed the console (it exited): "
                              + self.excerpt(lines=8))
        if idx == 2:
            raise WaitTimeout(awaited, timeout, "console: " + self.excerpt(lines=8))
        return self._child.after

    # -- after boot ---------------------------------------------------------------------

    def start_watch(self) -> None:
        """Drain the console in the background and watch it for a panic."""
        self._watcher = threading.Thread(target=self._watch, name="console-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                idx = self._child.expect([PANIC, pexpect.EOF, pexpect.TIMEOUT], timeout=0.5)
            except (OSError, ValueError):  # socket closed under us during shutdown
                break
            if idx == 0:
                self._collect_panic()
                break
            if idx == 1:
                break
        self.closed.set()

    def _collect_panic(self) -> None:
        first = self._child.after or ""
        deadline = time.monotonic() + PANIC_TAIL_SECONDS
        while time.monotonic() < deadline:
            try:
                self._child.read_nonblocking(4096, timeout=0.5)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                break
        self._log.flush()
        self.panic = first + "\n" + self.excerpt(lines=60)
        self.closed.set()

    def text(self) -> str:
        """The console log so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace").replace("\r", "")

    def excerpt(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the console log."""
        return "\n".join(self.text().splitlines()[-lines:])

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._watcher:
            self._watcher.join(timeout=2)
        self._sock.close()
        self._log.close()


def connect_unix(path: Path, timeout: float, alive) -> socket.socket:
    """Connect to QEMU's console socket once it exists; ``alive()`` says QEMU still runs."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if not alive():
                raise
            if time.monotonic() > deadline:
                raise WaitTimeout(f"QEMU's console socket {path}", timeout)
            time.sleep(0.01)

