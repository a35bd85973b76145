"""Why a scenario was skipped, as data: the skip's cause travels on its outcome
(runner.Outcome.skip), set where the skip is decided, so that the summary can count the
skips of one cause together (skipsummary.py) without reading their messages.

No imports from the harness: the scenario, the runner, klp-build and the session all
decide skips, and each of them may import this.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Skip:
    reason: str                   # the test's own line, as pytest and the run print it
    group: str                    # the cause in words every skip of it shares (no test's name)
    config: Tuple[str, ...] = ()  # kernel config symbols the image lacks: a recipe may set them
    image: str = ""               # the image that lacked them (no remedy for itself)

    def properties(self) -> List[Tuple[str, str]]:
        """As pytest user properties: under xdist they are what reaches the controller
        (and the JUnit XML); the reason travels as the outcome's message."""
        return [("klp_skip_group", self.group), ("klp_skip_config", " ".join(self.config)),
                ("klp_skip_image", self.image)]

    @classmethod
    def from_properties(cls, props: Dict[str, str], reason: str) -> Optional["Skip"]:
        """The Skip that ``properties`` wrote; None if there is none (an older worker's)."""
        if "klp_skip_group" not in props:
            return None
        return cls(reason, props["klp_skip_group"],
                   tuple(props.get("klp_skip_config", "").split()),
                   props.get("klp_skip_image", ""))


def unexplained(message: str) -> Skip:
    """A skip that came without its cause (made by hand, or by an older harness): its
    reason's first line stands for the cause, so that it is still counted."""
    first = (message.splitlines() or [""])[0].strip()
    return Skip(message, first or "skipped (no reason given)")
