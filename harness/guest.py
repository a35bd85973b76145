"""The booted guest, over SSH (paramiko): run commands, push files, read the kernel log.

Every command and its result is recorded in ``history`` (kept as an artifact of a failed
test). A guest panic or QEMU exit during a command ends it at once with GuestPanic/BootError
instead of waiting for the command's timeout.
"""
from __future__ import annotations

import base64
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Union

import paramiko

from . import kmsg
from .errors import GuestCommandError, WaitTimeout

if TYPE_CHECKING:
    from .machine import Machine


@dataclass
class Result:
    command: str
    status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 0


class Guest:
    def __init__(self, machine: "Machine", client: paramiko.SSHClient):
        self.machine = machine
        self._client = client
        self._sftp: Optional[paramiko.SFTPClient] = None
        self.history: List[Result] = []

    @classmethod
    def connect(cls, machine: "Machine", timeout: float) -> "Guest":
        """Connect once sshd answers; the host key must be the one the image was built with."""
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            machine.check_alive()
            client = paramiko.SSHClient()
            keytype, keydata = machine.image.host_key.split()[:2]
            client.get_host_keys().add(f"[127.0.0.1]:{machine.ssh_port}", keytype,
                                       paramiko.PKey.from_type_string(keytype, base64.b64decode(keydata)))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect("127.0.0.1", port=machine.ssh_port, username="root",
                               pkey=machine.key.private, look_for_keys=False, allow_agent=False,
                               # A lost first SYN costs a whole banner wait: start short.
                               timeout=5, banner_timeout=min(5, attempt), auth_timeout=10)
                guest = cls(machine, client)
                guest.run("true", timeout=timeout)
                return guest
            except (paramiko.SSHException, OSError, EOFError) as e:
                last_error = f"{type(e).__name__}: {e}"
                client.close()
                time.sleep(0.1)  # slirp accepts before the guest listens: retry soon
        raise WaitTimeout(f"SSH on 127.0.0.1:{machine.ssh_port} to answer", timeout, last_error)

    # -- commands -------------------------------------------------------------------------

    def run(self, command: str, timeout: float = 60.0, check: bool = False) -> Result:
        start = time.monotonic()
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            self.machine.connection_lost(command)
        channel = transport.open_session()
        channel.exec_command(command)
        out, err = bytearray(), bytearray()
        deadline = start + timeout * self.machine.scale
        while True:
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            if channel.exit_status_ready() and not channel.recv_ready() \
                    and not channel.recv_stderr_ready():
                break
            if channel.closed or not transport.is_active() or not self.machine.alive():
                self.machine.check_alive()
            if time.monotonic() > deadline:
                channel.close()
                raise WaitTimeout(f"guest command to finish: {command}", timeout * self.machine.scale,
                                  f"stdout so far: {out.decode(errors='replace')[-500:]!r}")
            channel.status_event.wait(0.02)
        status = channel.recv_exit_status()
        channel.close()
        if status == -1:  # no exit status: the connection dropped under the command
            self.machine.connection_lost(command)
        result = Result(command, status, out.decode(errors="replace"),
                        err.decode(errors="replace"), time.monotonic() - start)
        self.history.append(result)
        if check and status != 0:
            raise GuestCommandError(command, status, result.stdout, result.stderr)
        return result

    def sh(self, *argv: str, **kw) -> Result:
        """Run argv with shell quoting applied."""
        return self.run(" ".join(shlex.quote(a) for a in argv), **kw)

    # -- files ----------------------------------------------------------------------------

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        return self._sftp

    def push(self, local: Union[str, Path], remote: str) -> None:
        self.sftp().put(str(local), remote)

    def read(self, path: str) -> str:
        with self.sftp().open(path, "r") as f:
            return f.read().decode(errors="replace")

    # -- kernel log -----------------------------------------------------------------------

    def kmsg_records(self) -> List[kmsg.Record]:
        """Every record /dev/kmsg still holds (read without blocking, never cleared)."""
        # GNU dd reads one record per read(); iflag=nonblock ends at the newest record
        # with EAGAIN, which dd reports as an error after writing everything.
        result = self.run("dd if=/dev/kmsg iflag=nonblock bs=65536 status=none 2>/dev/null; true")
        return kmsg.parse(result.stdout)

    def kmsg_cursor(self) -> int:
        """Sequence number of the newest record: log lines after it are 'since now'."""
        records = self.kmsg_records()
        return records[-1].seq if records else -1

    def kmsg_since(self, cursor: int) -> List[kmsg.Record]:
        return [r for r in self.kmsg_records() if r.seq > cursor]

    def close(self) -> None:
        try:
            if self._sftp:
                self._sftp.close()
            self._client.close()
        except (OSError, EOFError, socket.error):
            pass

