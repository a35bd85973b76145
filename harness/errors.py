"""Exceptions of klp-harness: each says what went wrong and what to do about it.

Each keeps what it is about as fields (what was awaited, which file and line), so that a
caller decides by them and never by parsing the text, which ``__str__`` composes from
them. The constructor's arguments are the exception's ``args``: a copy made by pickle (a
pytest-xdist worker's, a thread pool's) is made by the same constructor, fields and all.
"""


class HarnessError(Exception):
    """Base class: a problem the user can act on (bad input, missing tool, ...)."""

    @property
    def headline(self) -> str:
        """The first line of the message (what a one-line summary shows; the rest, a
        console excerpt or a list, is for the full report)."""
        text = str(self)
        return text.splitlines()[0] if text else type(self).__name__


class MissingHostTool(HarnessError):
    """A program the harness needs is not on this host."""

    def __init__(self, program: str, package: str, why: str = ""):
        super().__init__(program, package, why)
        self.program, self.package, self.why = program, package, why

    def __str__(self) -> str:
        purpose = f" (needed {self.why})" if self.why else ""
        return (f"'{self.program}' not found on this host{purpose}: install the Debian "
                f"package '{self.package}' (apt-get install {self.package}), or run the "
                f"./klp wrapper as root which installs it")


class UnknownArch(HarnessError):
    def __init__(self, name: str, known):
        self.name, self.known = name, tuple(sorted(known))
        super().__init__(name, self.known)

    def __str__(self) -> str:
        return f"unknown architecture '{self.name}': choose one of {', '.join(self.known)}"


class BuildError(HarnessError):
    """A build step (packages, initramfs, modules, kernel) failed; names the log."""

    def __init__(self, what: str, log_path=None, excerpt: str = ""):
        super().__init__(what, log_path, excerpt)
        self.what, self.log_path, self.excerpt = what, log_path, excerpt

    def __str__(self) -> str:
        msg = f"{self.what} failed"
        if self.log_path:
            msg += f" (full log: {self.log_path})"
        if self.excerpt:
            msg += "\n" + self.excerpt
        return msg


class KernelBuildError(BuildError):
    """The kernel tree does not give a kernel: its config or its compile failed (for
    `bisect-run`, a commit to skip, unlike trouble on the host)."""


class ModuleBuildError(BuildError):
    """Modules did not compile against the image's kernel."""


class BootError(HarnessError):
    """The guest did not reach a boot stage in time, or QEMU died; ``cause`` is what its
    console shows about why (a bootcause.BootCause), if it shows anything."""

    def __init__(self, message: str, console_excerpt: str = "", console_log=None, cause=None):
        super().__init__(message, console_excerpt, console_log, cause)
        self.message, self.console_excerpt = message, console_excerpt
        self.console_log, self.cause = console_log, cause

    def __str__(self) -> str:
        text = self.message
        if self.cause is not None:
            text += f"\n{self.cause}"
        if self.console_log:
            text += f"\nconsole log: {self.console_log}"
        if self.console_excerpt:
            text += "\n--- last console lines ---\n" + self.console_excerpt
        return text


class QemuStartError(BootError):
    """QEMU itself did not start (bad option, missing firmware): host trouble, not the
    guest kernel's."""


class GuestPanic(BootError):
    """The guest kernel panicked; carries the console excerpt around the panic."""


class GuestCommandError(HarnessError):
    """A command run in the guest failed when the caller required success."""

    def __init__(self, command: str, status: int, stdout: str, stderr: str):
        super().__init__(command, status, stdout, stderr)
        self.command, self.status, self.stdout, self.stderr = command, status, stdout, stderr

    def __str__(self) -> str:
        return (f"guest command failed (exit {self.status}): {self.command}\n"
                f"stdout: {self.stdout.strip()[-2000:]}\nstderr: {self.stderr.strip()[-2000:]}")


class WaitTimeout(HarnessError):
    """A wait ran out of time; says what it waited for and what it saw."""

    def __init__(self, awaited: str, timeout: float, seen: str = ""):
        super().__init__(awaited, timeout, seen)
        self.awaited = awaited   # what would have ended the wait ("SSH ... to answer")
        self.timeout = timeout   # the seconds really waited (scaled)
        self.seen = seen         # the last thing seen instead, if anything

    def __str__(self) -> str:
        text = f"timed out after {self.timeout:.1f}s waiting for {self.awaited}"
        return f"{text}; last seen: {self.seen}" if self.seen else text


class InputError(HarnessError):
    """A file the user wrote is wrong: names the file, line and field."""

    def __init__(self, path, line, field, message):
        super().__init__(path, line, field, message)
        self.path, self.line, self.field, self.message = path, line, field, message

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.field}: {self.message}" if self.field else \
            f"{where}: {self.message}"


class ScenarioError(InputError):
    """A scenario file is malformed."""


class ScenarioErrors(ScenarioError):
    """Several errors of one scenario file, one per line; path, line, field and message
    are the first one's."""

    def __init__(self, errors):
        first = errors[0]
        HarnessError.__init__(self, errors)
        self.path, self.line, self.field, self.message = (first.path, first.line, first.field,
                                                          first.message)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class RecipeError(InputError):
    """An image recipe is malformed or cannot be met."""


class UnsupportedArch(HarnessError):
    """The kernel has no livepatch on the architecture asked for."""
