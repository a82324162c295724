"""Back-off, splay and the stop flag of the daemon loop."""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest

from tenfra.agent.loop import Backoff, Stopper, poll_delay, run_loop


def test_backoff_grows_jittered_and_capped() -> None:
    backoff = Backoff(2.0, 60.0, rng=random.Random(1))
    waits = [backoff.failure() for _ in range(10)]
    for n, wait in enumerate(waits, start=1):
        ceiling = min(60.0, 2.0 * 2 ** (n - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert max(waits) <= 60.0
    assert waits[-1] >= 30.0
    backoff.success()
    assert backoff.failure() <= 2.0


def test_backoff_spreads_a_herd() -> None:
    waits = {round(Backoff(10.0, 600.0).failure(), 3) for _ in range(50)}
    assert len(waits) > 40


def test_backoff_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)


def test_poll_delay_is_interval_plus_splay() -> None:
    rng = random.Random(3)
    delays = [poll_delay(100.0, 20.0, rng) for _ in range(200)]
    assert all(100.0 <= d <= 120.0 for d in delays)
    assert max(delays) - min(delays) > 10.0


def test_loop_backs_off_on_failure_and_stops() -> None:
    stopper = Stopper()
    results = iter([False, False, True, True])
    sleeps: list[float] = []
    calls = []

    def cycle() -> bool:
        calls.append(1)
        try:
            return next(results)
        except StopIteration:
            stopper.event.set()
            return True

    original = stopper.sleep

    def record(seconds: float) -> bool:
        sleeps.append(seconds)
        return original(0)

    stopper.sleep = record  # type: ignore[method-assign]
    run_loop(
        cycle,
        interval=10.0,
        splay=0.0,
        backoff=Backoff(10.0, 100.0, rng=random.Random(0)),
        stopper=stopper,
        first_splay=False,
    )
    assert len(calls) == 5
    assert 5.0 <= sleeps[0] <= 10.0 and 10.0 <= sleeps[1] <= 20.0
    assert sleeps[2] == sleeps[3] == 10.0


def test_sigterm_sets_the_flag_and_wakes_the_sleep() -> None:
    stopper = Stopper()
    stopper.install()
    try:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        woke = stopper.sleep(10)
        timer.join()
        assert woke and stopper.stopping
    finally:
        stopper.uninstall()
