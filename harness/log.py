"""The harness's log: progress of long work and what a session does.

Through the standard logging module: the command line shows it on stderr, the pytest
plugin on the terminal (and pytest's live log and caplog see it); a library user
configures logging as they like.
"""
from __future__ import annotations

import logging

LOG = logging.getLogger("klp_harness")
LOG_FORMAT = logging.Formatter("klp-harness: %(message)s")   # how both front ends show it


def progress(message: str) -> None:
    """One line of progress for long work (builds, fetches)."""
    LOG.info(message)
