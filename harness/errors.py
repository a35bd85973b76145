"""Exceptions of klp-harness: each says what went wrong and what to do about it."""


class HarnessError(Exception):
    """Base class: a problem the user can act on (bad input, missing tool, ...)."""


class MissingHostTool(HarnessError):
    """A program the harness needs is not on this host."""

    def __init__(self, program: str, package: str, why: str = ""):
        self.program = program
        self.package = package
        purpose = f" (needed {why})" if why else ""
        super().__init__(
            f"'{program}' not found on this host{purpose}: install the Debian package "
            f"'{package}' (apt-get install {package}), or run the ./klp wrapper as root "
            f"which installs it")


class UnknownArch(HarnessError):
    def __init__(self, name: str, known):
        super().__init__(f"unknown architecture '{name}': choose one of {', '.join(sorted(known))}")


class BuildError(HarnessError):
    """A build step (packages, initramfs, modules, kernel) failed; names the log."""

    def __init__(self, what: str, log_path=None, excerpt: str = ""):
        msg = f"{what} failed"
        if log_path:
            msg += f" (full log: {log_path})"
        if excerpt:
            msg += "\n" + excerpt
        super().__init__(msg)
        self.log_path = log_path


class KernelBuildError(BuildError):
    """The kernel tree does not give a kernel: its config or its compile failed (for
    `bisect-run`, a commit to skip, unlike trouble on the host)."""


class ModuleBuildError(BuildError):
    """Modules did not compile against the image's kernel."""


class BootError(HarnessError):
    """The guest did not reach a boot stage in time, or QEMU died; ``cause`` is what its
    console shows about why (a bootcause.BootCause), if it shows anything."""

    def __init__(self, message: str, console_excerpt: str = "", console_log=None, cause=None):
        text = message
        if cause is not None:
            text += f"\n{cause}"
        if console_log:
            text += f"\nconsole log: {console_log}"
        if console_excerpt:
            text += "\n--- last console lines ---\n" + console_excerpt
        super().__init__(text)
        self.console_excerpt = console_excerpt
        self.cause = cause


class QemuStartError(BootError):
    """QEMU itself did not start (bad option, missing firmware): host trouble, not the
    guest kernel's."""


class GuestPanic(BootError):
    """The guest kernel panicked; carries the console excerpt around the panic."""


class GuestCommandError(HarnessError):
    """A command run in the guest failed when the caller required success."""

    def __init__(self, command: str, status: int, stdout: str, stderr: str):
        super().__init__(
            f"guest command failed (exit {status}): {command}\n"
            f"stdout: {stdout.strip()[-2000:]}\nstderr: {stderr.strip()[-2000:]}")
        self.command = command
        self.status = status
        self.stdout = stdout
        self.stderr = stderr


class WaitTimeout(HarnessError):
    """A wait ran out of time; says what it waited for and what it saw."""

    def __init__(self, awaited: str, timeout: float, seen: str = ""):
        self.timeout = timeout   # the seconds really waited (scaled)
        msg = f"timed out after {timeout:.1f}s waiting for {awaited}"
        if seen:
            msg += f"; last seen: {seen}"
        super().__init__(msg)


class InputError(HarnessError):
    """A file the user wrote is wrong: names the file, line and field."""

    def __init__(self, path, line, field, message):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        self.path, self.line, self.field = path, line, field


class ScenarioError(InputError):
    """A scenario file is malformed."""


class ScenarioErrors(ScenarioError):
    """Several errors of one scenario file, one per line (the first gives path and line)."""

    def __init__(self, errors):
        first = errors[0]
        HarnessError.__init__(self, "\n".join(str(e) for e in errors))
        self.path, self.line, self.field, self.errors = first.path, first.line, first.field, errors


class RecipeError(InputError):
    """An image recipe is malformed or cannot be met."""


class UnsupportedArch(HarnessError):
    """The kernel has no livepatch on the architecture asked for."""
