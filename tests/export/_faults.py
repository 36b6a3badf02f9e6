"""Faults injected into export runs from inside the workers: picklable `on_request` hooks.

Each fires once across every process (an O_EXCL marker file decides which process), at the
`at`-th invoice listing request of one organisation that a process sends: after some pages of a
unit are staged, so the re-run unit must resume rather than start clean.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import attrs

from amili_async._transport import RequestInfo

# Listing requests seen by this process, per marker (hooks are rebuilt by unpickling).
_SEEN: Counter[str] = Counter()


class InjectedFaultError(RuntimeError):
    """The failure a test injects into one unit."""


@attrs.frozen
class Once:
    """An `on_request` hook: fail (`"raise"`) or die (`"kill"`, SIGKILL) once, mid-unit."""

    marker: str
    org_id: str
    action: str
    at: int = 2

    def __call__(self, info: RequestInfo) -> None:
        if f"/orgs/{self.org_id}/invoices" not in info.url:
            return
        _SEEN[self.marker] += 1
        if _SEEN[self.marker] != self.at:
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # fired already, in this process or another
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFaultError("injected: this unit fails once")


@attrs.frozen
class Both:
    """Several hooks as one."""

    hooks: tuple[Once, ...]

    def __call__(self, info: RequestInfo) -> None:
        for hook in self.hooks:
            hook(info)
