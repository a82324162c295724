"""``/metrics`` in the Prometheus text format, computed from the shared database.

Every value is read from the database at scrape time, so any replica answers
with the same numbers (no per-process counters that a load balancer would
scatter).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, request

from tenfra import __version__
from tenfra.provider.app import state

logger = logging.getLogger(__name__)

blueprint = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        if labels:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            self.lines.append(f"{name}{{{text}}} {_number(value)}")
        else:
            self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@blueprint.get("/metrics")
def metrics() -> Response:
    """Fleet, release, rollout and hook gauges (optional bearer token)."""
    token = state().config.metrics.token
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response(
                "metrics need 'Authorization: Bearer <metrics.token>'\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="tenfra metrics"'},
            )
    return Response(render(), mimetype=None, content_type=CONTENT_TYPE)


def render() -> str:
    """The metrics text."""
    import peewee as pw

    from tenfra.provider import releases
    from tenfra.provider.models import (
        BootstrapToken,
        HookDelivery,
        Host,
        HostStatus,
        Release,
        Run,
        now,
    )

    out = _Writer()
    out.family("tenfra_provider_info", "gauge", "Provider version.")
    out.sample("tenfra_provider_info", 1, version=__version__)

    enrolled = Host.select().where(Host.credential_hash.is_null(False)).count()
    pending = Host.select().where(Host.request_hash.is_null(False)).count()
    out.family("tenfra_hosts_enrolled", "gauge", "Hosts holding a credential.")
    out.sample("tenfra_hosts_enrolled", enrolled)
    out.family("tenfra_hosts_pending_approval", "gauge", "Enrolment requests waiting.")
    out.sample("tenfra_hosts_pending_approval", pending)

    out.family(
        "tenfra_hosts_by_status", "gauge", "Hosts by the status of their last run."
    )
    reported = 0
    by_status: Any = (
        HostStatus.select(HostStatus.status, pw.fn.COUNT(HostStatus.host))
        .group_by(HostStatus.status)
        .tuples()
    )
    for status, count in by_status:
        reported += count
        out.sample("tenfra_hosts_by_status", count, status=status)
    out.sample("tenfra_hosts_by_status", max(enrolled - reported, 0), status="none")

    stale_after = 3 * 3600
    stale = (
        Host.select()
        .where(
            Host.credential_hash.is_null(False)
            & ((Host.last_seen.is_null()) | (Host.last_seen < now() - stale_after))
        )
        .count()
    )
    out.family("tenfra_hosts_stale", "gauge", "Enrolled hosts not seen for 3 hours.")
    out.sample("tenfra_hosts_stale", stale)

    out.family("tenfra_runs_stored", "gauge", "Run reports kept (after retention).")
    out.sample("tenfra_runs_stored", Run.select().count())
    last_hour = Run.select().where(Run.received > now() - 3600)
    out.family(
        "tenfra_runs_last_hour", "gauge", "Run reports received in the last hour."
    )
    out.sample("tenfra_runs_last_hour", last_hour.count())

    out.family("tenfra_releases", "gauge", "Known releases by rollout state.")
    by_state: Any = (
        Release.select(Release.state, pw.fn.COUNT(Release.id))
        .group_by(Release.state)
        .tuples()
    )
    for state_name, count in by_state:
        out.sample("tenfra_releases", count, state=state_name)
    latest = Release.select().order_by(Release.sequence.desc()).first()
    out.family(
        "tenfra_release_latest_sequence", "gauge", "Sequence of the newest release."
    )
    out.sample("tenfra_release_latest_sequence", latest.sequence if latest else 0)
    rings = state().rings
    out.family(
        "tenfra_rollout_ring",
        "gauge",
        "Ring reached by each rolling or paused release.",
    )
    for release in Release.select().where(
        Release.state.in_([releases.ROLLING, releases.PAUSED])
    ):
        out.sample(
            "tenfra_rollout_ring",
            release.ring,
            release=release.name,
            ring=rings.names[release.ring],
            state=release.state,
        )

    out.family(
        "tenfra_hook_deliveries_pending", "gauge", "Report hook deliveries not done."
    )
    out.sample(
        "tenfra_hook_deliveries_pending",
        HookDelivery.select().where(HookDelivery.done == False).count(),  # noqa: E712
    )
    out.family("tenfra_hook_deliveries_failed", "gauge", "Deliveries given up on.")
    out.sample(
        "tenfra_hook_deliveries_failed",
        HookDelivery.select()
        .where((HookDelivery.done == True) & HookDelivery.last_error.is_null(False))  # noqa: E712
        .count(),
    )
    out.family("tenfra_bootstrap_tokens_open", "gauge", "Unused, unexpired tokens.")
    out.sample(
        "tenfra_bootstrap_tokens_open",
        BootstrapToken.select()
        .where(BootstrapToken.used.is_null() & (BootstrapToken.expires > now()))
        .count(),
    )
    return out.text()
