"""Starting a CLI child that Ctrl-C (SIGINT) can interrupt, however the test run was started.

A shell starts a background job with SIGINT ignored, and an ignored signal stays ignored in
every child (Python then never installs its KeyboardInterrupt handler): a test sending SIGINT
to a CLI would see it ignored when `make test` runs in the background. The child restores the
default handler first, then runs the CLI as `python -m amili_async` would.
"""

from __future__ import annotations

import sys

__all__ = ["INTERRUPTIBLE_CLI"]

INTERRUPTIBLE_CLI = (
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('amili_async', run_name='__main__', alter_sys=True)",
)
"""The argv prefix of a CLI child that Ctrl-C interrupts (append the CLI's arguments)."""
