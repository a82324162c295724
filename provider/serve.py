"""Run the provider under gunicorn (a production WSGI server), embedded.

The master process migrates the database and checks the configuration, then
forks the workers; each worker builds its own application, database
connections and background threads (release discovery, rollout, pruning and
hook deliveries, each guarded by a database lease so replicas cooperate).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Optional

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from tenfra.provider.config import ProviderConfig

logger = logging.getLogger(__name__)


def default_workers() -> int:
    return 2 * (os.cpu_count() or 1) + 1


class ProviderApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn's application interface around :func:`create_app`."""

    def __init__(self, config: ProviderConfig, options: dict[str, Any]) -> None:
        self.provider_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from tenfra.provider.app import create_app

        return create_app(self.provider_config, background=True)


class GuardedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker with a deadline for each request's head.

    A client gets ``server.headerTimeout`` seconds, from the moment a thread
    takes its connection, to send the request line and headers (the wait in
    the queue for a free thread does not count).  A client
    that trickles or stalls (a "slowloris") is disconnected when the
    deadline passes, so a few such clients cannot hold every thread; gunicorn
    itself already parks connections that send nothing at all.
    """

    def init_process(self) -> None:
        config = getattr(self.app, "provider_config", None)
        self.header_timeout = float(
            config.server.header_timeout if config is not None else 10
        )
        self._reading: dict[Any, float] = {}
        self._reading_lock = threading.Lock()
        threading.Thread(
            target=self._disconnect_slow_clients,
            name="tenfra-slow-clients",
            daemon=True,
        ).start()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        with self._reading_lock:
            self._reading[conn] = time.monotonic() + self.header_timeout
        try:
            return super().handle(conn)
        finally:
            with self._reading_lock:
                self._reading.pop(conn, None)

    def handle_request(self, req: Any, conn: Any) -> Any:
        with self._reading_lock:
            self._reading.pop(conn, None)
        return super().handle_request(req, conn)

    def _disconnect_slow_clients(self) -> None:
        while True:
            time.sleep(0.5)
            moment = time.monotonic()
            with self._reading_lock:
                late = [
                    c for c, deadline in self._reading.items() if deadline <= moment
                ]
                for conn in late:
                    del self._reading[conn]
            for conn in late:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:  # already closed by the client or gunicorn
                    continue
                logger.info(
                    "disconnected %s: no complete request within %.0f s",
                    conn.client[0] if conn.client else "a client",
                    self.header_timeout,
                )


def _post_fork(_server: Any, _worker: Any) -> None:
    # A connection opened by the master must never be shared with a worker.
    from tenfra.provider.models import db

    if db.obj is not None and not db.is_closed():
        db.close()


def serve(
    config: ProviderConfig,
    *,
    bind: Optional[str] = None,
    workers: Optional[int] = None,
    threads: Optional[int] = None,
    access_log: bool = False,
    migrate: bool = True,
) -> None:
    """Prepare the database and run gunicorn until it is stopped."""
    import peewee as pw

    from tenfra.provider import releases
    from tenfra.provider.models import (
        check_schema,
        connect_database,
        db,
        make_database,
    )
    from tenfra.provider.models import migrate as run_migrations

    connect_database(
        make_database(
            config.database.url,
            busy_timeout=config.database.busy_timeout,
            max_connections=config.database.max_connections,
        )
    )
    config.secret_key  # noqa: B018 (fail before forking when it is missing)
    if migrate:
        for step in run_migrations():
            logger.info("migrated: %s", step)
    check_schema()
    try:
        rings = releases.Rings(config)
        releases.discover(config, releases.Storage(config), rings)
        releases.assign(rings)
    except Exception as exc:
        logger.warning("first release scan failed (retried in the workers): %s", exc)
    close_all = getattr(db.obj, "close_all", None)
    if close_all is not None:
        close_all()
    elif isinstance(db.obj, pw.Database) and not db.is_closed():
        db.close()

    server = config.server
    count = workers if workers is not None else (server.workers or default_workers())
    thread_count = threads if threads is not None else server.threads
    options: dict[str, Any] = {
        "bind": [bind or server.bind],
        "workers": count,
        "threads": thread_count,
        "worker_class": "tenfra.provider.serve.GuardedThreadWorker",
        "timeout": server.timeout,
        "graceful_timeout": 30,
        "keepalive": 5,
        "proc_name": "tenfra-provider",
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "post_fork": _post_fork,
        "preload_app": False,
        "limit_request_line": 8190,
        # Replicas on one machine must not fight over gunicorn's control socket.
        "control_socket_disable": True,
    }
    logger.info(
        "tenfra provider on %s with %d worker(s) x %d thread(s)",
        options["bind"][0],
        count,
        thread_count,
    )
    ProviderApplication(config, options).run()
