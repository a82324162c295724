"""Staged rollouts: rings promoted by reports, paused by failures, pins and rollback."""

from __future__ import annotations

from typing import Any, Optional

import pytest

HOSTS = ("web-1", "web-2", "web-3", "db-1")
RINGS = {
    "rings": [
        {"name": "canary", "hosts": ["web-1"]},
        {"name": "web", "hosts": ["web-[2:3]"]},
    ]
}


class Fleet:
    def __init__(self, provider: Any, writer: Any) -> None:
        self.provider = provider
        self.writer = writer
        self.credentials: dict[str, str] = {}

    def publish(self, marker: str) -> Any:
        published = self.writer.publish({h: {"m": marker.encode()} for h in HOSTS})
        assert self.provider.scan() == [published.name]
        return published

    def enroll_all(self) -> None:
        for host in HOSTS:
            self.credentials[host] = self.provider.enroll(host)

    def release_of(self, host: str) -> Optional[int]:
        answer = self.provider.get("/api/v1/release", self.credentials[host])
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200
        sequence: int = answer.get_json()["sequence"]
        return sequence

    def releases(self) -> dict[str, Optional[int]]:
        return {host: self.release_of(host) for host in HOSTS}

    def report(self, host: str, published: Any, status: str = "changed") -> None:
        answer = self.provider.report(
            self.credentials[host],
            host,
            status=status,
            release=published.release_id,
            sequence=published.sequence,
        )
        assert answer.status_code == 201

    def state(self, published: Any) -> tuple[str, int]:
        from tenfra.provider.models import Release

        with self.provider.app.app_context():
            row = Release.get(Release.name == published.name)
            return row.state, row.ring


@pytest.fixture
def fleet(make_provider: Any, writer: Any) -> Fleet:
    return Fleet(make_provider(rollout=RINGS), writer)


def test_rings_are_promoted_when_the_previous_ring_succeeds(fleet: Fleet) -> None:
    fleet.enroll_all()
    first = fleet.publish("one")
    assert fleet.releases() == {"web-1": 1, "web-2": None, "web-3": None, "db-1": None}
    assert fleet.state(first) == ("rolling", 0)

    fleet.report("web-1", first)
    assert fleet.state(first) == ("rolling", 1)
    assert fleet.releases() == {"web-1": 1, "web-2": 1, "web-3": 1, "db-1": None}

    fleet.report("web-2", first)
    assert fleet.state(first) == ("rolling", 1)  # web-3 has not reported yet
    fleet.report("web-3", first, status="ok")
    assert fleet.state(first) == ("complete", 2)
    assert fleet.releases() == {"web-1": 1, "web-2": 1, "web-3": 1, "db-1": 1}

    second = fleet.publish("two")
    assert fleet.releases() == {"web-1": 2, "web-2": 1, "web-3": 1, "db-1": 1}
    assert fleet.state(second) == ("rolling", 0)


def test_a_failing_ring_pauses_the_rollout(fleet: Fleet) -> None:
    from tenfra.provider import releases
    from tenfra.provider.models import Release

    fleet.enroll_all()
    first = fleet.publish("one")
    for host in HOSTS[:3]:
        fleet.report(host, first)
    assert fleet.state(first)[0] == "complete"

    second = fleet.publish("two")
    fleet.report("web-1", second, status="failed")
    state, ring = fleet.state(second)
    assert (state, ring) == ("paused", 0)
    assert fleet.releases() == {"web-1": 2, "web-2": 1, "web-3": 1, "db-1": 1}
    with fleet.provider.app.app_context():
        reason = Release.get(Release.name == second.name).state_reason
    assert "1 of 1 host(s) in ring 'canary' failed" in reason

    # A later success does not silently resume a paused rollout ...
    fleet.report("web-1", second)
    assert fleet.state(second) == ("paused", 0)
    # ... an administrator promotes it.
    with fleet.provider.app.app_context():
        row = Release.get(Release.name == second.name)
        releases.resume(row, fleet.provider.state.rings, actor="test")
        releases.promote(row, fleet.provider.state.rings, actor="test")
        releases.assign(fleet.provider.state.rings)
    assert fleet.releases() == {"web-1": 2, "web-2": 2, "web-3": 2, "db-1": 1}


def test_failure_threshold(make_provider: Any, writer: Any) -> None:
    fleet = Fleet(
        make_provider(
            rollout={
                "rings": [{"name": "web", "hosts": ["web-*"]}],
                "failureThreshold": 0.34,
            }
        ),
        writer,
    )
    fleet.enroll_all()
    first = fleet.publish("one")
    fleet.report("web-1", first, status="failed")  # 1 of 3: under the threshold
    assert fleet.state(first) == ("rolling", 0)
    fleet.report("web-2", first, status="failed")  # 2 of 3: over it
    assert fleet.state(first) == ("paused", 0)


def test_rollback_returns_hosts_to_the_previous_release(fleet: Fleet) -> None:
    from tenfra.provider import releases
    from tenfra.provider.models import Release

    fleet.enroll_all()
    first = fleet.publish("one")
    for host in HOSTS[:3]:
        fleet.report(host, first)
    second = fleet.publish("two")
    fleet.report("web-1", second)
    assert fleet.release_of("web-2") == 2

    with fleet.provider.app.app_context():
        row = Release.get(Release.name == second.name)
        releases.rollback(row, fleet.provider.state.rings, actor="test")
    assert fleet.releases() == {"web-1": 1, "web-2": 1, "web-3": 1, "db-1": 1}
    assert fleet.state(second)[0] == "rolled-back"


def test_global_and_host_pins(fleet: Fleet) -> None:
    from tenfra.provider import releases

    fleet.enroll_all()
    first = fleet.publish("one")
    for host in HOSTS[:3]:
        fleet.report(host, first)
    fleet.publish("two")
    rings = fleet.provider.state.rings
    with fleet.provider.app.app_context():
        releases.set_pin(first.name, rings, actor="test")
    assert set(fleet.releases().values()) == {1}
    with fleet.provider.app.app_context():
        releases.set_pin(None, rings, actor="test")
        releases.set_pin(first.name, rings, actor="test", host="web-1")
    assert fleet.releases() == {"web-1": 1, "web-2": 1, "web-3": 1, "db-1": 1}
    with fleet.provider.app.app_context():
        releases.set_pin(None, rings, actor="test", host="web-1")
    assert fleet.release_of("web-1") == 2


def test_without_rings_a_release_reaches_everyone(provider: Any, writer: Any) -> None:
    fleet = Fleet(provider, writer)
    fleet.enroll_all()
    fleet.publish("one")
    assert set(fleet.releases().values()) == {1}


def test_promotion_is_a_compare_and_set(fleet: Fleet) -> None:
    """Two replicas promoting the same release at once move it one ring only."""
    from tenfra.provider import releases
    from tenfra.provider.models import Release

    fleet.enroll_all()
    first = fleet.publish("one")
    rings = fleet.provider.state.rings
    with fleet.provider.app.app_context():
        replica_a = Release.get(Release.name == first.name)
        replica_b = Release.get(Release.name == first.name)
        assert releases.promote(replica_a, rings, actor="a")
        assert not releases.promote(replica_b, rings, actor="b")
    assert fleet.state(first) == ("rolling", 1)


def test_check_mode_reports_do_not_promote(fleet: Fleet) -> None:
    fleet.enroll_all()
    first = fleet.publish("one")
    answer = fleet.provider.report(
        fleet.credentials["web-1"],
        "web-1",
        status="would-change",
        check=True,
        release=first.release_id,
        sequence=first.sequence,
    )
    assert answer.status_code == 201
    assert fleet.state(first) == ("rolling", 0)
