"""The agent daemon loop: poll with splay, back off on errors, stop on SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
from types import FrameType
from typing import Callable, Optional

logger = logging.getLogger(__name__)


class Backoff:
    """Jittered exponential back-off ("full jitter").

    After ``n`` consecutive failures the wait is a random value between
    ``base * 2**(n-1) / 2`` and ``base * 2**(n-1)``, capped at ``cap``; so
    a herd of agents that failed together spreads out instead of retrying
    in step.
    """

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        rng: Optional[random.Random] = None,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("back-off needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.failures = 0
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)

    def failure(self) -> float:
        """Record one failure and return how long to wait before retrying."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        return self.rng.uniform(ceiling / 2, ceiling)

    def success(self) -> None:
        self.failures = 0


def poll_delay(interval: float, splay: float, rng: random.Random) -> float:
    """The wait before the next regular poll: the interval plus a random splay."""
    return interval + rng.uniform(0, max(splay, 0.0))


class Stopper:
    """Turns SIGTERM/SIGINT into a flag the loop checks between runs.

    The first signal lets the current run finish its current task and report;
    the loop then exits with status 0.  A second signal exits at once.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}
        self.child: Optional[int] = None  # a worker process to pass signals on to

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, _frame: Optional[FrameType]) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signum)
        if self.event.is_set():
            logger.warning("second signal %d: exiting now", signum)
            raise SystemExit(128 + signum)
        logger.warning("signal %d: finishing the current task, then exiting", signum)
        self.event.set()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when woken by a stop request."""
        return self.event.wait(max(seconds, 0.0))


def run_loop(
    cycle: Callable[[], bool],
    *,
    interval: float,
    splay: float,
    backoff: Backoff,
    stopper: Stopper,
    rng: Optional[random.Random] = None,
    first_splay: bool = True,
) -> None:
    """Call ``cycle`` until stopped; it returns True when the provider answered.

    The first poll waits a random part of the splay, so agents that start
    together (after a reboot or a provider outage) do not poll in step.
    """
    rng = rng or random.Random()  # noqa: S311 (jitter, not crypto)
    if first_splay and splay > 0 and stopper.sleep(rng.uniform(0, splay)):
        return
    while not stopper.stopping:
        try:
            reached = cycle()
        except Exception:  # keep the daemon alive; the cycle reports errors itself
            logger.exception("agent cycle failed")
            reached = False
        if stopper.stopping:
            break
        if reached:
            backoff.success()
            delay = poll_delay(interval, splay, rng)
        else:
            delay = backoff.failure()
            logger.info("provider unreachable; next attempt in %.0f s", delay)
        if stopper.sleep(delay):
            break
