"""Liveness and readiness probes: ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from tenfra import __version__
from tenfra.errors import TenfraError

logger = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process answers: nothing else is checked."""
    return jsonify({"status": "ok", "version": __version__})


@blueprint.get("/readyz")
def readyz() -> Response:
    """Ready when the database answers and its schema matches this code.

    Release storage is reported but does not make the replica unready: agents
    can still poll and report while storage is briefly unavailable.
    """
    import peewee as pw

    from tenfra.provider.app import state
    from tenfra.provider.models import check_schema

    checks: dict[str, str] = {}
    ready = True
    try:
        check_schema()
        checks["database"] = "ok"
    except (TenfraError, pw.PeeweeException) as exc:
        checks["database"] = str(exc).strip() or type(exc).__name__
        ready = False
    try:
        state().storage.check_reachable()
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = str(exc) or type(exc).__name__
    response = jsonify({"status": "ready" if ready else "unready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response
