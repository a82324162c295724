"""Operations shared by the CLI and the admin UI: tokens, approval, pruning."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tenfra.errors import UserError

if TYPE_CHECKING:
    from tenfra.provider.config import ProviderConfig

logger = logging.getLogger(__name__)

MAX_TOKEN_TTL = 30 * 86400


def create_token(host: str, ttl: float, *, actor: str) -> tuple[str, float]:
    """A new one-time bootstrap token for ``host``; returns it and its expiry time."""
    from tenfra.provider.api import HOST_NAME
    from tenfra.provider.auth import new_secret, secret_hash
    from tenfra.provider.models import BootstrapToken, Event, now

    if not HOST_NAME.match(host):
        raise UserError(
            f"{host!r} is not a valid host name; use letters, digits, '.', '-' and "
            "'_' (at most 253 characters)."
        )
    if not 60 <= ttl <= MAX_TOKEN_TTL:
        raise UserError(
            f"A token lifetime of {ttl:.0f}s is out of range; choose between 60 "
            f"seconds and {MAX_TOKEN_TTL // 86400} days."
        )
    token = new_secret()
    moment = now()
    expires = moment + ttl
    BootstrapToken.create(
        token_hash=secret_hash(token),
        host=host,
        created=moment,
        expires=expires,
        created_by=actor,
    )
    Event.create(
        time=moment, actor=actor, action="token", subject=host, detail=f"ttl {ttl:.0f}s"
    )
    logger.info("bootstrap token for %s created by %s", host, actor)
    return token, expires


def approve_host(host: str, *, actor: str) -> bool:
    """Approve a pending enrolment request; False when there is none."""
    from tenfra.provider.models import Event, Host, now

    updated = (
        Host.update(approved=True)
        .where((Host.name == host) & Host.request_hash.is_null(False))
        .execute()
    )
    if updated:
        Event.create(time=now(), actor=actor, action="approved", subject=host)
        logger.info("enrolment of %s approved by %s", host, actor)
    return bool(updated)


def forget_host(host: str, *, actor: str) -> dict[str, int]:
    """Delete a host and everything stored about it; returns what was removed.

    The credential, a pending enrolment request, bootstrap tokens, the host
    pin, facts, status, run history and logs all go, so a machine enrolled
    later under the same name inherits nothing.  Audit events stay, and hook
    deliveries already queued are still sent.  ``removed["host"]`` is 0 when
    no such host exists.
    """
    from tenfra.provider.models import (
        BootstrapToken,
        Event,
        Host,
        HostStatus,
        LogLine,
        RecipeResult,
        Run,
        TaskResult,
        db,
        now,
    )

    removed: dict[str, int] = {}
    with db.atomic():
        runs = Run.select(Run.id).where(Run.host == host)
        TaskResult.delete().where(TaskResult.run.in_(runs)).execute()
        RecipeResult.delete().where(RecipeResult.run.in_(runs)).execute()
        removed["runs"] = Run.delete().where(Run.host == host).execute()
        removed["logs"] = LogLine.delete().where(LogLine.host == host).execute()
        removed["tokens"] = (
            BootstrapToken.delete().where(BootstrapToken.host == host).execute()
        )
        HostStatus.delete().where(HostStatus.host == host).execute()
        removed["host"] = Host.delete().where(Host.name == host).execute()
        if removed["host"]:
            Event.create(time=now(), actor=actor, action="forgotten", subject=host)
    if removed["host"]:
        logger.warning("host %s and its history were deleted by %s", host, actor)
    return removed


def prune(config: ProviderConfig) -> dict[str, int]:
    """Delete run history and logs older than the retention, and spent tokens."""
    from tenfra.provider.models import (
        BootstrapToken,
        Event,
        HookDelivery,
        LogLine,
        RecipeResult,
        Run,
        TaskResult,
        db,
        now,
    )

    moment = now()
    runs_before = moment - config.retention.runs
    logs_before = moment - config.retention.logs
    removed = {"runs": 0, "logs": 0, "tokens": 0, "deliveries": 0, "events": 0}
    while True:
        ids = [
            r.id
            for r in Run.select(Run.id).where(Run.received < runs_before).limit(1000)
        ]
        if not ids:
            break
        with db.atomic():
            TaskResult.delete().where(TaskResult.run.in_(ids)).execute()
            RecipeResult.delete().where(RecipeResult.run.in_(ids)).execute()
            removed["runs"] += Run.delete().where(Run.id.in_(ids)).execute()
    removed["logs"] = LogLine.delete().where(LogLine.received < logs_before).execute()
    removed["tokens"] = (
        BootstrapToken.delete()
        .where(
            (BootstrapToken.expires < moment - 86400)
            | (BootstrapToken.used < moment - 86400)
        )
        .execute()
    )
    removed["deliveries"] = (
        HookDelivery.delete()
        .where((HookDelivery.done == True) & (HookDelivery.created < runs_before))  # noqa: E712
        .execute()
    )
    removed["events"] = Event.delete().where(Event.time < runs_before).execute()
    if any(removed.values()):
        logger.info(
            "pruned %s",
            ", ".join(f"{count} {what}" for what, count in removed.items() if count),
        )
    return removed
