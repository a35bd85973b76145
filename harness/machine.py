"""A QEMU guest: launch with QMP and a console socket, boot in stages, always shut down.

Stages, each with its own timeout scaled for the architecture and accelerator:
QEMU up (QMP answers) -> kernel banner -> init's ready marker -> SSH answers.

The guest has no IP network: SSH runs over a virtio serial port, which QEMU joins to a UNIX
socket on the host (see guest.Guest.connect). A kernel without IPv4 and a NIC driver builds
faster, and the guest boots without configuring an interface.
"""
from __future__ import annotations

import math
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from . import bootcause, hosttools, phases
from .arch import ArchProfile
from .console import Console, connect_unix
from .errors import BootError, GuestPanic, QemuStartError, WaitTimeout
from .guest import Guest, ssh_awaited, ssh_log_note
from .image import Image
from .sshkey import RunKey

READY_MARKER = "KLP-HARNESS-READY"
SSH_PORT_NAME = "klp-harness.ssh"   # the virtio serial port the guest's sshd serves
BANNER = r"Linux version \S+"

# Base timeouts in seconds for x86_64 under TCG; scaled by Machine.scale.
STAGE_TIMEOUTS = {"qemu": 10.0, "banner": 20.0, "init": 60.0, "ssh": 30.0}
KVM_SPEEDUP = 0.25
# Debug options that slow a kernel's boot under emulation, by the factor they scale the
# boot's waits: the debug image's x86_64 kernel (KASAN, lockdep) booted in 41-51 s under a
# warm CI run's load, and once took over the 60 s the default one (under 10 s) is given.
SLOW_BOOT_OPTIONS = {"CONFIG_KASAN": 2.0, "CONFIG_PROVE_LOCKING": 1.5}
# Under TCG a guest runs only while the host gives its threads CPU time: when more threads
# are runnable than the host has cores, every wait stretches by about that ratio. A CI run
# near its end (eight guests, and test-made pools beside them, on two cores) booted guests
# 8-10x slower than an idle host, and a 30 s wait for an unpatching transition fell short
# (35 s). The stretch is capped so that a guest that is stuck is still caught in time.
HOST_LOAD_CAP = 4.0
# After SSH drops, how long to wait for the console to show why (a panic's trace, QEMU exit).
PANIC_SETTLE_SECONDS = 10.0


MIN_MEMORY_MB = 128   # the kernel and the initramfs (about 30 MiB unpacked) must fit


def host_load() -> float:
    """How oversubscribed the host's cores are: the last minute's load average per core,
    at least 1 (an idle or busy-but-not-oversubscribed host) and at most HOST_LOAD_CAP."""
    try:
        load = os.getloadavg()[0]
    except OSError:   # no /proc/loadavg
        return 1.0
    return min(HOST_LOAD_CAP, max(1.0, load / (os.cpu_count() or 1)))


@dataclass
class MachineConfig:
    memory_mb: int = 512
    cpus: int = 2
    accel: str = "tcg"          # "tcg" or "kvm"; see accel.choose()
    extra_cmdline: str = ""
    stage_timeouts: Dict[str, float] = field(default_factory=dict)  # overrides, unscaled


class Machine:
    """One QEMU process booting ``image`` for ``profile``; use as a context manager."""

    def __init__(self, image: Image, profile: ArchProfile, workdir: Path,
                 config: Optional[MachineConfig] = None, key: Optional[RunKey] = None):
        self.image = image
        self.profile = profile
        self.config = config or MachineConfig()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key = key or RunKey.of_this_run()
        self.boot_id = secrets.token_hex(4)
        self.base_scale = profile.tcg_slowdown * (KVM_SPEEDUP if self.config.accel == "kvm"
                                                  else 1.0)
        # UNIX socket paths are limited to ~107 bytes: keep them in a short private dir.
        self._sockdir = Path(tempfile.mkdtemp(prefix="klp-"))
        self.console_log = self.workdir / "console.log"
        self.qemu_log = self.workdir / "qemu-stderr.log"
        self.ssh_socket = self._sockdir / "ssh"
        self.ssh_log = self.workdir / "ssh.log"   # paramiko's (see guest.ssh_logger)
        self.console: Optional[Console] = None
        self.qmp: Optional[QEMUMonitorProtocol] = None
        self.guest: Optional[Guest] = None
        self._connecting: Optional[_Connecting] = None
        self._proc: Optional[subprocess.Popen] = None
        self.stage_times: dict = {}

    # -- command line -------------------------------------------------------------------

    def cmdline(self) -> str:
        args = [f"console={self.profile.console}", "panic=-1", "loglevel=6",
                *self.profile.kernel_cmdline, *self.image.cmdline,
                f"klp_harness.authkey={self.key.kernel_arg}",
                f"klp_harness.boot={self.boot_id}"]
        if self.config.extra_cmdline:
            args.append(self.config.extra_cmdline)
        return " ".join(args)

    def qemu_args(self) -> List[str]:
        p = self.profile
        return [
            p.qemu_binary, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-accel", p.tcg_accel if self.config.accel == "tcg" else self.config.accel,
            *p.machine_args,
            "-m", str(self.config.memory_mb),
            "-smp", f"{self.config.cpus},{p.cpu_unit}={self.config.cpus}",
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
            "-append", self.cmdline(),
            "-chardev", f"socket,id=con,path={self._sockdir / 'console'},server=on,wait=on",
            "-serial", "chardev:con",
            "-qmp", f"unix:{self._sockdir / 'qmp'},server=on,wait=off",
            # The guest's sshd serves the port named SSH_PORT_NAME (images/guest/rc.sh).
            "-device", f"{p.serial_device},id=vser",
            "-chardev", f"socket,id=ssh,path={self.ssh_socket},server=on,wait=off",
            "-device", f"virtserialport,bus=vser.0,chardev=ssh,name={SSH_PORT_NAME}",
        ]

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> "Machine":
        try:
            self.boot()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    @property
    def host_key(self) -> str:
        """The public key of the guest's sshd, as the image was made with it."""
        return self.image.host_key

    @property
    def scale(self) -> float:
        """How much longer than x86_64 under TCG on an idle host this guest's waits may take:
        the arch's and accelerator's factor, times the host's load as the wait begins."""
        return self.base_scale * host_load()

    def timeout(self, stage: str) -> float:
        return self.config.stage_timeouts.get(stage, STAGE_TIMEOUTS[stage] * self.boot_scale)

    @property
    def boot_scale(self) -> float:
        """The arch's and accelerator's scale, times that of the kernel's debug options."""
        symbols = self.image.config_symbols()
        return self.scale * math.prod(f for option, f in SLOW_BOOT_OPTIONS.items()
                                      if symbols.get(option) == "y")

    def boot(self, until: str = "ssh") -> Optional[Guest]:
        """Boot through the stages up to ``until`` ("init" stops before SSH)."""
        hosttools.require(self.profile.qemu_binary, self.profile.qemu_package,
                          f"to boot {self.profile.name} guests")
        start = time.monotonic()
        self._launch()
        self.stage_times["qemu"] = time.monotonic() - start
        if until == "ssh":
            # The guest starts sshd before the end of its set-up: connecting now lets the
            # SSH handshake overlap the rest of the boot instead of following it.
            self._connecting = _Connecting(self, sum(map(self.timeout, STAGE_TIMEOUTS)))
        try:
            self.console.expect(BANNER, self.timeout("banner"), "the kernel banner ('Linux version')")
            self.stage_times["banner"] = time.monotonic() - start
            self.console.expect(f"{READY_MARKER} {self.boot_id}", self.timeout("init"),
                                f"init's ready marker '{READY_MARKER}'")
            self.stage_times["init"] = time.monotonic() - start
        except WaitTimeout as e:   # a panic is a GuestPanic (a BootError), not caught here
            raise self._boot_failed(e) from None
        self.console.start_watch()
        if until == "init":
            return None
        try:
            self.guest = self._connecting.wait(self.timeout("ssh"))
        except WaitTimeout as e:   # init was ready, but its sshd did not answer
            raise self._boot_failed(e) from None
        self.stage_times["ssh"] = time.monotonic() - start
        return self.guest

    def _boot_failed(self, timeout: WaitTimeout) -> BootError:
        """A boot stage that did not come: the console's last lines, and the cause that
        the whole console shows, if any (bootcause)."""
        files = bootcause.ImageFiles(self.image.initrd, self.image.dir)
        return BootError(f"{self.profile.name} guest did not boot: {timeout}",
                         self.console.excerpt(), self.console_log,
                         bootcause.likely_cause(self.console.text(), files))

    def _launch(self) -> None:
        args = self.qemu_args()
        with open(self.qemu_log, "w") as err, open(self.workdir / "qemu-cmdline", "w") as f:
            f.write(" ".join(args) + "\n")
            self._proc = phases.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                      start_new_session=True, preexec_fn=_die_with_parent,
                                      phase=f"scenarios {self.profile.name}")
        try:
            sock = connect_unix(self._sockdir / "console", self.timeout("qemu"), self.alive)
        except (FileNotFoundError, ConnectionRefusedError):
            raise self._start_failed("QEMU exited at start", args) from None
        self.console = Console(sock, self.console_log)
        try:
            # QEMU makes the QMP socket only after the console's client connected.
            connect_unix(self._sockdir / "qmp", self.timeout("qemu"), self.alive).close()
            self.qmp = QEMUMonitorProtocol(str(self._sockdir / "qmp"))
            self.qmp.connect()
        except (OSError, QMPError) as e:
            # QEMU quit while starting (e.g. KVM refused, the initrd too large for the
            # memory): its stderr says why, the socket error does not.
            raise self._start_failed(f"QEMU did not start ({type(e).__name__}: {e})",
                                     args) from None
        status = self.qmp.cmd("query-status")
        if not status.get("running"):
            raise BootError(f"QEMU is not running the guest: {status}")

    def _start_failed(self, what: str, args: List[str]) -> QemuStartError:
        """QEMU ended while starting: the error, with its exit status and its stderr."""
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        stderr = self.qemu_log.read_text(errors="replace").strip()
        return QemuStartError(f"{what} (status {self._proc.returncode}): {stderr}\n"
                              f"command: {' '.join(args)}")

    # These run in the thread of a command that lost its guest, while another thread (a
    # Ctrl-C's clean stop) may shut the machine down: each reads self.console once.
    def panicked(self) -> bool:
        """The console showed a kernel panic."""
        console = self.console
        return bool(console and console.panic)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def check_alive(self) -> None:
        """Raise GuestPanic/BootError if the guest panicked or QEMU went away."""
        console = self.console
        if console and console.panic:
            self._reap()
            raise GuestPanic("kernel panic", console.panic, self.console_log)
        if not self.alive():
            if console:
                console.closed.wait(2)
                if console.panic:
                    raise GuestPanic("kernel panic", console.panic, self.console_log)
            raise BootError(f"QEMU exited (status {self._proc.returncode if self._proc else '?'})",
                            console.excerpt() if console else "", self.console_log)

    def connection_lost(self, during: str) -> None:
        """SSH dropped: a panic or QEMU exit explains it (raised as such), else say so."""
        console = self.console
        if console:
            console.closed.wait(PANIC_SETTLE_SECONDS)
        self.check_alive()
        raise BootError(f"SSH connection to the guest was lost during: {during}",
                        console.excerpt() if console else "", self.console_log)

    def unresponsive(self, during: str, waited: float) -> None:
        """The guest's sshd stopped answering while QEMU runs: a wedged kernel (a CPU with
        interrupts off that the others wait for) does not come back, so QEMU is ended now
        rather than every later command waiting out its own timeout."""
        self.check_alive()
        self.kill()
        console = self.console
        raise BootError(f"the guest stopped answering: no SSH session opened in {waited:.0f}s "
                        f"during: {during}; QEMU was stopped",
                        console.excerpt() if console else "", self.console_log)

    def _reap(self) -> None:
        """A panicked guest is finished: let QEMU exit (panic=-1, -no-reboot) or end it."""
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def kill(self) -> None:
        """End QEMU at once, from any thread: whoever uses the guest sees it gone (QEMU
        exited) and finishes on its own; shutdown() tidies up after."""
        if self.alive():
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def shutdown(self) -> None:
        """Stop the guest; never raises, always leaves no QEMU process behind."""
        if self._connecting and self._connecting.guest is not self.guest:
            self._connecting.abandon()   # the boot failed after SSH connected
        self._connecting = None
        # QEMU first: SSH's writes to a guest that stopped reading its port block once the
        # socket's buffer is full, and closing SSH would wait behind them.
        if self.qmp:
            try:
                if self.alive():
                    self.qmp.cmd("quit")
            except Exception:  # QEMU may already be gone (panic, crash)
                pass
            try:
                self.qmp.close()
            except Exception:
                pass
            self.qmp = None
        self._reap()
        if self.guest:
            self.guest.close()
            self.guest = None
        if self.console:
            self.console.close()
            self.console = None
        shutil.rmtree(self._sockdir, ignore_errors=True)


class _Connecting(threading.Thread):
    """Guest.connect in the background while the boot's console stages run."""

    def __init__(self, machine: Machine, timeout: float):
        super().__init__(name="ssh-connect", daemon=True)
        self.machine, self.timeout = machine, timeout
        self.guest: Optional[Guest] = None
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._abandoned = False
        self.start()

    def run(self) -> None:
        try:
            guest = Guest.connect(self.machine, self.timeout)
        except BaseException as e:  # handed to the booting thread by wait()
            self.error = e
            return
        with self._lock:
            if self._abandoned:
                guest.close()
            else:
                self.guest = guest

    def wait(self, timeout: float) -> Guest:
        """The guest once SSH answers, at most ``timeout`` seconds after init was ready."""
        self.join(timeout)
        if self.is_alive():
            raise WaitTimeout(ssh_awaited(self.machine), timeout,
                              "no SSH banner, or the handshake did not finish"
                              + ssh_log_note(self.machine))
        if self.error is not None:
            raise self.error
        return self.guest

    def abandon(self) -> None:
        """Close the connection if it was made, or when it is (QEMU's exit ends a wait)."""
        with self._lock:
            self._abandoned = True
            if self.guest is not None:
                self.guest.close()
                self.guest = None


def _die_with_parent() -> None:
    """In the QEMU child before exec: SIGKILL when the harness dies, even by a signal it
    cannot catch, so no guest is left running (start_new_session keeps ^C off QEMU).
    Linux sends it when the forking *thread* ends: Session.run_all's per-arch threads end
    only after their last scenario."""
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
