"""Jobs from every browser tab take turns: one runs at a time (the model and the cores are shared), in arrival order,
and each can be cancelled by its own page while it waits or between two ODE updates while it runs."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class JobCancelled(Exception):
    """The page that started the job asked to stop it."""


@dataclass
class Ticket:
    """One job's place in line: the page (session) that asked for it and its number."""

    session: str
    number: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    running: bool = False

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.number} was cancelled")


class JobBoard:
    """Tickets in arrival order; the first one runs. `cancel(session)` stops that page's queued and running jobs."""

    def __init__(self, poll_seconds: float = 0.25):
        self._cond = threading.Condition()
        self._line: list[Ticket] = []
        self._numbers = itertools.count(1)
        self.poll_seconds = poll_seconds

    def enter(self, session: str) -> Ticket:
        with self._cond:
            ticket = Ticket(session, next(self._numbers))
            self._line.append(ticket)
            return ticket

    def ahead_of(self, ticket: Ticket) -> int:
        with self._cond:
            return self._line.index(ticket) if ticket in self._line else 0

    def wait_turn(self, ticket: Ticket, waiting: Callable[[int], None] | None = None) -> None:
        """Block until `ticket` is first in line (telling `waiting(jobs ahead)` meanwhile); raises JobCancelled."""
        with self._cond:
            while True:
                ticket.check()
                ahead = self._line.index(ticket)
                if ahead == 0:
                    ticket.running = True
                    return
                if waiting is not None:
                    self._cond.release()
                    try:
                        waiting(ahead)
                    finally:
                        self._cond.acquire()
                self._cond.wait(self.poll_seconds)

    def leave(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
            self._cond.notify_all()

    def cancel(self, session: str) -> int:
        """Cancel every job of `session`; -> how many there were."""
        with self._cond:
            mine = [t for t in self._line if t.session == session]
            for ticket in mine:
                ticket.cancelled.set()
            self._cond.notify_all()
            return len(mine)

    def running(self) -> Ticket | None:
        with self._cond:
            return self._line[0] if self._line and self._line[0].running else None


def job_folder(root: Path, ticket: Ticket) -> Path:
    """A folder of its own for each job's outputs (time + job number: two jobs never share one)."""
    folder = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-job{ticket.number:04d}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder
