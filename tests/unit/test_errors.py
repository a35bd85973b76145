"""Exceptions keep what they are about as fields, so no caller parses their text; their
text is made from the fields, and a pickled copy (a pytest-xdist worker's) keeps both."""
import pickle
import re
from pathlib import Path

import pytest

from harness import errors, livepatch
from harness.errors import ScenarioError, ScenarioErrors, WaitTimeout
from harness.guest import Result

# One of each, as the harness raises them: str(e) is what users read.
RAISED = [
    (errors.MissingHostTool("mmdebstrap", "mmdebstrap", "to make build roots"),
     "'mmdebstrap' not found on this host (needed to make build roots): install the Debian "
     "package 'mmdebstrap' (apt-get install mmdebstrap), or run the ./klp wrapper as root "
     "which installs it"),
    (errors.UnknownArch("mips", {"x86_64": 1, "arm64": 2}.keys()),
     "unknown architecture 'mips': choose one of arm64, x86_64"),
    (errors.KernelBuildError("make bzImage", Path("/b/log"), "error: x"),
     "make bzImage failed (full log: /b/log)\nerror: x"),
    (errors.GuestPanic("kernel panic", "Kernel panic - not syncing", Path("/w/console.log")),
     "kernel panic\nconsole log: /w/console.log\n--- last console lines ---\n"
     "Kernel panic - not syncing"),
    (errors.GuestCommandError("false", 1, "out\n", "err\n"),
     "guest command failed (exit 1): false\nstdout: out\nstderr: err"),
    (WaitTimeout("SSH to answer", 30.0, "no banner"),
     "timed out after 30.0s waiting for SSH to answer; last seen: no banner"),
    (WaitTimeout("the marker", 2.25), "timed out after 2.2s waiting for the marker"),
    (ScenarioError("s.yaml", 4, "steps[0].load", "unknown module 'x'"),
     "s.yaml:4: steps[0].load: unknown module 'x'"),
    (errors.RecipeError(Path("images/a.yaml"), None, None, "no arches"),
     "images/a.yaml: no arches"),
    (ScenarioErrors([ScenarioError("s.yaml", 4, "a", "one"), ScenarioError("s.yaml", 9, None,
                                                                           "two")]),
     "s.yaml:4: a: one\ns.yaml:9: two"),
]


@pytest.mark.parametrize("error, text", RAISED, ids=lambda e: type(e).__name__)
def test_the_text_is_made_of_the_fields_and_a_pickled_copy_keeps_both(error, text):
    assert str(error) == text
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == text
    assert vars(copy).keys() == vars(error).keys()
    assert all(str(getattr(copy, k)) == str(v) for k, v in vars(error).items())


class FakeGuest:
    """Answers a command by the first pattern it matches."""
    scale = 1.0

    def __init__(self, answers):
        self.answers = answers

    def run(self, command, timeout=60.0, check=False):
        status, out, err = next((a for p, a in self.answers if re.search(p, command)), (0, "", ""))
        return Result(command, status, out, err, 0.0)


def test_a_wait_timeout_keeps_what_was_awaited_and_seen():
    e = pickle.loads(pickle.dumps(WaitTimeout("x to read '1'", 12.0, "tasks: last seen: y")))
    assert (e.awaited, e.timeout, e.seen) == ("x to read '1'", 12.0, "tasks: last seen: y")


def test_an_input_error_keeps_its_message_apart_from_where():
    e = ScenarioError("/t/test_x.py", 7, "steps[0].load", "unknown module 'a: b'")
    assert (e.path, e.line, e.field, e.message) == ("/t/test_x.py", 7, "steps[0].load",
                                                    "unknown module 'a: b'")
    several = ScenarioErrors([e, ScenarioError("/t/test_x.py", 9, None, "two")])
    assert (several.line, several.field, several.message) == (7, "steps[0].load",
                                                              "unknown module 'a: b'")


def test_a_wait_for_a_value_says_what_the_file_shows_and_keeps_what_was_seen():
    """wait_value rebuilds the timeout with the file's content: its `seen` is the wait's."""
    guest = FakeGuest([(r"^end=", (1, "", "")),
                       (r"for p in /sys/kernel/livepatch/\*", (0, "== 1/1 sh patch_state=0\n", "")),
                       (r"^cat ", (0, "0\n", ""))])
    with pytest.raises(WaitTimeout) as info:
        livepatch.wait_value(guest, "/sys/kernel/livepatch/p/enabled", "1", 3.0)
    assert info.value.awaited == "/sys/kernel/livepatch/p/enabled to read '1' (it shows '0')"
    assert info.value.seen == "tasks:\n== 1/1 sh patch_state=0"
    assert info.value.timeout == 3


def test_a_cleanup_note_says_whether_its_change_lasts():
    guest = FakeGuest([(r"^cat /proc/modules$", (0, "klp_a 16384 0 - Live\n", "")),
                       (r"rmmod", (1, "", "in use"))])
    [note] = livepatch.unload_modules(guest, ["klp_a"])
    assert (note.text, note.lasting, str(note)) == ("could not unload klp_a: in use", True,
                                                    "could not unload klp_a: in use")


def test_an_errors_headline_is_its_first_line_without_the_console():
    from harness.errors import BootError, HarnessError
    e = BootError("no shell after 60s", console_excerpt="[ 1.0] Kernel panic\n[ 1.1] ...")
    assert e.headline == "no shell after 60s"
    assert "Kernel panic" in str(e)
    assert HarnessError().headline == "HarnessError"   # never an empty line
