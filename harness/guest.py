"""The booted guest, over SSH (paramiko): run commands, push files, read the kernel log.

Every command and its result is recorded in ``history`` (kept as an artifact of a failed
test). A guest panic or QEMU exit during a command ends it at once with GuestPanic/BootError
instead of waiting for the command's timeout.
"""
from __future__ import annotations

import base64
import itertools
import logging
import secrets
import select
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Protocol, Union

import paramiko

from . import kmsg
from .console import connect_unix
from .errors import BootError, GuestCommandError, WaitTimeout
from .sshkey import RunKey

# Seconds a guest command may run unless its caller says (scaled per machine).
COMMAND_TIMEOUT = 60.0


class GuestHost(Protocol):
    """All a Guest needs of the machine it runs on (machine.Machine is one); the guest
    module does not know Machine (tests/unit/test_guest_host.py holds it to this)."""
    scale: float                  # how much slower than x86_64 TCG: scales every timeout
    ssh_socket: Path              # the UNIX socket joined to the guest's SSH port
    ssh_log: Path                 # where paramiko's records of the connection go
    host_key: str                 # "ssh-ed25519 AAAA...": the only key the guest may show
    key: RunKey                   # the run's key: its private half logs in

    def alive(self) -> bool: ...                      # QEMU still runs
    def check_alive(self) -> None: ...                # raise the panic or QEMU's exit
    def connection_lost(self, during: str) -> None: ...   # raise why SSH dropped
    def unresponsive(self, during: str, waited: float) -> None: ...   # raise; QEMU ended
    def panicked(self) -> bool: ...                   # the console showed a panic

# The name the guest's host key is filed under: there is no address, only a serial port.
GUEST_HOST = "klp-guest"
# After a shell's exit status, how long its last output may take to arrive (see _Shell).
EXIT_OUTPUT_SECONDS = 2.0
# How long sshd may take to open a session (it forks; paramiko would wait an hour).
CHANNEL_TIMEOUT = 30.0


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
    def __init__(self, machine: GuestHost, client: paramiko.SSHClient,
                 log: Optional[logging.Logger] = None):
        self.machine = machine
        self._client = client
        self._log = log   # paramiko's log of this connection (ssh_logger), closed with it
        self._sftp: Optional[paramiko.SFTPClient] = None
        self._sh: Optional[_Shell] = None
        self._kmsg: Optional[kmsg.Stream] = None
        self.history: List[Result] = []

    @property
    def scale(self) -> float:
        """The machine's timeout scale: guest-side waits are given in x86_64 TCG seconds."""
        return self.machine.scale

    def panicked(self) -> bool:
        return self.machine.panicked()

    @classmethod
    def connect(cls, machine: GuestHost, timeout: float) -> "Guest":
        """SSH over the guest's virtio serial port; the host key must be the image's.

        The port is one byte stream with one sshd behind it, so there is one attempt, with
        the whole timeout: what the host sends waits in the port until the guest opens it,
        and the guest's sshd speaks first (its banner) once it runs.
        """
        deadline = time.monotonic() + timeout
        machine.check_alive()
        sock = connect_unix(machine.ssh_socket, timeout, machine.alive)
        client = paramiko.SSHClient()
        keytype, keydata = machine.host_key.split()[:2]
        client.get_host_keys().add(GUEST_HOST, keytype,
                                   paramiko.PKey.from_type_string(keytype, base64.b64decode(keydata)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        log = ssh_logger(machine.ssh_log)
        client.set_log_channel(log.name)
        try:
            client.connect(GUEST_HOST, username="root", sock=sock, pkey=machine.key.private,
                           look_for_keys=False, allow_agent=False,
                           banner_timeout=timeout, auth_timeout=timeout)
            _keep_alive(client.get_transport())
            guest = cls(machine, client, log)
            guest.run("true", timeout=max(deadline - time.monotonic(), 1.0))
            return guest
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            close_logger(log)
            machine.check_alive()
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__   # EOFError()
            raise WaitTimeout(ssh_awaited(machine), timeout,
                              what + ssh_log_note(machine)) from None

    # -- commands -------------------------------------------------------------------------

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT, check: bool = False) -> Result:
        """Run ``command`` with sh in the guest; the result is recorded in ``history``.

        Commands go to one long-lived shell: a new SSH session per command costs 0.15-0.25 s
        under emulation (sshd forks and execs a shell), a line to a running shell 5 ms.
        Shell state (working directory, variables, background jobs) carries over. A command
        that ends the shell (``exit``, a syntax error) gets the shell's exit status, as a
        separate session would, and the next command starts a new shell.
        """
        start, limit = time.monotonic(), timeout * self.scale
        try:
            status, out, err = self._shell().run(command, limit)
        except _ShellTimeout as e:
            tag = self._sh.tag
            self._close_shell()
            gone = self._kill_shell(tag)
            raise WaitTimeout(f"guest command to finish: {command}", limit,
                              f"stdout so far: {e.stdout[-500:]!r}" +
                              (f"; then {gone}" if gone else "")) from None
        except (EOFError, OSError, paramiko.SSHException):   # the SSH transport went away
            self._close_shell()
            self.machine.connection_lost(command)
        if status is None:   # the shell ended under the command
            status = self._sh.exit_status
            self._close_shell()
            if status is None:
                self.machine.connection_lost(command)
        result = Result(command, status, out, err, time.monotonic() - start)
        self.history.append(result)
        if check and status != 0:
            raise GuestCommandError(command, status, result.stdout, result.stderr)
        return result

    def _shell(self) -> "_Shell":
        if self._sh is None or not self._sh.alive():
            self._sh = _Shell(self._channel("(opening a guest shell)"), self.machine)
        return self._sh

    def _channel(self, during: str) -> paramiko.Channel:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            self.machine.connection_lost(during)
        timeout = CHANNEL_TIMEOUT * self.scale
        try:
            return transport.open_session(timeout=timeout)
        except paramiko.SSHException:
            if not transport.is_active():
                self.machine.connection_lost(during)
            self.machine.unresponsive(during, timeout)
            raise

    def _kill_shell(self, tag: str) -> str:
        """Kill what a closed shell leaves running: the timed-out command and the shell's
        background jobs (a scenario's workload), which would otherwise outlive it, unseen
        by the next shell's clean-up, and slow every later scenario on the guest. They are
        known by the tag in their environment, which children inherit. Returns why the
        guest was stopped instead, if it no longer answers."""
        try:
            self._shell().run(
                f"for p in /proc/[0-9]*; do grep -q {SHELL_TAG}={tag} $p/environ 2>/dev/null "
                "&& kill -9 ${p#/proc/} 2>/dev/null; done; true", 30 * self.scale)
        except BootError as e:
            self._close_shell()
            return e.headline
        except (_ShellTimeout, EOFError, OSError, paramiko.SSHException):
            self._close_shell()   # the next command finds out what is wrong
        return ""

    def _close_shell(self) -> None:
        if self._sh is not None:
            self._sh.close()
        self._sh = None

    def sh(self, *argv: str, **kw) -> Result:
        """Run argv with shell quoting applied."""
        return self.run(" ".join(shlex.quote(a) for a in argv), **kw)

    # -- files ----------------------------------------------------------------------------

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
        return self._sftp

    def push(self, local: Union[str, Path], remote: str) -> None:
        try:
            self.sftp().put(str(local), remote)
        except (EOFError, OSError, paramiko.SSHException):
            self.machine.connection_lost(f"copying {local} to {remote}")

    def read(self, path: str) -> str:
        with self.sftp().open(path, "r") as f:
            return f.read().decode(errors="replace")

    # -- kernel log -----------------------------------------------------------------------

    def kmsg_records(self) -> List[kmsg.Record]:
        """Every record /dev/kmsg holds up to now (the log is never cleared)."""
        return self.kmsg_since(-1)

    def kmsg_cursor(self) -> int:
        """Sequence number of the newest record now: log lines after it are 'since now'."""
        return self._kmsg_stream().sync(self)

    def kmsg_since(self, cursor: int) -> List[kmsg.Record]:
        stream = self._kmsg_stream()
        stream.sync(self)
        return stream.records(after=cursor)

    def _kmsg_stream(self) -> kmsg.Stream:
        if self._kmsg is None or not self._kmsg.alive():
            previous = self._kmsg
            self._kmsg = kmsg.Stream(self._channel("(reading /dev/kmsg)"))
            if previous is not None:   # reopened: records come again from the oldest kept
                previous.close()
        return self._kmsg

    def close(self) -> None:
        try:
            self._close_shell()
            if self._kmsg is not None:
                self._kmsg.close()
            if self._sftp:
                self._sftp.close()
            self._client.close()
        except (OSError, EOFError, socket.error, paramiko.SSHException):
            pass
        if self._log is not None:
            close_logger(self._log)


_LOGGER_IDS = itertools.count(1)


def ssh_logger(path: Path) -> logging.Logger:
    """A logger for one SSH connection's paramiko records that writes them to ``path``
    and nowhere else. paramiko logs a failed handshake (``Error reading SSH protocol
    banner``) as ERROR records with its whole traceback; left to Python's last-resort
    handler (or pytest's capture) they reach the terminal ahead of the harness's own
    reason. They belong with the guest's other logs (console.log) instead."""
    logger = logging.getLogger(f"paramiko.transport.klp-{next(_LOGGER_IDS)}")
    handler = logging.FileHandler(path, delay=True)   # made on the first record
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)   # connected, authenticated, errors: not every packet
    logger.propagate = False
    return logger


def close_logger(logger: logging.Logger) -> None:
    """Close what ssh_logger opened (the logger itself stays: logging keeps them all)."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def ssh_log_note(machine: GuestHost) -> str:
    """Where paramiko's records of the connection are, for a failure's message, if it
    wrote any (it logs nothing below INFO there: an EOF is a DEBUG record)."""
    return f" (the SSH client's log: {machine.ssh_log})" if machine.ssh_log.exists() else ""


def ssh_awaited(machine: GuestHost) -> str:
    """What a wait for the guest's SSH waits for, in a timeout's message."""
    return f"SSH over the guest's virtio serial port ({machine.ssh_socket}) to answer"


def _keep_alive(transport: paramiko.Transport) -> None:
    """A request the guest's sshd answers, each second the connection is otherwise quiet.

    Both directions then carry traffic, so a virtio serial port that missed a wake-up (a
    known race of a CPU-starved QEMU, see ArchProfile.serial_device) is woken again within
    a second instead of stalling a command until its timeout. paramiko's own keepalive
    asks for no reply, which would wake only the guest's reading side."""
    def request() -> None:
        m = paramiko.Message()
        m.add_byte(paramiko.common.cMSG_GLOBAL_REQUEST)
        m.add_string("keepalive@openssh.com")
        m.add_boolean(True)     # want reply: sshd answers with a refusal, which is enough
        transport._send_user_message(m)
    transport.packetizer.set_keepalive(1, request)


SHELL_TAG = "KLP_HARNESS_SHELL"


class _ShellTimeout(Exception):
    def __init__(self, stdout: str):
        self.stdout = stdout


class _Shell:
    """One sh on an SSH channel; each command ends with a marker on stdout and stderr."""

    def __init__(self, channel: paramiko.Channel, machine: GuestHost):
        self.channel, self.machine = channel, machine
        self.tag = secrets.token_hex(6)   # in the environment of all it starts
        self.channel.exec_command(f"exec env {SHELL_TAG}={self.tag} sh")
        self.count = 0
        self.exit_status: Optional[int] = None
        self._exited_at: Optional[float] = None

    def alive(self) -> bool:
        return not self.channel.closed and not self.channel.exit_status_ready()

    def run(self, command: str, timeout: float):
        """(status, stdout, stderr); status None if the shell ended (see exit_status)."""
        self.count += 1
        mark = f"@@klp-harness-{self.count}@@"
        # stdin from /dev/null: the command must not eat the next commands. The echo
        # before the marker ends an unterminated last line; it is taken off again.
        self.channel.sendall((f"{{ {command}\n}} </dev/null\n"
                              f"echo \"\n{mark} $?\"; echo \"{mark}\" >&2\n").encode())
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        out_mark, err_mark = f"\n{mark} ".encode(), f"{mark}\n".encode()
        while True:
            while self.channel.recv_ready():
                out += self.channel.recv(65536)
            while self.channel.recv_stderr_ready():
                err += self.channel.recv_stderr(65536)
            if out_mark in out and out.endswith(b"\n") and err.endswith(err_mark):
                break
            if self._ended() and not self.channel.recv_ready() \
                    and not self.channel.recv_stderr_ready():
                self.exit_status = self.channel.recv_exit_status()
                if self.exit_status == -1:
                    self.exit_status = None
                return None, out.decode(errors="replace"), err.decode(errors="replace")
            if not self.machine.alive():
                self.machine.check_alive()
            if time.monotonic() > deadline:
                raise _ShellTimeout(out.decode(errors="replace"))
            # The channel's fileno is signalled by data on stdout or stderr, and by EOF.
            select.select([self.channel], [], [], 0.05)
        body, _, tail = out.rpartition(out_mark)
        status = int(tail.split()[0])
        return (status, body.decode(errors="replace"),
                err[:-len(err_mark)].decode(errors="replace"))

    def _ended(self) -> bool:
        """The shell exited and its output is all here. OpenSSH's sshd sends the exit status
        as soon as the shell exits, and the output still in its pipes after it, up to EOF;
        a background job that keeps the pipes open delays EOF, so wait only a while."""
        if not self.channel.exit_status_ready():
            return False
        if self._exited_at is None:
            self._exited_at = time.monotonic()
        return self.channel.eof_received or \
            time.monotonic() - self._exited_at > EXIT_OUTPUT_SECONDS * self.machine.scale

    def close(self) -> None:
        try:
            self.channel.close()
        except (OSError, EOFError, socket.error):
            pass
