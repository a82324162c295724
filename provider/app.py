"""The provider's Flask application: ``create_app(config)`` and its shared state."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

from flask import Flask, Response, current_app, jsonify, request

from tenfra import __version__
from tenfra.errors import TenfraError

if TYPE_CHECKING:
    from tenfra.provider.config import ProviderConfig
    from tenfra.provider.hooks import DeliveryWorker
    from tenfra.provider.releases import Rings, Storage
    from tenfra.reporting import ReportHook

logger = logging.getLogger(__name__)

# Endpoints served without credentials (the route test checks this list).
ANONYMOUS_ENDPOINTS = {
    "health.healthz",
    "health.readyz",
    "metrics.metrics",  # optional bearer token: metrics.token
    "api.enroll",  # authenticated by the bootstrap token in the body
    "bootstrap.install_sh",
    "bootstrap.public_key",
    "admin.login",
    "admin.login_post",
    "static",
}


class ApiError(Exception):
    """An error answered as JSON ``{"error": message}`` with ``status``."""

    def __init__(
        self, status: int, message: str, headers: Optional[dict[str, str]] = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ProviderState:
    """Everything a request needs besides the database; built once per process."""

    def __init__(self, config: ProviderConfig) -> None:
        from tenfra.provider.hooks import DeliveryWorker, build_hooks
        from tenfra.provider.releases import Rings, Storage

        self.config = config
        self.rings: Rings = Rings(config)
        self.storage: Storage = Storage(config)
        self.hooks: dict[str, ReportHook] = build_hooks(config)
        self.worker: DeliveryWorker = DeliveryWorker(self.hooks)
        self.redact = [_compile(p) for p in config.redact]
        self._background: Optional[threading.Thread] = None
        self._stop = threading.Event()

    # -- periodic jobs ------------------------------------------------------------

    def tick(self) -> None:
        """One round of periodic work; each job runs on one replica at a time."""
        from tenfra.provider import releases
        from tenfra.provider.models import take_lease

        config = self.config
        if take_lease("scan", config.releases.scan_interval * 0.9):
            try:
                if releases.discover(config, self.storage, self.rings):
                    releases.assign(self.rings)
            except TenfraError as exc:
                logger.error("release scan of %s failed: %s", config.releases.url, exc)
            releases.evaluate(config, self.rings)
            releases.assign(self.rings)
        if take_lease("prune", config.retention.prune_interval):
            from tenfra.provider.maintenance import prune

            prune(config)

    def start_background(self) -> None:
        """Start the periodic jobs and the hook deliveries (once per process)."""
        if self._background is not None:
            return
        self.worker.start()
        self._background = threading.Thread(
            target=self._loop, name="tenfra-periodic", daemon=True
        )
        self._background.start()

    def stop_background(self) -> None:
        self._stop.set()
        self.worker.stop()

    def _loop(self) -> None:
        from tenfra.provider.models import db

        interval = min(self.config.releases.scan_interval, 30.0)
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("periodic provider job failed; retrying later")
            finally:
                if not db.is_closed():
                    db.close()
            self._stop.wait(interval)


# Paths authenticated without the admin session (bearer credentials or none).
_SESSIONLESS = ("/api/", "/healthz", "/readyz", "/metrics")


def _session_interface() -> Any:
    """Flask's signed-cookie sessions, opened only where a login can matter.

    The agent API authenticates every request with a bearer credential, so
    it skips decoding (and re-signing) the cookie: a poll stays cheap.
    """
    from flask.sessions import SecureCookieSessionInterface

    class AdminSessions(SecureCookieSessionInterface):
        def open_session(self, app: Flask, request: Any) -> Any:
            if request.path.startswith(_SESSIONLESS):
                return self.null_session_class()
            return super().open_session(app, request)

    return AdminSessions()


def _compile(pattern: str) -> Any:
    import re

    return re.compile(pattern)


def state() -> ProviderState:
    """The :class:`ProviderState` of the current application."""
    found: ProviderState = current_app.extensions["tenfra"]
    return found


def create_app(config: ProviderConfig, *, background: bool = False) -> Flask:
    """The provider application for ``config`` (the database must be migrated).

    ``background`` starts the periodic jobs (release discovery, rollout,
    pruning) and hook deliveries in this process; ``tenfra provider serve``
    does it in each worker.
    """
    from tenfra.pluginmanager import get_plugin_manager
    from tenfra.provider import admin, api, bootstrap, health, metrics
    from tenfra.provider.models import connect_database, db, make_database

    if db.obj is None:
        connect_database(
            make_database(
                config.database.url,
                busy_timeout=config.database.busy_timeout,
                max_connections=config.database.max_connections,
            )
        )
    app = Flask("tenfra.provider", static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=config.limits.max_body,
        SESSION_COOKIE_NAME="tenfra_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.auth.secure_cookies,
        PERMANENT_SESSION_LIFETIME=int(config.auth.session_lifetime),
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.session_interface = _session_interface()
    provider_state = ProviderState(config)
    app.extensions["tenfra"] = provider_state

    app.register_blueprint(api.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(bootstrap.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(metrics.blueprint)

    anonymous = set(ANONYMOUS_ENDPOINTS)
    registry = get_plugin_manager().provider_blueprints
    for name in registry:
        app.register_blueprint(registry[name])
    anonymous |= registry.anonymous_endpoints
    app.config["TENFRA_ANONYMOUS"] = frozenset(anonymous)

    @app.before_request
    def _guard_plugin_blueprints() -> Optional[Response]:
        # Plugin blueprints are served to logged-in administrators only,
        # unless the plugin allow-listed the endpoint.
        if request.blueprint in registry and request.endpoint not in anonymous:
            return admin.require_admin()
        return None

    @app.teardown_request
    def _close_db(exc: Optional[BaseException]) -> None:
        if exc is not None and _is_connection_error(exc) and not db.is_closed():
            manual = getattr(db.obj, "manual_close", None)
            if manual is not None:
                manual()
                return
        if not db.is_closed() and not _keeps_connection():
            db.close()

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = jsonify({"error": exc.message})
        response.status_code = exc.status
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(TenfraError)
    def _tenfra_error(exc: TenfraError) -> Response:
        logger.error("%s %s: %s", request.method, request.path, exc)
        response = jsonify({"error": str(exc)})
        response.status_code = 503 if exc.exit_code == 5 else 500
        return response

    @app.errorhandler(413)
    def _too_large(_exc: Any) -> Response:
        response = jsonify(
            {
                "error": f"The request body is larger than the provider's limit of "
                f"{config.limits.max_body} bytes (limits.maxBody); send less at once."
            }
        )
        response.status_code = 413
        return response

    @app.errorhandler(404)
    def _not_found(_exc: Any) -> Response:
        response = jsonify({"error": f"There is no {request.path} on this provider."})
        response.status_code = 404
        return response

    @app.errorhandler(405)
    def _bad_method(_exc: Any) -> Response:
        response = jsonify(
            {"error": f"{request.method} is not allowed on {request.path}."}
        )
        response.status_code = 405
        return response

    @app.errorhandler(Exception)
    def _internal(exc: Exception) -> Response:
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            response = jsonify({"error": exc.description or exc.name})
            response.status_code = exc.code or 500
            return response
        if _is_connection_error(exc):
            logger.error("database unavailable: %s", exc)
            response = jsonify(
                {"error": "The provider's database is unavailable; retry later."}
            )
            response.status_code = 503
            response.headers["Retry-After"] = "10"
            return response
        logger.exception("internal error on %s %s", request.method, request.path)
        response = jsonify(
            {"error": "Internal provider error; the provider's log has the details."}
        )
        response.status_code = 500
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Server", f"tenfra-provider/{__version__}")
        if request.blueprint == "admin":
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; style-src 'self'; form-action 'self'; "
                "frame-ancestors 'none'",
            )
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    if background:
        provider_state.start_background()
    return app


def _keeps_connection() -> bool:
    """SQLite keeps one connection per thread open; pools get theirs back."""
    import peewee as pw

    from tenfra.provider.models import db

    return isinstance(db.obj, pw.SqliteDatabase)


def _is_connection_error(exc: BaseException) -> bool:
    import peewee as pw

    return isinstance(exc, (pw.OperationalError, pw.InterfaceError))
