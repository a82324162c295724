"""Two real provider processes sharing one PostgreSQL and one S3 bucket (moto).

Both run ``tenfra provider serve`` (gunicorn) on 127.0.0.1.  An agent may talk
to either, in any order, and the fleet stays consistent: a credential issued
by one works on the other, a token is spent once, a report sent to both is
stored once, and a new release in S3 reaches both.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from tenfra.agent.client import ProviderClient
from tenfra.errors import TransportError

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

HOSTS = [f"node-{n}" for n in range(1, 5)]


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _release_seen(client: ProviderClient, sequence: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            info = client.release()
        except TransportError:
            return False
        return info is not None and info.sequence == sequence

    return check


def test_two_replicas_serve_one_fleet(
    tmp_path: Path,
    postgres_url: str,
    s3_endpoint: str,
    s3_bucket: str,
    public_key_file: Path,
    admin_hash: str,
    make_writer: Any,
    serve_provider: Any,
    cli: Any,
    report_body: Any,
) -> None:
    options = {
        "endpoint_url": s3_endpoint,
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
    }
    url = f"s3://{s3_bucket}/tenfra"
    writer = make_writer(url, options)
    first = writer.publish({h: {"motd": f"hello {h}".encode()} for h in HOSTS})
    config = {
        "database": {"url": postgres_url},
        "releases": {
            "url": url,
            "storageOptions": options,
            "scanInterval": 1,
            "publicKey": str(public_key_file),
        },
        "auth": {
            "secretKey": "shared-secret-key-of-the-cluster",
            "users": [{"name": "admin", "passwordHash": admin_hash}],
        },
    }
    replica_a = serve_provider(config, "a")
    replica_b = serve_provider(config, "b")
    config_file = tmp_path / "a.yaml"

    # Enrol each host on one replica; its credential works on both.
    clients: dict[str, tuple[ProviderClient, ProviderClient]] = {}
    for index, host in enumerate(HOSTS):
        token = cli("provider", "token", "--config", str(config_file), "--host", host)
        enrol_on = replica_a if index % 2 == 0 else replica_b
        credential, _ = ProviderClient(enrol_on.url).enroll(host, token.strip())
        assert credential is not None
        clients[host] = (
            ProviderClient(replica_a.url, credential=credential, retries=0),
            ProviderClient(replica_b.url, credential=credential, retries=0),
        )
        # The token was spent in the shared database: the other replica refuses it.
        other = replica_b if enrol_on is replica_a else replica_a
        with pytest.raises(TransportError) as refused:
            ProviderClient(other.url).enroll(host, token.strip())
        assert refused.value.status == 401

    # Both replicas give every host the same release, bundle and assets.
    for host, (on_a, on_b) in clients.items():
        info_a, info_b = on_a.release(), on_b.release()
        assert info_a == info_b
        assert info_a is not None and info_a.digest == first.digests[host]
        assert on_a.release(info_a.digest) is None  # 304 on either replica
        assert on_b.release(info_a.digest) is None
        assert on_a.bundle() == on_b.bundle()
        digest = hashlib.sha256(f"hello {host}".encode()).hexdigest()
        assert on_b.asset(digest) == f"hello {host}".encode()

    # Reports sent to either replica, and again to the other, appear once.
    sent = []
    for round_ in range(3):
        for index, host in enumerate(HOSTS):
            body = report_body(host, sequence=first.sequence, release=first.release_id)
            primary, secondary = (
                clients[host][(index + round_) % 2],
                clients[host][(index + round_ + 1) % 2],
            )
            assert primary.post_report(body, body["id"]) == 201
            assert secondary.post_report(body, body["id"]) == 200
            sent.append(body["id"])

    # The same report racing to both replicas at once is stored once.
    host = HOSTS[0]
    race = report_body(host, id=f"race-{uuid.uuid4().hex}")
    statuses: list[int] = []

    def post(client: ProviderClient) -> None:
        statuses.append(client.post_report(race, race["id"]))

    threads = [threading.Thread(target=post, args=(c,)) for c in clients[host]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 201]

    import urllib3

    http = urllib3.PoolManager()
    for replica in (replica_a, replica_b):
        metrics = http.request("GET", f"{replica.url}/metrics").data.decode()
        assert f"tenfra_runs_stored {len(sent) + 1}" in metrics, metrics
        assert "tenfra_hosts_enrolled 4" in metrics
    import psycopg2

    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT report_id, COUNT(*) FROM run GROUP BY report_id")
        rows = dict(cur.fetchall())
    assert set(rows) == {*sent, race["id"]}
    assert set(rows.values()) == {1}

    # A new release in S3 reaches both replicas without a restart.
    second = writer.publish({h: {"motd": f"bye {h}".encode()} for h in HOSTS})
    for on_a, on_b in clients.values():
        _wait(_release_seen(on_a, second.sequence), "replica a to serve release 2")
        _wait(_release_seen(on_b, second.sequence), "replica b to serve release 2")
