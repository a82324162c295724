"""The report spool: durable, ordered, deleted only after the provider confirmed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tenfra.agent.spool import Spool
from tenfra.errors import TransportError


class Provider:
    """Records posts like the provider's idempotent report endpoint."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.down = False
        self.fail_after: int | None = None
        self.calls = 0

    def post(self, report: dict[str, Any], key: str) -> int:
        self.calls += 1
        if self.down or (self.fail_after is not None and self.calls > self.fail_after):
            raise TransportError("Cannot reach the provider (test).")
        if key in self.stored:
            return 200
        self.stored[key] = report
        return 201


def test_add_writes_json_before_sending(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    path = spool.add({"id": "r1", "status": "ok"})
    assert json.loads(path.read_text()) == {"id": "r1", "status": "ok"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert spool.pending() == [path]


def test_order_is_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ids = [f"r{i}" for i in range(20)]
    for report_id in ids:
        spool.add({"id": report_id})
    provider = Provider()
    result = spool.deliver(provider.post)
    assert result.sent == ids
    assert list(provider.stored) == ids
    assert spool.pending() == []


def test_outage_keeps_everything_and_stops_early(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.add({"id": f"r{i}"})
    provider = Provider()
    provider.down = True
    result = spool.deliver(provider.post)
    assert result.sent == [] and result.remaining == 3 and result.error
    assert provider.calls == 1  # no hammering of a provider that is down
    provider.down = False
    result = spool.deliver(provider.post)
    assert result.sent == ["r0", "r1", "r2"] and result.remaining == 0


def test_partial_delivery_then_restart_is_exactly_once(tmp_path: Path) -> None:
    provider = Provider()
    spool = Spool(tmp_path)
    for i in range(5):
        spool.add({"id": f"r{i}"})
    provider.fail_after = 2
    first = spool.deliver(provider.post)
    assert first.sent == ["r0", "r1"] and first.remaining == 3
    # A lost answer: the provider stored r2 but the agent never heard back.
    provider.stored["r2"] = {"id": "r2"}
    provider.fail_after = None
    again = Spool(tmp_path).deliver(provider.post)  # a new process
    assert again.duplicates == ["r2"]
    assert again.sent == ["r3", "r4"]
    assert sorted(provider.stored) == ["r0", "r1", "r2", "r3", "r4"]


def test_refused_report_is_moved_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add({"id": "bad"})
    spool.add({"id": "good"})

    def post(report: dict[str, Any], key: str) -> int:
        if key == "bad":
            raise TransportError("The provider answered 422.", status=422)
        return 201

    result = spool.deliver(post)
    assert result.refused == ["bad"] and result.sent == ["good"]
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "refused").iterdir()] == [
        "bad.json"
    ]


def test_auth_errors_keep_the_report(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add({"id": "r"})

    def post(report: dict[str, Any], key: str) -> int:
        raise TransportError("The provider answered 401.", status=401)

    assert spool.deliver(post).remaining == 1


def test_unsafe_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path).add({"id": "../x"})


def test_unreadable_file_is_moved_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    path = spool.add({"id": "r"})
    path.write_text("{not json")
    result = spool.deliver(Provider().post)
    assert result.refused and result.remaining == 0
