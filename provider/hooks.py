"""Report hooks on the provider: a database outbox and its delivery worker.

When a report is stored, each configured hook whose condition holds gets a
``hook_delivery`` row in the same transaction.  A background thread in every
provider process claims due rows with a conditional UPDATE (a lease, so two
replicas never send the same delivery at once), calls the hook, and records
success or schedules a retry with exponential back-off.  A failing hook is
logged; it never blocks or fails the ingestion of reports.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from tenfra.provider.config import ProviderConfig
    from tenfra.reporting import ReportHook

logger = logging.getLogger(__name__)

LEASE = 60.0
BATCH = 20


def build_hooks(config: ProviderConfig) -> dict[str, ReportHook]:
    """Instantiate the configured hooks (their options were checked at load time)."""
    from tenfra.convert import structure
    from tenfra.pluginmanager import get_plugin_manager

    registry = get_plugin_manager().report_hooks
    hooks: dict[str, ReportHook] = {}
    for item in config.hooks:
        cls = registry[item.type]
        options = structure(item.options, cls.Options, source=item.location)
        hooks[item.name] = cls(options, hook_name=item.name)
    return hooks


def select_hooks(
    hooks: dict[str, ReportHook], report: dict[str, Any], host: str
) -> list[str]:
    """Names of the hooks whose condition holds for ``report``."""
    chosen = []
    for name, hook in hooks.items():
        try:
            if hook.wants(report, host):
                chosen.append(name)
        except Exception as exc:
            logger.error(
                "report hook %s: its condition failed for the report of %s: %s; "
                "fix the 'if' of this hook in the provider configuration",
                name,
                host,
                exc,
            )
    return chosen


def deliver_due(hooks: dict[str, ReportHook], *, limit: int = BATCH) -> int:
    """Deliver due deliveries claimed by this process; returns how many were sent."""
    from tenfra.provider.models import HookDelivery, now

    moment = now()
    due = list(
        HookDelivery.select(HookDelivery.id, HookDelivery.claimed_until)
        .where(
            (HookDelivery.done == False)  # noqa: E712 (a SQL expression)
            & (HookDelivery.next_attempt <= moment)
            & (HookDelivery.claimed_until <= moment)
        )
        .order_by(HookDelivery.next_attempt)
        .limit(limit)
    )
    sent = 0
    for row in due:
        claimed = (
            HookDelivery.update(claimed_until=moment + LEASE)
            .where(
                (HookDelivery.id == row.id)
                & (HookDelivery.claimed_until == row.claimed_until)
                & (HookDelivery.done == False)  # noqa: E712
            )
            .execute()
        )
        if claimed:
            sent += _deliver_one(hooks, row.id)
    return sent


def _deliver_one(hooks: dict[str, ReportHook], delivery_id: int) -> int:
    from tenfra.provider.models import HookDelivery, now

    delivery = HookDelivery.get_by_id(delivery_id)
    hook = hooks.get(delivery.hook)
    error: Optional[str] = None
    if hook is None:
        error = f"hook {delivery.hook!r} is no longer configured"
    else:
        try:
            hook.deliver(json.loads(delivery.payload), delivery.host)
        except Exception as exc:
            error = str(exc) or type(exc).__name__
    attempts = delivery.attempts + 1
    if error is None:
        HookDelivery.update(done=True, attempts=attempts, last_error=None).where(
            HookDelivery.id == delivery_id
        ).execute()
        return 1
    retries = hook.retries if hook is not None else 0
    give_up = attempts > retries
    delay = min(2.0**attempts, 600.0)
    HookDelivery.update(
        attempts=attempts,
        last_error=error[:2000],
        next_attempt=now() + delay,
        claimed_until=0.0,
        done=give_up,
    ).where(HookDelivery.id == delivery_id).execute()
    if give_up:
        logger.error(
            "report hook %s gave up on the report %s of %s after %d attempt(s): %s",
            delivery.hook,
            delivery.report_id,
            delivery.host,
            attempts,
            error,
        )
    else:
        logger.warning(
            "report hook %s failed for the report of %s "
            "(attempt %d, retry in %.0fs): %s",
            delivery.hook,
            delivery.host,
            attempts,
            delay,
            error,
        )
    return 0


class DeliveryWorker:
    """A daemon thread that delivers hooks; :meth:`wake` after storing a report."""

    def __init__(self, hooks: dict[str, ReportHook], interval: float = 2.0) -> None:
        self.hooks = hooks
        self.interval = interval
        self._event = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if not self.hooks or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, name="tenfra-hooks", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def stop(self) -> None:
        self._stop.set()
        self._event.set()

    def _loop(self) -> None:
        from tenfra.provider.models import db

        while not self._stop.is_set():
            self._event.wait(self.interval)
            self._event.clear()
            try:
                while deliver_due(self.hooks):
                    pass
            except Exception:
                logger.exception("report hook delivery failed; retrying later")
            finally:
                if not db.is_closed():
                    db.close()
