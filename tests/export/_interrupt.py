"""A CLI child started the way a shell starts a background job: with SIGINT ignored.

An ignored signal stays ignored in every child, and Python then installs no KeyboardInterrupt
handler; the CLI must still stop on Ctrl-C (`_cli/_signals.py`). Tests that send SIGINT start
their child this way, so they prove that, whether or not the test run itself ignores SIGINT.
"""

from __future__ import annotations

import sys

__all__ = ["BACKGROUND_CLI"]

BACKGROUND_CLI = (
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "runpy.run_module('amili_async', run_name='__main__', alter_sys=True)",
)
"""The argv prefix of a CLI child that inherited SIGINT ignored (append the CLI's arguments)."""
